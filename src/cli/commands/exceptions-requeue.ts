import { readJobConfigName } from "../../queries/job-lookup.js";
import { withMongo } from "../../store/connection.js";
import type { CommandContext } from "../context.js";
import { CliError, EXIT } from "../exit.js";
import { checkJobIdFlag } from "../job-id.js";
import { mongoUri } from "../open-store.js";
import { runJobInProcess } from "../run-job.js";

export interface ExceptionsRequeueFlags {
  jobId?: string;
  json?: boolean;
  mongo?: string;
}

/** `chunkrelay exceptions requeue <jobId>`: the job's unresolved exceptions, as a new job. */
export async function requeueExceptions(
  ctx: CommandContext,
  fromJob: string,
  opts: ExceptionsRequeueFlags,
): Promise<void> {
  if (opts.jobId !== undefined) checkJobIdFlag(opts.jobId);
  const uri = mongoUri(opts.mongo, ctx.env);
  const config = await withMongo(uri, async (store) => {
    const name = await readJobConfigName(store, fromJob);
    if (name === undefined) throw new CliError(`job '${fromJob}' not found`, EXIT.usage);
    return name;
  });
  await runJobInProcess(ctx, uri, config, {
    fromJob,
    ...(opts.jobId ? { jobId: opts.jobId } : {}),
    ...(opts.json ? { json: true } : {}),
    description: `exceptions of ${fromJob}`,
  });
}
