import { EJSON } from "bson";
import { jobReport } from "../../queries/jobs.js";
import { listChunkRows } from "../../queries/chunk-list.js";
import type { CommandContext } from "../context.js";
import { withCommandStore } from "../open-store.js";
import { printJson, writeForTerminal } from "../output.js";
import { forTerminal } from "../../common/terminal-text.js";

export interface StatusFlags {
  chunks?: boolean;
  json?: boolean;
  mongo?: string;
}

/** `chunkrelay status <jobId>`: times, config and drift, counts, step statistics and chunks. */
export async function showJobStatus(ctx: CommandContext, jobId: string, opts: StatusFlags): Promise<void> {
  await withCommandStore(opts.mongo, ctx.env, async (store) => {
    if (opts.chunks) {
      const rows = await listChunkRows(store, jobId, ctx.env);
      if (printJson(opts.json, rows)) return;
      writeForTerminal(
        "chunk  status       attempts  records  processed  failed  config            completed                 \n",
      );
      for (const c of rows) {
        const reruns = c.reruns?.length
          ? `  reruns: ${c.reruns.map((r) => `attempt ${r.attempt} (${r.scope})`).join(", ")}`
          : "";
        writeForTerminal(
          `${String(c.chunk).padStart(5)}  ${c.status.padEnd(11)}  ${String(c.attempts).padStart(8)}  ${String(c.records).padStart(7)}  ${String(c.processed).padStart(9)}  ${String(c.failed).padStart(6)}  ${c.configHash.padEnd(16)}  ${(c.finishedAt?.toISOString() ?? "-").padEnd(24)}${reruns}${c.lastError ? `  (${forTerminal(c.lastError)})` : ""}\n`,
        );
      }
      return;
    }
    const r = await jobReport(store, jobId);
    if (printJson(opts.json, r)) return;
    const { job, progress } = r;
    const out = { write: writeForTerminal };
    out.write(
      `job ${job._id}  config ${job.config} (hash ${job.configHash})  mode ${job.mode}  status ${job.status}\n`,
    );
    if (job.description) out.write(`  ${forTerminal(job.description)}\n`);
    if (r.source) {
      out.write(
        `  source ${forTerminal(r.source.description)}${r.source.filter ? `, filter ${forTerminal(EJSON.stringify(r.source.filter, { relaxed: true }))}` : ""}\n`,
      );
    }
    for (const line of r.windowLines) out.write(`  ${line}\n`);
    out.write(`  triggered by ${job.triggeredBy}\n`);
    out.write(
      `  created ${job.createdAt.toISOString()}, started ${job.startedAt.toISOString()}${job.finishedAt ? `, finished ${job.finishedAt.toISOString()} (${((job.finishedAt.getTime() - job.startedAt.getTime()) / 1000).toFixed(1)} s)` : ""}\n`,
    );
    out.write(
      `  records ${progress.processedRecords + progress.failedRecords}/${progress.totalRecords} (${progress.processedRecords} processed, ${r.exceptions} exceptions), chunks ${progress.doneChunks}/${progress.totalChunks}, in flight ${progress.inFlightChunks}, ${r.recordsPerSecond} records/s\n`,
    );
    if (r.currentConfigHash && r.currentConfigHash !== job.configHash) {
      out.write(
        `  ! config '${job.config}' changed since: now ${r.currentConfigHash} (resume needs --accept-config-change)\n`,
      );
    }
    for (const c of job.configChanges ?? [])
      out.write(`  config changed ${c.from} → ${c.to} at ${c.at.toISOString()}\n`);
    if (r.driftedChunks.length > 0) {
      out.write(`  ! chunks sent under another config than the job's: ${r.driftedChunks.join(", ")}\n`);
    }
    for (const st of r.steps) {
      out.write(
        `  step ${st.task.padEnd(20)} ${st.invocations} runs, ${st.succeeded} ok, ${st.failed} failed, p50 ${st.p50Ms} ms, p95 ${st.p95Ms} ms, max ${st.maxMs} ms\n`,
      );
    }
    out.write(
      "  chunk  status       attempt  records  config            sent                      finished\n",
    );
    for (const c of r.chunks) {
      out.write(
        `  ${String(c.chunk).padStart(5)}  ${c.status.padEnd(11)}  ${String(c.attempt).padStart(7)}  ${String(c.recordCount).padStart(7)}  ${c.configHash.padEnd(16)}  ${(c.sentAt?.toISOString() ?? "-").padEnd(24)}  ${c.finishedAt?.toISOString() ?? "-"}${c.lastError ? `  (${forTerminal(c.lastError)})` : ""}\n`,
      );
    }
  });
}
