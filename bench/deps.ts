/** Step dependencies for benchmarks (real HTTP, real clock, no logging). */
import type { HandOver, StepDeps } from "../src/steps/handover.js";
import type { Store } from "../src/store/store.js";
import { buildStepDeps } from "../src/runtimes/step-deps.js";

export function benchDeps(store: Store, handOver: HandOver): StepDeps {
  return buildStepDeps({ store, handOver, env: {}, owner: `bench:${process.pid}` });
}
