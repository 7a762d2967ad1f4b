/** Records set aside for a human: listing them, and resolving one with a note. */
import { BadInputError } from "../errors.js";
import type { ExceptionDoc, Store } from "../store/store.js";

export async function listExceptions(
  store: Store,
  filter: { jobId?: string; config?: string; unresolved?: boolean; limit?: number },
): Promise<ExceptionDoc[]> {
  const query: Record<string, unknown> = {};
  if (filter.jobId) query.jobId = filter.jobId;
  if (filter.config) query.config = filter.config;
  if (filter.unresolved) query.resolution = { $exists: false };
  return store.exceptions
    .find(query, { projection: { _id: 0 } })
    .sort({ createdAt: -1 })
    .limit(filter.limit ?? 100)
    .toArray();
}

export async function showException(store: Store, jobId: string, recordId: unknown): Promise<ExceptionDoc> {
  const doc = await store.exceptions.findOne({ jobId, recordId }, { projection: { _id: 0 } });
  if (!doc) throw new BadInputError(`no exception for record ${JSON.stringify(recordId)} in job '${jobId}'`);
  return doc;
}

export async function resolveException(
  store: Store,
  jobId: string,
  recordId: unknown,
  note: string,
  now: Date,
): Promise<ExceptionDoc> {
  if (note.trim() === "") throw new BadInputError("a resolution needs a note saying what was done (--note)");
  const doc = await store.exceptions.findOneAndUpdate(
    { jobId, recordId },
    { $set: { resolution: { note, at: now } } },
    { returnDocument: "after", projection: { _id: 0 } },
  );
  if (!doc) throw new BadInputError(`no exception for record ${JSON.stringify(recordId)} in job '${jobId}'`);
  return doc;
}
