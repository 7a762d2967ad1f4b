/**
 * The watcher step (`chunkProcessWatcher`): counts one chunk attempt's record statuses with one
 * indexed aggregation per poll. When every record is terminal it closes the chunk — processed,
 * or sent again as a new attempt while attempts remain, or failed with its records set aside as
 * exceptions — and hands back to the server. Past the chunk timeout it starts a new attempt.
 */
import { z } from "zod";
import { readConfig } from "../../store/configs.js";
import { type BatchConfig, jobIdSchema } from "../../config/schema.js";
import { failChunk } from "../../jobs/set-aside-records.js";
import { BadInputError } from "../../common/errors.js";
import { type StepDeps, keys } from "../handover.js";
import { nextChunkStatus } from "../../planning/chunk-state.js";
import type { ChunkCounts } from "../../queries/progress.js";
import type { ChunkDoc } from "../../store/store.js";
import { markChunkProcessed, readChunk, startNextAttempt } from "../../store/chunks.js";
import { readJobFields } from "../../store/jobs.js";
import { countAttemptStatuses } from "../../store/records.js";

export const watchPayloadSchema = z
  .object({
    jobId: jobIdSchema.describe("The job the chunk belongs to."),
    chunk: z.number().int().positive().describe("Chunk number (from 1)."),
    attempt: z.number().int().positive().describe("The attempt being watched (from 1)."),
    round: z
      .number()
      .int()
      .min(0)
      .optional()
      // Optional with its default stated, not `.default(0)`: the dashboard shows the output side
      // of a task's schema, where a default makes a field required.
      .meta({ default: 0 })
      .describe("Continuation number when one watcher run hands over to the next. Default: 0."),
  })
  .strict();

export type WatchInput = z.input<typeof watchPayloadSchema>;

export type CheckResult =
  | { decision: "wait"; delayMs: number; counts: StatusCounts }
  | {
      decision: "closed";
      status: ChunkDoc["status"];
      counts: StatusCounts;
      /** False when another watcher (or a replay) had closed the attempt first. */
      closedHere: boolean;
    }
  | { decision: "stale"; reason: string };

/** A chunk's record statuses (the shape progress reports take them in). */
export type StatusCounts = ChunkCounts;

/** Moves a `sent` chunk on; does nothing if someone else already did (replays, races). */
async function closeChunk(
  deps: StepDeps,
  config: BatchConfig,
  chunk: ChunkDoc,
  counts: StatusCounts,
  why: "allTerminal" | "timedOut",
): Promise<{ status: ChunkDoc["status"]; moved: boolean }> {
  const { jobId, attempt } = chunk;
  const attemptsLeft = attempt < config.retry.maxAttempts;
  const guard = { jobId, chunk: chunk.chunk, status: "sent" as const, attempt };
  const now = deps.now();
  let to: ChunkDoc["status"];
  let moved: boolean;
  if (why === "allTerminal" && counts.failed === 0) {
    to = nextChunkStatus("sent", { type: "allProcessed" });
    moved = await markChunkProcessed(deps.store, guard, counts.processed, now);
  } else {
    const outcome = why === "timedOut" ? "timedOut" : "recordsFailed";
    to = nextChunkStatus("sent", { type: outcome, attemptsLeft });
    const reason =
      why === "timedOut"
        ? `not processed within ${config.watch.chunkTimeoutMs} ms (attempt ${attempt})`
        : `${counts.failed} record(s) failed (attempt ${attempt})`;
    if (to === "pending") {
      // A new attempt: the unprocessed records go out again under a new idempotency key.
      moved = await startNextAttempt(deps.store, guard, { outcome, reason, now });
    } else {
      moved = await failChunk(
        deps,
        config.name,
        chunk,
        guard,
        outcome,
        why === "timedOut" ? reason : `failed after ${attempt} attempt(s)`,
      );
    }
    if (moved) {
      deps.log.warn(
        `chunk ${chunk.chunk}: ${reason}; ${to === "pending" ? "sending again" : "records set aside"}`,
        { jobId },
      );
    }
  }
  // Hand back to the server even when another watcher moved the chunk first: its hand-over
  // carries the same key, so this one is a no-op then.
  await deps.handOver.serve({ jobId }, keys.serveAfterClose(jobId, chunk.chunk, attempt));
  return { status: to, moved };
}

/** One poll: look at the chunk once and act on what is there. */
export async function checkChunk(
  deps: StepDeps,
  config: BatchConfig,
  payload: { jobId: string; chunk: number; attempt: number },
): Promise<CheckResult> {
  const { jobId, chunk: chunkNo, attempt } = payload;
  const chunk = await readChunk(deps.store, jobId, chunkNo);
  if (!chunk) throw new BadInputError(`chunk ${chunkNo} of job '${jobId}' not found`);
  if (chunk.attempt !== attempt || chunk.status !== "sent") {
    return { decision: "stale", reason: `chunk is ${chunk.status} at attempt ${chunk.attempt}` };
  }
  const counts: StatusCounts = await countAttemptStatuses(deps.store, jobId, chunkNo);
  if (counts.pending + counts.sent === 0) {
    const closed = await closeChunk(deps, config, chunk, counts, "allTerminal");
    return { decision: "closed", status: closed.status, counts, closedHere: closed.moved };
  }
  const sentAt = chunk.sentAt?.getTime() ?? deps.now().getTime();
  const elapsed = deps.now().getTime() - sentAt;
  if (elapsed > config.watch.chunkTimeoutMs) {
    const closed = await closeChunk(deps, config, chunk, counts, "timedOut");
    return { decision: "closed", status: closed.status, counts, closedHere: closed.moved };
  }
  const delayMs = Math.min(
    config.watch.pollIntervalMs,
    Math.max(10, config.watch.chunkTimeoutMs - elapsed + 1),
  );
  return { decision: "wait", delayMs, counts };
}

export interface WatchLimits {
  /** Polls before this run hands over to a fresh watcher run (bounds one run's length). */
  maxPolls: number;
  /** Wall-clock ms after which this run hands over, whatever the poll count. */
  maxRunMs: number;
}

export type WatchResult =
  | {
      outcome: "closed";
      status: ChunkDoc["status"];
      polls: number;
      /** The chunk's record statuses when it closed (what a runtime counts as work done). */
      counts: StatusCounts;
      /** False when another watcher (or a replay) had closed the attempt first. */
      closedHere: boolean;
    }
  | { outcome: "stale"; reason: string; polls: number }
  | { outcome: "continued"; round: number; polls: number };

/** Polls until the chunk closes; past the limits, hands over to the next watcher round. */
export async function watchChunk(
  deps: StepDeps,
  rawPayload: unknown,
  limits: WatchLimits,
): Promise<WatchResult> {
  const parsed = watchPayloadSchema.safeParse(rawPayload);
  if (!parsed.success) {
    throw new BadInputError(
      `watcher payload is invalid: ${parsed.error.issues.map((i) => `${i.path.join(".") || "payload"}: ${i.message}`).join("; ")}`,
    );
  }
  const payload = parsed.data;
  const job = await readJobFields(deps.store, payload.jobId, ["config"]);
  if (!job) throw new BadInputError(`job '${payload.jobId}' not found`);
  const config = await readConfig(deps.store, job.config);
  const started = deps.now().getTime();
  for (let polls = 1; ; polls++) {
    const result = await checkChunk(deps, config, payload);
    switch (result.decision) {
      case "closed":
        return {
          outcome: "closed",
          status: result.status,
          polls,
          counts: result.counts,
          closedHere: result.closedHere,
        };
      case "stale":
        return { outcome: "stale", reason: result.reason, polls };
      case "wait":
        await deps.reportProgress?.({ jobId: payload.jobId, chunk: payload.chunk, counts: result.counts });
        break;
      default: {
        const never: never = result;
        throw new Error(`unknown watch decision ${JSON.stringify(never)}`);
      }
    }
    if (polls >= limits.maxPolls || deps.now().getTime() - started + result.delayMs > limits.maxRunMs) {
      const round = (payload.round ?? 0) + 1;
      await deps.handOver.watch(
        { jobId: payload.jobId, chunk: payload.chunk, attempt: payload.attempt, round },
        `${keys.watch(payload.jobId, payload.chunk, payload.attempt)}:r${round}`,
      );
      return { outcome: "continued", round, polls };
    }
    await deps.sleep(result.delayMs);
  }
}
