import { parseRecordId } from "../../queries/lineage.js";
import { resolveException, resolveExceptions } from "../../admin/set-aside-records.js";
import type { CommandContext } from "../context.js";
import { CliError, EXIT } from "../exit.js";
import { withCommandStore } from "../open-store.js";

export interface ExceptionsResolveFlags {
  note: string;
  all?: boolean;
  type?: "string" | "number" | "objectId";
  mongo?: string;
}

/** `chunkrelay exceptions resolve <jobId> [recordId]`: marks one exception, or all, resolved. */
export async function markExceptionsResolved(
  ctx: CommandContext,
  jobId: string,
  text: string | undefined,
  opts: ExceptionsResolveFlags,
): Promise<void> {
  if ((text === undefined) !== (opts.all === true)) {
    throw new CliError(
      "name one record, or pass --all for every unresolved exception of the job",
      EXIT.usage,
    );
  }
  await withCommandStore(opts.mongo, ctx.env, async (store) => {
    if (text === undefined) {
      const n = await resolveExceptions(store, jobId, opts.note, new Date());
      process.stderr.write(`${n} exceptions of job ${jobId} resolved\n`);
      return;
    }
    const done = await resolveException(store, jobId, parseRecordId(text, opts.type), opts.note, new Date());
    process.stderr.write(`exception of record ${text} in job ${done.jobId} resolved\n`);
  });
}
