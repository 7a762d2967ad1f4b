/**
 * Verbs on `batch_watermarks`: one document per lane (a config's incremental lane, whose
 * document also holds the config's one running full job, or a backfill window's lane).
 */
import type { Cut } from "../planning/cuts.js";
import { isDuplicateKey } from "./errors.js";
import type { Store, WatermarkDoc } from "./store.js";

/**
 * Releases a config's full-job lock if `jobId` holds it: only the holder can release it, so a
 * late or replayed release never frees a lock another full job took since.
 */
export async function releaseFullJobLock(store: Store, config: string, jobId: string): Promise<void> {
  await store.watermarks.updateOne({ _id: config, activeJob: jobId }, { $set: { activeJob: null } });
}

/** The lane document with this id, or null. */
export async function readLane(store: Store, laneId: string): Promise<WatermarkDoc | null> {
  return store.watermarks.findOne({ _id: laneId });
}

/** Who holds a config's full-job lock, and since when (null: no lane document yet). */
export async function readFullJobLock(
  store: Store,
  config: string,
): Promise<Pick<WatermarkDoc, "activeJob" | "activeSince"> | null> {
  return store.watermarks.findOne({ _id: config }, { projection: { activeJob: 1, activeSince: 1 } });
}

/**
 * Takes a config's full-job lock for `jobId`, atomically: only when it is free, already this
 * job's, or held by `orphan` (a job that was never created). Creating the lane document is an
 * upsert on its unique `_id`, so two initializers racing on one config cannot both win. False:
 * another job holds it (or created the document first).
 */
export async function takeFullJobLock(
  store: Store,
  lock: { config: string; jobId: string; orphan?: string; now: Date },
): Promise<boolean> {
  const { jobId, orphan } = lock;
  try {
    const res = await store.watermarks.updateOne(
      {
        _id: lock.config,
        $or: [
          { activeJob: { $exists: false } },
          { activeJob: null },
          { activeJob: jobId },
          ...(orphan !== undefined ? [{ activeJob: orphan }] : []),
        ],
      },
      { $set: { activeJob: jobId, activeSince: lock.now } },
      { upsert: true },
    );
    return res.matchedCount + res.upsertedCount > 0;
  } catch (err) {
    if (!isDuplicateKey(err)) throw err;
    return false;
  }
}

/**
 * Deletes a config's lane document when it holds nothing but `jobId`'s lock (no claim, no
 * watermark, not a backfill lane): what a refused full job created goes with it. True if deleted.
 */
export async function deleteLockOnlyLane(store: Store, config: string, jobId: string): Promise<boolean> {
  const res = await store.watermarks.deleteOne({
    _id: config,
    activeJob: jobId,
    kind: { $exists: false },
    claimedUpTo: { $exists: false },
    completedUpTo: { $exists: false },
    claimedSeq: { $exists: false },
  });
  return res.deletedCount > 0;
}

/** Clears a config's full-job lock and its time, if `jobId` holds it (a refused job's lock). */
export async function clearFullJobLock(store: Store, config: string, jobId: string): Promise<void> {
  await store.watermarks.updateOne(
    { _id: config, activeJob: jobId },
    { $set: { activeJob: null }, $unset: { activeSince: "" } },
  );
}

/**
 * Creates a backfill window's lane unless it exists (first pass, watermark at the window's
 * start); racing creators make one document (unique `_id`), and an existing lane is untouched.
 */
export async function ensureBackfillLane(
  store: Store,
  lane: { id: string; config: string; window: { from?: Cut; to?: Cut }; lower?: Cut },
): Promise<void> {
  const { lower } = lane;
  await store.watermarks
    .updateOne(
      { _id: lane.id },
      {
        $setOnInsert: {
          config: lane.config,
          kind: "backfill",
          window: lane.window,
          generation: 1,
          ...(lower ? { completedUpTo: lower } : {}),
        },
      },
      { upsert: true },
    )
    .catch((err: unknown) => {
      if (!isDuplicateKey(err)) throw err;
    });
}

/**
 * Starts a new pass of a backfill lane: the next generation, nothing claimed, the watermark back
 * at the window's start. Only from pass `generation`, so two restarts make one new pass.
 */
export async function startLanePass(
  store: Store,
  laneId: string,
  generation: number,
  lower: Cut | undefined,
): Promise<void> {
  await store.watermarks.updateOne(
    { _id: laneId, generation },
    {
      $set: { generation: generation + 1, completedSeq: 0, ...(lower ? { completedUpTo: lower } : {}) },
      $unset: { claimedSeq: "", claimedUpTo: "", claimedBy: "", ...(lower ? {} : { completedUpTo: "" }) },
    },
  );
}

/**
 * Mirrors a lane's newest claim on its document (for display; the jobs are the claims): only
 * forward, so a late mirror of an older claim never overwrites a newer one.
 */
export async function mirrorLaneClaim(
  store: Store,
  laneDocId: string,
  claim: { seq: number; config: string; jobId: string; end?: Cut },
): Promise<void> {
  const mirror: Partial<WatermarkDoc> = {
    config: claim.config,
    claimedBy: claim.jobId,
    ...(claim.end ? { claimedUpTo: claim.end } : {}),
  };
  await store.watermarks
    .updateOne(
      { _id: laneDocId, $or: [{ claimedSeq: { $lt: claim.seq } }, { claimedSeq: { $exists: false } }] },
      { $set: { ...mirror, claimedSeq: claim.seq } },
      { upsert: true },
    )
    .catch((err: unknown) => {
      // A later claim already wrote its mirror (the document exists, the filter did not match).
      if (!isDuplicateKey(err)) throw err;
    });
}

/**
 * Moves a lane's watermark to `to`, conditional on the lane as the caller read it (`seen`; null:
 * no document yet, which this creates): two jobs ending at once cannot move it backwards. False:
 * the lane changed meanwhile, read it again.
 */
export async function moveWatermark(
  store: Store,
  laneDocId: string,
  seen: WatermarkDoc | null,
  to: { config: string; completedSeq: number; completedAt: Date; completedUpTo?: Cut; completedBy?: string },
): Promise<boolean> {
  const res = await store.watermarks
    .updateOne(
      {
        _id: laneDocId,
        ...(seen
          ? {
              completedSeq: seen.completedSeq ?? { $exists: false },
              completedAt: seen.completedAt ?? { $exists: false },
            }
          : {}),
      },
      {
        $set: {
          config: to.config,
          completedSeq: to.completedSeq,
          completedAt: to.completedAt,
          ...(to.completedUpTo ? { completedUpTo: to.completedUpTo } : {}),
          ...(to.completedBy ? { completedBy: to.completedBy } : {}),
        },
      },
      { upsert: !seen },
    )
    .catch((err: unknown) => {
      if (isDuplicateKey(err)) return { matchedCount: 0, upsertedCount: 0 };
      throw err;
    });
  return res.matchedCount + res.upsertedCount > 0;
}

/** A config's backfill lanes, in id order. */
export async function listBackfillLanes(store: Store, config: string): Promise<WatermarkDoc[]> {
  return store.watermarks.find({ config, kind: "backfill" }).sort({ _id: 1 }).toArray();
}

/** Deletes a lane document: its watermark starts over (records replaced, demo). */
export async function deleteLane(store: Store, laneId: string): Promise<void> {
  await store.watermarks.deleteOne({ _id: laneId });
}
