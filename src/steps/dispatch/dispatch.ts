/**
 * The server step (`batchDataServer`): claims the next due chunk of a job atomically, inside the
 * window of `maxInFlight` chunks starting at the first unfinished one, POSTs it under the
 * attempt's idempotency key, marks it sent and hands over to the watcher. Delivery trouble puts
 * the chunk back with backoff (same attempt, same key); a rejection sets its records aside as
 * exceptions. When no chunk is left, it finishes the job.
 */
import { type Document, EJSON } from "bson";
import { recordIdKey } from "../../common/bson-order.js";
import { z } from "zod";
import { resolveHeaders, secretValues } from "../../config/headers.js";
import { redactAndCut } from "../../config/redact.js";
import {
  type BatchConfig,
  carriesData,
  configHash,
  jobIdSchema,
  resultMaxBytes,
} from "../../config/schema.js";
import { BadInputError } from "../../common/errors.js";
import { CALLBACK_CHANNEL_MISSING, type StepDeps, keys } from "../handover.js";
import { type AttemptEnding, endAttempt, endingOfCounts } from "../completion/end-attempt.js";
import { applyServiceOutcome } from "../completion/service-outcome.js";
import { runChunkAgain, runChunkRequestSchema } from "../rerun/rerun-chunk.js";
import { readConfigCached } from "../step-cache.js";
import { withLeaseRenewal } from "../../jobs/lease.js";
import { backoffDelay } from "../../common/retry.js";
import type { ChunkDoc, DetailDoc, JobDoc, JobRerun } from "../../store/store.js";
import type { WorkerTally } from "../../store/workers.js";
import {
  type ChunkHold,
  claimNextChunk,
  findFirstUndoneChunk,
  readChunk,
  reopenChunkForRerun,
  listWaitingChunks,
  markChunkSent,
  postponeChunkDelivery,
  renewChunkLease,
  sumChunkTotals,
} from "../../store/chunks.js";
import {
  finishJobStatus,
  jobExists,
  listRequeueChain,
  markJobSettled,
  readJob,
  releaseRequeue,
} from "../../store/jobs.js";
import { releaseFullJobLock } from "../../store/lanes.js";
import {
  countAttemptStatuses,
  listAttemptRecords,
  listChunkRecords,
  markRecordsSent,
  streamProcessedRecordIds,
} from "../../store/records.js";
import { countSetAsideRecords, resolveProcessedRecords } from "../../store/set-aside-records.js";
import { readSourceFields } from "../../store/source-collection.js";
import { keyToPayload } from "../../planning/cuts.js";
import { settleJobCompletion } from "../../lanes/watermark.js";
import { completeFailedChunk, failChunk } from "../../jobs/set-aside-records.js";
import { type DeliveryOutcome, STORED_REASON_CHARS } from "./post-chunk.js";

export const dispatchPayloadSchema = z
  .object({
    jobId: jobIdSchema.describe("The job to serve (from the initializer)."),
    runChunk: runChunkRequestSchema
      .required({ attempt: true })
      .optional()
      .describe(
        "Send one chunk of the finished job again (like `chunkrelay run-chunk`): {chunk, attempt, onlyFailed?}. `attempt` is the chunk's current attempt (`chunkrelay status <jobId> --chunks`), so a replay of this run does nothing. Default: none (serve the job).",
      ),
  })
  .strict();

export type DispatchResult = (
  | { outcome: "dispatched"; chunks: number[] }
  | { outcome: "idle"; reason: string }
  | { outcome: "finished"; status: JobDoc["status"] }
) & {
  /**
   * Chunks this step finished itself (completion "response": the reply ended them), counted as a
   * worker counts a watcher's: what a runtime adds to its worker's tally.
   */
  finished?: WorkerTally;
};

/**
 * When nothing in the window can be claimed yet — a chunk held under another runner's lease, or
 * waiting out a delivery backoff — comes back when that ends. If the lease holder is alive it
 * will have renewed the lease by then and this simply looks again; if it died, this takes over.
 * Chunks that are `sent` need no wake-up: their watcher hands back.
 */
async function scheduleWakeUp(deps: StepDeps, jobId: string, low: number, high: number): Promise<void> {
  const waiting = await listWaitingChunks(deps.store, jobId, low, high);
  const times = waiting
    .map((c) => (c.status === "dispatching" ? c.lease?.expiresAt : c.dueAt)?.getTime())
    .filter((t): t is number => t !== undefined);
  if (times.length === 0) return;
  const at = Math.min(...times);
  await deps.handOver.serve(
    { jobId },
    `serve:${jobId}:wake:${at}`,
    Math.max(0, at - deps.now().getTime()) + 1,
  );
}

/**
 * Marks the records of this attempt — everything in the chunk not yet processed — and returns the
 * request body. The marking happens once per attempt (`attempts < attempt`): a redelivery of the
 * same attempt (after a crash, or by a runner that took an expired lease over) finds the same
 * records by `attempts`, so one idempotency key always carries the same records. Records are
 * marked before the request because a fast service may report on them before the reply reaches
 * us, and what it writes must never be overwritten. Fields are stored with the record for file
 * and Kafka sources, read from the collection now for MongoDB sources (one `$in` query on _id per chunk).
 */
async function markAndBuildBody(
  deps: StepDeps,
  config: BatchConfig,
  chunk: ChunkDoc,
  callback: { url: string; token?: string } | undefined,
): Promise<{ body: string; ids: unknown[] }> {
  const { jobId, attempt } = chunk;
  const marking = markRecordsSent(deps.store, jobId, chunk.chunk, attempt, deps.now(), chunk.rerun);
  const source = config.source;
  /** A collection's fields of these records, read now (one `_id $in` query). */
  const fieldsOf = async (rows: Array<Pick<DetailDoc, "recordId">>): Promise<Document[]> =>
    !carriesData(source) && source.fields.length > 0 && rows.length > 0
      ? readSourceFields(
          deps.store,
          source.collection,
          rows.map((d) => d.recordId),
          source.fields,
        )
      : [];
  let details: Array<Pick<DetailDoc, "recordId" | "data">>;
  let fields: Document[];
  if (attempt === 1) {
    // The first attempt carries every record of the chunk (none can have been processed before
    // it), so they are read while they are marked: one round trip less before the request.
    [, [details, fields]] = await Promise.all([
      marking,
      listChunkRecords(deps.store, jobId, chunk.chunk).then(async (d) => [d, await fieldsOf(d)] as const),
    ]);
  } else {
    await marking;
    details = await listAttemptRecords(deps.store, jobId, chunk.chunk, attempt);
    fields = await fieldsOf(details);
  }
  const ids = details.map((d) => d.recordId);
  const byId = new Map<string, Document>();
  for (const d of fields) byId.set(recordIdKey(d._id), d);
  const records = details.map(({ recordId: id, data }) => {
    if (data) return { id, ...data };
    const src = byId.get(recordIdKey(id));
    if (!src) return { id };
    const { _id, ...rest } = src;
    return { id, ...rest };
  });
  const body = EJSON.stringify(
    { jobId, chunk: chunk.chunk, attempt, records, ...(callback ? { callback } : {}) },
    { relaxed: true },
  );
  return { body, ids };
}

/**
 * The outcome as it may be stored, logged and printed: its reason redacted, then cut to
 * STORED_REASON_CHARS. The reply's text comes longer than that (`reasonFrom`): cut first, a secret
 * straddling the cut would keep fewer characters than a match needs.
 */
export function redactOutcome(outcome: DeliveryOutcome, secrets: readonly string[]): DeliveryOutcome {
  if (outcome.kind === "accepted") return outcome;
  return {
    ...outcome,
    reason: redactAndCut(outcome.reason, secrets, STORED_REASON_CHARS, 3 * STORED_REASON_CHARS),
  };
}

/**
 * Delivers one claimed chunk attempt. The lease is renewed for the whole delivery — marking,
 * building the body, the request, recording the outcome — and every write is guarded by it: a
 * runner whose lease lapsed (it stalled, another took the chunk over) changes nothing when it
 * wakes, whatever reply it finally gets.
 */
async function dispatchChunk(deps: StepDeps, config: BatchConfig, chunk: ChunkDoc): Promise<Delivered> {
  const { jobId, attempt } = chunk;
  const guard = { jobId, chunk: chunk.chunk, attempt, status: "dispatching" as const, owner: deps.owner };
  const renew = () => renewChunkLease(deps.store, guard, new Date(deps.now().getTime() + deps.leaseMs));
  return withLeaseRenewal(deps, "chunk", renew, () => deliverChunk(deps, config, chunk, guard));
}

/**
 * How a delivery left its chunk: `done` (processed, or failed with its records set aside: the
 * window may move past it), or not (sent and watched, due again later, or taken over).
 */
type Delivered = { done: boolean; finished?: WorkerTally };

/** Completion "response" reads the outcome of every record from the reply: up to this much. */
export const RESPONSE_REPLY_LIMIT_BYTES = 32 * 1024 * 1024;

/**
 * Completion "response": the accepted reply is the attempt's outcome. It is checked against the
 * records sent and written, and the attempt ends here, straight from `dispatching`.
 */
async function endAnsweredAttempt(
  deps: StepDeps,
  config: BatchConfig,
  chunk: ChunkDoc,
  guard: ChunkHold & { status: "dispatching" },
  ids: unknown[],
  reply: Extract<DeliveryOutcome, { kind: "accepted" }>,
): Promise<Delivered> {
  const ref = { jobId: chunk.jobId, chunk: chunk.chunk, attempt: chunk.attempt };
  const verdict = reply.truncated
    ? {
        kind: "badReply" as const,
        reason: `the reply is longer than ${RESPONSE_REPLY_LIMIT_BYTES} bytes; send fewer records per chunk (chunking.maxRecords)`,
      }
    : await applyServiceOutcome(deps, ref, ids, reply.body ?? "", resultMaxBytes(config));
  // A rerun that left records out (`skip`) did not take every record not processed.
  const leftOut =
    chunk.rerun !== undefined && chunk.attempt >= chunk.rerun.attempt && (chunk.rerun.skip?.length ?? 0) > 0;
  let ending: AttemptEnding;
  if (verdict.kind === "badReply") ending = verdict;
  else if (verdict.moved === ids.length && !leftOut) {
    // Every record of the attempt moved now: records outside it were processed by earlier
    // attempts (the attempt took every record not processed), so the outcome is the chunk's.
    ending =
      verdict.kind === "allProcessed"
        ? { kind: "allProcessed", processed: chunk.recordCount }
        : { kind: "recordsFailed", failed: verdict.failed };
  } else {
    // Some were no longer `sent` (written before: a redelivery, or statuses the service wrote
    // too): the chunk's records say how the attempt ended.
    // Records still out after the outcome was written count as failed: the attempt goes again.
    const counts = await countAttemptStatuses(deps.store, chunk.jobId, chunk.chunk);
    ending = endingOfCounts(counts) ?? {
      kind: "recordsFailed",
      failed: counts.pending + counts.sent + counts.failed,
    };
  }
  const now = deps.now();
  const { status, moved } = await endAttempt(deps, config, chunk, guard, ending, {
    sentAt: now,
    configHash: configHash(config),
  });
  if (moved && status === "processed") {
    deps.log.info(`chunk ${chunk.chunk} processed`, {
      jobId: chunk.jobId,
      attempt: chunk.attempt,
      records: ids.length,
    });
  }
  if (!moved || status === "pending") return { done: false };
  // Records outside this attempt were processed by earlier ones; of this attempt's, the reply's.
  const unprocessed =
    ending.kind === "allProcessed" ? 0 : ending.kind === "recordsFailed" ? ending.failed : ids.length;
  const records = chunk.recordCount;
  return {
    done: true,
    finished: { chunks: 1, records, succeeded: records - unprocessed, failed: unprocessed },
  };
}

async function deliverChunk(
  deps: StepDeps,
  config: BatchConfig,
  chunk: ChunkDoc,
  guard: ChunkHold & { status: "dispatching" },
): Promise<Delivered> {
  const { store } = deps;
  const { jobId, attempt } = chunk;
  const chunkNo = chunk.chunk;
  const headers = resolveHeaders(config, deps.env);
  const ref = { jobId, chunk: chunkNo, attempt };
  let callback: { url: string; token?: string } | undefined;
  if (config.completion === "callback") {
    if (!deps.callbacks) throw new BadInputError(CALLBACK_CHANNEL_MISSING(config.name));
    callback = await deps.callbacks.open(ref, config.watch.chunkTimeoutMs);
  }
  const { body, ids } = await markAndBuildBody(deps, config, chunk, callback);
  if (ids.length === 0) {
    // Every record was processed already (e.g. the service finished before a crash): the watcher
    // finds them so and closes the chunk.
    if (await markChunkSent(store, guard, deps.now()))
      await deps.handOver.watch({ jobId, chunk: chunkNo, attempt }, keys.watch(jobId, chunkNo, attempt));
    return { done: false };
  }
  // If this runner dies during the request, the lease expires and another runner delivers the
  // same attempt again under the same key, which the service recognizes.
  const raw = await deps.post({
    url: config.target.url,
    body,
    headers: { ...headers, "idempotency-key": keys.delivery(jobId, chunkNo, attempt) },
    timeoutMs: config.target.timeoutMs,
    ...(config.completion === "response" ? { replyLimitBytes: RESPONSE_REPLY_LIMIT_BYTES } : {}),
  });
  // A service may echo request headers in its error text; secrets never reach our documents.
  const outcome = redactOutcome(raw, secretValues(config, deps.env));
  const now = deps.now();
  switch (outcome.kind) {
    case "accepted": {
      // If we stop before the next write, the lease expires and the same attempt is delivered
      // again under the same key, which the service recognizes (and, in "response" mode, answers
      // with the same outcome again).
      if (config.completion === "response")
        return endAnsweredAttempt(deps, config, chunk, guard, ids, outcome);
      // The config this attempt went out under (it may differ from the one that planned it).
      if (!(await markChunkSent(store, guard, now, { configHash: configHash(config) }))) {
        return { done: false }; // another runner took the chunk over meanwhile
      }
      deps.log.info(`chunk ${chunkNo} sent`, { jobId, attempt, records: ids.length });
      await deps.handOver.watch({ jobId, chunk: chunkNo, attempt }, keys.watch(jobId, chunkNo, attempt));
      return { done: false };
    }
    case "retry": {
      const tries = chunk.deliveryTries + 1;
      const triesLeft = tries < config.retry.maxDeliveryTries;
      if (!triesLeft) {
        const reason = `delivery failed ${tries} times; last: ${outcome.reason}`;
        if (await failChunk(deps, config.name, chunk, guard, "deliveryFailed", reason)) {
          deps.log.warn(`chunk ${chunkNo} failed`, { jobId, reason });
          await deps.handOver.serve({ jobId }, keys.serveAfterClose(jobId, chunkNo, attempt));
          return { done: true };
        }
        return { done: false };
      }
      // A service's Retry-After is honoured up to the config's cap, whatever it asks for (seconds
      // or a date years ahead): a run never waits longer than `retry.maxBackoffMs` per try.
      const delay = Math.min(
        config.retry.maxBackoffMs,
        outcome.retryAfterMs ??
          backoffDelay(tries, {
            baseMs: config.retry.backoffMs,
            capMs: config.retry.maxBackoffMs,
            random: deps.random,
          }),
      );
      const postponed = await postponeChunkDelivery(store, guard, {
        tries,
        dueAt: new Date(now.getTime() + delay),
        lastError: outcome.reason,
      });
      if (!postponed) return { done: false };
      deps.log.warn(`chunk ${chunkNo} not delivered, retrying in ${delay} ms`, {
        jobId,
        reason: outcome.reason,
      });
      await deps.handOver.serve({ jobId }, keys.serveRetry(jobId, chunkNo, attempt, tries), delay);
      return { done: false };
    }
    case "rejected": {
      const reason = `rejected by the batch service: ${outcome.reason}`;
      if (await failChunk(deps, config.name, chunk, guard, "rejected", reason)) {
        deps.log.warn(`chunk ${chunkNo} failed`, { jobId, reason });
        await deps.handOver.serve({ jobId }, keys.serveAfterClose(jobId, chunkNo, attempt));
        return { done: true };
      }
      return { done: false };
    }
    default: {
      const never: never = outcome;
      throw new Error(`unknown delivery outcome ${JSON.stringify(never)}`);
    }
  }
}

/**
 * An exceptions job resolves the exceptions it sent again and got processed, so the job they came
 * from can become complete and the watermark can move over it.
 */
async function resolveRequeued(deps: StepDeps, job: JobDoc): Promise<void> {
  if (job.mode !== "exceptions" || !job.fromJob) return;
  const { store } = deps;
  // A requeue of a requeue: a record processed now also resolves it in every job up the chain,
  // back to the job whose window it belongs to.
  const chain = await listRequeueChain(store, job.fromJob);
  const at = deps.now();
  const cursor = streamProcessedRecordIds(store, job._id);
  let ids: unknown[] = [];
  const flush = async () => {
    if (ids.length === 0) return;
    await resolveProcessedRecords(store, chain, ids, job._id, at);
    ids = [];
  };
  for await (const d of cursor) {
    ids.push(d.recordId);
    if (ids.length >= 1000) await flush();
  }
  await flush();
  for (const jobId of chain) await settleJobCompletion(deps, jobId);
  // Its claim on their exceptions ends: a chunk of theirs may be run again now.
  for (const jobId of chain) await releaseRequeue(store, jobId, job._id);
}

/**
 * One invocation may run several consecutive jobs (`iterations`): a finished job that took
 * records and did not fail hands over to the initializer for the next one, which claims the next
 * window. The next job id derives from the first one, so a replayed hand-over resumes it.
 */
export async function startNextIteration(
  deps: StepDeps,
  job: JobDoc,
  status: JobDoc["status"],
  records: number,
) {
  const it = job.iteration;
  if (!it || it.index >= it.of || status === "planning" || status === "running") return;
  const next = it.index + 1;
  const jobId = `${it.firstJob}.${next}`;
  // The next iteration exists already (this job finished before, and was run again since): it
  // goes on whatever this finish says, or a stalled one would wait for good (found by the
  // simulation with reruns, seed 21799).
  const exists = await jobExists(deps.store, jobId);
  if (!exists && (status !== "succeeded" || records === 0)) {
    deps.log.info(`job ${job._id}: no further iterations`, {
      reason: records === 0 ? "nothing left to take" : "the job failed",
    });
    return;
  }
  const window = {
    ...(job.backfill?.from !== undefined ? { from: keyToPayload(job.backfill.from) } : {}),
    ...(job.backfill?.to !== undefined ? { to: keyToPayload(job.backfill.to) } : {}),
  };
  await deps.handOver.initialize(
    {
      config: job.config,
      jobId,
      mode: job.mode,
      ...window,
      ...(job.partitioning.workload ?? {}),
      description: job.description,
      iteration: { index: next, of: it.of, firstJob: it.firstJob },
    },
    `initialize:${jobId}`,
  );
}

/**
 * Whether a rerun's chunk is done at the rerun's attempt or later. A chunk not reopened yet (its
 * requester stopped between reopening the job and the chunk) is reopened here.
 */
async function rerunChunkDone(store: StepDeps["store"], jobId: string, rerun: JobRerun): Promise<boolean> {
  let chunk = await readChunk(store, jobId, rerun.chunk);
  if (chunk && chunk.attempt < rerun.attempt) {
    await reopenChunkForRerun(store, jobId, rerun.chunk, rerun);
    chunk = await readChunk(store, jobId, rerun.chunk);
    if (chunk && chunk.attempt < rerun.attempt)
      throw new Error(
        `chunk ${rerun.chunk} of job ${jobId} cannot be reopened for rerun ${rerun.seq} (it is ${chunk.status} at attempt ${chunk.attempt})`,
      );
  }
  return chunk?.done === true;
}

/**
 * Closes a job whose committed chunks are all done: exact totals from the chunk documents, the
 * final status (with `unsettled`, in the same write), then everything a finished job entails.
 */
export async function finishJob(deps: StepDeps, job: JobDoc): Promise<JobDoc["status"]> {
  const { store } = deps;
  const committed = job.planning.nextChunk;
  const agg = await sumChunkTotals(store, job._id, committed);
  const exceptions = await countSetAsideRecords(store, job._id);
  const records = agg?.records ?? 0;
  const status: JobDoc["status"] = exceptions > 0 || (agg?.failedChunks ?? 0) > 0 ? "failed" : "succeeded";
  const now = deps.now();
  await finishJobStatus(
    store,
    job._id,
    status,
    { records, chunks: agg?.chunks ?? 0, processed: agg?.processed ?? 0, failed: exceptions, exceptions },
    now,
    job.rerun?.seq,
  );
  const final = await readJob(store, job._id);
  if (!final) throw new Error(`job ${job._id} vanished while it was finished`);
  await settleFinishedJob(deps, final);
  deps.log.info(`job ${job._id} ${final.status}`, { records, exceptions });
  return final.status;
}

/**
 * Everything a finished job entails, each part idempotent: its completion and the lane's
 * watermark, the exceptions it resolved (a requeue), the full-job lock, the next iteration.
 * `unsettled` is removed last, so a crash anywhere in between leaves the job for the next step
 * that sees it (a replayed or retried server run, `resume`, the healer) to settle again.
 */
export async function settleFinishedJob(deps: StepDeps, job: JobDoc): Promise<void> {
  const { store } = deps;
  if (job.status !== "succeeded" && job.status !== "failed") return;
  if (job.unsettled) {
    await settleJobCompletion(deps, job._id);
    await resolveRequeued(deps, job);
    await releaseFullJobLock(store, job.config, job._id);
  }
  await startNextIteration(deps, job, job.status, job.totals?.records ?? 0);
  if (job.unsettled) await markJobSettled(store, job._id);
}

/** What the server step knows of its job while it serves: the job's planning state. */
interface ServedJob {
  config: string;
  committed: number;
  planningDone: boolean;
  /** Until when a planner holds the job's planning lease (ms), when planning is not done. */
  plannerUntil?: number | undefined;
}

/**
 * The server step. Chunks of the job are claimed inside the window of `maxInFlight` chunks that
 * starts at the first chunk not done, and delivered concurrently, up to `maxInFlight` at once
 * (in "response" mode each delivery lasts until the service answers; in the other modes until it
 * accepts). Per chunk that costs the claim and the delivery's own writes: the job is read once
 * per step (not at all once a planned job is in the step cache), the config comes from the cache,
 * and the window's first chunk is looked up only when a claim inside the window as last known
 * finds nothing. That is safe because chunks only ever become done: a window start known earlier
 * is at most the true one, so a claim below `low + maxInFlight` never leaves the true window.
 */
/**
 * How long one server run may claim chunks before it hands over to a fresh run (it then waits
 * for what it has in flight). Only "response" mode runs long — its step goes on while chunks
 * come back — and a Trigger.dev run has a maximum duration. Default: no limit (local runs).
 */
export interface ServeLimits {
  maxRunMs: number;
}

export async function dispatchJob(
  deps: StepDeps,
  rawPayload: unknown,
  limits: ServeLimits = { maxRunMs: Number.POSITIVE_INFINITY },
): Promise<DispatchResult> {
  const parsed = dispatchPayloadSchema.safeParse(rawPayload);
  if (!parsed.success)
    throw new BadInputError(`server payload is invalid: ${parsed.error.issues[0]?.message}`);
  const finished: WorkerTally = { chunks: 0, records: 0, succeeded: 0, failed: 0 };
  if (parsed.data.runChunk) {
    // Reopened here, served here: no separate hand-over.
    await runChunkAgain(deps, parsed.data.jobId, parsed.data.runChunk, { serveHere: true });
  }
  const result = await serveJob(deps, parsed.data.jobId, finished, limits);
  return finished.chunks > 0 ? { ...result, finished } : result;
}

async function serveJob(
  deps: StepDeps,
  jobId: string,
  finished: WorkerTally,
  limits: ServeLimits,
): Promise<DispatchResult> {
  const { store } = deps;
  const startedAt = deps.now().getTime();
  let served: ServedJob;
  const planned = deps.cache?.plannedJob(jobId, deps.now().getTime());
  if (planned) {
    served = { ...planned, planningDone: true };
  } else {
    const job = await readJob(store, jobId);
    if (!job) throw new BadInputError(`job '${jobId}' not found; start it with the initializer first`);
    if (job.status === "succeeded" || job.status === "failed") {
      // A replayed or retried server step of a finished job: finish what a crash may have left
      // (settling; the next iteration's hand-over is keyed, so it never starts twice).
      await settleFinishedJob(deps, job);
      return { outcome: "finished", status: job.status };
    }
    served = servedOf(deps, job);
  }
  const config = await readConfigCached(store, deps.cache, served.config, deps.now());
  const dispatched: number[] = [];
  const inFlight = new Map<number, Promise<void>>();
  const doneHere = new Set<number>();
  let failure: unknown;
  /** The window's first chunk as last known (at most the true one), and whether just looked up. */
  let low: number | undefined;
  let fresh = false;
  /** A chunk at the window's top was claimed: in "status"/"callback" mode the step is done. */
  let topClaimed = false;
  const stopAtTop = config.completion !== "response";
  let lastSent: { chunk: number; attempt: number } | undefined;
  /** The job was read just now (at the step's start): the first lookup need not read it again. */
  let jobJustRead = planned === undefined;

  const deliver = (chunk: ChunkDoc) => {
    const p = dispatchChunk(deps, config, chunk).then(
      (r) => {
        if (r.done) doneHere.add(chunk.chunk);
        if (r.finished) {
          finished.chunks += r.finished.chunks;
          finished.records += r.finished.records;
          finished.succeeded += r.finished.succeeded;
          finished.failed += r.finished.failed;
        }
      },
      (err: unknown) => {
        failure ??= err;
      },
    );
    inFlight.set(
      chunk.chunk,
      p.finally(() => inFlight.delete(chunk.chunk)),
    );
  };

  for (;;) {
    if (failure !== undefined) break;
    // Chunks this step saw become done move the known window start on.
    while (low !== undefined && doneHere.has(low)) low++;
    if (low === undefined) {
      // Planning still running: chunks may have been committed since the job was read.
      if (!served.planningDone && !jobJustRead) {
        const job = await readJob(store, jobId);
        if (!job) throw new BadInputError(`job '${jobId}' not found (deleted while it was served)`);
        if (job.status === "succeeded" || job.status === "failed") {
          await Promise.all(inFlight.values());
          await settleFinishedJob(deps, job);
          return { outcome: "finished", status: job.status };
        }
        served = servedOf(deps, job);
      }
      jobJustRead = false;
      const first = await findFirstUndoneChunk(store, jobId, served.committed);
      if (!first) {
        if (inFlight.size > 0) {
          await Promise.race(inFlight.values());
          continue;
        }
        if (!served.planningDone) {
          await scheduleAfterPlanning(deps, config, jobId, served);
          return dispatched.length > 0
            ? { outcome: "dispatched", chunks: dispatched }
            : { outcome: "idle", reason: "planning is still running" };
        }
        // Planning was done before this lookup, so no chunk can be added after it: finish.
        const job = await readJob(store, jobId);
        if (!job) throw new BadInputError(`job '${jobId}' not found (deleted while it was served)`);
        deps.cache?.forgetJob(jobId);
        if (job.status === "succeeded" || job.status === "failed") {
          await settleFinishedJob(deps, job);
          return { outcome: "finished", status: job.status };
        }
        if (
          !job.planning.done ||
          job.planning.nextChunk !== served.committed ||
          job.config !== served.config
        ) {
          // Not the job this step remembered (deleted and started again): serve it as read now.
          served = servedOf(deps, job);
          continue;
        }
        // A rerun moves one chunk of a finished job back: "no chunk undone" above may predate
        // it. Finish only once the rerun's chunk is done at the rerun's attempt (the job's rerun
        // count fences the finish, and only that chunk moves within one rerun).
        if (job.rerun && !(await rerunChunkDone(store, jobId, job.rerun))) continue;
        return { outcome: "finished", status: await finishJob(deps, job) };
      }
      if (first.status === "failed") {
        // Failed, but its records were not all set aside yet (a runner died in between).
        await completeFailedChunk(deps, config.name, { jobId, ...first });
        continue;
      }
      low = first.chunk;
      fresh = true;
    }
    const high = Math.min(low + config.maxInFlight, served.committed);
    if (!topClaimed && deps.now().getTime() - startedAt > limits.maxRunMs) {
      // Long enough: a fresh run goes on once what is in flight is back. Its key names the last
      // chunk attempt this run sent, so a replay of this run hands over under the same key.
      await Promise.all(inFlight.values());
      const last = lastSent ?? { chunk: 0, attempt: 0 };
      await deps.handOver.serve({ jobId }, `serve:${jobId}:after:${last.chunk}:${last.attempt}`);
      break;
    }
    if (inFlight.size < config.maxInFlight && !topClaimed) {
      const chunk = await claimNextChunk(store, {
        jobId,
        low,
        high,
        owner: deps.owner,
        now: deps.now(),
        leaseMs: deps.leaseMs,
      });
      if (chunk) {
        fresh = false;
        lastSent = { chunk: chunk.chunk, attempt: chunk.attempt };
        dispatched.push(chunk.chunk);
        deliver(chunk);
        // Anything below the window's top that was claimable was claimed first (lowest first):
        // what is left in the window is held, waiting out a backoff (each with its own wake-up),
        // or sent (its watcher hands back when it closes). Nothing more to claim in this step.
        if (stopAtTop && chunk.chunk === high - 1) topClaimed = true;
        continue;
      }
      if (!fresh) {
        // The window start as known may be behind: look it up once before giving up.
        low = undefined;
        continue;
      }
      if (inFlight.size === 0) {
        await scheduleWakeUp(deps, jobId, low, high);
        if (!served.planningDone) await scheduleAfterPlanning(deps, config, jobId, served);
        break;
      }
    }
    if (inFlight.size === 0) break;
    // Wait for a delivery to end; what it changed is looked at afresh.
    await Promise.race(inFlight.values());
    fresh = false;
  }
  await Promise.all(inFlight.values());
  if (failure !== undefined) throw failure instanceof Error ? failure : new Error(JSON.stringify(failure));
  return dispatched.length > 0
    ? { outcome: "dispatched", chunks: dispatched }
    : { outcome: "idle", reason: "no chunk due in the window" };
}

/** The served view of a job just read; a planned job's fixed facts go to the step cache. */
function servedOf(deps: StepDeps, job: JobDoc): ServedJob {
  const served = {
    config: job.config,
    committed: job.planning.nextChunk,
    planningDone: job.planning.done,
    plannerUntil: job.planningLease?.expiresAt.getTime(),
  };
  if (served.planningDone)
    deps.cache?.rememberPlannedJob(
      job._id,
      { config: job.config, committed: served.committed },
      deps.now().getTime(),
    );
  return served;
}

/**
 * While planning runs, chunks are committed group by group. In "status" and "callback" modes a
 * watcher hands back after each chunk and the next server step sees new chunks; in "response"
 * mode nothing would come back until planning is done, so while the planning lease is held the
 * server looks again after a poll interval (a delayed hand-over, keyed by the interval so a step
 * never schedules it twice).
 */
async function scheduleAfterPlanning(
  deps: StepDeps,
  config: BatchConfig,
  jobId: string,
  served: ServedJob,
): Promise<void> {
  if (config.completion !== "response") return;
  // Only while a planner is at work: a planner that died leaves the job to whoever resumes
  // planning (the healer, `resume`), and wake-ups with nobody planning would never end (found
  // by review: simulation seed 5910).
  if ((served.plannerUntil ?? 0) <= deps.now().getTime()) return;
  const committed = served.committed;
  const every = config.watch.pollIntervalMs;
  const slot = Math.floor(deps.now().getTime() / every);
  await deps.handOver.serve({ jobId }, `serve:${jobId}:planning:${committed}:${slot}`, every);
}
