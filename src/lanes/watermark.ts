/**
 * The watermark of a lane: the end of the completed prefix of its jobs, in lane order. A job is
 * complete when every record of its window was processed, or set aside and later resolved (by a
 * human, or by an exceptions job that processed it). The watermark moves over complete jobs, and
 * into the completed prefix of the first incomplete one — never past a record that still waits,
 * so a failed or interrupted job holds it back and the backlog keeps counting what it left.
 */
import type { Logger } from "../steps/handover.js";
import { type Cut, laterCut } from "../planning/cuts.js";
import { isDuplicateKey } from "../store/errors.js";
import type { JobDoc, Store } from "../store/store.js";

/** A lane's document id (without the pass number), from a job's lane id. */
export const laneDocId = (laneId: string): string => laneId.replace(/#\d+$/, "");

/** The pass of a backfill window a lane id names (`…#2`); the first pass carries no number. */
export const lanePass = (laneId: string): number => Number(/#(\d+)$/.exec(laneId)?.[1] ?? 1);

interface WatermarkDeps {
  store: Store;
  now: () => Date;
  log: Logger;
}

/**
 * Settles what a finished job has completed: the end of its completed prefix, and whether it is
 * complete (no unresolved exception, no failed chunk left unresolved). Called when a job ends and
 * when one of its exceptions is resolved; then moves the lane's watermark.
 */
export async function settleJobCompletion(deps: WatermarkDeps, jobId: string): Promise<void> {
  const { store } = deps;
  const job = await store.jobs.findOne({ _id: jobId });
  if (!job || (job.status !== "succeeded" && job.status !== "failed")) return;
  const unresolved = await store.exceptions.countDocuments({ jobId, resolution: { $exists: false } });
  const failedChunk = await store.chunks.findOne(
    { jobId, status: "failed" },
    { sort: { chunk: 1 }, projection: { chunk: 1 } },
  );
  const windowEnd = job.window.to ?? job.window.from;
  let completedTo: Cut | undefined;
  const complete = unresolved === 0;
  if (complete) {
    completedTo = windowEnd ?? undefined;
  } else {
    const lastDone = await store.chunks.findOne(
      { jobId, ...(failedChunk ? { chunk: { $lt: failedChunk.chunk } } : { done: true }) },
      { sort: { chunk: -1 }, projection: { lastKey: 1, lastId: 1 } },
    );
    completedTo =
      lastDone && lastDone.lastId !== undefined
        ? { key: lastDone.lastKey, id: lastDone.lastId }
        : (job.window.from ?? undefined);
  }
  await store.jobs.updateOne(
    { _id: jobId },
    completedTo ? { $set: { completedTo, complete } } : { $set: { complete }, $unset: { completedTo: "" } },
  );
  if (job.lane) await advanceWatermark(deps, job.lane.id, job.config);
}

/**
 * Walks the lane's jobs after the completed prefix, in lane order, and moves the watermark as far
 * as they allow. Conditional on the previous state, so two jobs ending at once cannot move it
 * backwards; the loser walks again.
 */
export async function advanceWatermark(deps: WatermarkDeps, laneId: string, config: string): Promise<void> {
  const { store } = deps;
  const docId = laneDocId(laneId);
  for (let tries = 0; tries < 10; tries++) {
    const lane = await store.watermarks.findOne({ _id: docId });
    if (lanePass(laneId) !== (lane?.generation ?? 1)) return; // a job of an earlier pass
    const startSeq = lane?.completedSeq ?? 0;
    let mark: Cut | undefined = lane?.completedUpTo;
    let seq = startSeq;
    let by: string | undefined;
    const cursor = store.jobs
      .find(
        { "lane.id": laneId, "lane.seq": { $gt: startSeq } },
        { projection: { lane: 1, status: 1, complete: 1, completedTo: 1 } },
      )
      .sort({ "lane.seq": 1 });
    try {
      for await (const job of cursor as AsyncIterable<
        Pick<JobDoc, "_id" | "lane" | "status" | "complete" | "completedTo">
      >) {
        if (!job.lane || job.lane.seq !== seq + 1) break;
        if (job.complete) {
          mark = laterCut(mark, job.lane.end);
          seq = job.lane.seq;
          by = job._id;
          continue;
        }
        if (job.completedTo) {
          const moved = laterCut(mark, job.completedTo);
          if (moved !== mark) by = job._id;
          mark = moved;
        }
        break;
      }
    } finally {
      await cursor.close();
    }
    if (seq === startSeq && mark === lane?.completedUpTo) return;
    const now = deps.now();
    const res = await store.watermarks
      .updateOne(
        {
          _id: docId,
          ...(lane
            ? {
                completedSeq: lane.completedSeq ?? { $exists: false },
                completedAt: lane.completedAt ?? { $exists: false },
              }
            : {}),
        },
        {
          $set: {
            config,
            completedSeq: seq,
            completedAt: now,
            ...(mark ? { completedUpTo: mark } : {}),
            ...(by ? { completedBy: by } : {}),
          },
        },
        { upsert: !lane },
      )
      .catch((err: unknown) => {
        if (isDuplicateKey(err)) return { matchedCount: 0, upsertedCount: 0 };
        throw err;
      });
    if (res.matchedCount + res.upsertedCount > 0) {
      deps.log.info(`watermark of ${docId} moved`, { completedSeq: seq });
      return;
    }
  }
  throw new Error(`could not move the watermark of lane ${docId}: too many concurrent changes`);
}
