/**
 * The `chunkrelay` command line: commander parses the commands, zod the values, and each action
 * calls the same `src/lib` functions the Trigger.dev tasks use. Progress and logs go to stderr;
 * `--json` prints one JSON document as the last stdout line. Exit codes: 0 done, 1 the job or
 * command failed, 2 bad usage or bad config, 3 interrupted (the message says how to resume).
 */
import { EJSON } from "bson";
import { Command, CommanderError, InvalidArgumentError, Option } from "commander";
import { z } from "zod";
import { applyConfig, loadConfig } from "../config/load.js";
import { ConfigError, configHash, configJsonSchema, jobIdSchema } from "../config/schema.js";
import { runDemo } from "../demo/demo.js";
import { startEmbeddedMongo } from "@chunkrelay/embedded-mongo";
import { readEnv, readStatusToken } from "../config/env.js";
import { isBadInput } from "../shared/errors.js";
import { forTerminal, hideUriPasswords as hideGivenUriPasswords, jsonForTerminal } from "./terminal-text.js";
import { readConfigFile } from "../config/config-file.js";
import { readBacklog } from "../queries/backlog.js";
import {
  listExceptions,
  resolveException,
  resolveExceptions,
  showException,
} from "../queries/set-aside-records.js";
import { deleteJob, formatCut, jobReport, listJobs } from "../queries/jobs.js";
import { parseRecordId, whereIsRecord } from "../queries/lineage.js";
import { initializePayloadSchema } from "../steps/initialize/payload.js";
import {
  allScheduledConfigs,
  type SkippedConfig,
  scheduledConfigs,
  scheduledJobPayload,
  warnSkippedConfig,
  syncConfigSchedules,
} from "../admin/scheduled-runs.js";
import { parseKeyArgument } from "../sources/key-values.js";
import { stepStats } from "../queries/step-stats.js";
import {
  type JobSummary,
  type LocalRunOptions,
  interruptedSummary,
  runJobLocally,
} from "../runtimes/local/local-runner.js";
import { startBatchService } from "../service/batch-service.js";
import { startStatusServer } from "../status-page/server.js";
import { type Store, redactUri, withMongo } from "../store/store.js";
import { createProgressDisplay } from "../runtimes/local/progress-display.js";

export const EXIT = { ok: 0, failed: 1, usage: 2, interrupted: 3 } as const;

/** An error whose message is for the user, with the exit code it maps to. */
class CliError extends Error {
  constructor(
    message: string,
    readonly exitCode: number,
  ) {
    super(message);
  }
}

function numberArg(schema: z.ZodType<number>, what: string) {
  return (value: string): number => {
    const parsed = schema.safeParse(value);
    if (!parsed.success) {
      throw new InvalidArgumentError(
        `'${value}' is not ${what}: ${parsed.error.issues[0]?.message ?? "invalid"}.`,
      );
    }
    return parsed.data;
  };
}

const portArg = numberArg(z.coerce.number().int().min(0).max(65535), "a port (0 picks a free one)");
const positiveIntArg = numberArg(
  z.coerce.number().int().positive().max(100_000_000),
  "a positive whole number",
);
const nonNegativeIntArg = numberArg(z.coerce.number().int().min(0), "a whole number ≥ 0");
const positiveNumberArg = numberArg(z.coerce.number().positive(), "a positive number");
const msArg = numberArg(z.coerce.number().int().min(0).max(3_600_000), "a duration in ms");
const rateArg = numberArg(z.coerce.number().min(0).max(1), "a rate between 0 and 1");

/** True for addresses only this machine can reach. */
function isLoopback(host: string): boolean {
  return host === "localhost" || host === "::1" || /^127\.\d+\.\d+\.\d+$/.test(host);
}

/**
 * Human-readable output, with whatever came from outside in it (ids, keys, descriptions, a
 * service's errors) made inert for the terminal; our own newlines are kept.
 */
function writeForTerminal(text: string): boolean {
  return process.stdout.write(forTerminal(text, { keepNewlines: true }));
}

/** A job id flag, checked where it is given: an empty or malformed id is never dropped or used. */
function jobIdArg(value: string): string {
  const parsed = jobIdSchema.safeParse(value);
  if (!parsed.success) {
    const shown = value.length > 60 ? `${value.slice(0, 60)}… (${value.length} characters)` : value;
    throw new CliError(
      `--job-id '${forTerminal(shown)}' is not a job id: ${parsed.error.issues[0]?.message ?? "invalid"}`,
      EXIT.usage,
    );
  }
  return parsed.data;
}

const mongoOption = () =>
  new Option("--mongo <uri>", "MongoDB connection string (default: $MONGODB_URI)").argParser((v) => {
    // Not commander's InvalidArgumentError: its message repeats the value, password included.
    if (!/^mongodb(\+srv)?:\/\//.test(v))
      throw new CliError(
        `--mongo '${forTerminal(hideGivenUriPasswords(v, [v]))}' is not a MongoDB connection string: expected mongodb://… or mongodb+srv://…`,
        EXIT.usage,
      );
    return v;
  });

function mongoUri(flag: string | undefined, env: Record<string, string | undefined>): string {
  const uri = flag ?? readEnv(env).MONGODB_URI;
  if (!uri) {
    throw new CliError(
      "no MongoDB given: set MONGODB_URI or pass --mongo <uri> (for a local server: `npx chunkrelay mongo`; to try everything at once: `npm start`)",
      EXIT.usage,
    );
  }
  return uri;
}

/** Resolves when the process receives SIGINT or SIGTERM; `dispose` removes the handlers. */
function onSignal(handler: (signal: NodeJS.Signals) => void): () => void {
  const on = (signal: NodeJS.Signals) => handler(signal);
  process.on("SIGINT", on);
  process.on("SIGTERM", on);
  return () => {
    process.off("SIGINT", on);
    process.off("SIGTERM", on);
  };
}

const untilSignal = () =>
  new Promise<NodeJS.Signals>((resolve) => {
    const dispose = onSignal((s) => {
      dispose();
      resolve(s);
    });
  });

/**
 * After a first Ctrl-C, how long running steps get to finish before the database client is closed
 * (failing the queries in flight), and then again before the process exits regardless.
 */
const STOP_GRACE_MS = 2_000;

/** Whether a job exists: true, false, or undefined when the database did not say within 2 s. */
async function jobExists(store: Store, jobId: string): Promise<boolean | undefined> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      store.jobs.countDocuments({ _id: jobId }, { limit: 1 }).then((n) => n > 0),
      new Promise<undefined>((resolve) => {
        timer = setTimeout(() => resolve(undefined), 2_000);
      }),
    ]);
  } catch {
    return undefined;
  } finally {
    clearTimeout(timer);
  }
}

/** With `--json`, prints `value` as relaxed Extended JSON on one stdout line and says so. */
function printJson(json: boolean | undefined, value: unknown): boolean {
  if (json) process.stdout.write(`${jsonForTerminal(EJSON.stringify(value, { relaxed: true }))}\n`);
  return json === true;
}

/** Warnings (retries, failed chunks) go to stderr; routine progress is the progress display's. */
const stderrLogger = {
  info: () => undefined,
  warn: (message: string) => process.stderr.write(`warning: ${forTerminal(message)}\n`),
};

interface RunRequestFlags {
  mode?: string;
  from?: string;
  to?: string;
  again?: boolean;
  maxRecords?: number;
  maxWeight?: number;
  maxChunks?: number;
  iterations?: number;
  sampleEvery?: number;
  sampleOffset?: number;
  sampleFirst?: number;
}

const modeSchema = z.enum(["full", "incremental", "backfill", "sample"]);

/**
 * The run flags as an initializer request: the mode checked, --from/--to read in the order key's
 * stored type. Mode-specific rules (caps only for incremental and backfill, …) are the payload
 * schema's, so the CLI and the dashboard refuse the same things with the same words.
 */
async function requestFromFlags(
  store: Store,
  configName: string,
  flags: RunRequestFlags,
): Promise<NonNullable<LocalRunOptions["request"]>> {
  const mode = modeSchema.default("full").safeParse(flags.mode);
  if (!mode.success) {
    throw new CliError(
      `--mode must be full, incremental, backfill or sample, not '${flags.mode}'`,
      EXIT.usage,
    );
  }
  const config = await loadConfig(store, configName);
  const key = async (text: string | undefined, what: string) =>
    text === undefined ? undefined : parseKeyArgument(store, config, text, what);
  const from = await key(flags.from, "--from");
  const to = await key(flags.to, "--to");
  const request = {
    mode: mode.data,
    ...(from !== undefined ? { from } : {}),
    ...(to !== undefined ? { to } : {}),
    ...(flags.again ? { again: true } : {}),
    ...(flags.maxRecords !== undefined ? { maxRecords: flags.maxRecords } : {}),
    ...(flags.maxWeight !== undefined ? { maxWeight: flags.maxWeight } : {}),
    ...(flags.maxChunks !== undefined ? { maxChunks: flags.maxChunks } : {}),
    ...(flags.iterations !== undefined ? { iterations: flags.iterations } : {}),
    ...(flags.sampleEvery !== undefined ? { sampleEvery: flags.sampleEvery } : {}),
    ...(flags.sampleOffset !== undefined ? { sampleOffset: flags.sampleOffset } : {}),
    ...(flags.sampleFirst !== undefined ? { sampleFirst: flags.sampleFirst } : {}),
  };
  const checked = initializePayloadSchema.safeParse({ config: configName, ...request });
  if (!checked.success) {
    const flag = (path: PropertyKey | undefined) =>
      `--${String(path ?? "mode").replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}`;
    throw new CliError(
      checked.error.issues.map((i) => `${flag(i.path[0])}: ${i.message}`).join("\n"),
      EXIT.usage,
    );
  }
  return request;
}

function printSummary(summary: JobSummary, json: boolean): void {
  const line = (s: JobSummary, label: string) =>
    `${label} ${s.status}: ${s.records} records in ${s.chunks} chunks, ` +
    `${s.processed} processed, ${s.exceptions} exceptions, ${(s.durationMs / 1000).toFixed(1)} s, ${s.recordsPerSecond} records/s\n`;
  for (const j of summary.jobs ?? []) process.stderr.write(line(j, `  job ${j.jobId}`));
  process.stderr.write(
    line(
      summary,
      summary.jobs ? `${summary.jobs.length} jobs from ${summary.jobId}` : `job ${summary.jobId}`,
    ),
  );
  if (json) process.stdout.write(`${jsonForTerminal(JSON.stringify(summary))}\n`);
}

function exitCodeFor(summary: JobSummary): number {
  switch (summary.status) {
    case "succeeded":
      return EXIT.ok;
    case "interrupted":
      return EXIT.interrupted;
    case "failed":
    case "planning":
    case "running":
      return EXIT.failed;
    default: {
      const never: never = summary.status;
      return never;
    }
  }
}

interface ServiceFlags {
  port: number;
  host: string;
  latencyMs: number;
  failRate: number;
  errorRate: number;
  throttleRate: number;
  rejectRate: number;
  slowRate: number;
  slowMs: number;
  dropRate: number;
  stallRate: number;
  mongo?: string;
}

export function buildProgram(
  env: Record<string, string | undefined>,
  setExit: (code: number) => void,
  hideUriPasswords: (text: string) => string = (text) => hideGivenUriPasswords(text, [env.MONGODB_URI]),
): Command {
  const program = new Command("chunkrelay")
    .description("Feed MongoDB records to a REST batch service in chunks, with back-pressure.")
    .exitOverride()
    .showHelpAfterError()
    .configureOutput({ writeErr: (s) => process.stderr.write(hideUriPasswords(s)) });

  /** Runs (or resumes) a job in-process with progress, signals and the exit code. */
  async function runCommand(
    uri: string,
    configName: string | undefined,
    opts: {
      jobId?: string;
      description?: string;
      json?: boolean;
      acceptConfigChange?: boolean;
      fromJob?: string;
      request?: RunRequestFlags;
      /** Label of the run in messages (e.g. "scheduled run"). */
      label?: string;
      ready?: NonNullable<LocalRunOptions["request"]>;
    },
  ): Promise<JobSummary> {
    // A Ctrl-C before the run is under way (connecting, reading the config) holds nothing yet:
    // exit 3 at once, as promised, instead of Node's default 130 without a word.
    const disposeEarly = onSignal(() => {
      if (opts.json === true) {
        const summary = interruptedSummary(opts.jobId ?? "", configName ?? "", 0);
        process.stdout.write(`${jsonForTerminal(JSON.stringify(summary))}\n`);
      }
      process.stderr.write(
        opts.jobId
          ? `interrupted; resume with: npx chunkrelay resume ${opts.jobId}\n`
          : "interrupted before the run started; nothing to resume: run it again\n",
      );
      process.exit(EXIT.interrupted);
    });
    try {
      return await runWithMongo();
    } finally {
      disposeEarly();
    }
    function runWithMongo() {
      return withMongo(uri, async (store, client) => {
        let config = configName;
        if (!config) {
          const job = opts.jobId
            ? await store.jobs.findOne({ _id: opts.jobId }, { projection: { config: 1 } })
            : null;
          if (!job)
            throw new CliError(
              `job '${opts.jobId ?? ""}' not found; start one with \`npx chunkrelay run <config>\``,
              EXIT.usage,
            );
          config = job.config;
        }
        const request =
          opts.ready ?? (opts.request ? await requestFromFlags(store, config, opts.request) : undefined);
        // An existing job resumes as it was planned: say so when the flags asked for something else.
        const given = Object.entries(opts.request ?? {}).filter(([, v]) => v !== undefined);
        if (opts.jobId && given.length > 0) {
          const existing = await store.jobs.findOne({ _id: opts.jobId }, { projection: { mode: 1 } });
          if (existing) {
            process.stderr.write(
              `job ${opts.jobId} exists (mode ${existing.mode}): resuming it as planned; ${given.map(([k]) => `--${k.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}`).join(", ")} ignored\n`,
            );
          }
        }
        const controller = new AbortController();
        let jobId = opts.jobId;
        /** The job is known to exist (its progress was read). */
        let opened = false;
        const runConfig = config;
        const started = Date.now();
        const display = createProgressDisplay();
        let forceClose: NodeJS.Timeout | undefined;
        disposeEarly();
        const dispose = onSignal((signal) => {
          if (!controller.signal.aborted) {
            process.stderr.write(
              `\n${signal}: stopping (waits and requests are cut short; press Ctrl-C again to exit at once)…\n`,
            );
            controller.abort();
            // A database that stopped answering (a hung server, a network black hole) would hold
            // the steps' queries until the socket times out: past a short grace, the client is
            // closed, which fails every query in flight, and the run stops as interrupted.
            // Queries waiting for a connection or a server are not failed by that, nor is the
            // client's own goodbye to the server: past a second grace, the run stops as a second
            // Ctrl-C would.
            forceClose = setTimeout(() => {
              client.close().catch(() => undefined);
              forceClose = setTimeout(exitNow, STOP_GRACE_MS);
              forceClose.unref();
            }, STOP_GRACE_MS);
            forceClose.unref();
            return;
          }
          exitNow();
        });
        // A second signal (or steps that do not stop): leave now. What this process held (leases)
        // runs out by itself, and every step is safe to run again, so `resume` finishes the job.
        function exitNow(): never {
          display.stop();
          const summary = interruptedSummary(jobId ?? "", runConfig, Date.now() - started);
          if (opts.json === true) process.stdout.write(`${jsonForTerminal(JSON.stringify(summary))}\n`);
          process.stderr.write(
            opened || !jobId
              ? `interrupted; resume with: npx chunkrelay resume ${jobId ?? "<jobId>"}\n`
              : `interrupted while job ${jobId} was being opened; resume with: npx chunkrelay resume ${jobId} (if it is not found, nothing was started: run it again)\n`,
          );
          process.exit(EXIT.interrupted);
        }
        try {
          const result = await runJobLocally({
            store,
            config,
            ...(opts.jobId ? { jobId: opts.jobId } : {}),
            ...(opts.description ? { description: opts.description } : {}),
            ...(opts.acceptConfigChange ? { acceptConfigChange: true } : {}),
            ...(opts.fromJob ? { fromJob: opts.fromJob } : {}),
            ...(request ? { request } : {}),
            signal: controller.signal,
            onJobId: (id) => {
              jobId = id;
            },
            env,
            leaseMs: readEnv(env).CHUNKRELAY_LEASE_MS,
            stepTries: readEnv(env).CHUNKRELAY_STEP_TRIES,
            stepRetryMs: readEnv(env).CHUNKRELAY_STEP_RETRY_MS,
            log: stderrLogger,
            onProgress: (p) => {
              jobId = p.jobId;
              opened = true;
              display.update(p);
            },
          });
          display.stop();
          let summary = result;
          let hint = "";
          if (result.status === "interrupted") {
            const id = result.jobId || jobId || "";
            // Stopped before its job was created (while claiming the config or reading the first
            // record): there is nothing to resume, and no job to name. Asked with a deadline: the
            // database may be the reason for the stop.
            const created = id ? await jobExists(store, id) : false;
            if (created === false) summary = { ...result, jobId: "" };
            hint =
              created === false
                ? `interrupted before job ${id || "<jobId>"} was created; nothing to resume: run it again\n`
                : `interrupted; resume with: npx chunkrelay resume ${id}\n`;
          }
          printSummary(summary, opts.json === true);
          process.stderr.write(hint);
          setExit(exitCodeFor(summary));
          return summary;
        } catch (err) {
          // Stopped by something other than bad input (the database away for longer than the
          // step retries wait): the job is intact, so say how to go on, and keep --json's promise
          // of a last line.
          if (!(err instanceof CliError) && !(err instanceof ConfigError) && !isBadInput(err)) {
            display.stop();
            const message = hideUriPasswords(err instanceof Error ? err.message : String(err));
            // The id was chosen before the job was created: name it for a resume only if it may
            // exist (the database may not say, being the reason for the stop).
            const created = jobId ? await jobExists(store, jobId) : false;
            const id = created === false ? "" : (jobId ?? "");
            if (opts.json === true) {
              process.stdout.write(
                `${jsonForTerminal(JSON.stringify({ jobId: id, config, status: "stopped", error: message }))}\n`,
              );
            }
            process.stderr.write(
              id
                ? `stopped: ${forTerminal(message)}\nresume with: npx chunkrelay resume ${id}\n`
                : `stopped before the job was created: ${forTerminal(message)}\nnothing to resume: run it again\n`,
            );
          }
          throw err;
        } finally {
          if (forceClose) clearTimeout(forceClose);
          display.stop();
          dispose();
        }
      });
    }
  }

  program
    .command("run")
    .description("Run a job of a config in-process (the same steps the Trigger.dev tasks run).")
    .argument("<config>", "config name (its _id in batch_config)")
    .option("--job-id <id>", "job id; give an existing one to resume that job", jobIdArg)
    .option("--description <text>", "what this job is for")
    .option(
      "--mode <mode>",
      "full (every matching record, the default), incremental (after the watermark), backfill (--from/--to), sample (--sample-every/--sample-first)",
    )
    .option("--from <key>", "backfill: first order-key value included (read in the key's stored type)")
    .option("--to <key>", "backfill: last order-key value included")
    .option("--again", "backfill: start a new pass over a window earlier backfill jobs already took")
    .option("--max-records <n>", "most records one job takes (incremental, backfill)", positiveIntArg)
    .option("--max-weight <w>", "most total weight one job takes (incremental, backfill)", positiveNumberArg)
    .option("--max-chunks <n>", "most chunks one job takes (incremental, backfill)", positiveIntArg)
    .option("--iterations <n>", "run up to n consecutive jobs (incremental, backfill)", positiveIntArg)
    .option("--sample-every <k>", "sample: every k-th record", positiveIntArg)
    .option(
      "--sample-offset <r>",
      "sample: with --sample-every k, start at position r (0..k-1)",
      nonNegativeIntArg,
    )
    .option("--sample-first <n>", "sample: the first n records", positiveIntArg)
    .option("--json", "print the job summary as JSON on the last stdout line")
    .addOption(mongoOption())
    .action(
      async (
        configName: string,
        opts: RunRequestFlags & { jobId?: string; description?: string; json?: boolean; mongo?: string },
      ) => {
        const { jobId, description, json, mongo, ...request } = opts;
        await runCommand(mongoUri(mongo, env), configName, {
          ...(jobId ? { jobId } : {}),
          ...(description ? { description } : {}),
          ...(json ? { json } : {}),
          request,
        });
      },
    );

  program
    .command("resume")
    .description("Continue a job where it stopped (after a crash, a kill or Ctrl-C).")
    .argument("<jobId>", "the job id")
    .option("--accept-config-change", "continue although the config changed since the job started (recorded)")
    .option("--json", "print the job summary as JSON on the last stdout line")
    .addOption(mongoOption())
    .action(async (jobId: string, opts: { acceptConfigChange?: boolean; json?: boolean; mongo?: string }) => {
      await runCommand(mongoUri(opts.mongo, env), undefined, {
        jobId,
        ...(opts.json ? { json: true } : {}),
        ...(opts.acceptConfigChange ? { acceptConfigChange: true } : {}),
      });
    });

  program
    .command("schedule")
    .description(
      "Run the scheduled incremental job of a config (or of every config with a schedule) now, in-process — for cron on a plain server. With --sync, create or update the Trigger.dev schedules of configs that have their own schedule.cron.",
    )
    .argument("[config]", "config name; default: every config with a schedule")
    .option("--sync", "create/update the imperative Trigger.dev schedules (needs TRIGGER_SECRET_KEY)")
    .option("--json", "print the summaries as JSON on the last stdout line")
    .addOption(mongoOption())
    .action(
      async (configName: string | undefined, opts: { sync?: boolean; json?: boolean; mongo?: string }) => {
        const uri = mongoUri(opts.mongo, env);
        if (opts.sync) {
          if (!env.TRIGGER_SECRET_KEY) {
            throw new CliError(
              "--sync needs TRIGGER_SECRET_KEY (the project's secret API key) in the environment",
              EXIT.usage,
            );
          }
          const { schedules } = await import("@trigger.dev/sdk");
          await withMongo(uri, async (store) => {
            const result = await syncConfigSchedules(store, {
              create: (o) => schedules.create(o),
              list: () => schedules.list(),
              deactivate: (id) => schedules.deactivate(id),
            });
            for (const s of result.synced) {
              process.stderr.write(
                `config ${s.config}: schedule ${s.scheduleId} at '${s.cron}' ${s.timezone}\n`,
              );
            }
            for (const d of result.deactivated) {
              process.stderr.write(
                `config ${d.config}: schedule ${d.scheduleId} deactivated (no cron of its own now)\n`,
              );
            }
            printJson(opts.json, result);
            if (result.skipped.length > 0) setExit(EXIT.usage);
          });
          return;
        }
        // A stored config that no longer validates is skipped (the others still run) and warned
        // about; the exit code then says something needs fixing (2), unless a run did worse.
        let skipped = 0;
        const onSkip = (s: SkippedConfig) => {
          skipped++;
          warnSkippedConfig(s);
        };
        const configs = await withMongo(uri, async (store) =>
          configName ? scheduledConfigs(store, configName, onSkip) : allScheduledConfigs(store, onSkip),
        );
        if (configs.length === 0 && skipped === 0) process.stderr.write("no config has a schedule\n");
        const summaries: JobSummary[] = [];
        let worst: number = skipped > 0 ? EXIT.usage : EXIT.ok;
        for (const c of configs) {
          const payload = scheduledJobPayload(c, new Date());
          const { config: _c, jobId, description, ...request } = payload;
          process.stderr.write(`config ${c.name}: scheduled incremental run\n`);
          const summary = await runCommand(uri, c.name, {
            ...(jobId ? { jobId } : {}),
            ...(description ? { description } : {}),
            ready: request,
          });
          summaries.push(summary);
          const code = exitCodeFor(summary);
          // Interrupted wins (the rest did not run); else failed; else ok.
          worst =
            code === EXIT.interrupted || worst === EXIT.interrupted
              ? EXIT.interrupted
              : Math.max(worst, code);
          if (code === EXIT.interrupted) break;
        }
        setExit(worst);
        printJson(opts.json, summaries);
      },
    );

  const config = program.command("config").description("Manage batch configs.");
  config
    .command("apply")
    .description("Validate a config file (JSON or Extended JSON) and upsert it into batch_config.")
    .argument("<file>", "path of the config file")
    .option("--json", "print the stored config as JSON")
    .addOption(mongoOption())
    .action(async (file: string, opts: { json?: boolean; mongo?: string }) => {
      const raw = await readConfigFile(file);
      const uri = mongoUri(opts.mongo, env);
      await withMongo(uri, async (store) => {
        const applied = await applyConfig(store, raw, new Date());
        process.stderr.write(`config '${applied.name}' applied (hash ${configHash(applied)})\n`);
        printJson(opts.json, applied);
      });
    });
  config
    .command("schema")
    .description("Print the JSON Schema of a config (every field with its default).")
    .action(() => {
      process.stdout.write(`${JSON.stringify(configJsonSchema(), null, 2)}\n`);
    });

  program
    .command("status")
    .description("Show a job: times, config and drift, counts, rate, step statistics and its chunks.")
    .argument("<jobId>", "the job id")
    .option("--json", "print the report as JSON on the last stdout line")
    .addOption(mongoOption())
    .action(async (jobId: string, opts: { json?: boolean; mongo?: string }) => {
      await withMongo(mongoUri(opts.mongo, env), async (store) => {
        const r = await jobReport(store, jobId);
        if (printJson(opts.json, r)) return;
        const { job, progress } = r;
        const out = { write: writeForTerminal };
        out.write(
          `job ${job._id}  config ${job.config} (hash ${job.configHash})  mode ${job.mode}  status ${job.status}\n`,
        );
        if (job.description) out.write(`  ${forTerminal(job.description)}\n`);
        if (r.source) {
          out.write(
            `  source ${forTerminal(r.source.description)}${r.source.filter ? `, filter ${forTerminal(EJSON.stringify(r.source.filter, { relaxed: true }))}` : ""}\n`,
          );
        }
        for (const line of r.windowLines) out.write(`  ${line}\n`);
        out.write(`  triggered by ${job.triggeredBy}\n`);
        out.write(
          `  created ${job.createdAt.toISOString()}, started ${job.startedAt.toISOString()}${job.finishedAt ? `, finished ${job.finishedAt.toISOString()} (${((job.finishedAt.getTime() - job.startedAt.getTime()) / 1000).toFixed(1)} s)` : ""}\n`,
        );
        out.write(
          `  records ${progress.processedRecords + progress.failedRecords}/${progress.totalRecords} (${progress.processedRecords} processed, ${r.exceptions} exceptions), chunks ${progress.doneChunks}/${progress.totalChunks}, in flight ${progress.inFlightChunks}, ${r.recordsPerSecond} records/s\n`,
        );
        if (r.currentConfigHash && r.currentConfigHash !== job.configHash) {
          out.write(
            `  ! config '${job.config}' changed since: now ${r.currentConfigHash} (resume needs --accept-config-change)\n`,
          );
        }
        for (const c of job.configChanges ?? [])
          out.write(`  config changed ${c.from} → ${c.to} at ${c.at.toISOString()}\n`);
        if (r.driftedChunks.length > 0) {
          out.write(`  ! chunks sent under another config than the job's: ${r.driftedChunks.join(", ")}\n`);
        }
        for (const st of r.steps) {
          out.write(
            `  step ${st.task.padEnd(20)} ${st.invocations} runs, ${st.succeeded} ok, ${st.failed} failed, p50 ${st.p50Ms} ms, p95 ${st.p95Ms} ms, max ${st.maxMs} ms\n`,
          );
        }
        out.write(
          "  chunk  status       attempt  records  config            sent                      finished\n",
        );
        for (const c of r.chunks) {
          out.write(
            `  ${String(c.chunk).padStart(5)}  ${c.status.padEnd(11)}  ${String(c.attempt).padStart(7)}  ${String(c.recordCount).padStart(7)}  ${c.configHash.padEnd(16)}  ${(c.sentAt?.toISOString() ?? "-").padEnd(24)}  ${c.finishedAt?.toISOString() ?? "-"}${c.lastError ? `  (${forTerminal(c.lastError)})` : ""}\n`,
          );
        }
      });
    });

  program
    .command("jobs")
    .description("List jobs, newest first: config, mode, status, records, exceptions, duration.")
    .option("--config <name>", "only this config's jobs")
    .option("--limit <n>", "how many", positiveIntArg, 50)
    .option("--json", "print the list as JSON on the last stdout line")
    .addOption(mongoOption())
    .action(async (opts: { config?: string; limit: number; json?: boolean; mongo?: string }) => {
      await withMongo(mongoUri(opts.mongo, env), async (store) => {
        const jobs = await listJobs(store, {
          ...(opts.config ? { config: opts.config } : {}),
          limit: opts.limit,
        });
        if (printJson(opts.json, jobs)) return;
        for (const j of jobs) {
          writeForTerminal(
            `${j.jobId.padEnd(40)} ${j.config.padEnd(16)} ${j.mode.padEnd(11)} ${j.partitioning.padEnd(18)} ${j.status.padEnd(9)} ${String(j.records).padStart(9)} records ${String(j.exceptions).padStart(6)} exceptions  ${j.createdAt.toISOString()}${j.durationMs !== undefined ? `  ${(j.durationMs / 1000).toFixed(1)} s` : ""}\n`,
          );
        }
      });
    });

  program
    .command("stats")
    .description(
      "Per-step statistics (runs, successes, failures, p50/p95/max), for a job or a config or overall.",
    )
    .option("--job <id>", "only this job")
    .option("--config <name>", "only this config's jobs")
    .option("--json", "print the statistics as JSON on the last stdout line")
    .addOption(mongoOption())
    .action(async (opts: { job?: string; config?: string; json?: boolean; mongo?: string }) => {
      await withMongo(mongoUri(opts.mongo, env), async (store) => {
        const jobIds = opts.config
          ? (await listJobs(store, { config: opts.config, limit: 10_000 })).map((j) => j.jobId)
          : undefined;
        const steps = await stepStats(store, {
          ...(opts.job ? { jobId: opts.job } : {}),
          ...(jobIds ? { jobIds } : {}),
        });
        if (printJson(opts.json, steps)) return;
        for (const st of steps) {
          process.stdout.write(
            `${st.task.padEnd(22)} ${String(st.invocations).padStart(7)} runs ${String(st.succeeded).padStart(7)} ok ${String(st.failed).padStart(5)} failed  p50 ${st.p50Ms} ms  p95 ${st.p95Ms} ms  max ${st.maxMs} ms\n`,
          );
        }
      });
    });

  program
    .command("where")
    .description("Lineage of a record: every job and chunk that included it, attempts, times, config hashes.")
    .argument("<recordId>", "the record's _id (24-hex is read as an ObjectId, digits as a number)")
    .option("--type <type>", "read the id as string, number or objectId")
    .option("--config <name>", "only this config's jobs")
    .option("--json", "print the lineage as JSON on the last stdout line")
    .addOption(mongoOption())
    .action(
      async (text: string, opts: { type?: string; config?: string; json?: boolean; mongo?: string }) => {
        const type = z.enum(["string", "number", "objectId"]).optional().safeParse(opts.type);
        if (!type.success)
          throw new CliError(`--type must be string, number or objectId, not '${opts.type}'`, EXIT.usage);
        let recordId: unknown;
        try {
          recordId = parseRecordId(text, type.data);
        } catch (err) {
          throw new CliError((err as Error).message, EXIT.usage);
        }
        await withMongo(mongoUri(opts.mongo, env), async (store) => {
          const lineage = await whereIsRecord(store, recordId, opts.config);
          if (printJson(opts.json, lineage)) return;
          if (lineage.length === 0) writeForTerminal(`no job has included record ${text}\n`);
          for (const l of lineage) {
            writeForTerminal(
              `${l.jobId}  config ${l.config} (${l.jobConfigHash})  chunk ${l.chunk} (${l.chunkConfigHash ?? "-"})  ${l.status}  attempts ${l.attempts}  sent ${l.sentAt?.toISOString() ?? "-"}  processed ${l.processedAt?.toISOString() ?? "-"}${l.error ? `  error: ${forTerminal(l.error)}` : ""}${l.exception ? `  exception: ${forTerminal(l.exception)}` : ""}\n`,
            );
          }
        });
      },
    );

  program
    .command("serve")
    .description(
      "Serve the status page and its JSON API (read-only). Prints its URL as the first stdout line.",
    )
    .option("--port <n>", "TCP port; 0 picks a free one", portArg, 3100)
    .option("--host <address>", "interface to bind", "127.0.0.1")
    .option("--token <token>", "require this bearer token (default: $CHUNKRELAY_STATUS_TOKEN, else none)")
    .addOption(mongoOption())
    .action(async (opts: { port: number; host: string; token?: string; mongo?: string }) => {
      // An empty token would quietly turn authentication off: refuse it rather than guess.
      if (opts.token !== undefined && opts.token.trim() === "") {
        throw new CliError(
          "--token is empty: give a token, or leave the flag out to serve without one",
          EXIT.usage,
        );
      }
      if (opts.token !== undefined && /[\p{Cc}\s]/u.test(opts.token)) {
        throw new CliError("--token holds a space or a control character: give the bare token", EXIT.usage);
      }
      const token = opts.token ?? readStatusToken(env);
      if (!token && !isLoopback(opts.host)) {
        process.stderr.write(
          `warning: serving on ${opts.host} without a token: anyone who can reach this address can read every job; set --token or CHUNKRELAY_STATUS_TOKEN\n`,
        );
      }
      await withMongo(mongoUri(opts.mongo, env), async (store) => {
        const server = await startStatusServer({
          store,
          port: opts.port,
          host: opts.host,
          ...(token ? { token } : {}),
        });
        process.stdout.write(`${server.url}\n`);
        process.stderr.write(
          `status page on ${server.url}${token ? " (token required)" : ""}; stop with Ctrl-C\n`,
        );
        await untilSignal();
        await server.stop();
      });
    });

  program
    .command("backlog")
    .description(
      "Matching records of a config not yet covered by a completed job (past its watermark), and their weight.",
    )
    .argument("<config>", "config name")
    .option("--json", "print the backlog as JSON on the last stdout line")
    .addOption(mongoOption())
    .action(async (configName: string, opts: { json?: boolean; mongo?: string }) => {
      await withMongo(mongoUri(opts.mongo, env), async (store) => {
        const b = await readBacklog(store, configName);
        if (printJson(opts.json, b)) return;
        writeForTerminal(
          `config ${b.config}: ${b.records} records${b.weight !== undefined ? ` (weight ${b.weight})` : ""} past the watermark ${b.completedUpTo === undefined ? "(none yet: no job has completed)" : `(${formatCut(b.completedUpTo, "to")}, job ${b.completedBy ?? "?"})`}${b.claimedUpTo ? `; claimed ${formatCut(b.claimedUpTo, "to")} by job ${b.claimedBy ?? "?"}` : ""}\n`,
        );
        for (const l of b.backfills) {
          const w = `${l.window.from ? formatCut(l.window.from, "from") : "from the first record"} ${l.window.to ? formatCut(l.window.to, "to") : ""}`;
          writeForTerminal(
            `  backfill ${w} (pass ${l.pass}): completed ${l.completedUpTo ? formatCut(l.completedUpTo, "to") : "nothing yet"}${l.completedBy ? ` by ${l.completedBy}` : ""}, claimed ${l.claimedUpTo ? formatCut(l.claimedUpTo, "to") : "nothing yet"}\n`,
          );
        }
      });
    });

  const exceptions = program.command("exceptions").description("Records set aside for a human.");
  exceptions
    .command("list")
    .description("List exceptions, newest first.")
    .option("--job <id>", "only this job")
    .option("--config <name>", "only this config")
    .option("--unresolved", "only those without a resolution")
    .option("--json", "print them as JSON on the last stdout line")
    .addOption(mongoOption())
    .action(
      async (opts: {
        job?: string;
        config?: string;
        unresolved?: boolean;
        json?: boolean;
        mongo?: string;
      }) => {
        await withMongo(mongoUri(opts.mongo, env), async (store) => {
          const list = await listExceptions(store, {
            ...(opts.job ? { jobId: opts.job } : {}),
            ...(opts.config ? { config: opts.config } : {}),
            ...(opts.unresolved ? { unresolved: true } : {}),
          });
          if (printJson(opts.json, list)) return;
          for (const e of list) {
            writeForTerminal(
              `${e.jobId}  record ${EJSON.stringify({ v: e.recordId }, { relaxed: true }).slice(5, -1)}  chunk ${e.chunk}  attempts ${e.attempts}  ${forTerminal(e.reason)}${e.resolution ? `  [resolved: ${forTerminal(e.resolution.note)}]` : ""}\n`,
            );
          }
        });
      },
    );
  exceptions
    .command("show")
    .description("Show one exception: the record, its chunk, attempts, reason and resolution.")
    .argument("<jobId>", "the job")
    .argument("<recordId>", "the record's _id")
    .option("--type <type>", "read the id as string, number or objectId")
    .addOption(mongoOption())
    .action(
      async (
        jobId: string,
        text: string,
        opts: { type?: "string" | "number" | "objectId"; mongo?: string },
      ) => {
        await withMongo(mongoUri(opts.mongo, env), async (store) => {
          const doc = await showException(store, jobId, parseRecordId(text, opts.type));
          process.stdout.write(`${jsonForTerminal(EJSON.stringify(doc, { relaxed: true }))}\n`);
        });
      },
    );
  exceptions
    .command("requeue")
    .description("Send the unresolved exceptions of a job again, as a new job of the same config.")
    .argument("<jobId>", "the job whose exceptions to requeue")
    .option("--job-id <id>", "id of the new job (give it again to resume that job)", jobIdArg)
    .option("--json", "print the new job's summary as JSON on the last stdout line")
    .addOption(mongoOption())
    .action(async (fromJob: string, opts: { jobId?: string; json?: boolean; mongo?: string }) => {
      const uri = mongoUri(opts.mongo, env);
      const config = await withMongo(uri, async (store) => {
        const job = await store.jobs.findOne({ _id: fromJob }, { projection: { config: 1 } });
        if (!job) throw new CliError(`job '${fromJob}' not found`, EXIT.usage);
        return job.config;
      });
      await runCommand(uri, config, {
        fromJob,
        ...(opts.jobId ? { jobId: opts.jobId } : {}),
        ...(opts.json ? { json: true } : {}),
        description: `exceptions of ${fromJob}`,
      });
    });
  exceptions
    .command("resolve")
    .description(
      "Mark an exception resolved (or, with --all, every unresolved one of the job), with a note saying what was done.",
    )
    .argument("<jobId>", "the job")
    .argument("[recordId]", "the record's _id (omit with --all)")
    .requiredOption("--note <text>", "what was done about it")
    .option("--all", "resolve every unresolved exception of the job")
    .option("--type <type>", "read the id as string, number or objectId")
    .addOption(mongoOption())
    .action(
      async (
        jobId: string,
        text: string | undefined,
        opts: { note: string; all?: boolean; type?: "string" | "number" | "objectId"; mongo?: string },
      ) => {
        if ((text === undefined) !== (opts.all === true)) {
          throw new CliError(
            "name one record, or pass --all for every unresolved exception of the job",
            EXIT.usage,
          );
        }
        await withMongo(mongoUri(opts.mongo, env), async (store) => {
          if (text === undefined) {
            const n = await resolveExceptions(store, jobId, opts.note, new Date());
            process.stderr.write(`${n} exceptions of job ${jobId} resolved\n`);
            return;
          }
          const done = await resolveException(
            store,
            jobId,
            parseRecordId(text, opts.type),
            opts.note,
            new Date(),
          );
          process.stderr.write(`exception of record ${text} in job ${done.jobId} resolved\n`);
        });
      },
    );

  program
    .command("delete")
    .description(
      "Delete every document of a job from all chunkrelay collections (only counts without --yes).",
    )
    .argument("<jobId>", "the job id")
    .option("--yes", "really delete")
    .option("--json", "print what was (or would be) deleted as JSON")
    .addOption(mongoOption())
    .action(async (jobId: string, opts: { yes?: boolean; json?: boolean; mongo?: string }) => {
      await withMongo(mongoUri(opts.mongo, env), async (store) => {
        const res = await deleteJob(store, jobId, opts.yes === true);
        const what = `${res.details} details, ${res.chunks} chunks, ${res.exceptions} exceptions, ${res.taskStats} step records and the job document`;
        process.stderr.write(
          res.deleted
            ? `deleted job ${jobId}: ${what}\n`
            : `would delete job ${jobId}: ${what}; run again with --yes\n`,
        );
        if (opts.json) process.stdout.write(`${JSON.stringify(res)}\n`);
      });
    });

  program
    .command("batch-service")
    .description("Run the reference batch service (the service side of the contract). Prints its URL first.")
    .option("--port <n>", "TCP port; 0 picks a free one", portArg, 3000)
    .option("--host <address>", "interface to bind (0.0.0.0 inside a container)", "127.0.0.1")
    .option("--latency-ms <n>", "processing time per chunk", msArg, 20)
    .option("--fail-rate <r>", "fraction of records reported failed (0..1)", rateArg, 0)
    .option("--error-rate <r>", "fault: fraction of requests answered 500", rateArg, 0)
    .option("--throttle-rate <r>", "fault: fraction answered 429 with Retry-After", rateArg, 0)
    .option("--reject-rate <r>", "fault: fraction answered 400 (chunk rejected)", rateArg, 0)
    .option("--slow-rate <r>", "fault: fraction answered after --slow-ms", rateArg, 0)
    .option("--slow-ms <n>", "delay of a slow reply", msArg, 1000)
    .option(
      "--drop-rate <r>",
      "fault: fraction accepted, then the connection is cut without a reply",
      rateArg,
      0,
    )
    .option("--stall-rate <r>", "fault: fraction of chunks accepted but never processed", rateArg, 0)
    .addOption(mongoOption())
    .action(async (opts: ServiceFlags) => {
      const uri = mongoUri(opts.mongo, env);
      const service = await startBatchService({
        mongoUri: uri,
        port: opts.port,
        host: opts.host,
        latencyMs: opts.latencyMs,
        failRate: opts.failRate,
        faults: {
          error: opts.errorRate,
          throttle: opts.throttleRate,
          reject: opts.rejectRate,
          slow: opts.slowRate,
          slowMs: opts.slowMs,
          drop: opts.dropRate,
          stall: opts.stallRate,
        },
        prefix: readEnv(env).CHUNKRELAY_PREFIX,
      });
      process.stdout.write(`${service.url}\n`);
      process.stderr.write(
        `reference batch service on ${service.url}, updating ${redactUri(uri)}; stop with Ctrl-C\n`,
      );
      await untilSignal();
      await service.stop();
    });

  program
    .command("demo")
    .description(
      "The main job on embedded defaults: MongoDB, sample records, the reference service, a full run.",
    )
    .option("--records <n>", "sample records to seed", positiveIntArg, 10_000)
    .option("--chunk-size <n>", "records per chunk", positiveIntArg, 500)
    .option("--max-in-flight <n>", "chunks in flight at once", positiveIntArg, 1)
    .option("--latency-ms <n>", "reference service processing time per chunk", msArg, 20)
    .option("--json", "print the job summary as JSON on the last stdout line")
    .action(
      async (opts: {
        records: number;
        chunkSize: number;
        maxInFlight: number;
        latencyMs: number;
        json?: boolean;
      }) => {
        const controller = new AbortController();
        const dispose = onSignal(() => controller.abort());
        const display = createProgressDisplay();
        try {
          const summary = await runDemo({
            records: opts.records,
            chunkSize: opts.chunkSize,
            maxInFlight: opts.maxInFlight,
            latencyMs: opts.latencyMs,
            env,
            signal: controller.signal,
            say: (line) => process.stderr.write(`${line}\n`),
            onProgress: (p) => display.update(p),
          });
          display.stop();
          printSummary(summary, opts.json === true);
          setExit(exitCodeFor(summary));
        } finally {
          display.stop();
          dispose();
        }
      },
    );

  program
    .command("mongo")
    .description("Serve the embedded MongoDB engine (for machines without mongod). Prints the URI first.")
    .option("--port <n>", "TCP port; 0 picks a free one", portArg, 27017)
    .option("--host <address>", "interface to bind", "127.0.0.1")
    .option(
      "--dir <path>",
      "load data from here on start and save it here on clean stop (default: memory only)",
    )
    .action(async (opts: { port: number; host: string; dir?: string }) => {
      const server = await startEmbeddedMongo({
        port: opts.port,
        host: opts.host,
        ...(opts.dir ? { dir: opts.dir } : {}),
      });
      process.stdout.write(`${server.uri}\n`);
      process.stderr.write(
        `embedded MongoDB engine listening on ${server.uri}` +
          (opts.dir
            ? ` (data dir ${opts.dir}, ${server.loadedDocuments} documents loaded)`
            : " (in memory)") +
          "; stop with Ctrl-C\n",
      );
      const signal = await untilSignal();
      await server.stop();
      process.stderr.write(`stopped on ${signal}${opts.dir ? `; data saved to ${opts.dir}` : ""}\n`);
    });

  return program;
}

export async function main(
  argv: string[],
  env: Record<string, string | undefined> = process.env,
): Promise<number> {
  let code: number = EXIT.ok;
  // Every connection string this invocation was given: their credentials are hidden in all it
  // prints, whatever the error (a usage error, a driver error, commander's own messages).
  // Every argument shaped like a connection string counts, not only --mongo's: a mistyped flag
  // (`--mongo-uri=…`) is echoed by commander's own error.
  const uris = [
    env.MONGODB_URI,
    ...argv.map((a) => a.replace(/^--?[A-Za-z-]+=/, "")).filter((a) => /mongo|:\/|:[^@\s]*@/i.test(a)),
  ];
  const hideUriPasswords = (text: string) => hideGivenUriPasswords(text, uris);
  const program = buildProgram(
    env,
    (c) => {
      code = c;
    },
    hideUriPasswords,
  );
  try {
    await program.parseAsync(argv, { from: "user" });
    return code;
  } catch (err) {
    if (err instanceof CommanderError) return err.exitCode === 0 ? EXIT.ok : EXIT.usage;
    if (err instanceof CliError) {
      process.stderr.write(
        `chunkrelay: ${forTerminal(hideUriPasswords(err.message), { keepNewlines: true })}\n`,
      );
      return err.exitCode;
    }
    if (err instanceof ConfigError || isBadInput(err)) {
      process.stderr.write(
        `chunkrelay: ${forTerminal(hideUriPasswords(err.message), { keepNewlines: true })}\n`,
      );
      return EXIT.usage;
    }
    process.stderr.write(
      `chunkrelay: ${forTerminal(hideUriPasswords(err instanceof Error ? err.message : String(err)), { keepNewlines: true })}\n`,
    );
    return EXIT.failed;
  }
}
