import { readBacklog } from "../../queries/backlog.js";
import { formatCut } from "../../queries/jobs.js";
import type { CommandContext } from "../context.js";
import { withCommandStore } from "../open-store.js";
import { printJson, writeForTerminal } from "../output.js";

export interface BacklogFlags {
  json?: boolean;
  mongo?: string;
}

/** `chunkrelay backlog <config>`: matching records not yet covered by a completed job. */
export async function printBacklog(
  ctx: CommandContext,
  configName: string,
  opts: BacklogFlags,
): Promise<void> {
  await withCommandStore(opts.mongo, ctx.env, async (store) => {
    const b = await readBacklog(store, configName);
    if (printJson(opts.json, b)) return;
    writeForTerminal(
      `config ${b.config}: ${b.records} records${b.weight !== undefined ? ` (weight ${b.weight})` : ""} past the watermark ${b.completedUpTo === undefined ? "(none yet: no job has completed)" : `(${formatCut(b.completedUpTo, "to")}, job ${b.completedBy ?? "?"})`}${b.claimedUpTo ? `; claimed ${formatCut(b.claimedUpTo, "to")} by job ${b.claimedBy ?? "?"}` : ""}\n`,
    );
    for (const l of b.backfills) {
      const w = `${l.window.from ? formatCut(l.window.from, "from") : "from the first record"} ${l.window.to ? formatCut(l.window.to, "to") : ""}`;
      writeForTerminal(
        `  backfill ${w} (pass ${l.pass}): completed ${l.completedUpTo ? formatCut(l.completedUpTo, "to") : "nothing yet"}${l.completedBy ? ` by ${l.completedBy}` : ""}, claimed ${l.claimedUpTo ? formatCut(l.claimedUpTo, "to") : "nothing yet"}\n`,
      );
    }
  });
}
