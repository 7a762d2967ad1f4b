import { EJSON } from "bson";
import { parseRecordId } from "../../queries/lineage.js";
import { showException } from "../../queries/set-aside-records.js";
import type { CommandContext } from "../context.js";
import { withCommandStore } from "../open-store.js";
import { jsonForTerminal } from "../../common/terminal-text.js";

export interface ExceptionsShowFlags {
  type?: "string" | "number" | "objectId";
  mongo?: string;
}

/** `chunkrelay exceptions show <jobId> <recordId>`: one exception as Extended JSON. */
export async function printException(
  ctx: CommandContext,
  jobId: string,
  text: string,
  opts: ExceptionsShowFlags,
): Promise<void> {
  await withCommandStore(opts.mongo, ctx.env, async (store) => {
    const doc = await showException(store, jobId, parseRecordId(text, opts.type));
    process.stdout.write(`${jsonForTerminal(EJSON.stringify(doc, { relaxed: true }))}\n`);
  });
}
