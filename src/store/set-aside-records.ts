/**
 * Verbs on `batch_exceptions`: records set aside for a human, one per job and record (unique),
 * resolved by a human or by an exceptions job that processed them.
 */
import type { Document } from "bson";
import { type Cut, aboveCut, allOf, atOrBelowCut } from "../planning/cuts.js";
import type { ExceptionDoc, Store } from "./store.js";
import { readPageAfter } from "../common/bson-order.js";

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

/**
 * A rerun on demand processed records this job had set aside: they are no longer exceptions of
 * the job (its own record says processed), so their exceptions go, resolved ones too (a rerun of
 * every record sends those as well). Idempotent: run before the chunk's attempt is closed, again
 * by whoever closes it after a crash.
 */
export async function deleteExceptionsProcessedByRerun(
  store: Store,
  jobId: string,
  chunk: number,
  at: Date,
): Promise<{ deleted: number; requeues: string[] }> {
  const set = await store.exceptions.find({ jobId, chunk }, { projection: { recordId: 1 } }).toArray();
  if (set.length === 0) return { deleted: 0, requeues: [] };
  const processed = await store.details
    .find(
      { jobId, chunk, status: "processed", recordId: { $in: set.map((e) => e.recordId) } },
      { projection: { recordId: 1 } },
    )
    .toArray();
  if (processed.length === 0) return { deleted: 0, requeues: [] };
  const ids = processed.map((d) => d.recordId);
  // Exceptions jobs that took these records from this job (and their own requeues) set them
  // aside too: processed now, they are resolved there, before they go here, so a crash in
  // between leaves this job's exceptions to find them again (found by review: a requeue of the
  // requeue sent them a second time).
  const requeues = await listRequeuesOf(store, jobId);
  if (requeues.length > 0) {
    await store.exceptions.updateMany(
      { jobId: { $in: requeues }, recordId: { $in: ids }, resolution: { $exists: false } },
      {
        $set: { resolution: { note: `processed by a rerun of job ${jobId}`, at, byJob: jobId } },
      },
    );
  }
  const res = await store.exceptions.deleteMany({ jobId, recordId: { $in: ids } });
  return { deleted: res.deletedCount, requeues };
}

/** Every exceptions job sending `jobId`'s exceptions again, and theirs, down the chain (`from_job`). */
async function listRequeuesOf(store: Store, jobId: string): Promise<string[]> {
  const found: string[] = [];
  let level = [jobId];
  while (level.length > 0 && found.length < 200) {
    const docs = await store.jobs
      .find({ fromJob: { $in: level }, mode: "exceptions" }, { projection: { _id: 1 } })
      .toArray();
    level = docs.map((d) => d._id).filter((id) => !found.includes(id));
    found.push(...level);
  }
  return found;
}

/** The records of a job's chunk whose exception is resolved (a rerun of the failed ones leaves them out). */
export async function listResolvedRecords(store: Store, jobId: string, chunk: number): Promise<unknown[]> {
  const docs = await store.exceptions
    .find({ jobId, chunk, resolution: { $exists: true } }, { projection: { recordId: 1 } })
    .toArray();
  return docs.map((d) => d.recordId);
}

/** How many records of a job were set aside. */
export async function countSetAsideRecords(store: Store, jobId: string): Promise<number> {
  return store.exceptions.countDocuments({ jobId });
}

/** How many records of a job are set aside and not resolved. */
export async function countUnresolvedRecords(store: Store, jobId: string): Promise<number> {
  return store.exceptions.countDocuments({ jobId, resolution: { $exists: false } });
}

/** A window of set-aside records by record id (cuts over `recordId`, both bounds optional). */
export interface SetAsideWindow {
  from?: Cut;
  to?: Cut;
}

/** The unresolved exceptions of `jobId` in the window (record ids above `from`, up to `to`). */
function unresolvedIn(jobId: string, window: SetAsideWindow): Document {
  return allOf([
    { jobId, resolution: { $exists: false } },
    ...(window.from ? [aboveCut("recordId", { ...window.from, id: undefined, keyIncluded: true })] : []),
    ...(window.to ? [atOrBelowCut("recordId", { ...window.to, id: undefined, keyIncluded: true })] : []),
  ]);
}

/** The highest record id among a job's unresolved exceptions in the window, or null. */
export async function findLastUnresolvedRecord(
  store: Store,
  jobId: string,
  window: SetAsideWindow,
): Promise<Pick<ExceptionDoc, "recordId"> | null> {
  return store.exceptions.findOne(unresolvedIn(jobId, window), {
    sort: { recordId: -1 },
    projection: { recordId: 1 },
  });
}

/** A cursor over a job's unresolved exceptions in the window, in record-id order. */
export interface SetAsideCursor {
  hasNext(): Promise<boolean>;
  /** The exceptions of the batch already received (no round trip). */
  readBufferedDocuments(): Array<Pick<ExceptionDoc, "recordId">>;
  close(): Promise<void>;
}

/** Opens a cursor over a job's unresolved exceptions in the window, by record id. */
export function openUnresolvedRecords(
  store: Store,
  jobId: string,
  window: SetAsideWindow,
  batchSize: number,
): SetAsideCursor {
  return store.exceptions
    .find(unresolvedIn(jobId, window), { projection: { recordId: 1 }, batchSize })
    .sort({ recordId: 1 });
}

/** How many unresolved exceptions of a job lie in the window. */
export async function countUnresolvedInWindow(
  store: Store,
  jobId: string,
  window: SetAsideWindow,
): Promise<number> {
  return store.exceptions.countDocuments(unresolvedIn(jobId, window));
}

/** Set-aside records matching the filter, newest first, at most `limit` (without `_id`). */
export async function listSetAsideRecords(
  store: Store,
  filter: { jobId?: string; config?: string; unresolved?: boolean },
  limit: number,
): Promise<ExceptionDoc[]> {
  const query: Document = {};
  if (filter.jobId) query.jobId = filter.jobId;
  if (filter.config) query.config = filter.config;
  if (filter.unresolved) query.resolution = { $exists: false };
  return store.exceptions
    .find(query, { projection: { _id: 0 } })
    .sort({ createdAt: -1 })
    .limit(limit)
    .toArray();
}

/** The set-aside record of `recordId` in a job (without `_id`), or null. */
export async function readSetAsideRecord(
  store: Store,
  jobId: string,
  recordId: unknown,
): Promise<ExceptionDoc | null> {
  return store.exceptions.findOne({ jobId, recordId }, { projection: { _id: 0 } });
}

/**
 * Resolves one set-aside record with a human's note, returning it as resolved (null: there is
 * none). A human's resolution replaces an earlier one: it is their word on the record.
 */
export async function resolveSetAsideRecord(
  store: Store,
  jobId: string,
  recordId: unknown,
  resolution: { note: string; at: Date },
): Promise<ExceptionDoc | null> {
  // No projection on findAndModify (FerretDB 1.x refuses one): `_id` is dropped here.
  const doc = await store.exceptions.findOneAndUpdate(
    { jobId, recordId },
    { $set: { resolution } },
    { returnDocument: "after" },
  );
  if (!doc) return null;
  const { _id: _drop, ...rest } = doc;
  return rest;
}

/** Resolves every still unresolved set-aside record of a job with one note; how many it resolved. */
export async function resolveAllSetAsideRecords(
  store: Store,
  jobId: string,
  resolution: { note: string; at: Date },
): Promise<number> {
  const res = await store.exceptions.updateMany(
    { jobId, resolution: { $exists: false } },
    { $set: { resolution } },
  );
  return res.modifiedCount;
}

/** Why `recordId` was set aside in each of these jobs that set it aside. */
export async function listSetAsideReasons(
  store: Store,
  recordId: unknown,
  jobIds: readonly string[],
): Promise<Array<Pick<ExceptionDoc, "jobId" | "reason">>> {
  return store.exceptions
    .find({ recordId, jobId: { $in: [...jobIds] } }, { projection: { jobId: 1, reason: 1 } })
    .toArray();
}

/**
 * One page of a job's set-aside records in record-id order after `after` (keyset on the
 * `job_record` index: ids above it of its own type, then ids of the types that sort after it).
 */
export async function listSetAsideRecordsPage(
  store: Store,
  jobId: string,
  page: { after?: { id: unknown } | undefined; limit: number },
): Promise<ExceptionDoc[]> {
  const read = (recordFilter: Document | undefined, n: number) =>
    store.exceptions
      .find(
        { jobId, ...(recordFilter ? { recordId: recordFilter } : {}) },
        { projection: { _id: 0 }, sort: { recordId: 1 }, limit: n },
      )
      .toArray();
  return readPageAfter(read, page.after, page.limit);
}
