/**
 * Single-job lookups the command line makes before it acts: which config a job belongs to, how it
 * was planned, whether it exists at all.
 */
import { jobExists, readJobFields } from "../store/jobs.js";
import type { JobMode, Store } from "../store/store.js";

/** The config a job belongs to, or undefined when there is no such job. */
export async function readJobConfigName(store: Store, jobId: string): Promise<string | undefined> {
  const job = await readJobFields(store, jobId, ["config"]);
  return job?.config;
}

/** The mode a job was planned in, or undefined when there is no such job. */
export async function readJobMode(store: Store, jobId: string): Promise<JobMode | undefined> {
  const job = await readJobFields(store, jobId, ["mode"]);
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
      jobExists(store, jobId),
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
