/**
 * The chunk state machine (README, "Restarts, replays and faults") as one pure function. Store updates use it to compute the
 * next status and guard on the current one, so an illegal move is an error, not a silent write.
 *
 *   pending → dispatching → sent → processed
 *   dispatching → pending     (delivery not completed: retried later, same attempt and key)
 *   dispatching → failed      (rejected by the service, or delivery tries exhausted)
 *   sent → pending            (records failed, or chunk timed out: a new attempt)
 *   sent → failed             (attempts exhausted)
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
  | { type: "timedOut"; attemptsLeft: boolean };

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
          return event.attemptsLeft ? "pending" : "failed";
        default:
          break;
      }
      break;
    case "processed":
    case "failed":
      break;
    default: {
      const never: never = from;
      throw new Error(`unknown chunk status ${String(never)}`);
    }
  }
  throw new IllegalTransition(from, event);
}
