/**
 * The server step (`batchDataServer`): claims the next due chunk of a job atomically, inside the
 * window of `maxInFlight` chunks starting at the first unfinished one, POSTs it under the
 * attempt's idempotency key, marks it sent and hands over to the watcher. Delivery trouble puts
 * the chunk back with backoff (same attempt, same key); a rejection sets its records aside as
 * exceptions. When no chunk is left, it finishes the job.
 */
import { EJSON } from "bson";
import type { Document } from "mongodb";
import { z } from "zod";
import { loadConfig, redactSecrets, resolveHeaders, secretValues } from "../config/load.js";
import { type BatchConfig, configHash, isFileSource, jobIdSchema } from "../config/schema.js";
import { BadInputError } from "../errors.js";
import { type StepDeps, keys } from "../handover/handover.js";
import { withLeaseRenewal } from "../handover/lease.js";
import { backoffDelay, nextChunkStatus } from "../planning/chunk-state.js";
import type { ChunkDoc, JobDoc } from "../store/store.js";
import { keyToPayload } from "../planning/cuts.js";
import { settleJobCompletion } from "../windows/watermark.js";
import { setAsideRecords } from "./exceptions.js";
import type { DeliveryOutcome } from "./http.js";

export const servePayloadSchema = z
  .object({ jobId: jobIdSchema.describe("The job to serve (from the initializer).") })
  .strict();

export type ServeResult =
  | { outcome: "dispatched"; chunks: number[] }
  | { outcome: "idle"; reason: string }
  | { outcome: "finished"; status: JobDoc["status"] };

async function firstUnfinishedChunk(deps: StepDeps, jobId: string): Promise<number | undefined> {
  const doc = await deps.store.chunks.findOne(
    { jobId, done: false },
    { sort: { chunk: 1 }, projection: { chunk: 1 } },
  );
  return doc?.chunk;
}

/** Claims one chunk: due pending chunks, or dispatching ones whose lease expired (redelivery). */
async function claimNextChunk(deps: StepDeps, jobId: string, low: number, config: BatchConfig) {
  const now = deps.now();
  const maxInFlight = config.maxInFlight;
  return deps.store.chunks.findOneAndUpdate(
    {
      jobId,
      chunk: { $gte: low, $lt: low + maxInFlight },
      $or: [
        { status: "pending", dueAt: { $lte: now } },
        { status: "dispatching", "lease.expiresAt": { $lt: now } },
      ],
    },
    {
      $set: {
        status: nextChunkStatus("pending", { type: "claim" }),
        lease: {
          owner: deps.owner,
          expiresAt: new Date(now.getTime() + deps.leaseMs),
        },
      },
    },
    { sort: { chunk: 1 }, returnDocument: "after" },
  );
}

/**
 * When nothing in the window can be claimed yet — a chunk held under another runner's lease, or
 * waiting out a delivery backoff — comes back when that ends. If the lease holder is alive it
 * will have renewed the lease by then and this simply looks again; if it died, this takes over.
 * Chunks that are `sent` need no wake-up: their watcher hands back.
 */
async function scheduleWakeUp(
  deps: StepDeps,
  jobId: string,
  low: number,
  config: BatchConfig,
): Promise<void> {
  const waiting = await deps.store.chunks
    .find(
      {
        jobId,
        chunk: { $gte: low, $lt: low + config.maxInFlight },
        status: { $in: ["pending", "dispatching"] },
      },
      { projection: { status: 1, dueAt: 1, lease: 1 } },
    )
    .toArray();
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
 * The records of this attempt: everything in the chunk not yet processed, with its fields —
 * stored with the record for file sources, read from the collection now for MongoDB sources
 * (one `$in` query on _id per chunk).
 */
async function buildBody(
  deps: StepDeps,
  config: BatchConfig,
  chunk: ChunkDoc,
): Promise<{ body: string; ids: unknown[] }> {
  const details = await deps.store.details
    .find(
      { jobId: chunk.jobId, chunk: chunk.chunk, status: { $in: ["pending", "sent", "failed"] } },
      { projection: { recordId: 1, data: 1 } },
    )
    .toArray();
  const ids = details.map((d) => d.recordId);
  const source = config.source;
  const byId = new Map<string, Document>();
  if (!isFileSource(source) && source.fields.length > 0 && ids.length > 0) {
    const projection: Document = { _id: 1 };
    for (const f of source.fields) projection[f] = 1;
    const docs = await deps.store.db
      .collection(source.collection)
      .find({ _id: { $in: ids } } as Document, { projection })
      .toArray();
    for (const d of docs) byId.set(EJSON.stringify({ v: d._id as unknown }), d);
  }
  const records = details.map(({ recordId: id, data }) => {
    if (data) return { id, ...data };
    const src = byId.get(EJSON.stringify({ v: id }));
    if (!src) return { id };
    const { _id, ...rest } = src;
    return { id, ...rest };
  });
  const body = EJSON.stringify(
    { jobId: chunk.jobId, chunk: chunk.chunk, attempt: chunk.attempt, records },
    { relaxed: true },
  );
  return { body, ids };
}

function redactOutcome(outcome: DeliveryOutcome, secrets: string[]): DeliveryOutcome {
  if (outcome.kind === "accepted" || secrets.length === 0) return outcome;
  return { ...outcome, reason: redactSecrets(outcome.reason, secrets) };
}

async function dispatchChunk(deps: StepDeps, config: BatchConfig, chunk: ChunkDoc): Promise<void> {
  const { store } = deps;
  const { jobId, attempt } = chunk;
  const chunkNo = chunk.chunk;
  const headers = resolveHeaders(config, deps.env);
  const { body, ids } = await buildBody(deps, config, chunk);
  const guard = { jobId, chunk: chunkNo, status: "dispatching" as const, attempt, "lease.owner": deps.owner };
  if (ids.length === 0) {
    // Every record was processed already (e.g. the service finished before a crash): close it.
    await store.chunks.updateOne(guard, {
      $set: { status: "sent", sentAt: deps.now() },
      $unset: { lease: "" },
    });
    await deps.handOver.watch({ jobId, chunk: chunkNo, attempt }, keys.watch(jobId, chunkNo, attempt));
    return;
  }
  // Mark this attempt's records before the request: a fast service may report on them before
  // the reply reaches us, and what it writes must never be overwritten. Records already marked
  // for this attempt (a redelivery after a crash) are left alone for the same reason.
  await store.details.updateMany(
    { jobId, chunk: chunkNo, status: { $in: ["pending", "sent", "failed"] }, attempts: { $lt: attempt } },
    { $set: { status: "sent", sentAt: deps.now(), attempts: attempt } },
  );
  // The lease is short and renewed while the request runs: if this runner dies, another takes
  // the chunk over within one lease period and delivers it again under the same key.
  const renew = () =>
    store.chunks.updateOne(guard, {
      $set: { "lease.expiresAt": new Date(deps.now().getTime() + deps.leaseMs) },
    });
  const raw = await withLeaseRenewal(deps, "chunk", renew, () =>
    deps.post({
      url: config.target.url,
      body,
      headers: { ...headers, "idempotency-key": keys.delivery(jobId, chunkNo, attempt) },
      timeoutMs: config.target.timeoutMs,
    }),
  );
  // A service may echo request headers in its error text; secrets never reach our documents.
  const outcome = redactOutcome(raw, secretValues(config, deps.env));
  const now = deps.now();
  switch (outcome.kind) {
    case "accepted": {
      // If we stop before this update, the lease expires and the same attempt is delivered
      // again under the same key, which the service recognizes.
      await store.chunks.updateOne(guard, {
        $set: {
          status: nextChunkStatus("dispatching", { type: "accepted" }),
          sentAt: now,
          deliveryTries: 0,
          // The config this attempt went out under (it may differ from the one that planned it).
          configHash: configHash(config),
        },
        $unset: { lease: "" },
      });
      deps.log.info(`chunk ${chunkNo} sent`, { jobId, attempt, records: ids.length });
      await deps.handOver.watch({ jobId, chunk: chunkNo, attempt }, keys.watch(jobId, chunkNo, attempt));
      return;
    }
    case "retry": {
      const tries = chunk.deliveryTries + 1;
      const triesLeft = tries < config.retry.maxDeliveryTries;
      if (!triesLeft) {
        await failChunk(deps, config, chunk, `delivery failed ${tries} times; last: ${outcome.reason}`);
        return;
      }
      const delay =
        outcome.retryAfterMs ??
        backoffDelay(tries, config.retry.backoffMs, config.retry.maxBackoffMs, deps.random);
      await store.chunks.updateOne(guard, {
        $set: {
          status: nextChunkStatus("dispatching", { type: "deliveryFailed", triesLeft }),
          deliveryTries: tries,
          dueAt: new Date(now.getTime() + delay),
          lastError: outcome.reason,
        },
        $unset: { lease: "" },
      });
      deps.log.warn(`chunk ${chunkNo} not delivered, retrying in ${delay} ms`, {
        jobId,
        reason: outcome.reason,
      });
      await deps.handOver.serve({ jobId }, keys.serveRetry(jobId, chunkNo, attempt, tries), delay);
      return;
    }
    case "rejected":
      await failChunk(deps, config, chunk, `rejected by the batch service: ${outcome.reason}`);
      return;
    default: {
      const never: never = outcome;
      throw new Error(`unknown delivery outcome ${JSON.stringify(never)}`);
    }
  }
}

/** The chunk cannot be delivered: its unprocessed records become exceptions, the job goes on. */
async function failChunk(deps: StepDeps, config: BatchConfig, chunk: ChunkDoc, reason: string) {
  const { jobId, attempt } = chunk;
  await setAsideRecords(deps, config.name, chunk, reason);
  await deps.store.chunks.updateOne(
    { jobId, chunk: chunk.chunk, status: "dispatching", attempt },
    {
      $set: { status: "failed", done: true, finishedAt: deps.now(), lastError: reason },
      $unset: { lease: "" },
    },
  );
  deps.log.warn(`chunk ${chunk.chunk} failed`, { jobId, reason });
  await deps.handOver.serve({ jobId }, keys.serveAfterClose(jobId, chunk.chunk, attempt));
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
  const chain: string[] = [];
  for (let from: string | undefined = job.fromJob; from && chain.length < 50;) {
    chain.push(from);
    const up: Pick<JobDoc, "mode" | "fromJob"> | null = await store.jobs.findOne(
      { _id: from },
      { projection: { mode: 1, fromJob: 1 } },
    );
    from = up?.mode === "exceptions" ? up.fromJob : undefined;
  }
  const at = deps.now();
  const cursor = store.details.find({ jobId: job._id, status: "processed" }, { projection: { recordId: 1 } });
  let ids: unknown[] = [];
  const flush = async () => {
    if (ids.length === 0) return;
    await store.exceptions.updateMany(
      { jobId: { $in: chain }, recordId: { $in: ids }, resolution: { $exists: false } },
      { $set: { resolution: { note: `processed by job ${job._id}`, at, byJob: job._id } } },
    );
    ids = [];
  };
  for await (const d of cursor) {
    ids.push(d.recordId);
    if (ids.length >= 1000) await flush();
  }
  await flush();
  for (const jobId of chain) await settleJobCompletion(deps, jobId);
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
  if (status !== "succeeded" || records === 0) {
    deps.log.info(`job ${job._id}: no further iterations`, {
      reason: records === 0 ? "nothing left to take" : "the job failed",
    });
    return;
  }
  const next = it.index + 1;
  const jobId = `${it.firstJob}.${next}`;
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

/** Closes a job whose chunks are all done: exact totals from the chunk documents. */
export async function finishJob(deps: StepDeps, job: JobDoc): Promise<JobDoc["status"]> {
  const { store } = deps;
  const [agg] = await store.chunks
    .aggregate<{ chunks: number; records: number; failedChunks: number; processed: number }>([
      { $match: { jobId: job._id } },
      {
        $group: {
          _id: null,
          chunks: { $sum: 1 },
          records: { $sum: "$recordCount" },
          failedChunks: { $sum: { $cond: [{ $eq: ["$status", "failed"] }, 1, 0] } },
          processed: { $sum: { $ifNull: ["$processedCount", 0] } },
        },
      },
    ])
    .toArray();
  const exceptions = await store.exceptions.countDocuments({ jobId: job._id });
  const records = agg?.records ?? 0;
  const status: JobDoc["status"] = exceptions > 0 || (agg?.failedChunks ?? 0) > 0 ? "failed" : "succeeded";
  const now = deps.now();
  await store.jobs.updateOne(
    { _id: job._id, status: { $in: ["planning", "running"] } },
    {
      $set: {
        status,
        finishedAt: now,
        updatedAt: now,
        totals: {
          records,
          chunks: agg?.chunks ?? 0,
          processed: agg?.processed ?? 0,
          failed: exceptions,
          exceptions,
        },
      },
    },
  );
  await settleJobCompletion(deps, job._id);
  await resolveRequeued(deps, job);
  await store.watermarks.updateOne({ _id: job.config, activeJob: job._id }, { $set: { activeJob: null } });
  const final = await store.jobs.findOne({ _id: job._id }, { projection: { status: 1 } });
  deps.log.info(`job ${job._id} ${final?.status ?? status}`, { records, exceptions });
  await startNextIteration(deps, job, final?.status ?? status, records);
  return final?.status ?? status;
}

export async function serveJob(deps: StepDeps, rawPayload: unknown): Promise<ServeResult> {
  const parsed = servePayloadSchema.safeParse(rawPayload);
  if (!parsed.success)
    throw new BadInputError(`server payload is invalid: ${parsed.error.issues[0]?.message}`);
  const { jobId } = parsed.data;
  const job = await deps.store.jobs.findOne({ _id: jobId });
  if (!job) throw new BadInputError(`job '${jobId}' not found; start it with the initializer first`);
  if (job.status === "succeeded" || job.status === "failed") {
    // A replayed or retried server step of a finished job: make sure the next iteration was
    // handed over (the hand-over is keyed, so this never starts it twice).
    await startNextIteration(deps, job, job.status, job.totals?.records ?? 0);
    return { outcome: "finished", status: job.status };
  }
  const config = await loadConfig(deps.store, job.config);
  const dispatched: number[] = [];
  for (;;) {
    const low = await firstUnfinishedChunk(deps, jobId);
    if (low === undefined) {
      const fresh = await deps.store.jobs.findOne({ _id: jobId }, { projection: { planning: 1 } });
      if (!fresh?.planning.done) return { outcome: "idle", reason: "planning is still running" };
      return { outcome: "finished", status: await finishJob(deps, job) };
    }
    const chunk = await claimNextChunk(deps, jobId, low, config);
    if (!chunk) {
      await scheduleWakeUp(deps, jobId, low, config);
      return dispatched.length > 0
        ? { outcome: "dispatched", chunks: dispatched }
        : { outcome: "idle", reason: `no chunk due in window ${low}..${low + config.maxInFlight - 1}` };
    }
    await dispatchChunk(deps, config, chunk);
    dispatched.push(chunk.chunk);
  }
}
