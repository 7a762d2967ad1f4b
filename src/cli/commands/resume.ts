import type { CommandContext } from "../context.js";
import { mongoUri } from "../open-store.js";
import { runJobInProcess } from "../run-job.js";

export interface ResumeFlags {
  acceptConfigChange?: boolean;
  json?: boolean;
  mongo?: string;
}

/** `chunkrelay resume <jobId>`: continues a job where it stopped. */
export async function resumeJob(ctx: CommandContext, jobId: string, opts: ResumeFlags): Promise<void> {
  await runJobInProcess(ctx, mongoUri(opts.mongo, ctx.env), undefined, {
    jobId,
    ...(opts.json ? { json: true } : {}),
    ...(opts.acceptConfigChange ? { acceptConfigChange: true } : {}),
  });
}
