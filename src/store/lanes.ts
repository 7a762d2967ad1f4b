/**
 * Verbs on `batch_watermarks`: one document per lane (a config's incremental lane, whose
 * document also holds the config's one running full job, or a backfill window's lane).
 */
import type { Store } from "./store.js";

/**
 * Releases a config's full-job lock if `jobId` holds it: only the holder can release it, so a
 * late or replayed release never frees a lock another full job took since.
 */
export async function releaseFullJobLock(store: Store, config: string, jobId: string): Promise<void> {
  await store.watermarks.updateOne({ _id: config, activeJob: jobId }, { $set: { activeJob: null } });
}
