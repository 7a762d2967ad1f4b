/**
 * What the tasks share inside a Trigger.dev worker: the one long-lived MongoDB client (opened on
 * first use and, with `processKeepAlive` in trigger.config.ts, reused by the warm runs of the same
 * process), the step dependencies with the Trigger.dev hand-over, live progress as run metadata,
 * and the mapping of errors to "retry" or "fail now".
 */
import {
  AbortTaskRunError,
  type Task,
  idempotencyKeys,
  logger,
  metadata,
  tags,
  tasks,
  wait,
} from "@trigger.dev/sdk";
import { jobIdSchema } from "../../config/schema.js";
import { readEnv } from "../../config/env.js";
import { BadInputError, isBadInput } from "../../common/errors.js";
import type { Logger, StepDeps } from "../../steps/handover.js";
import { realTimer } from "../../jobs/lease.js";
import { createTriggerHandOver, runTags } from "./trigger-handover.js";
import { type StepName, timeStep } from "../../queries/step-stats.js";
import { type ProgressReport, type ReportProgress, createProgressReporter } from "../../queries/progress.js";
import type { Store } from "../../store/store.js";
import { type StoreClient, newStoreClient } from "../../store/connection.js";
import { readJobFields } from "../../store/jobs.js";
import type { InitializePayload } from "../../steps/initialize/payload.js";
import type { DispatchPayload, WatchPayload } from "../../steps/handover.js";
import { buildStepDeps } from "../step-deps.js";
import { type WorkerHandle, startWorker, tallyOfDispatch, tallyOfWatch } from "../worker-registry.js";
import type { WatchResult } from "../../steps/watch/watch.js";
import type { DispatchResult } from "../../steps/dispatch/dispatch.js";
import { CONFIG_CACHE_MS, StepCache } from "../../steps/step-cache.js";
import { triggerCallbacks } from "./callback-tokens.js";

/** The run fields the tasks read (a subset of Trigger.dev's `ctx.run`). */
export interface RunContext {
  run: {
    id: string;
    tags?: string[] | undefined;
    createdAt?: Date | undefined;
    rootTaskRunId?: string | undefined;
  };
}

interface WorkerState {
  client: StoreClient;
  store: Store;
  leaseMs: number;
  /** This process in `batch_workers`: registered with the client, stopped when it is closed. */
  worker: WorkerHandle;
  /**
   * The service round trips this process's watchers learned (shared by the runs' step caches;
   * each run gets a cache of its own for everything else).
   */
  roundTrips: Map<string, number>;
}

let state: Promise<WorkerState> | undefined;

const taskLogger: Logger = {
  info: (message, fields) => logger.info(message, fields),
  warn: (message, fields) => logger.warn(message, fields),
};

/**
 * The worker's store: one client per worker process, indexes ensured once. The environment is
 * parsed here, once per process: a bad value is bad input (the run fails at once, naming the
 * variable), not something five retries could fix.
 */
export function workerState(env: Record<string, string | undefined> = process.env): Promise<WorkerState> {
  if (state) return state;
  let opened: StoreClient | undefined;
  const attempt: Promise<WorkerState> = (async () => {
    const { MONGODB_URI, CHUNKRELAY_PREFIX, CHUNKRELAY_LEASE_MS } = readEnv(env);
    if (!MONGODB_URI) {
      throw new BadInputError(
        "environment variable MONGODB_URI is not set in this Trigger.dev environment; add it under Environment Variables",
      );
    }
    try {
      opened = newStoreClient(MONGODB_URI, { maxPoolSize: 10 });
    } catch (err) {
      throw new BadInputError(
        `environment variable MONGODB_URI is not a valid connection string: ${err instanceof Error ? err.message : String(err)}`,
      );
    }
    const s = await opened.connect(CHUNKRELAY_PREFIX);
    await s.ensureIndexes();
    // One worker per process, like the client: warm runs of this process count under it.
    const worker = startWorker(s, { kind: "trigger", env, log: taskLogger });
    return { client: opened, store: s, leaseMs: CHUNKRELAY_LEASE_MS, worker, roundTrips: new Map() };
  })().catch(async (err: unknown) => {
    // Only this attempt's client is closed, and only this attempt is forgotten: a newer one
    // (after closeWorkerStore) is left alone.
    if (state === attempt) state = undefined;
    await opened?.close().catch(() => undefined);
    throw err;
  });
  state = attempt;
  return attempt;
}

/** The worker's store (see `workerState`). */
export async function workerStore(env: Record<string, string | undefined> = process.env): Promise<Store> {
  return (await workerState(env)).store;
}

/** Closes the worker's client (tests; a worker process simply exits). */
export async function closeWorkerStore(): Promise<void> {
  const pending = state;
  state = undefined;
  const opened = await pending?.catch(() => undefined);
  await opened?.worker.stop();
  await opened?.client.close();
}

/** A job's config never changes: remembered per process for the `config:` tag of hand-overs. */
const configOfJob = new Map<string, string>();
async function configOf(jobId: string): Promise<string | undefined> {
  const known = configOfJob.get(jobId);
  if (known !== undefined) return known;
  const job = await readJobFields(await workerStore(), jobId, ["config"]);
  if (!job) return undefined;
  if (configOfJob.size >= 1000) configOfJob.clear();
  configOfJob.set(jobId, job.config);
  return job.config;
}

// The tasks as the hand-over triggers them: id and payload. Named here rather than imported from
// src/tasks, which import this module (no cycle); task-wiring tests check the ids match.
type InitializerTask = Task<"batch-data-initializer", InitializePayload>;
type ServerTask = Task<"batch-data-server", DispatchPayload>;
type WatcherTask = Task<"chunk-process-watcher", WatchPayload>;

export const triggerHandOver = createTriggerHandOver({
  globalKey: (key) => idempotencyKeys.create(key, { scope: "global" }),
  triggerInitializer: (payload, options) =>
    tasks.trigger<InitializerTask>("batch-data-initializer", payload as InitializePayload, options),
  triggerServer: (payload, options) => tasks.trigger<ServerTask>("batch-data-server", payload, options),
  triggerWatcher: (payload, options) => tasks.trigger<WatcherTask>("chunk-process-watcher", payload, options),
  configOf,
  now: () => new Date(),
});

/**
 * The metadata key of a job's progress, on the run itself and on the root run of its chain (the
 * initializer started from the dashboard, or the scheduled run that started several jobs).
 */
export const progressKey = (jobId: string) => `job:${jobId}`.slice(0, 128);

/**
 * Shows a report on the dashboard: on this run, and on the chain's root run, which is where a
 * user looks while a job runs. The SDK batches metadata writes and flushes them itself.
 */
export function publishProgress(ctx: RunContext, report: ProgressReport): void {
  const key = progressKey(report.jobId);
  metadata.set(key, { ...report });
  if (ctx.run.rootTaskRunId !== undefined) metadata.root.set(key, { ...report });
}

/**
 * Waits of 5 s or less run in-process whatever is asked (the SDK only warns); on the platform a
 * wait above 60 s checkpoints the run and frees its concurrency slot. So short polls take a
 * plain timer (no API call, no warning) and longer ones go through `wait.for`.
 */
export const IN_PROCESS_WAIT_MS = 5_000;
export function platformSleep(ms: number): Promise<void> {
  if (ms <= IN_PROCESS_WAIT_MS) return realTimer(ms);
  return wait.for({ seconds: Math.ceil(ms / 1000) });
}

export async function workerDeps(
  ctx: RunContext,
  sleep: (ms: number) => Promise<void>,
  reportProgress: ReportProgress,
): Promise<StepDeps> {
  const { store, leaseMs, roundTrips } = await workerState();
  return buildStepDeps({
    store,
    handOver: triggerHandOver,
    owner: ctx.run.id,
    sleep,
    leaseMs,
    log: taskLogger,
    reportProgress,
    // A cache per run: a job is read at the run's start, never remembered from an earlier run
    // (it may have been deleted and started again since); round trips are learned across runs.
    cache: new StepCache(CONFIG_CACHE_MS, roundTrips),
    // Completion "callback": one wait token per attempt (the watcher run suspends on it).
    callbacks: triggerCallbacks(),
  });
}

/** Bad input fails the run at once (no retries); anything else goes to the task's retry policy. */
export function mapError(err: unknown): unknown {
  if (isBadInput(err)) return new AbortTaskRunError(err.message);
  return err;
}

/**
 * Adds the chain's tags to a run that lacks them (one started from the dashboard, or by a
 * schedule). Hand-overs set them at trigger time, and replays copy them. A failure is logged:
 * tags help find runs, they never decide what a step does.
 */
export async function tagRun(ctx: RunContext, jobId: string, config: string | undefined): Promise<void> {
  const have = new Set(ctx.run.tags ?? []);
  const missing = runTags(jobId, config).filter((t) => !have.has(t));
  if (missing.length === 0) return;
  try {
    await tags.add(missing);
    ctx.run.tags = [...have, ...missing];
  } catch (err) {
    logger.warn("could not tag the run", {
      tags: missing,
      error: err instanceof Error ? err.message : String(err),
    });
  }
}

/** The payload's job id when it is one (a bad one is refused by the step itself). */
const jobIdOf = (payload: unknown): string | undefined => {
  const v =
    payload !== null && typeof payload === "object" ? (payload as Record<string, unknown>).jobId : undefined;
  return jobIdSchema.safeParse(v).success ? (v as string) : undefined;
};

/**
 * The body every task shares: build the worker's step dependencies, run one step (recorded in
 * batch_task_stats), show the job's progress and tags on the run, map errors.
 */
export async function runTaskStep<T>(
  ctx: RunContext,
  task: StepName,
  payload: unknown,
  step: (deps: StepDeps) => Promise<T>,
  outcomeOf: (result: T) => { outcome: string; jobId?: string },
  sleep: (ms: number) => Promise<void> = realTimer,
): Promise<T> {
  try {
    const { store, worker } = await workerState();
    const report = createProgressReporter({
      store,
      now: () => new Date(),
      publish: (r) => publishProgress(ctx, r),
      warn: (message, fields) => logger.warn(message, fields),
    });
    const deps = await workerDeps(ctx, sleep, report);
    const jobId = jobIdOf(payload);
    const chunk = (payload as { chunk?: unknown } | null)?.chunk;
    let seenJobId = jobId;
    if (jobId !== undefined) await tagRun(ctx, jobId, await configOf(jobId).catch(() => undefined));
    const result = await timeStep(
      deps.store,
      { task, ...(jobId ? { jobId } : {}), ...(typeof chunk === "number" ? { chunk } : {}) },
      () => step(deps),
      (r) => {
        const seen = outcomeOf(r);
        seenJobId ??= seen.jobId;
        return seen;
      },
    );
    // Counted from the watcher's result, or the server's in "response" mode (buffered; a registry
    // failure never fails the step).
    const tally =
      task === "chunkProcessWatcher"
        ? tallyOfWatch(result as WatchResult)
        : task === "batchDataServer"
          ? tallyOfDispatch(result as DispatchResult)
          : undefined;
    if (tally) worker.tally(tally);
    if (seenJobId) {
      // Again after the step: a job it created now has a config to tag (tagRun adds only what is missing).
      await tagRun(ctx, seenJobId, await configOf(seenJobId).catch(() => undefined));
      await report({ jobId: seenJobId, ...(typeof chunk === "number" ? { chunk } : {}) });
    }
    return result;
  } catch (err) {
    throw mapError(err);
  }
}
