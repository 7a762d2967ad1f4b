import { EJSON } from "bson";
import { listExceptions } from "../../queries/set-aside-records.js";
import type { CommandContext } from "../context.js";
import { withCommandStore } from "../open-store.js";
import { printJson, writeForTerminal } from "../output.js";
import { forTerminal } from "../../common/terminal-text.js";

export interface ExceptionsListFlags {
  job?: string;
  config?: string;
  unresolved?: boolean;
  json?: boolean;
  mongo?: string;
}

/** `chunkrelay exceptions list`: records set aside, newest first. */
export async function printExceptions(ctx: CommandContext, opts: ExceptionsListFlags): Promise<void> {
  await withCommandStore(opts.mongo, ctx.env, async (store) => {
    const list = await listExceptions(store, {
      ...(opts.job ? { jobId: opts.job } : {}),
      ...(opts.config ? { config: opts.config } : {}),
      ...(opts.unresolved ? { unresolved: true } : {}),
    });
    if (printJson(opts.json, list)) return;
    for (const e of list) {
      writeForTerminal(
        `${e.jobId}  record ${EJSON.stringify({ v: e.recordId }, { relaxed: true }).slice(5, -1)}  chunk ${e.chunk}  attempts ${e.attempts}  ${forTerminal(e.reason)}${e.resolution ? `  [resolved: ${forTerminal(e.resolution.note)}]` : ""}\n`,
      );
    }
  });
}
