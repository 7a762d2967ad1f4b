import { runDemo } from "../../demo/demo.js";
import { createProgressDisplay } from "../../runtimes/local/progress-display.js";
import type { CommandContext } from "../context.js";
import { exitCodeFor, printSummary } from "../run-job.js";
import { onSignal } from "../signals.js";

export interface DemoFlags {
  records: number;
  chunkSize: number;
  maxInFlight: number;
  latencyMs: number;
  json?: boolean;
}

/** `chunkrelay demo`: the main job on embedded defaults, start to finish. */
export async function runDemoJob(ctx: CommandContext, opts: DemoFlags): Promise<void> {
  const controller = new AbortController();
  const dispose = onSignal(() => controller.abort());
  const display = createProgressDisplay();
  try {
    const summary = await runDemo({
      records: opts.records,
      chunkSize: opts.chunkSize,
      maxInFlight: opts.maxInFlight,
      latencyMs: opts.latencyMs,
      env: ctx.env,
      signal: controller.signal,
      say: (line) => process.stderr.write(`${line}\n`),
      onProgress: (p) => display.update(p),
    });
    display.stop();
    printSummary(summary, opts.json === true);
    ctx.setExit(exitCodeFor(summary));
  } finally {
    display.stop();
    dispose();
  }
}
