/**
 * Verbs on `batch_chunks`. Two rules hold for every write here:
 * - a chunk's status changes only to what `nextChunkStatus` allows from the status the write is
 *   guarded on, so an illegal move throws instead of being written;
 * - `done` is true exactly when the chunk is processed, or failed with its records set aside
 *   (the claim window starts at the first chunk not done).
 * Every write is conditional on the writer's view of the chunk (`ChunkHold`): a runner or watcher
 * that lost the chunk to another changes nothing, and learns so from the result.
 */
import type { Document } from "bson";
import { type ChunkEvent, nextChunkStatus } from "../planning/chunk-state.js";
import { isDuplicateKey } from "./errors.js";
import type { AttemptOutcome, ChunkDoc, ChunkRerun, Store } from "./store.js";

/**
 * A writer's view of one chunk attempt: a server holding it under its lease (`dispatching`), or a
 * watcher of a `sent` attempt.
 */
export type ChunkHold =
  | { jobId: string; chunk: number; attempt: number; status: "dispatching"; owner: string }
  | { jobId: string; chunk: number; attempt: number; status: "sent" };

/** The filter that matches the chunk only while `hold` is still true. */
function holdFilter(hold: ChunkHold): Document {
  switch (hold.status) {
    case "dispatching":
      return {
        jobId: hold.jobId,
        chunk: hold.chunk,
        status: hold.status,
        attempt: hold.attempt,
        "lease.owner": hold.owner,
      };
    case "sent":
      return { jobId: hold.jobId, chunk: hold.chunk, status: hold.status, attempt: hold.attempt };
    default: {
      const never: never = hold;
      throw new Error(`unknown chunk hold ${JSON.stringify(never)}`);
    }
  }
}

/**
 * The first chunk not done among the committed ones (below `committed`, the job's
 * `planning.nextChunk`): chunks past it may still be cut again by the planner, so nothing reads
 * them as part of the job yet.
 */
export async function findFirstUndoneChunk(
  store: Store,
  jobId: string,
  committed: number,
): Promise<Pick<ChunkDoc, "chunk" | "status" | "attempt" | "lastError"> | null> {
  return store.chunks.findOne(
    { jobId, done: false, chunk: { $lt: committed } },
    { sort: { chunk: 1 }, projection: { chunk: 1, status: 1, attempt: 1, lastError: 1 } },
  );
}

/**
 * Claims the lowest claimable chunk in [low, high) for `owner`, atomically: a due pending chunk,
 * or a dispatching one whose lease expired (redelivered under the same attempt and key). Two
 * runners never hold one chunk: the claim is one conditional findOneAndUpdate.
 */
export async function claimNextChunk(
  store: Store,
  claim: { jobId: string; low: number; high: number; owner: string; now: Date; leaseMs: number },
): Promise<ChunkDoc | null> {
  const { jobId, now } = claim;
  return store.chunks.findOneAndUpdate(
    {
      jobId,
      chunk: { $gte: claim.low, $lt: claim.high },
      $or: [
        { status: "pending", dueAt: { $lte: now } },
        { status: "dispatching", "lease.expiresAt": { $lt: now } },
      ],
    },
    {
      $set: {
        status: nextChunkStatus("pending", { type: "claim" }),
        lease: { owner: claim.owner, expiresAt: new Date(now.getTime() + claim.leaseMs) },
      },
    },
    { sort: { chunk: 1 }, returnDocument: "after" },
  );
}

/** The chunks in [low, high) waiting to be claimed: due later, or held under a lease. */
export async function listWaitingChunks(
  store: Store,
  jobId: string,
  low: number,
  high: number,
): Promise<Array<Pick<ChunkDoc, "status" | "dueAt" | "lease">>> {
  return store.chunks
    .find(
      { jobId, chunk: { $gte: low, $lt: high }, status: { $in: ["pending", "dispatching"] } },
      { projection: { status: 1, dueAt: 1, lease: 1 } },
    )
    .toArray();
}

/** Extends the lease of a chunk its owner is still dispatching; nothing once it lost the chunk. */
export async function renewChunkLease(
  store: Store,
  hold: ChunkHold & { status: "dispatching" },
  expiresAt: Date,
): Promise<{ matchedCount: number }> {
  return store.chunks.updateOne(holdFilter(hold), { $set: { "lease.expiresAt": expiresAt } });
}

/**
 * Moves a dispatching chunk to `sent` and drops its lease: the service accepted the attempt
 * (`accepted`, recording the config it went out under), or none of its records was left to send.
 * True when this writer still held the chunk.
 */
export async function markChunkSent(
  store: Store,
  hold: ChunkHold & { status: "dispatching" },
  sentAt: Date,
  accepted?: { configHash: string },
): Promise<boolean> {
  const res = await store.chunks.updateOne(holdFilter(hold), {
    $set: {
      status: nextChunkStatus(hold.status, { type: "accepted" }),
      sentAt,
      ...(accepted ? { deliveryTries: 0, configHash: accepted.configHash } : {}),
    },
    $unset: { lease: "" },
  });
  return res.matchedCount > 0;
}

/**
 * Puts a dispatching chunk back to pending after a delivery that did not complete, due again at
 * `dueAt` under the same attempt (and idempotency key). True when this writer still held it.
 */
export async function postponeChunkDelivery(
  store: Store,
  hold: ChunkHold & { status: "dispatching" },
  retry: { tries: number; dueAt: Date; lastError: string },
): Promise<boolean> {
  const res = await store.chunks.updateOne(holdFilter(hold), {
    $set: {
      status: nextChunkStatus(hold.status, { type: "deliveryFailed", triesLeft: true }),
      deliveryTries: retry.tries,
      dueAt: retry.dueAt,
      lastError: retry.lastError,
    },
    $unset: { lease: "" },
  });
  return res.matchedCount > 0;
}

/** The event that ends a chunk's life with `outcome` and no attempts or tries left. */
function finalEvent(outcome: Exclude<AttemptOutcome, "processed">): ChunkEvent {
  switch (outcome) {
    case "deliveryFailed":
      return { type: "deliveryFailed", triesLeft: false };
    case "rejected":
      return { type: "rejected" };
    case "recordsFailed":
    case "timedOut":
    case "badReply":
      return { type: outcome, attemptsLeft: false };
    default: {
      const never: never = outcome;
      throw new Error(`unknown attempt outcome ${String(never)}`);
    }
  }
}

/**
 * Moves a chunk to `failed`, recording how its attempt ended. `done` stays false until its
 * records are set aside (`closeFailedChunk`), so a crash in between leaves the chunk unfinished
 * and the next server run completes it. True when the writer still held the chunk.
 */
export async function markChunkFailed(
  store: Store,
  hold: ChunkHold,
  failure: { outcome: Exclude<AttemptOutcome, "processed">; reason: string; now: Date },
): Promise<boolean> {
  const { now } = failure;
  const res = await store.chunks.updateOne(holdFilter(hold), {
    $set: {
      status: nextChunkStatus(hold.status, finalEvent(failure.outcome)),
      done: false,
      finishedAt: now,
      lastError: failure.reason,
    },
    $unset: { lease: "" },
    $push: { history: { attempt: hold.attempt, outcome: failure.outcome, at: now } },
  });
  return res.matchedCount > 0;
}

/**
 * Marks a failed chunk done once its records are set aside, with its exact counts; idempotent
 * (only a failed chunk not yet done matches).
 */
export async function closeFailedChunk(
  store: Store,
  jobId: string,
  chunk: number,
  counts: { processed: number; setAside: number },
): Promise<void> {
  await store.chunks.updateOne(
    { jobId, chunk, status: "failed", done: false },
    { $set: { done: true, processedCount: counts.processed, failedCount: counts.setAside } },
  );
}

/** Per chunk status: how many chunks, and their record, processed and failed counts. */
type ChunkCounts = { chunks: number; records: number; processed: number; failed: number };

/**
 * Adds up the counts of the chunks matching `match`, per status, in one aggregation. The chunks
 * are grouped by their counts with a single `$sum: 1` and multiplied out here: groups are few
 * (most chunks of a job have the same counts), and it is the one form every implementation we
 * test on answers right — FerretDB 1.x computes only the first of several accumulators in a
 * `$group` (the others come back 0) and has no `$cond` or `$ifNull`.
 */
async function sumChunkCounts(store: Store, match: Document): Promise<Map<ChunkDoc["status"], ChunkCounts>> {
  const groups = store.chunks.aggregate<{
    _id: { status: ChunkDoc["status"]; records?: number; processed?: number; failed?: number };
    n: number;
  }>([
    { $match: match },
    {
      $group: {
        _id: {
          status: "$status",
          records: "$recordCount",
          processed: "$processedCount",
          failed: "$failedCount",
        },
        n: { $sum: 1 },
      },
    },
  ]);
  const byStatus = new Map<ChunkDoc["status"], ChunkCounts>();
  for await (const { _id: g, n } of groups) {
    let sum = byStatus.get(g.status);
    if (!sum) byStatus.set(g.status, (sum = { chunks: 0, records: 0, processed: 0, failed: 0 }));
    // A count not yet written (a chunk still on its way) adds nothing.
    sum.chunks += n;
    sum.records += n * (typeof g.records === "number" ? g.records : 0);
    sum.processed += n * (typeof g.processed === "number" ? g.processed : 0);
    sum.failed += n * (typeof g.failed === "number" ? g.failed : 0);
  }
  return byStatus;
}

/** Exact totals over a job's committed chunks (below `committed`), for its final status. */
export async function sumChunkTotals(
  store: Store,
  jobId: string,
  committed: number,
): Promise<{ chunks: number; records: number; failedChunks: number; processed: number } | undefined> {
  const byStatus = await sumChunkCounts(store, { jobId, chunk: { $lt: committed } });
  if (byStatus.size === 0) return undefined;
  const totals = { chunks: 0, records: 0, failedChunks: 0, processed: 0 };
  for (const [status, sum] of byStatus) {
    totals.chunks += sum.chunks;
    totals.records += sum.records;
    totals.processed += sum.processed;
    if (status === "failed") totals.failedChunks += sum.chunks;
  }
  return totals;
}

/** The chunk with this number, or null. */
export async function readChunk(store: Store, jobId: string, chunk: number): Promise<ChunkDoc | null> {
  return store.chunks.findOne({ jobId, chunk });
}

/**
 * What a chunk closed straight from `dispatching` records that `markChunkSent` would have: when
 * it went out and under which config (completion "response": the reply was the outcome).
 */
export interface AnsweredDelivery {
  sentAt: Date;
  configHash: string;
}

/**
 * Moves a chunk whose records are all processed to `processed`, done, with its counts: a `sent`
 * chunk its watcher saw finish, or (completion "response") a `dispatching` one whose reply said
 * so, with `answered`. True when the writer still held the attempt (another may have closed it
 * first, or taken the chunk over).
 */
export async function markChunkProcessed(
  store: Store,
  hold: ChunkHold,
  processed: number,
  now: Date,
  answered?: AnsweredDelivery,
): Promise<boolean> {
  const res = await store.chunks.updateOne(holdFilter(hold), {
    $set: {
      status: nextChunkStatus(hold.status, { type: "allProcessed" }),
      done: true,
      finishedAt: now,
      processedCount: processed,
      failedCount: 0,
      ...answeredFields(answered),
    },
    $unset: { lease: "" },
    $push: { history: { attempt: hold.attempt, outcome: "processed", at: now } },
  });
  return res.matchedCount > 0;
}

function answeredFields(answered: AnsweredDelivery | undefined): Document {
  return answered ? { sentAt: answered.sentAt, configHash: answered.configHash } : {};
}

/**
 * Puts a chunk whose attempt ended without all records processed back to pending as the next
 * attempt (new idempotency key, delivery tries from zero), due now: a `sent` chunk its watcher
 * closed, or (completion "response") a `dispatching` one whose reply said so, with `answered`.
 * Only while attempts remain: the caller decides that, the state machine checks the move. True
 * when the writer still held the attempt.
 */
export async function startNextAttempt(
  store: Store,
  hold: ChunkHold,
  ended: {
    outcome: "recordsFailed" | "timedOut" | "badReply";
    reason: string;
    now: Date;
    answered?: AnsweredDelivery;
  },
): Promise<boolean> {
  const { now } = ended;
  const res = await store.chunks.updateOne(holdFilter(hold), {
    $set: {
      status: nextChunkStatus(hold.status, { type: ended.outcome, attemptsLeft: true }),
      attempt: hold.attempt + 1,
      deliveryTries: 0,
      dueAt: now,
      lastError: ended.reason,
      ...answeredFields(ended.answered),
    },
    $unset: { lease: "" },
    $push: { history: { attempt: hold.attempt, outcome: ended.outcome, at: now } },
  });
  return res.matchedCount > 0;
}

/**
 * Reopens a done chunk for a rerun on demand: pending again as attempt `rerun.attempt`, due now,
 * delivery tries from zero, its counts dropped until it is done again. Only from the attempt
 * before it (`rerun.attempt - 1`) and only while done, so it moves once per rerun. True when it
 * moved.
 */
export async function reopenChunkForRerun(
  store: Store,
  jobId: string,
  chunk: number,
  given: ChunkRerun,
): Promise<boolean> {
  // Only the chunk's part of it (a job's rerun also names its chunk and count).
  const rerun: ChunkRerun = {
    attempt: given.attempt,
    scope: given.scope,
    at: given.at,
    by: given.by,
    ...(given.skip ? { skip: given.skip } : {}),
  };
  const res = await store.chunks.updateOne(
    { jobId, chunk, attempt: rerun.attempt - 1, done: true, status: { $in: ["processed", "failed"] } },
    {
      $set: {
        // Either done status moves the same way; the state machine checks the move.
        status: nextChunkStatus("processed", { type: "rerun" }),
        done: false,
        attempt: rerun.attempt,
        deliveryTries: 0,
        dueAt: rerun.at,
        rerun,
      },
      $unset: { lease: "", finishedAt: "", processedCount: "", failedCount: "" },
      $push: { reruns: { $each: [rerun], $slice: -20 } },
    },
  );
  return res.matchedCount > 0;
}

/**
 * Inserts planned chunks (pending, not done); one already there (a resumed or concurrent planner
 * cut it first, unique per job and chunk) counts as inserted.
 */
export async function insertPlannedChunks(store: Store, docs: ChunkDoc[]): Promise<void> {
  try {
    await store.chunks.insertMany(docs, { ordered: false });
  } catch (err) {
    if (!isDuplicateKey(err)) throw err;
  }
}

/**
 * Deletes a job's uncommitted chunks (≥ `fromChunk`) that earlier planning epochs wrote: a
 * planner that lost its lease cannot remove what a later planner (epoch ≥ `epoch`) wrote.
 */
export async function deleteUncommittedChunks(
  store: Store,
  jobId: string,
  fromChunk: number,
  epoch: number,
): Promise<void> {
  await store.chunks.deleteMany({ jobId, chunk: { $gte: fromChunk }, planEpoch: { $not: { $gte: epoch } } });
}

/** The first `limit` chunks of a job not done, in order: the claim window, for the healer. */
export async function listUndoneChunks(
  store: Store,
  jobId: string,
  limit: number,
): Promise<Array<Pick<ChunkDoc, "chunk" | "attempt" | "status" | "sentAt" | "dueAt" | "lease">>> {
  return store.chunks
    .find(
      { jobId, done: false },
      {
        sort: { chunk: 1 },
        limit,
        projection: { chunk: 1, attempt: 1, status: 1, sentAt: 1, dueAt: 1, lease: 1 },
      },
    )
    .toArray();
}

/**
 * Lets the chunk leases `owner` holds on these jobs lapse now (its steps stopped): another runner
 * may take them over at once. Only the owner's own leases are touched.
 */
export async function expireChunkLeases(
  store: Store,
  jobIds: readonly string[],
  owner: string,
): Promise<void> {
  await store.chunks.updateMany(
    { jobId: { $in: [...jobIds] }, status: "dispatching", "lease.owner": owner },
    { $set: { "lease.expiresAt": new Date(0) } },
  );
}

/** A job's first failed chunk (only its number), or null. */
export async function findFirstFailedChunk(
  store: Store,
  jobId: string,
): Promise<Pick<ChunkDoc, "chunk"> | null> {
  return store.chunks.findOne({ jobId, status: "failed" }, { sort: { chunk: 1 }, projection: { chunk: 1 } });
}

/**
 * The last chunk of a job's completed prefix: the last one before `before` (the first failed
 * chunk), or without one the last done chunk. Only its cut (lastKey, lastId).
 */
export async function findLastCompletedChunk(
  store: Store,
  jobId: string,
  before: number | undefined,
): Promise<Pick<ChunkDoc, "lastKey" | "lastId"> | null> {
  return store.chunks.findOne(
    { jobId, ...(before !== undefined ? { chunk: { $lt: before } } : { done: true }) },
    { sort: { chunk: -1 }, projection: { lastKey: 1, lastId: 1 } },
  );
}

/** Per chunk status, a job's chunks and their record, processed and failed counts (one aggregation). */
export async function sumChunksByStatus(
  store: Store,
  jobId: string,
): Promise<Array<{ _id: ChunkDoc["status"] } & ChunkCounts>> {
  const byStatus = await sumChunkCounts(store, { jobId });
  return [...byStatus].map(([status, sum]) => ({ _id: status, ...sum }));
}

/** A job's chunks sent and waiting for their watcher (number and attempt). */
export async function listSentChunks(
  store: Store,
  jobId: string,
): Promise<Array<Pick<ChunkDoc, "chunk" | "attempt">>> {
  return store.chunks.find({ jobId, status: "sent" }, { projection: { chunk: 1, attempt: 1 } }).toArray();
}

/** The config hash each of these chunks (job, number) was last sent under. */
export async function listChunkConfigHashes(
  store: Store,
  chunks: ReadonlyArray<{ jobId: string; chunk: number }>,
): Promise<Array<Pick<ChunkDoc, "jobId" | "chunk" | "configHash">>> {
  return store.chunks
    .find(
      { $or: chunks.map((c) => ({ jobId: c.jobId, chunk: c.chunk })) },
      { projection: { jobId: 1, chunk: 1, configHash: 1 } },
    )
    .toArray();
}

/** Every chunk of a job in chunk order, without leases (who holds one is not a job's report). */
export async function listJobChunks(store: Store, jobId: string): Promise<Omit<ChunkDoc, "lease">[]> {
  return store.chunks
    .find({ jobId }, { projection: { _id: 0, lease: 0 } })
    .sort({ chunk: 1 })
    .toArray();
}
