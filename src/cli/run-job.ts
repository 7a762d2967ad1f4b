/**
 * Running (or resuming) a job in-process from the command line, shared by `run`, `resume`,
 * `schedule` and `exceptions requeue`: progress on stderr, Ctrl-C handling, the summary and the
 * exit code.
 */
import { z } from "zod";
import { readConfig } from "../store/configs.js";
import { readEnv } from "../config/env.js";
import { isBadInput } from "../common/errors.js";
import { initializePayloadSchema } from "../steps/initialize/payload.js";
import { parseKeyArgument } from "../sources/key-values.js";
import { isJobCreated, readJobConfigName, readJobMode } from "../queries/job-lookup.js";
import {
  type JobSummary,
  type LocalRunOptions,
  interruptedSummary,
  runJobLocally,
} from "../runtimes/local/local-runner.js";
import { type Store } from "../store/store.js";
import { withMongo } from "../store/connection.js";
import { createProgressDisplay } from "../runtimes/local/progress-display.js";
import type { CommandContext } from "./context.js";
import { CliError, EXIT } from "./exit.js";
import { stderrLogger } from "./output.js";
import { onSignal } from "./signals.js";
import { forTerminal, jsonForTerminal } from "../common/terminal-text.js";

export interface RunRequestFlags {
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

export type RunRequest = NonNullable<LocalRunOptions["request"]>;

export interface RunJobOptions {
  jobId?: string;
  description?: string;
  json?: boolean;
  acceptConfigChange?: boolean;
  fromJob?: string;
  request?: RunRequestFlags;
  /** A request already checked (a scheduled run's). */
  ready?: RunRequest;
}

/**
 * After a first Ctrl-C, how long running steps get to finish before the database client is closed
 * (failing the queries in flight), and then again before the process exits regardless.
 */
const STOP_GRACE_MS = 2_000;

/** How long a stopped run waits to learn whether its job was created before saying how to go on. */
const JOB_EXISTS_DEADLINE_MS = 2_000;

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
): Promise<RunRequest> {
  const mode = modeSchema.default("full").safeParse(flags.mode);
  if (!mode.success) {
    throw new CliError(
      `--mode must be full, incremental, backfill or sample, not '${flags.mode}'`,
      EXIT.usage,
    );
  }
  const config = await readConfig(store, configName);
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

export function printSummary(summary: JobSummary, json: boolean): void {
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

export function exitCodeFor(summary: JobSummary): number {
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

/** Runs (or resumes) a job in-process with progress, signals and the exit code. */
export async function runJobInProcess(
  ctx: CommandContext,
  uri: string,
  configName: string | undefined,
  opts: RunJobOptions,
): Promise<JobSummary> {
  const { env, setExit, hideUriPasswords } = ctx;
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
        config = opts.jobId ? await readJobConfigName(store, opts.jobId) : undefined;
        if (!config)
          throw new CliError(
            `job '${opts.jobId ?? ""}' not found; start one with \`npx chunkrelay run <config>\``,
            EXIT.usage,
          );
      }
      const request =
        opts.ready ?? (opts.request ? await requestFromFlags(store, config, opts.request) : undefined);
      // An existing job resumes as it was planned: say so when the flags asked for something else.
      const given = Object.entries(opts.request ?? {}).filter(([, v]) => v !== undefined);
      if (opts.jobId && given.length > 0) {
        const existingMode = await readJobMode(store, opts.jobId);
        if (existingMode) {
          process.stderr.write(
            `job ${opts.jobId} exists (mode ${existingMode}): resuming it as planned; ${given.map(([k]) => `--${k.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}`).join(", ")} ignored\n`,
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
          const created = id ? await isJobCreated(store, id, JOB_EXISTS_DEADLINE_MS) : false;
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
        // of a last line. (A ConfigError is bad input too: isBadInput knows it by name.)
        if (!(err instanceof CliError) && !isBadInput(err)) {
          display.stop();
          const message = hideUriPasswords(err instanceof Error ? err.message : String(err));
          // The id was chosen before the job was created: name it for a resume only if it may
          // exist (the database may not say, being the reason for the stop).
          const created = jobId ? await isJobCreated(store, jobId, JOB_EXISTS_DEADLINE_MS) : false;
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
