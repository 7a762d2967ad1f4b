/** A job's progress from its chunk documents: one aggregation over the job's own chunks. */
import { sumChunksByStatus } from "../store/chunks.js";
import { readJob, saveProgressSnapshot } from "../store/jobs.js";
import type { JobDoc, Store } from "../store/store.js";

export interface JobProgress {
  jobId: string;
  config: string;
  status: JobDoc["status"];
  planningDone: boolean;
  totalRecords: number;
  totalChunks: number;
  processedRecords: number;
  failedRecords: number;
  doneChunks: number;
  inFlightChunks: number;
  startedAt: Date;
}

export async function readJobProgress(store: Store, jobId: string): Promise<JobProgress> {
  const job = await readJob(store, jobId);
  if (!job) throw new Error(`job ${jobId} not found`);
  return progressOf(job, await countChunks(store, jobId));
}

/** What the chunks of a job say: the part of its progress not on the job document. */
type ChunkTotals = Pick<JobProgress, "processedRecords" | "failedRecords" | "doneChunks" | "inFlightChunks">;

/** One aggregation over the job's chunks (on the {jobId, chunk} index). */
async function countChunks(store: Store, jobId: string): Promise<ChunkTotals> {
  const rows = await sumChunksByStatus(store, jobId);
  const totals: ChunkTotals = { processedRecords: 0, failedRecords: 0, doneChunks: 0, inFlightChunks: 0 };
  for (const r of rows) {
    if (r._id === "processed" || r._id === "failed") {
      totals.doneChunks += r.chunks;
      totals.processedRecords += r.processed;
      totals.failedRecords += r.failed;
    }
    if (r._id === "dispatching" || r._id === "sent") totals.inFlightChunks += r.chunks;
  }
  return totals;
}

/** A job's progress from its document and its chunks' totals. */
function progressOf(job: JobDoc, totals: ChunkTotals): JobProgress {
  return {
    jobId: job._id,
    config: job.config,
    status: job.status,
    planningDone: job.planning.done,
    totalRecords: job.planning.records,
    totalChunks: job.planning.nextChunk - 1,
    ...totals,
    startedAt: job.startedAt,
  };
}

/**
 * A job's progress at most `maxAgeMs` old: the chunk totals snapshot on the job document when it
 * is recent (one indexed read), otherwise counted over the chunks and stored as the new snapshot —
 * by one process per period, whichever asks first. A finished job is always counted, so its last
 * report is exact.
 */
export async function readRecentJobProgress(
  store: Store,
  jobId: string,
  now: Date,
  maxAgeMs: number,
): Promise<JobProgress> {
  const job = await readJob(store, jobId);
  if (!job) throw new Error(`job ${jobId} not found`);
  const snap = job.progressSnapshot;
  const running = job.status === "planning" || job.status === "running";
  if (running && snap && now.getTime() - snap.at.getTime() < maxAgeMs) {
    const { at: _at, ...totals } = snap;
    return progressOf(job, totals);
  }
  const totals = await countChunks(store, jobId);
  await saveProgressSnapshot(store, jobId, { at: now, ...totals });
  return progressOf(job, totals);
}

/** What a runtime shows of a running job (Trigger.dev run metadata): plain JSON. */
export interface ProgressReport {
  jobId: string;
  config: string;
  /** The job's status; "planning" while chunks are still being cut. */
  state: JobDoc["status"] | "planning";
  records: { total: number; processed: number; failed: number; percent: number };
  chunks: { total: number; done: number; inFlight: number };
  /** Records finished (processed or failed) per second since the job started, one decimal. */
  recordsPerSecond: number;
  /** The chunk the reporting step works on, with its records' statuses when a watcher polled. */
  chunk?: { number: number; processed?: number; failed?: number; waiting?: number };
  updatedAt: string;
}

export interface ChunkCounts {
  pending: number;
  sent: number;
  processed: number;
  failed: number;
}

/** Pure: the report of a job's progress as of `now`. */
export function describeProgress(
  p: JobProgress,
  now: Date,
  chunk?: { number: number; counts?: ChunkCounts },
): ProgressReport {
  const finished = p.processedRecords + p.failedRecords;
  const seconds = Math.max(0.001, (now.getTime() - p.startedAt.getTime()) / 1000);
  return {
    jobId: p.jobId,
    config: p.config,
    state: p.status === "running" && !p.planningDone ? "planning" : p.status,
    records: {
      total: p.totalRecords,
      processed: p.processedRecords,
      failed: p.failedRecords,
      percent: p.totalRecords === 0 ? 100 : Math.floor((1000 * finished) / p.totalRecords) / 10,
    },
    chunks: { total: p.totalChunks, done: p.doneChunks, inFlight: p.inFlightChunks },
    recordsPerSecond: Math.round((10 * finished) / seconds) / 10,
    ...(chunk
      ? {
          chunk: {
            number: chunk.number,
            ...(chunk.counts
              ? {
                  processed: chunk.counts.processed,
                  failed: chunk.counts.failed,
                  waiting: chunk.counts.pending + chunk.counts.sent,
                }
              : {}),
          },
        }
      : {}),
    updatedAt: now.toISOString(),
  };
}

/** What a step tells its runtime about progress: after every watcher poll and at its end. */
export type ReportProgress = (update: {
  jobId: string;
  chunk?: number;
  counts?: ChunkCounts;
}) => Promise<void>;

/**
 * A progress reporter: publishes a report on every call, with the polled chunk's own counts
 * always current and the job's totals at most `refreshMs` old (`readRecentJobProgress`: one
 * indexed read, and one count over the job's chunks per job and period across all processes —
 * never one per step or per poll, which would grow with the square of the chunks). Never throws:
 * progress is a view, a failure to read or publish it is logged and the step goes on.
 */
export function createProgressReporter(deps: {
  store: Store;
  now: () => Date;
  publish: (report: ProgressReport) => Promise<void> | void;
  warn: (message: string, fields: Record<string, unknown>) => void;
  /** Default: 5000. */
  refreshMs?: number;
}): ReportProgress {
  const refreshMs = deps.refreshMs ?? 5000;
  return async ({ jobId, chunk, counts }) => {
    try {
      const now = deps.now();
      const progress = await readRecentJobProgress(deps.store, jobId, now, refreshMs);
      await deps.publish(
        describeProgress(
          progress,
          now,
          chunk === undefined ? undefined : { number: chunk, ...(counts ? { counts } : {}) },
        ),
      );
    } catch (err) {
      deps.warn("could not report progress", {
        jobId,
        error: err instanceof Error ? err.message : String(err),
      });
    }
  };
}
