import type { CommandContext } from "../context.js";
import { checkJobIdFlag } from "../job-id.js";
import { mongoUri } from "../open-store.js";
import { type RunRequestFlags, runJobInProcess } from "../run-job.js";

export type RunFlags = RunRequestFlags & {
  jobId?: string;
  description?: string;
  json?: boolean;
  mongo?: string;
};

/** `chunkrelay run <config>`: a job of the config, in-process. */
export async function runJob(ctx: CommandContext, configName: string, opts: RunFlags): Promise<void> {
  const { jobId, description, json, mongo, ...request } = opts;
  if (jobId !== undefined) checkJobIdFlag(jobId);
  await runJobInProcess(ctx, mongoUri(mongo, ctx.env), configName, {
    ...(jobId ? { jobId } : {}),
    ...(description ? { description } : {}),
    ...(json ? { json } : {}),
    request,
  });
}
