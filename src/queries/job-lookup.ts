/**
 * Single-job lookups the command line makes before it acts: which config a job belongs to, how it
 * was planned, whether it exists at all.
 */
import type { JobMode, Store } from "../store/store.js";

/** The config a job belongs to, or undefined when there is no such job. */
export async function readJobConfigName(store: Store, jobId: string): Promise<string | undefined> {
  const job = await store.jobs.findOne({ _id: jobId }, { projection: { config: 1 } });
  return job?.config;
}

/** The mode a job was planned in, or undefined when there is no such job. */
export async function readJobMode(store: Store, jobId: string): Promise<JobMode | undefined> {
  const job = await store.jobs.findOne({ _id: jobId }, { projection: { mode: 1 } });
  return job?.mode;
}

/**
 * Whether a job exists: true, false, or undefined when the database did not say within
 * `deadlineMs` (it may be the very reason a run stopped, so the answer is not waited for).
 */
export async function isJobCreated(
  store: Store,
  jobId: string,
  deadlineMs: number,
): Promise<boolean | undefined> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      store.jobs.countDocuments({ _id: jobId }, { limit: 1 }).then((n) => n > 0),
      new Promise<undefined>((resolve) => {
        timer = setTimeout(() => resolve(undefined), deadlineMs);
      }),
    ]);
  } catch {
    return undefined;
  } finally {
    clearTimeout(timer);
  }
}
