/** All of one job's documents across the collections: counting them, deleting them. */
import type { Store } from "./store.js";

/** How many documents of the job each collection holds (besides the job document itself). */
export async function countJobDocuments(
  store: Store,
  jobId: string,
): Promise<{ details: number; chunks: number; exceptions: number; taskStats: number }> {
  return {
    details: await store.details.countDocuments({ jobId }),
    chunks: await store.chunks.countDocuments({ jobId }),
    exceptions: await store.exceptions.countDocuments({ jobId }),
    taskStats: await store.taskStats.countDocuments({ jobId }),
  };
}

/**
 * Deletes the job's documents from every collection, the job document last (a crash part-way
 * leaves the job listed, so the delete can be run again), and frees its config's lane if the job
 * still holds it. The caller has checked that nothing depends on the job any more.
 */
export async function deleteJobDocuments(store: Store, jobId: string, config: string): Promise<void> {
  await store.details.deleteMany({ jobId });
  await store.chunks.deleteMany({ jobId });
  await store.exceptions.deleteMany({ jobId });
  await store.taskStats.deleteMany({ jobId });
  await store.watermarks.updateOne({ _id: config, activeJob: jobId }, { $set: { activeJob: null } });
  await store.jobs.deleteOne({ _id: jobId });
}
