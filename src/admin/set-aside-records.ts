/**
 * Resolving set-aside records: a human says what was done about them, with a note. The last one
 * resolved makes its job complete, so the watermark may move over it.
 */
import { BadInputError } from "../common/errors.js";
import { settleJobCompletion } from "../lanes/watermark.js";
import { silentLogger } from "../steps/handover.js";
import { jobExists } from "../store/jobs.js";
import { resolveAllSetAsideRecords, resolveSetAsideRecord } from "../store/set-aside-records.js";
import type { ExceptionDoc, Store } from "../store/store.js";

export async function resolveException(
  store: Store,
  jobId: string,
  recordId: unknown,
  note: string,
  now: Date,
): Promise<ExceptionDoc> {
  if (note.trim() === "") throw new BadInputError("a resolution needs a note saying what was done (--note)");
  const doc = await resolveSetAsideRecord(store, jobId, recordId, { note, at: now });
  if (!doc) throw new BadInputError(`no exception for record ${JSON.stringify(recordId)} in job '${jobId}'`);
  // The last resolved exception makes its job complete: the watermark may move over it now.
  await settleJobCompletion({ store, now: () => now, log: silentLogger }, jobId);
  return doc;
}

/** Resolves every unresolved exception of a job with one note (a human gives up on them, or fixed them elsewhere). */
export async function resolveExceptions(
  store: Store,
  jobId: string,
  note: string,
  now: Date,
): Promise<number> {
  if (note.trim() === "") throw new BadInputError("a resolution needs a note saying what was done (--note)");
  if (!(await jobExists(store, jobId))) throw new BadInputError(`job '${jobId}' not found`);
  const resolved = await resolveAllSetAsideRecords(store, jobId, { note, at: now });
  await settleJobCompletion({ store, now: () => now, log: silentLogger }, jobId);
  return resolved;
}
