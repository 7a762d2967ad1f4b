/**
 * Verbs on `batch_jobs`. A job's final status is written once, from planning or running, and
 * together with `unsettled`: whatever a finished job entails is then done by whoever sees it
 * next, and `unsettled` is removed only after all of it.
 */
import type { Document } from "bson";
import type { JobDoc, Store } from "./store.js";

/** The job with this id, or null. */
export async function readJob(store: Store, jobId: string): Promise<JobDoc | null> {
  return store.jobs.findOne({ _id: jobId });
}

/** Only these fields of the job with this id, or null (less to read where little is needed). */
export async function readJobFields<K extends keyof JobDoc>(
  store: Store,
  jobId: string,
  fields: readonly K[],
): Promise<Pick<JobDoc, K> | null> {
  const projection: Document = {};
  for (const f of fields) projection[f] = 1;
  return store.jobs.findOne({ _id: jobId }, { projection });
}

/**
 * Writes a job's final status, its totals and `unsettled`, in one write; only a job still
 * planning or running whose planning is done matches, so a final status is never overwritten.
 */
export async function finishJobStatus(
  store: Store,
  jobId: string,
  status: "succeeded" | "failed",
  totals: NonNullable<JobDoc["totals"]>,
  now: Date,
): Promise<void> {
  await store.jobs.updateOne(
    { _id: jobId, status: { $in: ["planning", "running"] }, "planning.done": true },
    { $set: { status, unsettled: true, finishedAt: now, updatedAt: now, totals } },
  );
}

/** Removes `unsettled`: everything the finished job entails is done. */
export async function markJobSettled(store: Store, jobId: string): Promise<void> {
  await store.jobs.updateOne({ _id: jobId }, { $unset: { unsettled: "" } });
}
