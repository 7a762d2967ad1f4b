/**
 * The watcher step (`chunkProcessWatcher`): counts one chunk attempt's record statuses with one
 * indexed aggregation per poll. When every record is terminal it closes the chunk — processed,
 * or sent again as a new attempt while attempts remain, or failed with its records set aside as
 * exceptions — and hands back to the server. Past the chunk timeout it starts a new attempt.
 */
import { z } from "zod";
import { type BatchConfig, jobIdSchema, resultMaxBytes } from "../../config/schema.js";
import { BadInputError } from "../../common/errors.js";
import { CALLBACK_CHANNEL_MISSING, type StepDeps, keys } from "../handover.js";
import type { ChunkCounts } from "../../queries/progress.js";
import type { ChunkDoc } from "../../store/store.js";
import { readChunk } from "../../store/chunks.js";
import { countAttemptStatuses, listAttemptRecords, refuseOversizeResults } from "../../store/records.js";
import { type AttemptEnding, endAttempt, endingOfCounts } from "../completion/end-attempt.js";
import { applyServiceOutcome, resultBytes } from "../completion/service-outcome.js";
import { readConfigCached, readJobConfigName } from "../step-cache.js";

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

/** Ends a `sent` attempt and hands back to the server; does nothing if someone else already did. */
async function closeChunk(
  deps: StepDeps,
  config: BatchConfig,
  chunk: ChunkDoc,
  ending: AttemptEnding,
): Promise<{ status: ChunkDoc["status"]; moved: boolean }> {
  const { jobId, attempt } = chunk;
  const hold = { jobId, chunk: chunk.chunk, status: "sent" as const, attempt };
  const closed = await endAttempt(deps, config, chunk, hold, ending);
  // Hand back to the server even when another watcher moved the chunk first: its hand-over
  // carries the same key, so this one is a no-op then.
  await deps.handOver.serve({ jobId }, keys.serveAfterClose(jobId, chunk.chunk, attempt));
  return closed;
}

/** The chunk as this watcher must find it (its attempt, sent), or why it is stale. */
async function readWatchedChunk(
  deps: StepDeps,
  payload: { jobId: string; chunk: number; attempt: number },
): Promise<ChunkDoc | { stale: string }> {
  const chunk = await readChunk(deps.store, payload.jobId, payload.chunk);
  if (!chunk) throw new BadInputError(`chunk ${payload.chunk} of job '${payload.jobId}' not found`);
  if (chunk.attempt !== payload.attempt || chunk.status !== "sent") {
    return { stale: `chunk is ${chunk.status} at attempt ${chunk.attempt}` };
  }
  return chunk;
}

/**
 * The chunk is read again every this many polls: a watcher whose attempt was ended by another
 * (a replay, a healer's watcher) learns it then, or when its guarded write matches nothing.
 */
const REREAD_EVERY_POLLS = 10;

/**
 * One poll: count the attempt's record statuses (one indexed aggregation) and act on them. The
 * chunk itself is read on the first poll and every REREAD_EVERY_POLLS-th, not on each.
 */
export async function checkChunk(
  deps: StepDeps,
  config: BatchConfig,
  payload: { jobId: string; chunk: number; attempt: number },
  known?: ChunkDoc,
  schedule?: { pollsPastDue: number; roundTripMs: number | undefined },
): Promise<CheckResult & { chunk?: ChunkDoc; elapsedMs?: number }> {
  const { jobId, chunk: chunkNo } = payload;
  const read = known ?? (await readWatchedChunk(deps, payload));
  if ("stale" in read) return { decision: "stale", reason: read.stale };
  const chunk = read;
  const { valued, ...counts } = await countAttemptStatuses(deps.store, jobId, chunkNo);
  const sentAt = chunk.sentAt?.getTime() ?? deps.now().getTime();
  const elapsed = deps.now().getTime() - sentAt;
  const ending: AttemptEnding | undefined =
    endingOfCounts(counts) ?? (elapsed > config.watch.chunkTimeoutMs ? { kind: "timedOut" } : undefined);
  if (ending) {
    // The service wrote values beside the statuses: none over the cap is kept, whichever way the
    // attempt ends (a timed-out one too, found by review). The count said whether there are
    // any, so a service that returns none costs no read.
    if (valued > 0) await refuseOversizeResults(deps.store, payload, resultMaxBytes(config), resultBytes);
    const closed = await closeChunk(deps, config, chunk, ending);
    return { decision: "closed", status: closed.status, counts, closedHere: closed.moved };
  }
  const delayMs = Math.min(
    nextPollDelay({
      elapsedMs: elapsed,
      pollsPastDue: schedule?.pollsPastDue ?? 0,
      roundTripMs: schedule?.roundTripMs,
      minMs: config.watch.minPollIntervalMs,
      maxMs: config.watch.pollIntervalMs,
    }),
    Math.max(10, config.watch.chunkTimeoutMs - elapsed + 1),
  );
  return { decision: "wait", delayMs, counts, chunk, elapsedMs: elapsed };
}

/** What a round trip counts first at: a little before the chunks' usual time. */
const DUE_FRACTION = 0.9;
/** Past that, the first step is this share of the usual round trip, growing by GROWTH per count. */
const STEP_FRACTION = 0.05;
const GROWTH = 1.5;

/**
 * When to count a chunk's statuses next (pure). Without a learned round trip the waits grow from
 * `minMs` by half each time (10, 15, 22… ms): a fast service is seen within half its time, a slow
 * one costs a few dozen counts before the waits reach `maxMs`. With one, the watcher waits until
 * shortly before the chunk is due (nine tenths of it), then counts at steps of a twentieth of the
 * round trip, growing.
 * Always within [minMs, maxMs].
 */
export function nextPollDelay(p: {
  elapsedMs: number;
  /** Counts made since the chunk was due (or since it was sent, without a round trip). */
  pollsPastDue: number;
  roundTripMs: number | undefined;
  minMs: number;
  maxMs: number;
}): number {
  const clamp = (ms: number) => Math.round(Math.min(p.maxMs, Math.max(p.minMs, ms)));
  if (p.roundTripMs === undefined) return clamp(p.minMs * GROWTH ** p.pollsPastDue);
  const due = DUE_FRACTION * p.roundTripMs;
  if (p.elapsedMs < due) return clamp(due - p.elapsedMs);
  return clamp(Math.max(p.minMs, STEP_FRACTION * p.roundTripMs) * GROWTH ** p.pollsPastDue);
}

/**
 * Completion "callback": waits for the service's callback instead of polling — on Trigger.dev
 * suspended on a wait token, locally on the runner's listener — up to the chunk timeout. The
 * outcome is checked against the attempt's records and written, then the attempt ends as a poll
 * would have ended it. No callback by the timeout: the records are counted once (a service may
 * have written statuses) and the attempt times out exactly as in "status" mode.
 */
async function watchCallback(
  deps: StepDeps,
  config: BatchConfig,
  payload: { jobId: string; chunk: number; attempt: number },
): Promise<WatchResult> {
  const { jobId, chunk: chunkNo, attempt } = payload;
  const read = await readWatchedChunk(deps, payload);
  if ("stale" in read) return { outcome: "stale", reason: read.stale, polls: 0 };
  const chunk = read;
  if (!deps.callbacks) throw new BadInputError(CALLBACK_CHANNEL_MISSING(config.name));
  const sentAt = chunk.sentAt?.getTime() ?? deps.now().getTime();
  const left = config.watch.chunkTimeoutMs - (deps.now().getTime() - sentAt);
  const arrival = left > 0 ? await deps.callbacks.wait(payload, left) : ({ kind: "timedOut" } as const);
  if (arrival.kind === "called") {
    const ids = (await listAttemptRecords(deps.store, jobId, chunkNo, attempt)).map((d) => d.recordId);
    const verdict = await applyServiceOutcome(deps, payload, ids, arrival.body, resultMaxBytes(config));
    arrival.settle?.(
      verdict.kind === "badReply" ? { ok: false, status: 422, error: verdict.reason } : { ok: true },
    );
    if (verdict.kind === "badReply") {
      const closed = await closeChunk(deps, config, chunk, verdict);
      const counts = { pending: 0, sent: ids.length, processed: 0, failed: 0 };
      return { outcome: "closed", status: closed.status, polls: 0, counts, closedHere: closed.moved };
    }
  }
  const { valued, ...counts } = await countAttemptStatuses(deps.store, jobId, chunkNo);
  const ending = endingOfCounts(counts) ?? { kind: "timedOut" as const };
  // No callback came, or one came and the service also wrote statuses: values it wrote are capped.
  if (valued > 0) await refuseOversizeResults(deps.store, payload, resultMaxBytes(config), resultBytes);
  const closed = await closeChunk(deps, config, chunk, ending);
  return { outcome: "closed", status: closed.status, polls: 0, counts, closedHere: closed.moved };
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
  const configName = await readJobConfigName(deps.store, deps.cache, payload.jobId, deps.now());
  if (configName === undefined) throw new BadInputError(`job '${payload.jobId}' not found`);
  const config = await readConfigCached(deps.store, deps.cache, configName, deps.now());
  if (config.completion === "callback") return watchCallback(deps, config, payload);
  const started = deps.now().getTime();
  let known: ChunkDoc | undefined;
  const roundTripMs = deps.cache?.roundTrip(config.name);
  if (roundTripMs !== undefined) {
    // The chunk's usual time is known: no count before it is nearly due.
    const read = await readWatchedChunk(deps, payload);
    if ("stale" in read) return { outcome: "stale", reason: read.stale, polls: 0 };
    known = read;
    const elapsed = deps.now().getTime() - (read.sentAt?.getTime() ?? started);
    const wait = Math.min(DUE_FRACTION * roundTripMs - elapsed, limits.maxRunMs);
    if (wait >= config.watch.minPollIntervalMs) await deps.sleep(Math.round(wait));
  }
  let pollsPastDue = 0;
  let lastDelay = 0;
  for (let polls = 1; ; polls++) {
    const result = await checkChunk(deps, config, payload, known, { pollsPastDue, roundTripMs });
    switch (result.decision) {
      case "closed":
        if (result.closedHere && result.status === "processed" && known?.sentAt) {
          // It was done somewhere in the last wait: its middle is the best guess of when.
          const seen = deps.now().getTime() - known.sentAt.getTime();
          deps.cache?.observeRoundTrip(config.name, Math.max(0, seen - lastDelay / 2));
        }
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
        known = polls % REREAD_EVERY_POLLS === 0 ? undefined : result.chunk;
        if (roundTripMs === undefined || (result.elapsedMs ?? 0) >= DUE_FRACTION * roundTripMs)
          pollsPastDue++;
        lastDelay = result.delayMs;
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
