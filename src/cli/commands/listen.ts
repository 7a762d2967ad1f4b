import { z } from "zod";
import { kafkaTopicName } from "../../config/schema.js";
import { listenForJobs } from "../../runtimes/local/job-listener.js";
import { runJobLocally } from "../../runtimes/local/local-runner.js";
import { startWorker } from "../../runtimes/worker-registry.js";
import { readJobConfigName } from "../../queries/job-lookup.js";
import { listOpenJobIdsWithPrefix } from "../../store/jobs.js";
import type { CommandContext } from "../context.js";
import { CliError, EXIT } from "../exit.js";
import { withCommandStore } from "../open-store.js";
import { stderrLogger } from "../output.js";
import { onSignal } from "../signals.js";
import { forTerminal } from "../../common/terminal-text.js";

export interface ListenFlags {
  topic: string;
  brokers?: string;
  group: string;
  deadLetterTopic?: string;
  maxMessages?: number;
  instanceId?: string;
  timeoutMs: number;
  mongo?: string;
}

const flagsSchema = z.object({
  topic: kafkaTopicName,
  brokers: z
    .string({ error: "name the brokers: --brokers host:port[,host:port] (or KAFKA_BROKERS)" })
    .transform((b) => b.split(",").map((s) => s.trim()))
    .pipe(z.array(z.string().regex(/^[A-Za-z0-9._-]+:\d{1,5}$/, "a broker address host:port")).min(1)),
  group: z
    .string()
    .min(1)
    .max(249)
    .regex(/^[A-Za-z0-9._:-]+$/, "letters, digits and . _ : -"),
  deadLetterTopic: kafkaTopicName.optional(),
  instanceId: z
    .string()
    .min(1)
    .max(249)
    .regex(/^[A-Za-z0-9._:-]+$/, "letters, digits and . _ : -")
    .optional(),
});

/**
 * `chunkrelay listen --topic <jobs>`: runs a job for every message of a jobs topic
 * (`{ "config": …, "mode": …, … }`), one at a time, until Ctrl-C or `--max-messages`.
 */
export async function listenForJobMessages(ctx: CommandContext, opts: ListenFlags): Promise<void> {
  const checked = flagsSchema.safeParse({ ...opts, brokers: opts.brokers ?? ctx.env.KAFKA_BROKERS });
  if (!checked.success) {
    throw new CliError(
      checked.error.issues
        .map(
          (i) =>
            `--${String(i.path[0] ?? "topic").replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}: ${i.message}`,
        )
        .join("\n"),
      EXIT.usage,
    );
  }
  const flags = checked.data;
  const controller = new AbortController();
  const dispose = onSignal(() => {
    process.stderr.write(
      "stopping: the running job is interrupted (resumed when its message is read again)\n",
    );
    controller.abort();
  });
  try {
    await withCommandStore(opts.mongo, ctx.env, async (store) => {
      // One worker for the whole listener: every job it runs counts under it (`chunkrelay workers`).
      const worker = startWorker(store, { kind: "listen", env: ctx.env, log: stderrLogger });
      // What every job this listener runs shares, whether new or resumed.
      const shared = {
        store,
        env: ctx.env,
        log: stderrLogger,
        signal: controller.signal,
        worker,
      };
      try {
        process.stderr.write(
          `${forTerminal(`listening on Kafka topic ${flags.topic} (${flags.brokers.join(",")}), group ${flags.group}`)}\n`,
        );
        const handled = await listenForJobs({
          brokers: flags.brokers,
          topic: flags.topic,
          groupId: flags.group,
          clientId: "chunkrelay-listen",
          timeoutMs: opts.timeoutMs,
          ...(flags.deadLetterTopic ? { deadLetterTopic: flags.deadLetterTopic } : {}),
          ...(flags.instanceId ? { instanceId: flags.instanceId } : {}),
          ...(opts.maxMessages !== undefined ? { maxMessages: opts.maxMessages } : {}),
          signal: controller.signal,
          log: stderrLogger,
          runJob: async (payload, onOpened) => {
            const { config, jobId, description, acceptConfigChange, fromJob, ...request } = payload;
            const summary = await runJobLocally({
              ...shared,
              config,
              jobId,
              ...(typeof description === "string" ? { description } : {}),
              ...(acceptConfigChange === true ? { acceptConfigChange: true } : {}),
              ...(typeof fromJob === "string" ? { fromJob } : {}),
              request: request,
              onJobOpened: () => onOpened(),
            });
            return { status: summary.status };
          },
          listOpenJobs: (prefix) => listOpenJobIdsWithPrefix(store, prefix),
          resumeJob: async (jobId) => {
            const config = await readJobConfigName(store, jobId);
            if (!config) return { status: "missing" };
            const summary = await runJobLocally({ ...shared, config, jobId });
            return { status: summary.status };
          },
          onMessage: (o) =>
            process.stderr.write(
              forTerminal(
                o.status === "ran"
                  ? `${o.message}: job ${o.jobId ?? "?"} ${o.jobStatus ?? ""}`
                  : `${o.message}: refused (${o.reason ?? ""})`,
              ) + "\n",
            ),
        });
        process.stderr.write(`handled ${handled} message(s)\n`);
      } finally {
        await worker.stop();
      }
    });
  } finally {
    dispose();
  }
  if (controller.signal.aborted) ctx.setExit(EXIT.interrupted);
}
