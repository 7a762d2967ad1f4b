/** Runs a range of seeds and fails with every violating seed's report (used by the test files). */
import { expect } from "vitest";
import { describeViolation } from "./report.js";
import { runSeed } from "./world.js";

export async function expectSeedsHold(from: number, count: number): Promise<void> {
  const reports: string[] = [];
  for (let seed = from; seed < from + count; seed++) {
    const r = await runSeed(seed);
    if (r.violations.length > 0) reports.push(describeViolation(r));
  }
  expect(reports, reports.join("\n\n")).toEqual([]);
}

/** Seeds per test file in `npm test` (two files run in parallel); `CHUNKRELAY_SIM_SEEDS` overrides. */
export const SEEDS_PER_FILE = Number(process.env.CHUNKRELAY_SIM_SEEDS ?? 1000);
