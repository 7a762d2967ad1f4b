/**
 * Verbs on `batch_exceptions`: records set aside for a human, one per job and record (unique),
 * resolved by a human or by an exceptions job that processed them.
 */
import type { ExceptionDoc, Store } from "./store.js";

/**
 * Sets records aside, idempotently: an exception already there (a replay, a crash in between)
 * is left as it was (`$setOnInsert` under the unique (jobId, recordId)).
 */
export async function insertSetAsideRecords(store: Store, records: readonly ExceptionDoc[]): Promise<void> {
  if (records.length === 0) return;
  const ops = records.map((e) => ({
    updateOne: {
      filter: { jobId: e.jobId, recordId: e.recordId },
      update: { $setOnInsert: e },
      upsert: true,
    },
  }));
  await store.exceptions.bulkWrite(ops, { ordered: false });
}

/**
 * Resolves the still unresolved exceptions of these records in these jobs, as processed by
 * `byJob`; a resolution once set is never overwritten.
 */
export async function resolveProcessedRecords(
  store: Store,
  jobIds: readonly string[],
  recordIds: readonly unknown[],
  byJob: string,
  at: Date,
): Promise<void> {
  await store.exceptions.updateMany(
    { jobId: { $in: [...jobIds] }, recordId: { $in: [...recordIds] }, resolution: { $exists: false } },
    { $set: { resolution: { note: `processed by job ${byJob}`, at, byJob } } },
  );
}

/** How many records of a job were set aside. */
export async function countSetAsideRecords(store: Store, jobId: string): Promise<number> {
  return store.exceptions.countDocuments({ jobId });
}

/** How many records of a job are set aside and not resolved. */
export async function countUnresolvedRecords(store: Store, jobId: string): Promise<number> {
  return store.exceptions.countDocuments({ jobId, resolution: { $exists: false } });
}
