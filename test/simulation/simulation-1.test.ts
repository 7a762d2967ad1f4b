/**
 * The simulation of every actor under seeded interleavings, crashes and stalls (see world.ts):
 * seeds 0·N+1 … 1·N of the npm test budget. `npm run test:sim -- --seeds N` runs more.
 */
import { describe, it } from "vitest";
import { SEEDS_PER_FILE, expectSeedsHold } from "./seeds.js";

describe("simulation", () => {
  it(`holds every invariant over ${SEEDS_PER_FILE} seeded histories (part 1)`, async () => {
    await expectSeedsHold(1 + 0 * SEEDS_PER_FILE, SEEDS_PER_FILE);
  }, 600_000);
});
