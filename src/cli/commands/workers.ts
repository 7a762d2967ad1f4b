import { z } from "zod";
import { type WorkerView, listWorkers } from "../../store/workers.js";
import type { CommandContext } from "../context.js";
import { forTerminal } from "../../common/terminal-text.js";
import { CliError, EXIT } from "../exit.js";
import { withCommandStore } from "../open-store.js";
import { printJson, writeForTerminal } from "../output.js";

export interface WorkersFlags {
  all?: boolean;
  json?: boolean;
  mongo?: string;
}

/** The flags as commander hands them over: booleans or absent, nothing else. */
const workersFlagsSchema = z.object({
  all: z.boolean().optional(),
  json: z.boolean().optional(),
  mongo: z.string().optional(),
});

/** "4 s", "3 min", "2 h": how long ago a heartbeat was, short enough for a column. */
export function formatAge(ms: number): string {
  if (ms < 60_000) return `${Math.floor(ms / 1000)} s`;
  if (ms < 3_600_000) return `${Math.floor(ms / 60_000)} min`;
  return `${Math.floor(ms / 3_600_000)} h`;
}

const COLUMNS: Array<{ title: string; cell: (w: WorkerView) => string; right?: boolean }> = [
  { title: "NAME", cell: (w) => w.name },
  { title: "KIND", cell: (w) => w.kind },
  { title: "HOST", cell: (w) => w.host },
  { title: "PID", cell: (w) => String(w.pid), right: true },
  { title: "STARTED", cell: (w) => w.startedAt.toISOString().replace(/\.\d+Z$/, "Z") },
  { title: "HEARTBEAT", cell: (w) => `${formatAge(w.heartbeatAgeMs)} ago` },
  { title: "CHUNKS", cell: (w) => String(w.chunks), right: true },
  { title: "RECORDS", cell: (w) => String(w.records), right: true },
  { title: "SUCCEEDED", cell: (w) => String(w.succeeded), right: true },
  { title: "FAILED", cell: (w) => String(w.failed), right: true },
  { title: "STATE", cell: (w) => w.state },
];

/**
 * The workers as a table. Every cell is text from the database (a name comes from an environment
 * variable), so it is made inert for the terminal before the columns are measured.
 */
export function workersTable(workers: WorkerView[]): string {
  const rows = [
    COLUMNS.map((c) => c.title),
    ...workers.map((w) => COLUMNS.map((c) => forTerminal(c.cell(w)))),
  ];
  const widths = COLUMNS.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? "").length)));
  return rows
    .map((r) =>
      r
        .map((cell, i) => (COLUMNS[i]?.right ? cell.padStart(widths[i] ?? 0) : cell.padEnd(widths[i] ?? 0)))
        .join("  ")
        .trimEnd(),
    )
    .join("\n");
}

/** `chunkrelay workers`: the processes that run steps; live ones, or with --all every one not aged out. */
export async function printWorkers(ctx: CommandContext, rawFlags: WorkersFlags): Promise<void> {
  const parsed = workersFlagsSchema.safeParse(rawFlags);
  if (!parsed.success) throw new CliError(`bad flags: ${parsed.error.issues[0]?.message}`, EXIT.usage);
  const opts = parsed.data;
  await withCommandStore(opts.mongo, ctx.env, async (store) => {
    const workers = await listWorkers(store, { now: new Date(), all: opts.all === true });
    if (printJson(opts.json, workers)) return;
    if (workers.length === 0) {
      writeForTerminal(
        opts.all
          ? "no workers in the last 10 minutes\n"
          : "no live workers (--all shows stale and stopped ones)\n",
      );
      return;
    }
    writeForTerminal(`${workersTable(workers)}\n`);
  });
}
