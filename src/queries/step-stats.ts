/**
 * Per-step statistics: every invocation of a step (initializer, server, watcher) writes one row
 * to batch_task_stats — task, job, chunk, start, duration, outcome — and `stepStats` summarizes
 * them per task (count, successes, failures, p50/p95/max duration), per job or overall.
 */
import { collectStepDurations, insertStepStat } from "../store/step-stats.js";
import { isBadInput } from "../common/errors.js";
import type { Store, TaskStatDoc } from "../store/store.js";

export type StepName =
  | "batchDataInitializer"
  | "batchDataServer"
  | "chunkProcessWatcher"
  | "stalledJobHealer"
  | "nightlyIncremental";

/** Runs one step and records its invocation (also when it fails, with the error as outcome). */
export async function timeStep<T>(
  store: Store,
  step: { task: StepName; jobId?: string; chunk?: number },
  run: () => Promise<T>,
  outcomeOf: (result: T) => { outcome: string; jobId?: string },
): Promise<T> {
  const startedAt = new Date();
  const started = performance.now();
  let outcome = "error";
  let jobId = step.jobId ?? "(none)";
  let refused = false;
  try {
    const result = await run();
    const seen = outcomeOf(result);
    outcome = seen.outcome;
    if (seen.jobId) jobId = seen.jobId;
    return result;
  } catch (err) {
    // A refused invocation (bad payload, unknown job, missing secret) did no work: it leaves no
    // row, which could otherwise hold whatever hostile id it was given.
    refused = isBadInput(err);
    outcome = `error: ${(err instanceof Error ? err.message : String(err)).slice(0, 200)}`;
    throw err;
  } finally {
    if (!refused) await recordStep(store, step, jobId, startedAt, started, outcome);
  }
}

async function recordStep(
  store: Store,
  step: { task: StepName; chunk?: number },
  jobId: string,
  startedAt: Date,
  started: number,
  outcome: string,
): Promise<void> {
  const doc: TaskStatDoc = {
    task: step.task,
    // Job ids are at most 200 characters once validated; a failing step may name a raw one.
    jobId: jobId.slice(0, 200),
    ...(step.chunk !== undefined ? { chunk: step.chunk } : {}),
    startedAt,
    durationMs: Math.round(performance.now() - started),
    outcome,
  };
  await insertStepStat(store, doc);
}

export interface StepSummary {
  task: string;
  invocations: number;
  succeeded: number;
  failed: number;
  p50Ms: number;
  p95Ms: number;
  maxMs: number;
}

const percentile = (sorted: number[], p: number) =>
  sorted.length === 0
    ? 0
    : (sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)] ?? 0);

export async function stepStats(
  store: Store,
  filter: { jobId?: string; jobIds?: string[] } = {},
): Promise<StepSummary[]> {
  const match = filter.jobId
    ? { jobId: filter.jobId }
    : filter.jobIds
      ? { jobId: { $in: filter.jobIds } }
      : {};
  const rows = await collectStepDurations(store, match);
  return rows.map((r) => ({
    task: r._id,
    invocations: r.durations.length,
    succeeded: r.durations.length - r.failed,
    failed: r.failed,
    p50Ms: percentile(r.durations, 50),
    p95Ms: percentile(r.durations, 95),
    maxMs: r.durations[r.durations.length - 1] ?? 0,
  }));
}
