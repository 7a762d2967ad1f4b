/**
 * The full-job lock's one rule about its holder: when may another job take it over? A lock whose
 * job was never created is free a minute after it was taken. A finished job holds no lock — one
 * left held by a run that died before releasing it is free at once — unless the lock was taken
 * after the job finished: that is a rerun of the job (`run-chunk`) about to reopen it, or a
 * stalled replay; it is free a minute after it was taken.
 */
import { readJobFields } from "../store/jobs.js";
import { readFullJobLock } from "../store/lanes.js";
import type { Store } from "../store/store.js";

/** A lock taken this long ago by a job not running is free. */
export const FULL_JOB_LOCK_GRACE_MS = 60_000;

/**
 * Who holds the config's lock in a way `jobId` may take over (`orphan`), or `held` when another
 * job holds it for real; undefined when it is free or `jobId`'s own.
 */
export async function findFullJobLockHolder(
  store: Store,
  config: string,
  jobId: string,
  now: Date,
): Promise<{ orphan: string } | { held: string; since: Date } | undefined> {
  const holder = await readFullJobLock(store, config);
  if (!holder?.activeJob || holder.activeJob === jobId) return undefined;
  const since = holder.activeSince ?? new Date(0);
  const graceOver = since.getTime() < now.getTime() - FULL_JOB_LOCK_GRACE_MS;
  const held = await readJobFields(store, holder.activeJob, ["status", "finishedAt"]);
  const finished = held?.status === "succeeded" || held?.status === "failed";
  const free = held
    ? finished && (graceOver || (held.finishedAt !== undefined && since < held.finishedAt))
    : graceOver;
  return free ? { orphan: holder.activeJob } : { held: holder.activeJob, since };
}
