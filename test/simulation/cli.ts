/**
 * `npm run test:sim -- --seeds N [--from S]` runs N seeds (from S, default 1);
 * `npm run test:sim -- --seed S` runs one and prints its trace. Exit code 1 on any violation.
 */
import { parseArgs } from "node:util";
import { describeViolation } from "./report.js";
import { runSeed } from "./world.js";

const { values } = parseArgs({
  options: {
    seeds: { type: "string" },
    seed: { type: "string" },
    from: { type: "string" },
    verbose: { type: "boolean", default: false },
  },
});
const single = values.seed !== undefined ? Number(values.seed) : undefined;
const count = single !== undefined ? 1 : Number(values.seeds ?? 200);
const from = single ?? Number(values.from ?? 1);
if (!Number.isInteger(count) || count < 1 || !Number.isInteger(from)) {
  process.stderr.write("usage: npm run test:sim -- [--seeds N] [--from S] | --seed S\n");
  process.exit(2);
}
const started = Date.now();
let bad = 0;
const kinds = new Map<string, number>();
const modes = new Map<string, number>();
let steps = 0;
let crashes = 0;
let releases = 0;
for (let seed = from; seed < from + count; seed++) {
  const r = await runSeed(seed);
  kinds.set(r.scenario.kind, (kinds.get(r.scenario.kind) ?? 0) + 1);
  modes.set(r.scenario.completion, (modes.get(r.scenario.completion) ?? 0) + 1);
  steps += r.steps;
  crashes += r.crashes;
  releases += r.releases;
  if (r.violations.length > 0) {
    bad++;
    process.stdout.write(`${describeViolation(r)}\n\n`);
  } else if (single !== undefined || values.verbose) {
    process.stdout.write(
      `seed ${seed}: ${r.scenario.kind}/${r.scenario.runner}/${r.scenario.completion}, ${r.jobs} job(s), ${r.records} record(s), ${r.workers} worker(s), ${r.steps} steps, ${r.crashes} crash(es), ${r.stalls} stall(s): ok\n`,
    );
    if (single !== undefined) process.stdout.write(`${r.trace.join("\n")}\n`);
  }
}
const secs = (Date.now() - started) / 1000;
process.stdout.write(
  `${count} seed(s) from ${from} in ${secs.toFixed(1)} s (${[...kinds].map(([k, n]) => `${k} ${n}`).join(", ")}; completion ${[...modes].map(([k, n]) => `${k} ${n}`).join(", ")}; ${steps} steps, ${crashes} crashes, ${releases} lease releases): ${bad === 0 ? "no violation" : `${bad} seed(s) violated an invariant`}\n`,
);
process.exit(bad === 0 ? 0 : 1);
