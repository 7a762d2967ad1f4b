/**
 * The watermark of a lane: the end of the completed prefix of its jobs, in lane order. A job is
 * complete when every record of its window was processed, or set aside and later resolved (by a
 * human, or by an exceptions job that processed it). The watermark moves over complete jobs, and
 * into the completed prefix of the first incomplete one — never past a record that still waits,
 * so a failed or interrupted job holds it back and the backlog keeps counting what it left.
 */
import { findFirstFailedChunk, findLastCompletedChunk } from "../store/chunks.js";
import { readJob, saveJobCompletion, streamLaneJobs } from "../store/jobs.js";
import { moveWatermark, readLane } from "../store/lanes.js";
import { countUnresolvedRecords } from "../store/set-aside-records.js";
import type { Logger } from "../steps/handover.js";
import { type Cut, laterCut } from "../planning/cuts.js";
import type { Store } from "../store/store.js";
import { laneDocId, lanePass } from "../planning/lane-ids.js";
import { commitWatermark } from "./commit-watermark.js";

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
  const job = await readJob(store, jobId);
  if (!job || (job.status !== "succeeded" && job.status !== "failed")) return;
  const unresolved = await countUnresolvedRecords(store, jobId);
  const failedChunk = await findFirstFailedChunk(store, jobId);
  const windowEnd = job.window.to ?? job.window.from;
  let completedTo: Cut | undefined;
  const complete = unresolved === 0;
  if (complete) {
    completedTo = windowEnd ?? undefined;
  } else {
    const lastDone = await findLastCompletedChunk(store, jobId, failedChunk?.chunk);
    completedTo =
      lastDone && lastDone.lastId !== undefined
        ? { key: lastDone.lastKey, id: lastDone.lastId }
        : (job.window.from ?? undefined);
  }
  await saveJobCompletion(store, jobId, completedTo, complete);
  if (job.lane) {
    await advanceWatermark(deps, job.lane.id, job.config);
    await commitWatermark(deps, job.config, job.lane.id);
  }
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
    const lane = await readLane(store, docId);
    if (lanePass(laneId) !== (lane?.generation ?? 1)) return; // a job of an earlier pass
    const startSeq = lane?.completedSeq ?? 0;
    let mark: Cut | undefined = lane?.completedUpTo;
    let seq = startSeq;
    let by: string | undefined;
    const cursor = streamLaneJobs(store, laneId, startSeq);
    try {
      for await (const job of cursor) {
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
    const moved = await moveWatermark(store, docId, lane, {
      config,
      completedSeq: seq,
      completedAt: now,
      ...(mark ? { completedUpTo: mark } : {}),
      ...(by ? { completedBy: by } : {}),
    });
    if (moved) {
      deps.log.info(`watermark of ${docId} moved`, { completedSeq: seq });
      return;
    }
  }
  throw new Error(`could not move the watermark of lane ${docId}: too many concurrent changes`);
}
