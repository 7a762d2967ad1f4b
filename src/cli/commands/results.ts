import { EJSON } from "bson";
import { readJobFields } from "../../store/jobs.js";
import {
  RESULT_PAGE_MAX,
  type ResultRow,
  listJobResults,
  showResult,
  streamJobResults,
} from "../../queries/results.js";
import type { CommandContext } from "../context.js";
import { CliError, EXIT } from "../exit.js";
import { withCommandStore } from "../open-store.js";
import { printJson, writeForTerminal } from "../output.js";
import { forTerminal, jsonForTerminal } from "../../common/terminal-text.js";

export interface ResultsFlags {
  json?: boolean;
  ndjson?: boolean;
  withResult?: boolean;
  limit: number;
  after?: string;
  mongo?: string;
}

const line = (r: ResultRow) =>
  `${forTerminal(EJSON.stringify(r.recordId, { relaxed: true })).padEnd(26)} chunk ${String(r.chunk).padStart(5)}  ${r.status.padEnd(9)}  attempt ${r.attempts}  ${r.result !== undefined ? forTerminal(showResult(r.result)) : "-"}${r.resultError ? `  (${forTerminal(r.resultError)})` : ""}${r.error ? `  error: ${forTerminal(r.error)}` : ""}\n`;

/**
 * `chunkrelay results <jobId>`: each record of the job with its status and the value the service
 * returned. A page at a time (`--limit`, `--after`); `--ndjson` exports every record, streamed.
 */
export async function printJobResults(ctx: CommandContext, jobId: string, opts: ResultsFlags): Promise<void> {
  if (opts.json && opts.ndjson) throw new CliError("--json and --ndjson exclude each other", EXIT.usage);
  if (opts.limit > RESULT_PAGE_MAX)
    throw new CliError(`--limit is at most ${RESULT_PAGE_MAX} (export everything with --ndjson)`, EXIT.usage);
  await withCommandStore(opts.mongo, ctx.env, async (store) => {
    if (!(await readJobFields(store, jobId, ["status"])))
      throw new CliError(
        `job '${forTerminal(jobId)}' not found (list jobs with \`chunkrelay jobs\`)`,
        EXIT.usage,
      );
    const filter = opts.withResult ? { onlyWithResult: true } : {};
    if (opts.ndjson) {
      for await (const row of streamJobResults(store, jobId, filter)) {
        const text = `${jsonForTerminal(EJSON.stringify(row, { relaxed: true }))}\n`;
        // Back-pressure: a million records piped to a slow reader stay out of memory.
        if (!process.stdout.write(text)) await new Promise((r) => process.stdout.once("drain", r));
      }
      return;
    }
    let page;
    try {
      page = await listJobResults(store, jobId, {
        ...filter,
        limit: opts.limit,
        ...(opts.after !== undefined ? { after: opts.after } : {}),
      });
    } catch (err) {
      throw new CliError((err as Error).message, EXIT.usage);
    }
    if (printJson(opts.json, page)) return;
    if (page.rows.length === 0) writeForTerminal(`no records${opts.after ? " after that cursor" : ""}\n`);
    for (const r of page.rows) writeForTerminal(line(r));
    if (page.next)
      writeForTerminal(`more: chunkrelay results ${jobId} --after '${forTerminal(page.next)}'\n`);
  });
}
