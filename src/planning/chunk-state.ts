/**
 * The chunk state machine (README, "Restarts, replays and faults") as one pure function. Store updates use it to compute the
 * next status and guard on the current one, so an illegal move is an error, not a silent write.
 *
 *   pending → dispatching → sent → processed
 *   dispatching → pending     (delivery not completed: retried later, same attempt and key)
 *   dispatching → failed      (rejected by the service, or delivery tries exhausted)
 *   sent → pending            (records failed, chunk timed out, or a callback that did not match
 *                              the request: a new attempt)
 *   sent → failed             (attempts exhausted)
 *   dispatching → processed   (completion "response": the reply said every record is processed)
 *   dispatching → pending     (completion "response": records failed or the reply did not match the
 *                              request, attempts left: a new attempt)
 *   dispatching → failed      (the same, attempts exhausted)
 *   processed → pending       (run-chunk: sent again on demand as a new attempt, all records)
 *   failed → pending          (run-chunk: sent again, all records or only those not processed)
 *
 * In "response" mode the reply is the outcome, so an attempt ends without ever being `sent`.
 */
/** Where a chunk is in its life (the store's chunk documents carry it). */
export type ChunkStatus = "pending" | "dispatching" | "sent" | "processed" | "failed";

export type ChunkEvent =
  | { type: "claim" }
  | { type: "accepted" }
  | { type: "deliveryFailed"; triesLeft: boolean }
  | { type: "rejected" }
  | { type: "leaseExpired" }
  | { type: "allProcessed" }
  | { type: "recordsFailed"; attemptsLeft: boolean }
  | { type: "timedOut"; attemptsLeft: boolean }
  /** The outcome the service gave (reply or callback) does not match the attempt's records. */
  | { type: "badReply"; attemptsLeft: boolean }
  /** Sent again on demand (`run-chunk`), once the chunk is done. */
  | { type: "rerun" };

export class IllegalTransition extends Error {
  constructor(from: ChunkStatus, event: ChunkEvent) {
    super(`chunk cannot go from '${from}' on '${event.type}'`);
    this.name = "IllegalTransition";
  }
}

export function nextChunkStatus(from: ChunkStatus, event: ChunkEvent): ChunkStatus {
  switch (from) {
    case "pending":
      if (event.type === "claim") return "dispatching";
      break;
    case "dispatching":
      switch (event.type) {
        case "accepted":
          return "sent";
        case "deliveryFailed":
          return event.triesLeft ? "pending" : "failed";
        case "rejected":
          return "failed";
        case "leaseExpired":
          // Redelivered under the same attempt and key: the service may already have it.
          return "dispatching";
        // Completion "response": the reply carried the attempt's outcome.
        case "allProcessed":
          return "processed";
        case "recordsFailed":
        case "badReply":
          return event.attemptsLeft ? "pending" : "failed";
        default:
          break;
      }
      break;
    case "sent":
      switch (event.type) {
        case "allProcessed":
          return "processed";
        case "recordsFailed":
        case "timedOut":
        case "badReply":
          return event.attemptsLeft ? "pending" : "failed";
        default:
          break;
      }
      break;
    case "processed":
    case "failed":
      if (event.type === "rerun") return "pending";
      break;
    default: {
      const never: never = from;
      throw new Error(`unknown chunk status ${String(never)}`);
    }
  }
  throw new IllegalTransition(from, event);
}
