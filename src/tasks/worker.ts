/**
 * What the three tasks share inside a Trigger.dev worker: the one long-lived MongoDB client
 * (opened on first use, reused across runs of the warm worker), the step dependencies with the
 * Trigger.dev hand-over, and the mapping of errors to "retry" or "fail now".
 */
import { AbortTaskRunError, idempotencyKeys, logger, metadata, tags, tasks } from "@trigger.dev/sdk";
import { MongoClient } from "mongodb";
import { postChunk } from "../lib/dispatch/http.js";
import { readEnv } from "../lib/env.js";
import { isBadInput } from "../lib/errors.js";
import { DEFAULT_LEASE_MS, type Logger, type StepDeps } from "../lib/handover/handover.js";
import { realTimer } from "../lib/handover/lease.js";
import { createTriggerHandOver } from "../lib/handover/trigger-handover.js";
import { type StepName, timeStep } from "../lib/inspect/step-stats.js";
import { readJobProgress } from "../lib/runner/progress.js";
import { Store, databaseNameOf } from "../lib/store/store.js";
import type { InitializePayload } from "../lib/initializer/payload.js";
import type { batchDataInitializer } from "./batch-data-initializer.js";
import type { batchDataServer } from "./batch-data-server.js";
import type { chunkProcessWatcher } from "./chunk-process-watcher.js";

let client: MongoClient | undefined;
let store: Promise<Store> | undefined;

/** The worker's store: one client per worker process, indexes ensured once. */
export function workerStore(env: Record<string, string | undefined> = process.env): Promise<Store> {
  store ??= (async () => {
    const { MONGODB_URI, CHUNKRELAY_PREFIX } = readEnv(env);
    if (!MONGODB_URI) {
      throw new AbortTaskRunError(
        "MONGODB_URI is not set in this Trigger.dev environment; add it under Environment Variables",
      );
    }
    client = new MongoClient(MONGODB_URI, { maxPoolSize: 10 });
    await client.connect();
    const s = new Store(client.db(databaseNameOf(MONGODB_URI)), CHUNKRELAY_PREFIX);
    await s.ensureIndexes();
    return s;
  })().catch((err: unknown) => {
    store = undefined;
    throw err;
  });
  return store;
}

/** Closes the worker's client (tests; a worker process simply exits). */
export async function closeWorkerStore(): Promise<void> {
  const c = client;
  client = undefined;
  store = undefined;
  await c?.close();
}

const taskLogger: Logger = {
  info: (message, fields) => logger.info(message, fields),
  warn: (message, fields) => logger.warn(message, fields),
};

export const triggerHandOver = createTriggerHandOver({
  globalKey: (key) => idempotencyKeys.create(key, { scope: "global" }),
  triggerInitializer: (payload, options) =>
    tasks.trigger<typeof batchDataInitializer>(
      "batch-data-initializer",
      payload as InitializePayload,
      options,
    ),
  triggerServer: (payload, options) =>
    tasks.trigger<typeof batchDataServer>("batch-data-server", payload, options),
  triggerWatcher: (payload, options) =>
    tasks.trigger<typeof chunkProcessWatcher>("chunk-process-watcher", payload, options),
  now: () => new Date(),
});

export async function workerDeps(runId: string, sleep: (ms: number) => Promise<void>): Promise<StepDeps> {
  return {
    store: await workerStore(),
    post: postChunk,
    handOver: triggerHandOver,
    now: () => new Date(),
    sleep,
    timer: realTimer,
    random: Math.random,
    env: process.env,
    owner: runId,
    leaseMs: DEFAULT_LEASE_MS,
    log: taskLogger,
  };
}

/** Bad input fails the run at once (no retries); anything else goes to the task's retry policy. */
export function mapError(err: unknown): unknown {
  if (isBadInput(err)) return new AbortTaskRunError(err.message);
  return err;
}

/**
 * Shows the job on the run in the Trigger.dev dashboard: progress as run metadata, and tags to
 * find a job's and a config's runs. Best effort: a dashboard nicety never fails a step.
 */
export async function publishRunMetadata(
  store: Store,
  jobId: string,
  chunk: number | undefined,
): Promise<void> {
  try {
    const p = await readJobProgress(store, jobId);
    metadata.set("chunkrelay", {
      jobId,
      config: p.config,
      ...(chunk !== undefined ? { chunk } : {}),
      status: p.status,
      records: { total: p.totalRecords, processed: p.processedRecords, failed: p.failedRecords },
      chunks: { total: p.totalChunks, done: p.doneChunks, inFlight: p.inFlightChunks },
    });
    await tags.add([`job:${jobId}`.slice(0, 128), `config:${p.config}`.slice(0, 128)]);
  } catch {
    // Outside a worker (or with the API unreachable) there is no dashboard to tell.
  }
}

const timerSleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

const stringField = (payload: unknown, key: string): string | undefined => {
  const v =
    payload !== null && typeof payload === "object" ? (payload as Record<string, unknown>)[key] : undefined;
  return typeof v === "string" ? v : undefined;
};

/**
 * The body every task shares: build the worker's step dependencies, run one step (recorded in
 * batch_task_stats), map errors.
 */
export async function runTaskStep<T>(
  ctx: { run: { id: string } },
  task: StepName,
  payload: unknown,
  step: (deps: StepDeps) => Promise<T>,
  outcomeOf: (result: T) => { outcome: string; jobId?: string },
  sleep: (ms: number) => Promise<void> = timerSleep,
): Promise<T> {
  try {
    const deps = await workerDeps(ctx.run.id, sleep);
    const jobId = stringField(payload, "jobId");
    const chunk = (payload as { chunk?: unknown } | null)?.chunk;
    let seenJobId = jobId;
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
    if (seenJobId)
      await publishRunMetadata(deps.store, seenJobId, typeof chunk === "number" ? chunk : undefined);
    return result;
  } catch (err) {
    throw mapError(err);
  }
}
