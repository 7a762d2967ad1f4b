/** What a worker counts from a watcher's result, and how the workers table prints (no MongoDB). */
import { describe, expect, it } from "vitest";
import { tallyOfWatch } from "../../src/runtimes/worker-registry.js";
import { formatAge, workersTable } from "../../src/cli/commands/workers.js";
import type { WorkerView } from "../../src/store/workers.js";

const counts = (processed: number, failed: number, sent = 0, pending = 0) => ({
  pending,
  sent,
  processed,
  failed,
});

describe("tallyOfWatch", () => {
  it("counts a chunk this watcher finished, with its records", () => {
    expect(
      tallyOfWatch({
        outcome: "closed",
        status: "processed",
        polls: 2,
        counts: counts(10, 0),
        closedHere: true,
      }),
    ).toEqual({ chunks: 1, records: 10, succeeded: 10, failed: 0 });
    // Failed and set aside: every record not processed is a failure (also those never reported).
    expect(
      tallyOfWatch({
        outcome: "closed",
        status: "failed",
        polls: 9,
        counts: counts(6, 2, 2),
        closedHere: true,
      }),
    ).toEqual({ chunks: 1, records: 10, succeeded: 6, failed: 4 });
  });

  it("counts nothing for an attempt sent again, a chunk another watcher closed, or a stale or continued run", () => {
    expect(
      tallyOfWatch({
        outcome: "closed",
        status: "pending",
        polls: 1,
        counts: counts(5, 5),
        closedHere: true,
      }),
    ).toBeUndefined();
    expect(
      tallyOfWatch({
        outcome: "closed",
        status: "processed",
        polls: 1,
        counts: counts(10, 0),
        closedHere: false,
      }),
    ).toBeUndefined();
    expect(tallyOfWatch({ outcome: "stale", reason: "x", polls: 1 })).toBeUndefined();
    expect(tallyOfWatch({ outcome: "continued", round: 1, polls: 200 })).toBeUndefined();
  });
});

describe("the workers table", () => {
  const at = new Date("2026-12-04T21:00:00.123Z");
  const worker: WorkerView = {
    id: "h:1:aa",
    name: "evil\u001b]0;title\u0007",
    kind: "local",
    host: "h",
    pid: 1,
    startedAt: at,
    lastHeartbeat: at,
    heartbeatAgeMs: 125_000,
    heartbeatMs: 15_000,
    state: "stale",
    chunks: 3,
    records: 30,
    succeeded: 29,
    failed: 1,
  };

  it("escapes text from the database and aligns the columns", () => {
    const lines = workersTable([worker]).split("\n");
    expect(lines[1]).toContain("evil\\x1b]0;title\\x07");
    expect([...(lines[1] ?? "")].some((c) => c.charCodeAt(0) < 0x20)).toBe(false);
    expect(lines[1]).toMatch(/2026-12-04T21:00:00Z\s+2 min ago\s+3\s+30\s+29\s+1\s+stale$/);
    expect(lines[0]?.indexOf("KIND")).toBe(lines[1]?.indexOf("local"));
  });

  it("says ages in s, min and h", () => {
    expect([formatAge(4_900), formatAge(180_000), formatAge(7_300_000)]).toEqual(["4 s", "3 min", "2 h"]);
  });
});
