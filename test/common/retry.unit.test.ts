import { describe, expect, it } from "vitest";
import { backoffDelay, retryWithBackoff } from "../../src/common/retry.js";

describe("backoffDelay", () => {
  it("doubles per try, is capped, and jitters within [exp/2, exp]", () => {
    const jittered = (r: number) => ({ baseMs: 100, capMs: 10_000, random: () => r });
    expect(backoffDelay(1, jittered(0))).toBe(50);
    expect(backoffDelay(1, jittered(0.999999))).toBe(100);
    expect(backoffDelay(4, jittered(0.5))).toBe(600);
    expect(backoffDelay(30, jittered(0.999999))).toBe(10_000);
  });

  it("without jitter waits the full capped exponential", () => {
    const plain = { baseMs: 250, capMs: 1_000 };
    expect([1, 2, 3, 4, 5].map((n) => backoffDelay(n, plain))).toEqual([250, 500, 1_000, 1_000, 1_000]);
    expect(backoffDelay(0, plain)).toBe(250);
  });
});

describe("retryWithBackoff", () => {
  class Transient extends Error {}
  const policy = (waits: number[]) => ({
    tries: 4,
    baseMs: 10,
    capMs: 25,
    retryable: (err: unknown) => err instanceof Transient,
    sleep: (ms: number) => {
      waits.push(ms);
      return Promise.resolve();
    },
  });

  it("tries again after each transient failure, waiting the backoff, until it succeeds", async () => {
    const waits: number[] = [];
    const seen: number[] = [];
    const result = await retryWithBackoff((tries) => {
      seen.push(tries);
      return tries < 3 ? Promise.reject(new Transient("away")) : Promise.resolve("done");
    }, policy(waits));
    expect(result).toBe("done");
    expect(seen).toEqual([1, 2, 3]);
    expect(waits).toEqual([10, 20]);
  });

  it("gives up after the last try with its error", async () => {
    const waits: number[] = [];
    let calls = 0;
    await expect(
      retryWithBackoff(() => {
        calls++;
        return Promise.reject(new Transient(`try ${calls}`));
      }, policy(waits)),
    ).rejects.toThrow("try 4");
    expect(calls).toBe(4);
    expect(waits).toEqual([10, 20, 25]);
  });

  it("never retries what is not retryable (bad input)", async () => {
    const waits: number[] = [];
    let calls = 0;
    await expect(
      retryWithBackoff(() => {
        calls++;
        return Promise.reject(new Error("bad config"));
      }, policy(waits)),
    ).rejects.toThrow("bad config");
    expect(calls).toBe(1);
    expect(waits).toEqual([]);
  });

  it("stops when the wait itself is cut short (an interrupt)", async () => {
    const told: number[] = [];
    await expect(
      retryWithBackoff(() => Promise.reject(new Transient("away")), {
        ...policy([]),
        sleep: () => Promise.reject(new Error("interrupted")),
        onRetry: (_err, wait) => told.push(wait),
      }),
    ).rejects.toThrow("interrupted");
    expect(told).toEqual([10]);
  });
});
