import { deleteJob } from "../../admin/delete-job.js";
import type { CommandContext } from "../context.js";
import { withCommandStore } from "../open-store.js";

export interface DeleteFlags {
  yes?: boolean;
  json?: boolean;
  mongo?: string;
}

/** `chunkrelay delete <jobId>`: every document of a job (only counted without `--yes`). */
export async function deleteJobDocuments(
  ctx: CommandContext,
  jobId: string,
  opts: DeleteFlags,
): Promise<void> {
  await withCommandStore(opts.mongo, ctx.env, async (store) => {
    const res = await deleteJob(store, jobId, opts.yes === true);
    const what = `${res.details} details, ${res.chunks} chunks, ${res.exceptions} exceptions, ${res.taskStats} step records and the job document`;
    process.stderr.write(
      res.deleted
        ? `deleted job ${jobId}: ${what}\n`
        : `would delete job ${jobId}: ${what}; run again with --yes\n`,
    );
    if (opts.json) process.stdout.write(`${JSON.stringify(res)}\n`);
  });
}
