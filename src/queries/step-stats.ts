/**
 * Per-step statistics: every invocation of a step (initializer, server, watcher) writes one row
 * to batch_task_stats — task, job, chunk, start, duration, outcome — and `stepStats` summarizes
 * them per task (count, successes, failures, p50/p95/max duration), per job or overall.
 */
import { collectStepDurations, insertStepStat, insertStepStats } from "../store/step-stats.js";
import { isBadInput } from "../common/errors.js";
import type { Store, TaskStatDoc } from "../store/store.js";

export type StepName =
  | "batchDataInitializer"
  | "batchDataServer"
  | "chunkProcessWatcher"
  | "stalledJobHealer"
  | "nightlyIncremental";

/** Where a step's row goes: written at once (`insertStepStat`), or into a runner's buffer. */
export type RecordStep = (doc: TaskStatDoc) => void | Promise<void>;

/**
 * Runs one step and records its invocation (also when it fails, with the error as outcome),
 * through `record` (default: one insert per step).
 */
export async function timeStep<T>(
  store: Store,
  step: { task: StepName; jobId?: string; chunk?: number },
  run: () => Promise<T>,
  outcomeOf: (result: T) => { outcome: string; jobId?: string },
  record: RecordStep = (doc) => insertStepStat(store, doc),
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
    if (!refused) await record(stepRow(step, jobId, startedAt, started, outcome));
  }
}

function stepRow(
  step: { task: StepName; chunk?: number },
  jobId: string,
  startedAt: Date,
  started: number,
  outcome: string,
): TaskStatDoc {
  return {
    task: step.task,
    // Job ids are at most 200 characters once validated; a failing step may name a raw one.
    jobId: jobId.slice(0, 200),
    ...(step.chunk !== undefined ? { chunk: step.chunk } : {}),
    startedAt,
    durationMs: Math.round(performance.now() - started),
    outcome,
  };
}

/**
 * A runner's step rows, written in groups: one insertMany per `flushEveryMs` (default 1000) or
 * per `maxRows` rows (default 500), and on `close()`. Statistics then cost a fraction of a command
 * per chunk instead of two. A group MongoDB did not take is kept for the next flush (up to
 * `keepRows`, default 50,000, about 10 MB; past that the oldest go, with a warning): rows are
 * delayed, never dropped, unless the process dies with rows not yet written (at most one
 * interval's worth).
 */
export class StepStatBuffer {
  private rows: TaskStatDoc[] = [];
  private timer: NodeJS.Timeout | undefined;
  private flushing: Promise<void> = Promise.resolve();
  private readonly maxRows: number;
  private readonly flushEveryMs: number;
  private readonly keepRows: number;

  constructor(
    private readonly store: Store,
    options: {
      maxRows?: number;
      flushEveryMs?: number;
      keepRows?: number;
      warn?: (message: string) => void;
    } = {},
  ) {
    this.maxRows = options.maxRows ?? 500;
    this.flushEveryMs = options.flushEveryMs ?? 1000;
    this.keepRows = options.keepRows ?? 50_000;
    this.warn = options.warn ?? (() => undefined);
  }

  private readonly warn: (message: string) => void;

  /** Takes a row; never throws, never waits for MongoDB. */
  readonly add: RecordStep = (doc) => {
    this.rows.push(doc);
    if (this.rows.length >= this.maxRows) void this.flush();
    else this.timer ??= setTimeout(() => void this.flush(), this.flushEveryMs);
  };

  /** Writes what is buffered (one flush at a time); failures keep the rows. */
  flush(): Promise<void> {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    this.flushing = this.flushing.then(async () => {
      const batch = this.rows.splice(0);
      if (batch.length === 0) return;
      try {
        await insertStepStats(this.store, batch);
      } catch (err) {
        this.rows.unshift(...batch);
        const over = this.rows.length - this.keepRows;
        if (over > 0) {
          this.rows.splice(0, over);
          this.warn(
            `step statistics: MongoDB did not take them (${(err as Error).message}); ${over} oldest row(s) dropped`,
          );
        }
        this.timer ??= setTimeout(() => void this.flush(), this.flushEveryMs);
      }
    });
    return this.flushing;
  }

  /** Writes what is left; the buffer takes no timer after this. */
  async close(): Promise<void> {
    await this.flush();
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    if (this.rows.length > 0) {
      // Nothing will try again: say so rather than lose them quietly (found by review).
      this.warn(`step statistics: ${this.rows.length} row(s) could not be written before the run ended`);
      this.rows = [];
    }
  }
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
