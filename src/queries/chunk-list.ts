/**
 * A job's chunks, one row each, as `chunkrelay status <jobId> --chunks` lists them: status,
 * attempts, records processed and failed, the config hash of the latest attempt, times. Counts
 * of a done chunk are the ones written when it closed; a chunk in flight is counted now (one
 * indexed aggregation per chunk in flight, at most `maxInFlight` of them).
 */
import { countAttemptStatuses } from "../store/records.js";
import type { ChunkDoc, ChunkRerun, Store } from "../store/store.js";
import { jobReport } from "./jobs.js";

export interface ChunkRow {
  chunk: number;
  status: ChunkDoc["status"];
  attempts: number;
  records: number;
  processed: number;
  failed: number;
  configHash: string;
  sentAt?: Date;
  /** When the chunk was done (processed, or failed with its records set aside). */
  finishedAt?: Date;
  lastError?: string;
  /** Reruns on demand (`run-chunk`), oldest first. */
  reruns?: Array<Pick<ChunkRerun, "attempt" | "scope" | "at">>;
}

export async function listChunkRows(
  store: Store,
  jobId: string,
  env: Record<string, string | undefined> = process.env,
): Promise<ChunkRow[]> {
  // The report reads every chunk once and redacts their errors with the config's secrets.
  const { chunks } = await jobReport(store, jobId, env);
  const rows: ChunkRow[] = [];
  for (const c of chunks) {
    let processed = c.processedCount ?? 0;
    let failed = c.failedCount ?? 0;
    if (!c.done && (c.status === "dispatching" || c.status === "sent")) {
      const counts = await countAttemptStatuses(store, jobId, c.chunk);
      processed = counts.processed;
      failed = counts.failed;
    }
    rows.push({
      chunk: c.chunk,
      status: c.status,
      attempts: c.attempt,
      records: c.recordCount,
      processed,
      failed,
      configHash: c.configHash,
      ...(c.sentAt ? { sentAt: c.sentAt } : {}),
      ...(c.finishedAt ? { finishedAt: c.finishedAt } : {}),
      ...(c.lastError ? { lastError: c.lastError } : {}),
      ...(c.reruns?.length
        ? { reruns: c.reruns.map((r) => ({ attempt: r.attempt, scope: r.scope, at: r.at })) }
        : {}),
    });
  }
  return rows;
}
