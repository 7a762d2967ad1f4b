/**
 * The initializer step (`batchDataInitializer`): validates the config, creates or resumes the
 * job, streams the source in order with bounded memory (one chunk at a time), writes
 * `batch_details` and `batch_chunks` in bulk, checkpoints its position after every chunk, and
 * hands over to the server. Running it again with the same jobId resumes after the last
 * complete chunk and never duplicates a record.
 */
import { randomBytes } from "node:crypto";
import { type Document, type Filter, MongoBulkWriteError, MongoServerError } from "mongodb";
import { z } from "zod";
import { loadConfig, resolveHeaders } from "../config/load.js";
import { type BatchConfig, configHash, configNameSchema, jobIdSchema } from "../config/schema.js";
import { finishJob } from "../dispatch/serve.js";
import { BadInputError } from "../errors.js";
import { type StepDeps, keys } from "../handover/handover.js";
import { withLeaseRenewal } from "../handover/lease.js";
import { planChunksFrom, weightOf } from "../planning/chunking.js";
import type { ChunkDoc, DetailDoc, JobDoc } from "../store/store.js";

export const initializePayloadSchema = z
  .object({
    config: configNameSchema.describe("Name of the config in batch_config (its _id)."),
    jobId: jobIdSchema
      .optional()
      .describe("Job id; give the same one again to resume a job. Default: <config>-<UTC time>-<random>."),
    mode: z
      .enum(["full", "exceptions"])
      .default("full")
      .describe(
        "full: every matching record present at start; exceptions: the unresolved exceptions of job `fromJob`, sent again. Default: full.",
      ),
    fromJob: jobIdSchema.optional().describe("With mode exceptions: the job whose exceptions are requeued."),
    description: z.string().max(2000).optional().describe("What this job is for; shown in job statistics."),
    acceptConfigChange: z
      .boolean()
      .default(false)
      .describe(
        "Resume a job although its config changed since it started (the change is recorded). Default: false.",
      ),
  })
  .strict()
  .refine((p) => (p.mode === "exceptions") === (p.fromJob !== undefined), {
    message:
      "mode exceptions needs fromJob (the job whose exceptions to requeue), and fromJob needs mode exceptions",
    path: ["fromJob"],
  });

export type InitializePayload = z.input<typeof initializePayloadSchema>;

export interface InitializeResult {
  jobId: string;
  resumed: boolean;
  records: number;
  chunks: number;
  status: JobDoc["status"];
}

/**
 * Records per insertMany, per planning group and per source cursor batch. Larger cursor batches
 * (5000) made the driver's reply buffers grow the heap with N: peak RSS at 10·N rose ~45%.
 */
const DETAIL_BATCH = 1000;
/** Planning groups being written while the next is read (memory: this many groups). */
const MAX_GROUPS_IN_FLIGHT = 3;

export function newJobId(configName: string, now: Date): string {
  const stamp = now.toISOString().replace(/[-:]/g, "").replace(/\..*$/, "");
  return `${configName}-${stamp}-${randomBytes(3).toString("hex")}`;
}

const isDuplicateOnly = (err: unknown): boolean => {
  if (err instanceof MongoBulkWriteError) {
    const errors = Array.isArray(err.writeErrors) ? err.writeErrors : [err.writeErrors];
    return errors.length > 0 && errors.every((e: { code?: number }) => e.code === 11000);
  }
  return err instanceof MongoServerError && err.code === 11000;
};

/** Inserts, treating "already there" as success (a resumed or concurrent run wrote it first). */
async function insertIdempotent(insert: () => Promise<unknown>): Promise<void> {
  try {
    await insert();
  } catch (err) {
    if (!isDuplicateOnly(err)) throw err;
  }
}

/** The source query in (orderKey, _id) order, resuming strictly after the checkpoint. */
function sourceQuery(config: BatchConfig, job: JobDoc): Filter<Document> {
  const key = config.source.orderBy;
  const parts: Document[] = [];
  if (Object.keys(config.source.filter).length > 0) parts.push(config.source.filter);
  if (job.window.to !== undefined && job.window.to !== null) parts.push({ [key]: { $lte: job.window.to } });
  const { lastKey, lastId } = job.planning;
  if (lastKey !== undefined) {
    parts.push(
      key === "_id"
        ? { _id: { $gt: lastKey } }
        : { $or: [{ [key]: { $gt: lastKey } }, { [key]: lastKey, _id: { $gt: lastId } }] },
    );
  }
  return (parts.length === 0 ? {} : parts.length === 1 ? parts[0] : { $and: parts }) as Filter<Document>;
}

function getPath(doc: Document, path: string): unknown {
  let cur: unknown = doc;
  for (const seg of path.split(".")) {
    if (cur === null || typeof cur !== "object") return undefined;
    cur = (cur as Record<string, unknown>)[seg];
  }
  return cur;
}

/**
 * A full job covers every record of its config, so two at once would send records twice: the
 * config's document in batch_watermarks names its one active job, claimed atomically (two
 * initializers racing on one config: the unique _id lets exactly one upsert win). The claim is
 * released when the job finishes.
 */
async function claimConfig(deps: StepDeps, config: string, jobId: string): Promise<void> {
  const filter = {
    _id: config,
    $or: [{ activeJob: { $exists: false } }, { activeJob: null }, { activeJob: jobId }],
  };
  for (let tries = 0; tries < 3; tries++) {
    try {
      const res = await deps.store.watermarks.updateOne(
        filter,
        { $set: { activeJob: jobId } },
        { upsert: true },
      );
      if (res.matchedCount + res.upsertedCount > 0) return;
    } catch (err) {
      if (!isDuplicateOnly(err)) throw err;
      // Another initializer created the document first: look at what it claimed.
    }
    const current = await deps.store.watermarks.findOne({ _id: config });
    if (current?.activeJob && current.activeJob !== jobId) {
      throw new BadInputError(
        `config '${config}' already has an active job '${current.activeJob}'; resume it (\`npx chunkrelay resume ${current.activeJob}\`) or wait for it to finish`,
      );
    }
  }
  throw new Error(`could not claim config '${config}' for job ${jobId}`);
}

/**
 * A job resumed under a config that changed since it started continues only when asked to
 * (`acceptConfigChange`); the change is recorded on the job, and each chunk keeps the hash of
 * the config it was sent under, so `status` can show which chunks ran under which config.
 */
async function acceptConfig(
  deps: StepDeps,
  job: JobDoc,
  config: BatchConfig,
  accept: boolean,
): Promise<JobDoc> {
  const hash = configHash(config);
  if (hash === job.configHash || job.status === "succeeded" || job.status === "failed") return job;
  if (!accept) {
    throw new BadInputError(
      `config '${config.name}' changed since job '${job._id}' started (hash ${job.configHash} → ${hash}); resume with --accept-config-change (payload acceptConfigChange: true) to continue under the new config`,
    );
  }
  const change = { from: job.configHash, to: hash, at: deps.now() };
  const updated = await deps.store.jobs.findOneAndUpdate(
    { _id: job._id, configHash: job.configHash },
    { $set: { configHash: hash, updatedAt: change.at }, $push: { configChanges: change } },
    { returnDocument: "after" },
  );
  deps.log.warn(`job ${job._id} continues under a changed config`, change);
  return updated ?? job;
}

/**
 * A job over the unresolved exceptions of an earlier job of the same config: the records a
 * human fixed (or whose service fixed itself) go out again. Resolving the exceptions stays a
 * human decision (`chunkrelay exceptions resolve`); `where` shows the record in both jobs.
 */
async function createExceptionsJob(
  deps: StepDeps,
  config: BatchConfig,
  payload: z.output<typeof initializePayloadSchema>,
  jobId: string,
  now: Date,
) {
  const fromJob = payload.fromJob as string;
  const from = await deps.store.jobs.findOne({ _id: fromJob }, { projection: { config: 1 } });
  if (!from) throw new BadInputError(`job '${fromJob}' not found; its exceptions cannot be requeued`);
  if (from.config !== config.name) {
    throw new BadInputError(`job '${fromJob}' belongs to config '${from.config}', not '${config.name}'`);
  }
  const pending = await deps.store.exceptions.countDocuments({
    jobId: fromJob,
    resolution: { $exists: false },
  });
  return createJob(
    deps,
    newJobDoc(deps, config, now, {
      jobId,
      mode: "exceptions",
      fromJob,
      description: payload.description ?? `exceptions of ${fromJob}`,
      window: pending > 0 ? {} : { to: null },
    }),
  );
}

function newJobDoc(
  deps: StepDeps,
  config: BatchConfig,
  now: Date,
  job: Pick<JobDoc, "mode" | "description" | "window"> & { jobId: string; fromJob?: string },
): JobDoc {
  return {
    _id: job.jobId,
    config: config.name,
    configHash: configHash(config),
    mode: job.mode,
    ...(job.fromJob ? { fromJob: job.fromJob } : {}),
    description: job.description,
    window: job.window,
    status: "planning",
    planning: { done: false, nextChunk: 1, records: 0, weight: 0 },
    triggeredBy: deps.owner,
    createdAt: now,
    startedAt: now,
    updatedAt: now,
  };
}

/** Inserts the job unless it exists: two initializers racing on one jobId create one job. */
async function createJob(deps: StepDeps, job: JobDoc): Promise<{ job: JobDoc; resumed: boolean }> {
  const res = await deps.store.jobs.updateOne({ _id: job._id }, { $setOnInsert: job }, { upsert: true });
  const stored = await deps.store.jobs.findOne({ _id: job._id });
  if (!stored) throw new Error(`job ${job._id} vanished right after it was created`);
  return { job: stored, resumed: res.upsertedCount === 0 };
}

/** Creates the job (or finds it), fixing its window at the newest matching record now. */
async function openJob(
  deps: StepDeps,
  config: BatchConfig,
  payload: z.output<typeof initializePayloadSchema>,
) {
  const { store } = deps;
  const now = deps.now();
  const jobId = payload.jobId ?? newJobId(config.name, now);
  const existing = await store.jobs.findOne({ _id: jobId });
  if (existing) {
    if (existing.config !== config.name) {
      throw new BadInputError(
        `job '${jobId}' belongs to config '${existing.config}', not '${config.name}'; use another jobId`,
      );
    }
    return { job: existing, resumed: true };
  }
  if (payload.mode === "exceptions") return createExceptionsJob(deps, config, payload, jobId, now);
  await claimConfig(deps, config.name, jobId);
  const key = config.source.orderBy;
  const newest = await store.db
    .collection(config.source.collection)
    .find(config.source.filter as Filter<Document>, { projection: { [key]: 1 } })
    .sort({ [key]: -1, _id: -1 })
    .limit(1)
    .next();
  return createJob(
    deps,
    newJobDoc(deps, config, now, {
      jobId,
      mode: payload.mode,
      description: payload.description ?? config.description,
      window: newest ? { to: getPath(newest, key) ?? null } : { to: null },
    }),
  );
}

export async function initializeJob(deps: StepDeps, rawPayload: unknown): Promise<InitializeResult> {
  const parsed = initializePayloadSchema.safeParse(rawPayload);
  if (!parsed.success) {
    throw new BadInputError(
      `initializer payload is invalid: ${parsed.error.issues.map((i) => `${i.path.join(".") || "payload"}: ${i.message}`).join("; ")}`,
    );
  }
  const payload = parsed.data;
  const { store } = deps;
  const config = await loadConfig(store, payload.config);
  // A missing header secret would stop the job at its first chunk: refuse before writing anything.
  resolveHeaders(config, deps.env);
  const opened = await openJob(deps, config, payload);
  const { resumed } = opened;
  const job = resumed ? await acceptConfig(deps, opened.job, config, payload.acceptConfigChange) : opened.job;
  const jobId = job._id;

  if (!job.planning.done) {
    // One initializer plans a job at a time: a second one (a replay, a second runner) leaves it
    // to the owner of the planning lease, unless that lease has expired (the owner died).
    const claimed = await claimPlanning(deps, jobId);
    if (!claimed) {
      deps.log.info(`job ${jobId} is being planned by another runner`, {});
      return {
        jobId,
        resumed: true,
        records: job.planning.records,
        chunks: job.planning.nextChunk - 1,
        status: "planning",
      };
    }
    if (claimed.window.to !== null) {
      const renew = () =>
        store.jobs.updateOne(
          { _id: jobId, "planningLease.owner": deps.owner },
          { $set: { "planningLease.expiresAt": new Date(deps.now().getTime() + deps.leaseMs) } },
        );
      await withLeaseRenewal(deps, "planning", renew, () => planJob(deps, config, claimed));
    }
  }
  const now = deps.now();
  await store.jobs.updateOne(
    { _id: jobId, status: "planning", "planningLease.owner": deps.owner },
    { $set: { "planning.done": true, status: "running", updatedAt: now }, $unset: { planningLease: "" } },
  );
  let final = await store.jobs.findOne({ _id: jobId });
  if (!final) throw new Error(`job ${jobId} vanished`);
  if (final.status === "running" && final.planning.nextChunk === 1) {
    // Nothing to do (e.g. no new records): the job succeeds with zero records right here.
    await finishJob(deps, final);
    final = (await store.jobs.findOne({ _id: jobId })) ?? final;
  } else if (final.status === "planning" || final.status === "running") {
    await deps.handOver.serve({ jobId }, keys.serveAfterPlanning(jobId));
  }
  deps.log.info(`job ${jobId} planned`, {
    records: final.planning.records,
    chunks: final.planning.nextChunk - 1,
  });
  return {
    jobId,
    resumed,
    records: final.planning.records,
    chunks: final.planning.nextChunk - 1,
    status: final.status,
  };
}

async function claimPlanning(deps: StepDeps, jobId: string): Promise<JobDoc | null> {
  const now = deps.now();
  return deps.store.jobs.findOneAndUpdate(
    {
      _id: jobId,
      "planning.done": false,
      $or: [
        { planningLease: { $exists: false } },
        { "planningLease.expiresAt": { $lt: now } },
        { "planningLease.owner": deps.owner },
      ],
    },
    { $set: { planningLease: { owner: deps.owner, expiresAt: new Date(now.getTime() + deps.leaseMs) } } },
    { returnDocument: "after" },
  );
}

async function planJob(deps: StepDeps, config: BatchConfig, job: JobDoc): Promise<void> {
  const { store } = deps;
  const jobId = job._id;
  const hash = configHash(config);
  // A crash may have left part of the chunk after the checkpoint: remove it and cut it again.
  await store.details.deleteMany({ jobId, chunk: { $gte: job.planning.nextChunk } });
  await store.chunks.deleteMany({ jobId, chunk: { $gte: job.planning.nextChunk } });

  const key = config.source.orderBy;
  const weightField = config.source.weightField;
  const projection: Document = { _id: 1, [key]: 1 };
  if (weightField) projection[weightField] = 1;
  // Full jobs read the source in order; exceptions jobs read the earlier job's exceptions in
  // record-id order (their fields are read from the source when each chunk is sent).
  const fromExceptions = job.mode === "exceptions";
  const cursor = fromExceptions
    ? store.exceptions
        .find(
          {
            jobId: job.fromJob,
            resolution: { $exists: false },
            ...(job.planning.lastKey !== undefined ? { recordId: { $gt: job.planning.lastKey } } : {}),
          },
          { projection: { _id: 1, recordId: 1 }, batchSize: DETAIL_BATCH },
        )
        .sort({ recordId: 1 })
    : store.db
        .collection(config.source.collection)
        .find(sourceQuery(config, job), { projection, batchSize: DETAIL_BATCH })
        .sort({ [key]: 1, _id: 1 });
  // Whole cursor batches at a time: one await per batch of records, not one per record.
  const batches = (async function* () {
    while (await cursor.hasNext()) {
      yield cursor.readBufferedDocuments().map((doc: Document) =>
        fromExceptions
          ? { id: doc.recordId as unknown, key: doc.recordId as unknown, weight: 0 }
          : {
              id: doc._id as unknown,
              key: getPath(doc, key),
              weight: weightField ? weightOf(getPath(doc, weightField)) : 0,
            },
      );
    }
  })();

  let chunkNo = job.planning.nextChunk;
  let total = job.planning.records;
  let totalWeight = job.planning.weight;
  const firstChunk = chunkNo;
  type Planned = {
    no: number;
    records: Array<{ id: unknown; key: unknown; weight: number }>;
    weight: number;
  };

  // Small chunks are written in groups of about DETAIL_BATCH records (one insertMany for their
  // records, one for their chunk documents, one checkpoint), so the per-chunk cost stays a
  // fraction of a round trip. A group's writes overlap reading the next; at most
  // MAX_GROUPS_IN_FLIGHT groups are held (bounded memory). Checkpoints stay in order — each waits for the previous
  // one — and a crash leaves only chunks past the checkpoint, which the next run cuts again.
  let previous: Promise<void> = Promise.resolve();
  const outstanding: Promise<void>[] = [];
  const writeGroup = (group: Planned[]) => {
    const now = deps.now();
    const last = group[group.length - 1] as Planned;
    const lastRecord = last.records[last.records.length - 1];
    const checkpoint = { records: total, weight: totalWeight };
    const before = previous;
    const done = (async () => {
      const details: DetailDoc[] = [];
      const writes: Array<Promise<void>> = [];
      const flushDetails = () => {
        const docs = details.splice(0);
        if (docs.length > 0)
          writes.push(insertIdempotent(() => store.details.insertMany(docs, { ordered: false })));
      };
      for (const c of group) {
        for (const r of c.records) {
          details.push({
            jobId,
            recordId: r.id,
            chunk: c.no,
            status: "pending",
            attempts: 0,
            ...(weightField ? { weight: r.weight } : {}),
          });
          if (details.length >= DETAIL_BATCH) flushDetails();
        }
      }
      flushDetails();
      const chunkDocs: ChunkDoc[] = group.map((c) => ({
        jobId,
        chunk: c.no,
        status: "pending",
        done: false,
        attempt: 1,
        deliveryTries: 0,
        recordCount: c.records.length,
        weight: c.weight,
        firstKey: c.records[0]?.key ?? null,
        lastKey: c.records[c.records.length - 1]?.key ?? null,
        configHash: hash,
        dueAt: now,
        createdAt: now,
      }));
      writes.push(insertIdempotent(() => store.chunks.insertMany(chunkDocs, { ordered: false })));
      await Promise.all(writes);
      await before;
      const firstNo = (group[0] as Planned).no;
      const saved = await store.jobs.updateOne(
        { _id: jobId, "planning.nextChunk": firstNo, "planningLease.owner": deps.owner },
        {
          $set: {
            "planning.lastKey": lastRecord?.key ?? null,
            "planning.lastId": lastRecord?.id,
            "planning.nextChunk": last.no + 1,
            "planning.records": checkpoint.records,
            "planning.weight": checkpoint.weight,
            updatedAt: now,
          },
        },
      );
      if (saved.matchedCount === 0) {
        throw new Error(`job ${jobId}: the planning lease was lost to another runner; stopping this one`);
      }
      // Start serving while planning goes on: the first chunk need not wait for the last.
      if (firstNo === firstChunk) await deps.handOver.serve({ jobId }, `serve:${jobId}:first-chunk`);
    })();
    done.catch(() => undefined); // observed below, when it is awaited in order
    previous = done;
    outstanding.push(done);
  };

  let group: Planned[] = [];
  let groupRecords = 0;
  try {
    for await (const records of planChunksFrom(batches, config.chunking)) {
      const weight = records.reduce((w, r) => w + r.weight, 0);
      group.push({ no: chunkNo++, records, weight });
      groupRecords += records.length;
      total += records.length;
      totalWeight += weight;
      if (groupRecords >= DETAIL_BATCH) {
        writeGroup(group);
        group = [];
        groupRecords = 0;
        if (outstanding.length >= MAX_GROUPS_IN_FLIGHT) await outstanding.shift();
      }
    }
    if (group.length > 0) writeGroup(group);
    while (outstanding.length > 0) await outstanding.shift();
  } finally {
    await Promise.allSettled(outstanding);
    await cursor.close();
  }
}
