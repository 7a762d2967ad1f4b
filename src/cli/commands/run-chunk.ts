import { hostname } from "node:os";
import { buildStepDeps } from "../../runtimes/step-deps.js";
import { runChunkAgain } from "../../steps/rerun/rerun-chunk.js";
import { readChunk } from "../../store/chunks.js";
import { withMongo } from "../../store/connection.js";
import type { CommandContext } from "../context.js";
import { CliError, EXIT } from "../exit.js";
import { mongoUri } from "../open-store.js";
import { stderrLogger } from "../output.js";
import { runJobInProcess } from "../run-job.js";

export interface RunChunkFlags {
  onlyFailed?: boolean;
  json?: boolean;
  mongo?: string;
}

const noHandOver = {
  initialize: () => Promise.resolve(),
  serve: () => Promise.resolve(),
  watch: () => Promise.resolve(),
};

/**
 * `chunkrelay run-chunk <jobId> <chunk>`: reopens the finished job for that chunk (refused, with
 * nothing changed, when it cannot be run again), then runs the job in-process as `resume` does
 * until the chunk is done again. The exit code is the chunk's: 0 processed, 1 failed.
 */
export async function runChunkCommand(
  ctx: CommandContext,
  jobId: string,
  chunkText: string,
  opts: RunChunkFlags,
): Promise<void> {
  if (!/^\d+$/.test(chunkText) || Number(chunkText) < 1 || !Number.isSafeInteger(Number(chunkText)))
    throw new CliError(
      `<chunk> must be a chunk number (1, 2, …), not '${chunkText.slice(0, 40)}'`,
      EXIT.usage,
    );
  const chunk = Number(chunkText);
  const uri = mongoUri(opts.mongo, ctx.env);
  const reopened = await withMongo(uri, (store) =>
    runChunkAgain(
      buildStepDeps({
        store,
        handOver: noHandOver,
        owner: `${hostname()}:${process.pid}`,
        log: stderrLogger,
      }),
      jobId,
      { chunk, ...(opts.onlyFailed ? { onlyFailed: true } : {}) },
    ),
  );
  if (reopened.kind === "reopened") {
    process.stderr.write(
      `job ${jobId}: chunk ${chunk} runs again as attempt ${reopened.rerun.attempt} (${reopened.records} record(s), ${reopened.rerun.scope === "all" ? "all of them" : "those not processed"})\n`,
    );
  }
  const summary = await runJobInProcess(ctx, uri, undefined, { jobId, ...(opts.json ? { json: true } : {}) });
  if (summary.status === "interrupted") return;
  const after = await withMongo(uri, (store) => readChunk(store, jobId, chunk));
  if (!after) return;
  process.stderr.write(
    `chunk ${chunk}: ${after.status} at attempt ${after.attempt} (${after.processedCount ?? 0} processed, ${after.failedCount ?? 0} failed)${after.lastError && after.status === "failed" ? `: ${after.lastError}` : ""}\n`,
  );
  ctx.setExit(after.status === "processed" ? EXIT.ok : EXIT.failed);
}
