/**
 * How long `chunkrelay --help` takes against loading the MongoDB driver alone
 * (`npm run bench:cli-start [-- --runs N]`). Both are measured in one run, alternately, so a busy
 * machine slows both alike; the medians and their difference are printed, and the exit code is 1
 * when `--help` costs more than BUDGET_MS over the driver (the target of issue 13).
 */
import { spawnSync } from "node:child_process";
import { join } from "node:path";
import { Command, InvalidArgumentError } from "commander";

const ROOT = join(import.meta.dirname, "..");
const BUDGET_MS = 150;

const subjects = {
  "node bin/chunkrelay.js --help": [join(ROOT, "bin/chunkrelay.js"), "--help"],
  "node -e \"require('mongodb')\"": ["-e", "require('mongodb')"],
} as const;

function timeOnce(args: readonly string[]): number {
  const started = process.hrtime.bigint();
  const result = spawnSync(process.execPath, args, { cwd: ROOT, stdio: ["ignore", "ignore", "pipe"] });
  const ms = Number(process.hrtime.bigint() - started) / 1e6;
  if (result.status !== 0) {
    throw new Error(`node ${args.join(" ")} exited ${result.status}: ${result.stderr.toString()}`);
  }
  return ms;
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

const opts = new Command("bench:cli-start")
  .option(
    "--runs <n>",
    "runs of each",
    (v) => {
      const n = Number(v);
      if (!Number.isInteger(n) || n < 1) throw new InvalidArgumentError("a positive whole number");
      return n;
    },
    21,
  )
  .parse()
  .opts<{ runs: number }>();

const times = new Map<string, number[]>(Object.keys(subjects).map((k) => [k, []]));
// One warm-up of each (file cache), not counted.
for (const args of Object.values(subjects)) timeOnce(args);
for (let i = 0; i < opts.runs; i++) {
  for (const [name, args] of Object.entries(subjects)) times.get(name)!.push(timeOnce(args));
}
const [help, driver] = [...times.values()].map(median) as [number, number];
for (const [name, values] of times) {
  console.log(
    `${name.padEnd(32)} median ${median(values).toFixed(1)} ms  (min ${Math.min(...values).toFixed(1)}, max ${Math.max(...values).toFixed(1)}, ${values.length} runs)`,
  );
}
const difference = help - driver;
console.log(
  `--help minus driver load: ${difference.toFixed(1)} ms (budget ${BUDGET_MS} ms) on Node ${process.version}`,
);
process.exitCode = difference <= BUDGET_MS ? 0 : 1;
