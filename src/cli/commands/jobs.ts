import { listJobs } from "../../queries/jobs.js";
import type { CommandContext } from "../context.js";
import { withCommandStore } from "../open-store.js";
import { printJson, writeForTerminal } from "../output.js";

export interface JobsFlags {
  config?: string;
  limit: number;
  json?: boolean;
  mongo?: string;
}

/** `chunkrelay jobs`: the jobs, newest first, one line each. */
export async function printJobs(ctx: CommandContext, opts: JobsFlags): Promise<void> {
  await withCommandStore(opts.mongo, ctx.env, async (store) => {
    const jobs = await listJobs(store, {
      ...(opts.config ? { config: opts.config } : {}),
      limit: opts.limit,
    });
    if (printJson(opts.json, jobs)) return;
    for (const j of jobs) {
      writeForTerminal(
        `${j.jobId.padEnd(40)} ${j.config.padEnd(16)} ${j.mode.padEnd(11)} ${j.partitioning.padEnd(18)} ${j.status.padEnd(9)} ${String(j.records).padStart(9)} records ${String(j.exceptions).padStart(6)} exceptions  ${j.createdAt.toISOString()}${j.durationMs !== undefined ? `  ${(j.durationMs / 1000).toFixed(1)} s` : ""}\n`,
      );
    }
  });
}
