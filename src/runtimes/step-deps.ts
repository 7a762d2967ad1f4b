/**
 * The one place `StepDeps` is built. Every runtime (the Trigger.dev worker, the local runner) and
 * every harness (tests, the benchmark, the simulation) starts from the same real defaults and
 * names only what it replaces, so a new dependency gets its production value everywhere at once.
 */
import { realTimer } from "../jobs/lease.js";
import { postChunk } from "../steps/dispatch/post-chunk.js";
import { DEFAULT_LEASE_MS, type StepDeps, silentLogger } from "../steps/handover.js";
import { StepCache } from "../steps/step-cache.js";

/** What only the caller can know (the store, where hand-overs go, who it is); the rest optional. */
export type StepDepsParts = Pick<StepDeps, "store" | "handOver" | "owner"> & Partial<StepDeps>;

/**
 * Fills the real defaults: delivery over HTTP (`postChunk`), the wall clock, timers that never
 * suspend the run, `Math.random`, the process environment, `DEFAULT_LEASE_MS`, no logging, and
 * a cache of its own (`StepCache`: planned jobs' fixed facts, configs for 2 s).
 */
export function buildStepDeps(parts: StepDepsParts): StepDeps {
  return {
    post: postChunk,
    now: () => new Date(),
    sleep: (ms) => realTimer(ms),
    timer: realTimer,
    random: Math.random,
    env: process.env,
    leaseMs: DEFAULT_LEASE_MS,
    log: silentLogger,
    cache: new StepCache(),
    ...parts,
  };
}
