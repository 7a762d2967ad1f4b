/** The watcher's poll schedule (`nextPollDelay`), a pure function. */
import { describe, expect, it } from "vitest";
import { nextPollDelay } from "../../../src/steps/watch/watch.js";

const base = { minMs: 10, maxMs: 2000 };

describe("nextPollDelay", () => {
  it("without a learned round trip, grows from the minimum by half each count, up to the maximum", () => {
    const delays = [0, 1, 2, 3, 4].map((k) =>
      nextPollDelay({ ...base, elapsedMs: 0, pollsPastDue: k, roundTripMs: undefined }),
    );
    expect(delays).toEqual([10, 15, 23, 34, 51]);
    expect(nextPollDelay({ ...base, elapsedMs: 0, pollsPastDue: 30, roundTripMs: undefined })).toBe(2000);
  });

  it("with one, waits until shortly before the chunk is due, then counts at a twentieth of it, growing", () => {
    expect(nextPollDelay({ ...base, elapsedMs: 20, pollsPastDue: 0, roundTripMs: 200 })).toBe(160);
    expect(nextPollDelay({ ...base, elapsedMs: 175, pollsPastDue: 0, roundTripMs: 200 })).toBe(10);
    expect(nextPollDelay({ ...base, elapsedMs: 190, pollsPastDue: 0, roundTripMs: 400 })).toBe(170);
    expect(nextPollDelay({ ...base, elapsedMs: 380, pollsPastDue: 1, roundTripMs: 400 })).toBe(30);
    expect(nextPollDelay({ ...base, elapsedMs: 9_000, pollsPastDue: 20, roundTripMs: 200 })).toBe(2000);
  });

  it("stays within the config's bounds, a fixed interval when they are equal", () => {
    const fixed = { minMs: 500, maxMs: 500 };
    for (const roundTripMs of [undefined, 5, 200, 100_000])
      for (const k of [0, 3, 50])
        expect(nextPollDelay({ ...fixed, elapsedMs: 7, pollsPastDue: k, roundTripMs })).toBe(500);
    expect(nextPollDelay({ ...base, elapsedMs: 0, pollsPastDue: 0, roundTripMs: 1 })).toBe(10);
    expect(nextPollDelay({ ...base, elapsedMs: 0, pollsPastDue: 0, roundTripMs: 1_000_000 })).toBe(2000);
  });
});
