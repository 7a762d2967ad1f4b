/** A job's progress from its chunk documents: one aggregation over the job's own chunks. */
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
  const job = await store.jobs.findOne({ _id: jobId });
  if (!job) throw new Error(`job ${jobId} not found`);
  const rows = await store.chunks
    .aggregate<{ _id: string; chunks: number; records: number; processed: number; failed: number }>([
      { $match: { jobId } },
      {
        $group: {
          _id: "$status",
          chunks: { $sum: 1 },
          records: { $sum: "$recordCount" },
          processed: { $sum: { $ifNull: ["$processedCount", 0] } },
          failed: { $sum: { $ifNull: ["$failedCount", 0] } },
        },
      },
    ])
    .toArray();
  let doneChunks = 0;
  let inFlight = 0;
  let processed = 0;
  let failed = 0;
  for (const r of rows) {
    if (r._id === "processed" || r._id === "failed") {
      doneChunks += r.chunks;
      processed += r.processed;
      failed += r.failed;
    }
    if (r._id === "dispatching" || r._id === "sent") inFlight += r.chunks;
  }
  return {
    jobId,
    config: job.config,
    status: job.status,
    planningDone: job.planning.done,
    totalRecords: job.planning.records,
    totalChunks: job.planning.nextChunk - 1,
    processedRecords: processed,
    failedRecords: failed,
    doneChunks,
    inFlightChunks: inFlight,
    startedAt: job.startedAt,
  };
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
 * A progress reporter for one process: reads the job's totals (one aggregation over the job's
 * chunks, on the {jobId, chunk} index) at most every `refreshMs` per job — a watcher polling every
 * second must not add a full read per poll — and publishes a report on every call, with the
 * polled chunk's own counts always current. Never throws: progress is a view, a failure to read
 * or publish it is logged and the step goes on.
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
  const cache = new Map<string, { at: number; progress: JobProgress }>();
  return async ({ jobId, chunk, counts }) => {
    try {
      const now = deps.now();
      let cached = cache.get(jobId);
      if (!cached || now.getTime() - cached.at >= refreshMs || counts === undefined) {
        cached = { at: now.getTime(), progress: await readJobProgress(deps.store, jobId) };
        cache.delete(jobId);
        cache.set(jobId, cached);
        // A warm worker serves many jobs: keep the most recent few.
        for (const key of cache.keys()) {
          if (cache.size <= 100) break;
          cache.delete(key);
        }
      }
      await deps.publish(
        describeProgress(
          cached.progress,
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
