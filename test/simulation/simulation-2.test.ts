/**
 * The simulation of every actor under seeded interleavings, crashes and stalls (see world.ts):
 * seeds 1·N+1 … 2·N of the npm test budget. `npm run test:sim -- --seeds N` runs more.
 */
import { describe, it } from "vitest";
import { SEEDS_PER_FILE, expectSeedsHold } from "./seeds.js";

describe("simulation", () => {
  it(`holds every invariant over ${SEEDS_PER_FILE} seeded histories (part 2)`, async () => {
    await expectSeedsHold(1 + 1 * SEEDS_PER_FILE, SEEDS_PER_FILE);
  }, 600_000);
});
