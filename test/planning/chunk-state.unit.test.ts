import { describe, expect, it } from "vitest";
import { IllegalTransition, nextChunkStatus } from "../../src/planning/chunk-state.js";

describe("chunk state machine", () => {
  it("follows the documented transitions", () => {
    expect(nextChunkStatus("pending", { type: "claim" })).toBe("dispatching");
    expect(nextChunkStatus("dispatching", { type: "accepted" })).toBe("sent");
    expect(nextChunkStatus("dispatching", { type: "deliveryFailed", triesLeft: true })).toBe("pending");
    expect(nextChunkStatus("dispatching", { type: "deliveryFailed", triesLeft: false })).toBe("failed");
    expect(nextChunkStatus("dispatching", { type: "rejected" })).toBe("failed");
    expect(nextChunkStatus("dispatching", { type: "leaseExpired" })).toBe("dispatching");
    expect(nextChunkStatus("sent", { type: "allProcessed" })).toBe("processed");
    expect(nextChunkStatus("sent", { type: "recordsFailed", attemptsLeft: true })).toBe("pending");
    expect(nextChunkStatus("sent", { type: "recordsFailed", attemptsLeft: false })).toBe("failed");
    expect(nextChunkStatus("sent", { type: "timedOut", attemptsLeft: true })).toBe("pending");
    expect(nextChunkStatus("sent", { type: "timedOut", attemptsLeft: false })).toBe("failed");
    // run-chunk: a done chunk is sent again as a new attempt.
    expect(nextChunkStatus("processed", { type: "rerun" })).toBe("pending");
    expect(nextChunkStatus("failed", { type: "rerun" })).toBe("pending");
  });

  it("refuses every other move", () => {
    expect(() => nextChunkStatus("pending", { type: "accepted" })).toThrow(IllegalTransition);
    expect(() => nextChunkStatus("sent", { type: "claim" })).toThrow(IllegalTransition);
    expect(() => nextChunkStatus("processed", { type: "claim" })).toThrow(IllegalTransition);
    expect(() => nextChunkStatus("failed", { type: "allProcessed" })).toThrow("cannot go from 'failed'");
    for (const inFlight of ["pending", "dispatching", "sent"] as const)
      expect(() => nextChunkStatus(inFlight, { type: "rerun" })).toThrow(IllegalTransition);
  });
});
