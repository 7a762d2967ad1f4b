import { listJobs } from "../../queries/jobs.js";
import { stepStats } from "../../queries/step-stats.js";
import type { CommandContext } from "../context.js";
import { withCommandStore } from "../open-store.js";
import { printJson } from "../output.js";

export interface StatsFlags {
  job?: string;
  config?: string;
  json?: boolean;
  mongo?: string;
}

/** `chunkrelay stats`: per-step statistics for a job, a config's jobs, or all. */
export async function printStepStats(ctx: CommandContext, opts: StatsFlags): Promise<void> {
  await withCommandStore(opts.mongo, ctx.env, async (store) => {
    const jobIds = opts.config
      ? (await listJobs(store, { config: opts.config, limit: 10_000 })).map((j) => j.jobId)
      : undefined;
    const steps = await stepStats(store, {
      ...(opts.job ? { jobId: opts.job } : {}),
      ...(jobIds ? { jobIds } : {}),
    });
    if (printJson(opts.json, steps)) return;
    for (const st of steps) {
      process.stdout.write(
        `${st.task.padEnd(22)} ${String(st.invocations).padStart(7)} runs ${String(st.succeeded).padStart(7)} ok ${String(st.failed).padStart(5)} failed  p50 ${st.p50Ms} ms  p95 ${st.p95Ms} ms  max ${st.maxMs} ms\n`,
      );
    }
  });
}
