import { z } from "zod";
import { parseRecordId, whereIsRecord } from "../../queries/lineage.js";
import { showResult } from "../../queries/results.js";
import type { CommandContext } from "../context.js";
import { CliError, EXIT } from "../exit.js";
import { withCommandStore } from "../open-store.js";
import { printJson, writeForTerminal } from "../output.js";
import { forTerminal } from "../../common/terminal-text.js";

export interface WhereFlags {
  type?: string;
  config?: string;
  json?: boolean;
  mongo?: string;
}

const idTypeSchema = z.enum(["string", "number", "objectId"]).optional();

/** `chunkrelay where <recordId>`: every job and chunk that included the record. */
export async function printRecordLineage(ctx: CommandContext, text: string, opts: WhereFlags): Promise<void> {
  const type = idTypeSchema.safeParse(opts.type);
  if (!type.success)
    throw new CliError(`--type must be string, number or objectId, not '${opts.type}'`, EXIT.usage);
  let recordId: unknown;
  try {
    recordId = parseRecordId(text, type.data);
  } catch (err) {
    throw new CliError((err as Error).message, EXIT.usage);
  }
  await withCommandStore(opts.mongo, ctx.env, async (store) => {
    const lineage = await whereIsRecord(store, recordId, opts.config);
    if (printJson(opts.json, lineage)) return;
    if (lineage.length === 0) writeForTerminal(`no job has included record ${text}\n`);
    for (const l of lineage) {
      writeForTerminal(
        `${l.jobId}  config ${l.config} (${l.jobConfigHash})  chunk ${l.chunk} (${l.chunkConfigHash ?? "-"})  ${l.status}  attempts ${l.attempts}  sent ${l.sentAt?.toISOString() ?? "-"}  processed ${l.processedAt?.toISOString() ?? "-"}${l.error ? `  error: ${forTerminal(l.error)}` : ""}${l.exception ? `  exception: ${forTerminal(l.exception)}` : ""}${l.result !== undefined ? `  result: ${forTerminal(showResult(l.result))}` : ""}${l.resultError ? `  ${forTerminal(l.resultError)}` : ""}\n`,
      );
    }
  });
}
