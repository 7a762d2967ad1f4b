/**
 * Ending a chunk attempt, whoever learned how it went: the watcher (completion "status": it
 * counted the records; "callback": the service called back) or the server (completion
 * "response": the reply said so). Processed closes the chunk; otherwise it is sent again as a new
 * attempt while attempts remain, else it fails with its records set aside. Every write is guarded
 * by the writer's hold, so a replay or a racing writer changes nothing.
 */
import type { BatchConfig } from "../../config/schema.js";
import { failChunk } from "../../jobs/set-aside-records.js";
import { nextChunkStatus } from "../../planning/chunk-state.js";
import {
  type AnsweredDelivery,
  type ChunkHold,
  markChunkProcessed,
  startNextAttempt,
} from "../../store/chunks.js";
import type { ChunkDoc } from "../../store/store.js";
import type { StepDeps } from "../handover.js";
import { deleteExceptionsProcessedByRerun } from "../../store/set-aside-records.js";
import { countSendableRecords } from "../../store/records.js";
import { settleJobCompletion } from "../../lanes/watermark.js";

export type AttemptEnding =
  /** Every record of the chunk is processed; `processed` is how many records the chunk has. */
  | { kind: "allProcessed"; processed: number }
  | { kind: "recordsFailed"; failed: number }
  | { kind: "timedOut" }
  /** The service's outcome did not match the attempt (`reason` says how). */
  | { kind: "badReply"; reason: string };

/**
 * How an attempt's counted record statuses end it, or undefined while records are still out
 * (`pending` or `sent`).
 */
export function endingOfCounts(counts: {
  pending: number;
  sent: number;
  processed: number;
  failed: number;
}): AttemptEnding | undefined {
  if (counts.pending + counts.sent > 0) return undefined;
  return counts.failed === 0
    ? { kind: "allProcessed", processed: counts.processed }
    : { kind: "recordsFailed", failed: counts.failed };
}

/**
 * Ends the attempt `hold` names. Returns the status the chunk moves to and whether this writer
 * moved it (false: another had ended the attempt first). `answered` is given when the chunk goes
 * straight from `dispatching` (completion "response").
 */
export async function endAttempt(
  deps: StepDeps,
  config: BatchConfig,
  chunk: ChunkDoc,
  hold: ChunkHold,
  ending: AttemptEnding,
  answered?: AnsweredDelivery,
): Promise<{ status: ChunkDoc["status"]; moved: boolean }> {
  const { jobId, attempt } = chunk;
  const now = deps.now();
  // After a rerun, records the job had set aside may be processed now: before the chunk closes
  // (and the job's totals are counted), they stop being exceptions.
  if (chunk.rerun) {
    const { requeues } = await deleteExceptionsProcessedByRerun(deps.store, jobId, chunk.chunk, now);
    // An exceptions job whose last open exception a rerun resolved is complete now.
    for (const id of requeues) await settleJobCompletion(deps, id);
  }
  if (ending.kind === "allProcessed") {
    const to = nextChunkStatus(hold.status, { type: "allProcessed" });
    return { status: to, moved: await markChunkProcessed(deps.store, hold, ending.processed, now, answered) };
  }
  // Records a rerun left out stay failed: when only they are left, another attempt has nothing
  // to send, and the chunk fails now.
  const skip = chunk.rerun && attempt >= chunk.rerun.attempt ? (chunk.rerun.skip ?? []) : [];
  const attemptsLeft =
    attempt < config.retry.maxAttempts &&
    (skip.length === 0 || (await countSendableRecords(deps.store, jobId, chunk.chunk, skip)) > 0);
  const to = nextChunkStatus(hold.status, { type: ending.kind, attemptsLeft });
  let reason: string;
  let finalReason: string;
  switch (ending.kind) {
    case "timedOut":
      reason = `not processed within ${config.watch.chunkTimeoutMs} ms (attempt ${attempt})`;
      finalReason = reason;
      break;
    case "recordsFailed":
      reason = `${ending.failed} record(s) failed (attempt ${attempt})`;
      finalReason = `failed after ${attempt} attempt(s)`;
      break;
    case "badReply":
      reason = `${ending.reason} (attempt ${attempt})`;
      finalReason = reason;
      break;
    default: {
      const never: never = ending;
      throw new Error(`unknown attempt ending ${JSON.stringify(never)}`);
    }
  }
  const moved =
    to === "pending"
      ? await startNextAttempt(deps.store, hold, {
          outcome: ending.kind,
          reason,
          now,
          ...(answered ? { answered } : {}),
        })
      : await failChunk(deps, config.name, chunk, hold, ending.kind, finalReason);
  if (moved) {
    deps.log.warn(
      `chunk ${chunk.chunk}: ${reason}; ${to === "pending" ? "sending again" : "records set aside"}`,
      {
        jobId,
      },
    );
  }
  return { status: to, moved };
}
