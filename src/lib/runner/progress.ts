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
