/** Step dependencies for benchmarks (real HTTP, real clock, no logging). */
import { postChunk } from "../src/steps/dispatch/post-chunk.js";
import { DEFAULT_LEASE_MS, type HandOver, type StepDeps, silentLogger } from "../src/steps/handover.js";
import { realTimer } from "../src/jobs/lease.js";
import type { Store } from "../src/store/store.js";

export function benchDeps(store: Store, handOver: HandOver): StepDeps {
  return {
    store,
    post: postChunk,
    handOver,
    now: () => new Date(),
    sleep: (ms) => new Promise((r) => setTimeout(r, ms)),
    timer: realTimer,
    random: Math.random,
    env: {},
    owner: `bench:${process.pid}`,
    leaseMs: DEFAULT_LEASE_MS,
    log: silentLogger,
  };
}
