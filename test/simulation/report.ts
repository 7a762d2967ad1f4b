/** Printing a seed's violation: the seed, the invariants, the end of the interleaving, the replay command. */
import type { SeedResult } from "./world.js";

export function describeViolation(r: SeedResult): string {
  const s = r.scenario;
  return [
    `seed ${r.seed}: ${s.kind} (completion ${s.completion}, ${s.runner} runners, ${s.records} records, chunks of ${s.chunkSize}, maxInFlight ${s.maxInFlight}, ${s.maxAttempts} attempt(s), ${s.requests.length} request(s)) — ${r.crashes} crash(es), ${r.stalls} stall(s), ${r.steps} steps, ended: ${r.end}`,
    ...r.violations.slice(0, 8).map((v) => `  ✗ ${v}`),
    "  last steps:",
    ...r.trace.slice(-25).map((t) => `    ${t}`),
    `  replay: npm run test:sim -- --seed ${r.seed}`,
  ].join("\n");
}
