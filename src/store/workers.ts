/**
 * Verbs on `batch_workers`: one document per process that runs pipeline steps (a local runner, a
 * Trigger.dev worker process, `listen`), written only by that process. Two rules hold:
 * - every write is one command on the worker's own `_id`, so two processes never touch each
 *   other's document and a worker's counters only ever grow by `$inc` (no read-modify-write);
 * - a worker is shown only until `expiresAt` (`WORKER_TTL_MS` after its last heartbeat or its
 *   stop). MongoDB's TTL monitor deletes it some time after that; the embedded engine never does,
 *   so the read verbs filter on `expiresAt` themselves and `registerWorker` prunes what expired.
 */
import type { Store, WorkerDoc, WorkerKind } from "./store.js";

/** How long a worker is kept after its last heartbeat (or its stop): 10 minutes. */
export const WORKER_TTL_MS = 10 * 60_000;

/** A worker whose last heartbeat is older than this many of its intervals is stale (dead or hung). */
export const STALE_AFTER_HEARTBEATS = 3;

/** Who a worker is: fixed for its life, written when its document is created. */
export interface WorkerIdentity {
  id: string;
  name: string;
  kind: WorkerKind;
  host: string;
  pid: number;
  startedAt: Date;
  /** The heartbeat interval it promises, in ms. */
  heartbeatMs: number;
}

/** What a worker did since its last report; every field is added to its counters. */
export interface WorkerTally {
  chunks: number;
  records: number;
  succeeded: number;
  failed: number;
}

export type WorkerLiveness = "live" | "stale" | "stopped";

/** A worker as shown: its document, with its state judged at `now`. */
export interface WorkerView {
  id: string;
  name: string;
  kind: WorkerKind;
  host: string;
  pid: number;
  startedAt: Date;
  lastHeartbeat: Date;
  /** `now - lastHeartbeat`, in ms. */
  heartbeatAgeMs: number;
  heartbeatMs: number;
  stoppedAt?: Date;
  state: WorkerLiveness;
  chunks: number;
  records: number;
  succeeded: number;
  failed: number;
}

const expiry = (at: Date) => new Date(at.getTime() + WORKER_TTL_MS);

/** The fields only a new document gets: who the worker is. */
function identityFields(w: WorkerIdentity) {
  return {
    name: w.name,
    kind: w.kind,
    host: w.host,
    pid: w.pid,
    startedAt: w.startedAt,
    heartbeatMs: w.heartbeatMs,
  };
}

/**
 * Stopped if it said so; stale once its last heartbeat is older than `STALE_AFTER_HEARTBEATS`
 * intervals (a crashed or hung process: this is right before the TTL monitor ever runs); else live.
 */
export function judgeWorker(doc: WorkerDoc, now: Date): WorkerLiveness {
  if (doc.stoppedAt) return "stopped";
  const age = now.getTime() - doc.lastHeartbeat.getTime();
  return age > STALE_AFTER_HEARTBEATS * doc.heartbeatMs ? "stale" : "live";
}

function viewOf(doc: WorkerDoc, now: Date): WorkerView {
  return {
    id: doc._id,
    name: doc.name,
    kind: doc.kind,
    host: doc.host,
    pid: doc.pid,
    startedAt: doc.startedAt,
    lastHeartbeat: doc.lastHeartbeat,
    heartbeatAgeMs: Math.max(0, now.getTime() - doc.lastHeartbeat.getTime()),
    heartbeatMs: doc.heartbeatMs,
    ...(doc.stoppedAt ? { stoppedAt: doc.stoppedAt } : {}),
    state: judgeWorker(doc, now),
    chunks: doc.chunks,
    records: doc.records,
    succeeded: doc.succeeded,
    failed: doc.failed,
  };
}

/**
 * Registers a worker, or renews it: an upsert on its id, so registering twice (a retry after a
 * lost reply) leaves one document with its counters untouched. Prunes expired workers first,
 * because the embedded engine has no TTL monitor (on MongoDB it finds nothing to do).
 */
export async function registerWorker(store: Store, worker: WorkerIdentity, now: Date): Promise<void> {
  await deleteExpiredWorkers(store, now);
  await store.workers.updateOne(
    { _id: worker.id },
    {
      $setOnInsert: { ...identityFields(worker), chunks: 0, records: 0, succeeded: 0, failed: 0 },
      $set: { lastHeartbeat: now, expiresAt: expiry(now) },
    },
    { upsert: true },
  );
}

/**
 * Adds a tally to a worker's counters and renews its heartbeat, in one command: `$inc` is atomic,
 * so concurrent reports of one worker never lose a count. An upsert, so a worker whose document
 * aged out (a process suspended past the TTL) comes back with what it reports from then on.
 */
export async function recordWorkerActivity(
  store: Store,
  worker: WorkerIdentity,
  tally: WorkerTally,
  now: Date,
): Promise<void> {
  await store.workers.updateOne(
    { _id: worker.id },
    {
      $setOnInsert: identityFields(worker),
      $inc: {
        chunks: tally.chunks,
        records: tally.records,
        succeeded: tally.succeeded,
        failed: tally.failed,
      },
      $set: { lastHeartbeat: now, expiresAt: expiry(now) },
    },
    { upsert: true },
  );
}

/** Renews a worker's heartbeat (nothing to count). One command, as `recordWorkerActivity`. */
export async function heartbeatWorker(store: Store, worker: WorkerIdentity, now: Date): Promise<void> {
  await recordWorkerActivity(store, worker, { chunks: 0, records: 0, succeeded: 0, failed: 0 }, now);
}

/**
 * Marks a worker stopped (a clean exit): shown as stopped until it ages out `WORKER_TTL_MS` later.
 * Not an upsert: a worker that already aged out stays gone. Returns whether it was there.
 */
export async function markWorkerStopped(store: Store, id: string, now: Date): Promise<boolean> {
  const r = await store.workers.updateOne(
    { _id: id },
    { $set: { stoppedAt: now, lastHeartbeat: now, expiresAt: expiry(now) } },
  );
  return r.matchedCount > 0;
}

/** Deletes the workers past `expiresAt` (what the TTL monitor does on MongoDB). Returns how many. */
export async function deleteExpiredWorkers(store: Store, now: Date): Promise<number> {
  const r = await store.workers.deleteMany({ expiresAt: { $lte: now } });
  return r.deletedCount;
}

/** At most this many workers are listed (the most recent heartbeats first). */
export const WORKER_LIST_LIMIT = 500;

/**
 * Workers that have not aged out, most recent heartbeat first, judged at `now`. Without `all`
 * only live ones; with it also stale and stopped ones. Read-only: expired documents are left
 * out here, not deleted.
 */
export async function listWorkers(
  store: Store,
  options: { now: Date; all?: boolean },
): Promise<WorkerView[]> {
  const docs = await store.workers
    .find({ expiresAt: { $gt: options.now } })
    .sort({ lastHeartbeat: -1, _id: 1 })
    .limit(WORKER_LIST_LIMIT)
    .toArray();
  const views = docs.map((d) => viewOf(d, options.now));
  return options.all ? views : views.filter((v) => v.state === "live");
}

/** One worker judged at `now`, or null when there is none (or it aged out). */
export async function readWorker(store: Store, id: string, now: Date): Promise<WorkerView | null> {
  const doc = await store.workers.findOne({ _id: id, expiresAt: { $gt: now } });
  return doc ? viewOf(doc, now) : null;
}
