/**
 * Verbs on `batch_details`, one document per record of a job. The batch service writes a
 * record's status after it was sent; chunkrelay only ever moves records it has not seen
 * processed, so a service's report is never overwritten.
 */
import type { DetailDoc, Store } from "./store.js";

/**
 * Marks the records of chunk attempt `attempt` sent: everything in the chunk not yet processed
 * and not marked for this attempt or a later one. Once per attempt (`attempts < attempt`), so a
 * redelivery of the same attempt finds the same records and one idempotency key always carries
 * the same records.
 */
export async function markRecordsSent(
  store: Store,
  jobId: string,
  chunk: number,
  attempt: number,
  sentAt: Date,
): Promise<void> {
  await store.details.updateMany(
    { jobId, chunk, status: { $in: ["pending", "sent", "failed"] }, attempts: { $lt: attempt } },
    { $set: { status: "sent", sentAt, attempts: attempt }, $unset: { attempt: "", error: "" } },
  );
}

/**
 * The records of chunk attempt `attempt`: those marked for it or a later attempt (a later
 * attempt re-marks a subset), so a stale runner building the body late sends the same records.
 */
export async function listAttemptRecords(
  store: Store,
  jobId: string,
  chunk: number,
  attempt: number,
): Promise<Array<Pick<DetailDoc, "recordId" | "data">>> {
  return store.details
    .find({ jobId, chunk, attempts: { $gte: attempt } }, { projection: { recordId: 1, data: 1 } })
    .toArray();
}

/** The ids of a job's processed records, streamed (a job may hold millions). */
export function streamProcessedRecordIds(
  store: Store,
  jobId: string,
): AsyncIterable<Pick<DetailDoc, "recordId">> {
  return store.details.find({ jobId, status: "processed" }, { projection: { recordId: 1 } });
}

/**
 * Marks a failed chunk's unfinished records failed, so a late report of its attempt (which
 * must match `status: "sent"`) can no longer land.
 */
export async function markChunkRecordsFailed(store: Store, jobId: string, chunk: number): Promise<void> {
  await store.details.updateMany(
    { jobId, chunk, status: { $in: ["pending", "sent"] } },
    { $set: { status: "failed" } },
  );
}

/** A chunk's records not processed, streamed: the ones a failed chunk sets aside. */
export function streamUnprocessedRecords(
  store: Store,
  jobId: string,
  chunk: number,
): AsyncIterable<Pick<DetailDoc, "recordId" | "attempts" | "error">> {
  return store.details.find(
    { jobId, chunk, status: { $in: ["pending", "sent", "failed"] } },
    { projection: { recordId: 1, attempts: 1, error: 1 } },
  );
}

/** How many of a chunk's records are processed. */
export async function countProcessedRecords(store: Store, jobId: string, chunk: number): Promise<number> {
  return store.details.countDocuments({ jobId, chunk, status: "processed" });
}
