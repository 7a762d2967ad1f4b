/**
 * Verbs on `batch_details`, one document per record of a job. The batch service writes a
 * record's status after it was sent; chunkrelay only ever moves records it has not seen
 * processed, so a service's report is never overwritten.
 */
import { recordIdKey } from "../common/bson-order.js";
import type { AnyBulkWriteOperation, Filter } from "mongodb";
import { isDuplicateKey } from "./errors.js";
import type { ChunkRerun, DetailDoc, RecordStatus, Store } from "./store.js";

/**
 * Marks the records of chunk attempt `attempt` sent: everything in the chunk not yet processed
 * and not marked for this attempt or a later one. Once per attempt (`attempts < attempt`), so a
 * redelivery of the same attempt finds the same records and one idempotency key always carries
 * the same records. A rerun on demand (`rerun`, for this attempt) of scope `all` takes processed
 * records too (their old outcome and value are dropped: the service is asked again); it and
 * the attempts after it leave out the records in `skip`.
 */
export async function markRecordsSent(
  store: Store,
  jobId: string,
  chunk: number,
  attempt: number,
  sentAt: Date,
  rerun?: Pick<ChunkRerun, "attempt" | "scope" | "skip">,
): Promise<void> {
  const mine = rerun?.attempt === attempt ? rerun : undefined;
  // Records a rerun left out stay out of the attempts that follow it too.
  const skip = rerun && attempt >= rerun.attempt ? (rerun.skip ?? []) : [];
  const statuses: RecordStatus[] =
    mine?.scope === "all" ? ["pending", "sent", "failed", "processed"] : ["pending", "sent", "failed"];
  await store.details.updateMany(
    {
      jobId,
      chunk,
      status: { $in: statuses },
      attempts: { $lt: attempt },
      ...(skip.length > 0 ? { recordId: { $nin: skip } } : {}),
    },
    {
      $set: { status: "sent", sentAt, attempts: attempt },
      // What an earlier attempt returned says nothing about this one (found by review: a value
      // from a failed attempt stayed beside a later success).
      $unset: {
        attempt: "",
        error: "",
        result: "",
        resultError: "",
        ...(mine?.scope === "all" ? { processedAt: "" } : {}),
      },
    },
  );
}

/**
 * The records of chunk attempt `attempt`: those marked for it or a later attempt (a later
 * attempt re-marks a subset), so a stale runner building the body late sends the same records.
 */
export async function listAttemptRecords(
  store: Store,
  jobId: string,
  chunk: number,
  attempt: number,
): Promise<Array<Pick<DetailDoc, "recordId" | "data">>> {
  return store.details
    .find({ jobId, chunk, attempts: { $gte: attempt } }, { projection: { recordId: 1, data: 1 } })
    .toArray();
}

/** Every record of a chunk (a first attempt's records: all of them). */
export async function listChunkRecords(
  store: Store,
  jobId: string,
  chunk: number,
): Promise<Array<Pick<DetailDoc, "recordId" | "data">>> {
  return store.details.find({ jobId, chunk }, { projection: { recordId: 1, data: 1 } }).toArray();
}

/** The ids of a job's processed records, streamed (a job may hold millions). */
export function streamProcessedRecordIds(
  store: Store,
  jobId: string,
): AsyncIterable<Pick<DetailDoc, "recordId">> {
  return store.details.find({ jobId, status: "processed" }, { projection: { recordId: 1 } });
}

/**
 * Marks a failed chunk's unfinished records failed, so a late report of its attempt (which
 * must match `status: "sent"`) can no longer land.
 */
export async function markChunkRecordsFailed(store: Store, jobId: string, chunk: number): Promise<void> {
  await store.details.updateMany(
    { jobId, chunk, status: { $in: ["pending", "sent"] } },
    { $set: { status: "failed" } },
  );
}

/** A chunk's records not processed, streamed: the ones a failed chunk sets aside. */
export function streamUnprocessedRecords(
  store: Store,
  jobId: string,
  chunk: number,
): AsyncIterable<Pick<DetailDoc, "recordId" | "attempts" | "error">> {
  return store.details.find(
    { jobId, chunk, status: { $in: ["pending", "sent", "failed"] } },
    { projection: { recordId: 1, attempts: 1, error: 1 } },
  );
}

/** How many of a chunk's records are neither processed nor in `skip` (what another attempt could send). */
export async function countSendableRecords(
  store: Store,
  jobId: string,
  chunk: number,
  skip: readonly unknown[],
): Promise<number> {
  return store.details.countDocuments({
    jobId,
    chunk,
    status: { $in: ["pending", "sent", "failed"] },
    recordId: { $nin: [...skip] },
  });
}

/**
 * The records of an exceptions job's chunk, not processed there, that no longer wait as
 * exceptions of `fromJob` (its exception is resolved, or gone because a rerun of `fromJob`
 * processed the record).
 */
export async function listSettledElsewhere(
  store: Store,
  jobId: string,
  chunk: number,
  fromJob: string,
): Promise<unknown[]> {
  const waiting = await store.details
    .find({ jobId, chunk, status: { $in: ["pending", "sent", "failed"] } }, { projection: { recordId: 1 } })
    .toArray();
  if (waiting.length === 0) return [];
  const open = await store.exceptions
    .find(
      { jobId: fromJob, recordId: { $in: waiting.map((d) => d.recordId) }, resolution: { $exists: false } },
      { projection: { recordId: 1 } },
    )
    .toArray();
  const stillOpen = new Set(open.map((e) => recordIdKey(e.recordId)));
  return waiting.map((d) => d.recordId).filter((id) => !stillOpen.has(recordIdKey(id)));
}

/** How many of a chunk's records are processed. */
export async function countProcessedRecords(store: Store, jobId: string, chunk: number): Promise<number> {
  return store.details.countDocuments({ jobId, chunk, status: "processed" });
}

/**
 * A chunk's record statuses for its current attempt, and how many records carry a value, in one
 * indexed aggregation. A `failed`
 * report naming an older attempt than the record's (`attempt` < `attempts`) came in after the
 * record went out again: it says nothing about this attempt, so the record counts as `sent`.
 */
export async function countAttemptStatuses(
  store: Store,
  jobId: string,
  chunk: number,
): Promise<Record<RecordStatus, number> & { valued: number }> {
  // Grouped by (status, attempt, attempts, whether a value is there) and classified here: a
  // handful of groups per chunk, and only $sum and $type, which every implementation chunkrelay
  // is tested on has (FerretDB 1.x has no $cond, $ifNull or $gt).
  const rows = await store.details
    .aggregate<{
      _id: { status?: RecordStatus; attempt?: number; attempts?: number; value?: string };
      n: number;
    }>([
      { $match: { jobId, chunk } },
      {
        $group: {
          _id: { status: "$status", attempt: "$attempt", attempts: "$attempts", value: { $type: "$result" } },
          n: { $sum: 1 },
        },
      },
    ])
    .toArray();
  const counts: Record<RecordStatus, number> & { valued: number } = {
    pending: 0,
    sent: 0,
    processed: 0,
    failed: 0,
    valued: 0,
  };
  for (const { _id: g, n } of rows) {
    // Records carrying a value (the service wrote `result`): whether the cap must be checked.
    if (g.value !== undefined && g.value !== "missing") counts.valued += n;
    if (g.status === undefined || !(g.status in counts)) continue;
    const stale =
      g.status === "failed" &&
      typeof g.attempt === "number" &&
      typeof g.attempts === "number" &&
      g.attempt < g.attempts;
    counts[stale ? "sent" : g.status] += n;
  }
  return counts;
}

/**
 * Records an attempt's outcome as the service gave it (completion "response" or "callback"), in
 * one command: the processed records, and the failed ones grouped by error. Fenced as a
 * service's own report is (`reportRecords`): only records `sent` under this attempt move, so a
 * processed record stays processed and a late outcome of an older attempt changes nothing.
 * Returns how many records it moved (fewer than the attempt's when some were no longer `sent`).
 */
export async function recordAttemptResults(
  store: Store,
  ref: { jobId: string; chunk: number; attempt: number },
  results: {
    processed: readonly unknown[];
    failed: ReadonlyArray<{ id: unknown; error: string }>;
    /** Records that came with a value: kept (`result`) or refused (`resultError`). */
    values?: ReadonlyArray<{ id: unknown; result: unknown } | { id: unknown; resultError: string }>;
  },
  at: Date,
  /** Every record of the attempt is processed: the fence alone names them, no id list is sent. */
  wholeAttempt = false,
): Promise<number> {
  const fence = { jobId: ref.jobId, chunk: ref.chunk, status: "sent", attempts: ref.attempt };
  const values = results.values ?? [];
  if (wholeAttempt && results.failed.length === 0 && values.length === 0) {
    const res = await store.details.updateMany(fence as Filter<DetailDoc>, {
      $set: { status: "processed", attempt: ref.attempt, processedAt: at },
    });
    return res.matchedCount;
  }
  // A record with a value moves with its value in one update (the fence would not match a
  // second update once the status moved); the others move in groups.
  const valueOf = new Map(values.map((v) => [recordIdKey(v.id), v]));
  const ops: AnyBulkWriteOperation<DetailDoc>[] = [];
  const one = (id: unknown, set: Partial<DetailDoc>) => {
    const v = valueOf.get(recordIdKey(id));
    if (!v) return false;
    ops.push({
      updateOne: {
        filter: { ...fence, recordId: id } as Filter<DetailDoc>,
        update:
          "result" in v
            ? { $set: { ...set, result: v.result }, $unset: { resultError: "" } }
            : { $set: { ...set, resultError: v.resultError }, $unset: { result: "" } },
      },
    });
    return true;
  };
  const processedSet = { status: "processed" as const, attempt: ref.attempt, processedAt: at };
  const plain = results.processed.filter((id) => !one(id, processedSet));
  if (plain.length > 0) {
    ops.push({
      updateMany: {
        filter: { ...fence, recordId: { $in: plain } } as Filter<DetailDoc>,
        update: { $set: processedSet },
      },
    });
  }
  const byError = new Map<string, unknown[]>();
  for (const f of results.failed) {
    if (one(f.id, { status: "failed", attempt: ref.attempt, processedAt: at, error: f.error })) continue;
    const ids = byError.get(f.error);
    if (ids) ids.push(f.id);
    else byError.set(f.error, [f.id]);
  }
  for (const [error, ids] of byError) {
    ops.push({
      updateMany: {
        filter: { ...fence, recordId: { $in: ids } } as Filter<DetailDoc>,
        update: { $set: { status: "failed", attempt: ref.attempt, processedAt: at, error } },
      },
    });
  }
  if (ops.length === 0) return 0;
  const res = await store.details.bulkWrite(ops, { ordered: false });
  return res.matchedCount;
}

/**
 * Completion "status": the service wrote values beside the statuses. A value over the cap is
 * replaced by `resultError` (the record keeps its status: the service did its work). Reads the
 * attempt's records that carry a value, once, when the attempt's records are all reported.
 */
export async function refuseOversizeResults(
  store: Store,
  ref: { jobId: string; chunk: number; attempt: number },
  maxBytes: number,
  bytesOf: (value: unknown) => number,
): Promise<number> {
  const over: unknown[] = [];
  let largest = 0;
  const cursor = store.details.find(
    { jobId: ref.jobId, chunk: ref.chunk, attempts: ref.attempt, result: { $exists: true } },
    { projection: { recordId: 1, result: 1 } },
  );
  for await (const d of cursor) {
    const bytes = bytesOf(d.result);
    if (bytes > maxBytes) {
      over.push(d.recordId);
      largest = Math.max(largest, bytes);
    }
  }
  if (over.length === 0) return 0;
  await store.details.updateMany(
    { jobId: ref.jobId, chunk: ref.chunk, attempts: ref.attempt, recordId: { $in: over } },
    {
      $set: {
        resultError: `result refused: over the cap of ${maxBytes} bytes of BSON (config results.maxBytes; the largest was ${largest}); the record keeps its status, its value is not kept`,
      },
      $unset: { result: "" },
    },
  );
  return over.length;
}

/**
 * Inserts planned records; one already there (a resumed or concurrent planner wrote it first,
 * unique per job and record) counts as inserted.
 */
export async function insertPlannedRecords(store: Store, docs: DetailDoc[]): Promise<void> {
  try {
    await store.details.insertMany(docs, { ordered: false });
  } catch (err) {
    if (!isDuplicateKey(err)) throw err;
  }
}

/**
 * Deletes a job's uncommitted records (chunk ≥ `fromChunk`) that earlier planning epochs wrote:
 * a planner that lost its lease cannot remove what a later planner (epoch ≥ `epoch`) wrote.
 */
export async function deleteUncommittedRecords(
  store: Store,
  jobId: string,
  fromChunk: number,
  epoch: number,
): Promise<void> {
  await store.details.deleteMany({ jobId, chunk: { $gte: fromChunk }, planEpoch: { $not: { $gte: epoch } } });
}

/** The fields stored with these records of a job (file sources keep them with the record). */
export async function readStoredRecordData(
  store: Store,
  jobId: string,
  recordIds: readonly unknown[],
): Promise<Array<Pick<DetailDoc, "recordId" | "data">>> {
  return store.details
    .find({ jobId, recordId: { $in: [...recordIds] } }, { projection: { recordId: 1, data: 1 } })
    .toArray();
}

/** Every job's record document for `recordId` (lineage: which jobs included the record). */
export async function listRecordLineage(store: Store, recordId: unknown): Promise<DetailDoc[]> {
  return store.details.find({ recordId }).toArray();
}
