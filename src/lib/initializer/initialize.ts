/**
 * The initializer step (`batchDataInitializer`): validates the config, creates or resumes the
 * job, streams the source in order with bounded memory (one chunk at a time), writes
 * `batch_details` and `batch_chunks` in bulk, checkpoints its position after every chunk, and
 * hands over to the server. Running it again with the same jobId resumes after the last
 * complete chunk and never duplicates a record.
 */
import { randomBytes } from "node:crypto";
import { EJSON, ObjectId } from "bson";
import { MongoBulkWriteError, MongoServerError } from "mongodb";
import { z } from "zod";
import { loadConfig, resolveHeaders } from "../config/load.js";
import {
  type BatchConfig,
  configHash,
  configNameSchema,
  iterationCount,
  jobIdSchema,
  orderKeyOf,
} from "../config/schema.js";
import { finishJob } from "../dispatch/serve.js";
import { BadInputError } from "../errors.js";
import { type StepDeps, keys } from "../handover/handover.js";
import { withLeaseRenewal } from "../handover/lease.js";
import { planChunksFrom } from "../planning/chunking.js";
import { type Cut, compareCuts, cutAfter, keyFromPayload } from "../planning/cuts.js";
import { type Sample, type Workload, hasCaps, inSample, sampleComplete } from "../planning/workload.js";
import { readKeyType } from "../sources/key-values.js";
import { type SourceRecord, openSource } from "../sources/source.js";
import type { ChunkDoc, DetailDoc, JobDoc } from "../store/store.js";
import { claimWindow } from "../windows/claim-window.js";

/** An order-key value in a payload: plain JSON, or Extended JSON for dates and ObjectIds. */
const keyValueSchema = z
  .unknown()
  .refine((v) => v !== undefined && v !== null, "an order-key value")
  .describe(
    'A value of the order key: a string or number, or Extended JSON like {"$date": "2026-01-01T00:00:00Z"} or {"$oid": "…"}.',
  );

const capField = (what: string) =>
  z
    .number()
    .int()
    .positive()
    .optional()
    .describe(`Most ${what} this job takes (overrides the config's workload). Default: the config's.`);

export const initializePayloadSchema = z
  .object({
    config: configNameSchema.describe("Name of the config in batch_config (its _id)."),
    jobId: jobIdSchema
      .optional()
      .describe("Job id; give the same one again to resume a job. Default: <config>-<UTC time>-<random>."),
    mode: z
      .enum(["full", "incremental", "backfill", "sample", "exceptions"])
      .default("full")
      .describe(
        "full: every matching record present at start; incremental: the records after the config's watermark; backfill: the records between `from` and `to`; sample: every k-th or the first n records; exceptions: the unresolved exceptions of job `fromJob`, sent again. Default: full.",
      ),
    from: keyValueSchema.optional().describe("Backfill: first order-key value included."),
    to: keyValueSchema.optional().describe("Backfill: last order-key value included."),
    again: z
      .boolean()
      .default(false)
      .describe(
        "Backfill: start a new pass over a window that earlier backfill jobs already took. Default: false.",
      ),
    maxRecords: capField("records"),
    maxWeight: z
      .number()
      .positive()
      .optional()
      .describe("Most total weight this job takes. Default: the config's."),
    maxChunks: capField("chunks"),
    iterations: iterationCount
      .default(1)
      .describe(
        "Incremental/backfill: run up to this many consecutive jobs (stops early when nothing is left or a job fails). Default: 1.",
      ),
    sampleEvery: z
      .number()
      .int()
      .min(1)
      .optional()
      .describe("Sample: take every k-th record (the 1st, (k+1)th, …)."),
    sampleFirst: z.number().int().min(1).optional().describe("Sample: take the first n records."),
    fromJob: jobIdSchema.optional().describe("With mode exceptions: the job whose exceptions are requeued."),
    description: z.string().max(2000).optional().describe("What this job is for; shown in job statistics."),
    acceptConfigChange: z
      .boolean()
      .default(false)
      .describe(
        "Resume a job although its config changed since it started (the change is recorded). Default: false.",
      ),
    iteration: z
      .object({ index: z.number().int().min(2), of: z.number().int().min(2), firstJob: jobIdSchema })
      .strict()
      .optional()
      .describe("Set by chunkrelay when one job hands over to the next of its iterations; leave it out."),
  })
  .strict()
  .superRefine((p, ctx) => {
    const bad = (path: string, message: string) => ctx.addIssue({ code: "custom", path: [path], message });
    if ((p.mode === "exceptions") !== (p.fromJob !== undefined))
      bad(
        "fromJob",
        "mode exceptions needs fromJob (the job whose exceptions to requeue), and fromJob needs mode exceptions",
      );
    if (p.mode !== "backfill" && (p.from !== undefined || p.to !== undefined || p.again))
      bad("from", "from, to and again belong to mode backfill");
    if (p.mode === "backfill" && p.from === undefined && p.to === undefined)
      bad("to", "mode backfill needs a window: from and/or to (values of the order key)");
    const capped = p.maxRecords !== undefined || p.maxWeight !== undefined || p.maxChunks !== undefined;
    if ((capped || p.iterations > 1) && p.mode !== "incremental" && p.mode !== "backfill")
      bad(
        "maxRecords",
        "workload caps and iterations belong to modes incremental and backfill (a capped job leaves the rest to the next one); for a small slice use mode sample",
      );
    if (p.mode === "sample" && (p.sampleEvery === undefined) === (p.sampleFirst === undefined))
      bad(
        "sampleEvery",
        "mode sample needs exactly one of sampleEvery (every k-th record) or sampleFirst (the first n)",
      );
    if (p.mode !== "sample" && (p.sampleEvery !== undefined || p.sampleFirst !== undefined))
      bad("sampleEvery", "sampleEvery and sampleFirst belong to mode sample");
  });

export type InitializePayload = z.input<typeof initializePayloadSchema>;
type Payload = z.output<typeof initializePayloadSchema>;

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

/**
 * A full job covers every record of its config, so two at once would send records twice: the
 * config's document in batch_watermarks names its one active job, claimed atomically (two
 * initializers racing on one config: the unique _id lets exactly one upsert win). The claim is
 * released when the job finishes.
 */
async function claimConfig(deps: StepDeps, config: string, jobId: string): Promise<void> {
  // A lock whose job was never created (the initializer died between the two writes) is free
  // after a minute; a created job releases it when it finishes.
  const stale = new Date(deps.now().getTime() - 60_000);
  const holder = await deps.store.watermarks.findOne(
    { _id: config },
    { projection: { activeJob: 1, activeSince: 1 } },
  );
  const orphan =
    holder?.activeJob && holder.activeJob !== jobId && (holder.activeSince ?? new Date(0)) < stale
      ? (await deps.store.jobs.countDocuments({ _id: holder.activeJob })) === 0
      : false;
  const filter = {
    _id: config,
    $or: [
      { activeJob: { $exists: false } },
      { activeJob: null },
      { activeJob: jobId },
      ...(orphan ? [{ activeJob: holder?.activeJob }] : []),
    ],
  };
  for (let tries = 0; tries < 3; tries++) {
    try {
      const res = await deps.store.watermarks.updateOne(
        filter,
        { $set: { activeJob: jobId, activeSince: deps.now() } },
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

/** How a job of this payload is cut, as recorded on the job. */
function partitioningOf(config: BatchConfig, payload: Payload): JobDoc["partitioning"] {
  const chunking = {
    ...(config.chunking.maxRecords !== undefined ? { maxRecords: config.chunking.maxRecords } : {}),
    ...(config.chunking.maxWeight !== undefined ? { maxWeight: config.chunking.maxWeight } : {}),
  };
  const workload = workloadOf(config, payload);
  const sample = sampleOf(payload);
  return {
    orderBy: orderKeyOf(config.source),
    chunking,
    ...(hasCaps(workload) ? { workload } : {}),
    ...(sample ? { sample } : {}),
  };
}

function workloadOf(config: BatchConfig, payload: Payload): Workload {
  if (payload.mode !== "incremental" && payload.mode !== "backfill") return {};
  const pick = <T>(a: T | undefined, b: T | undefined) => a ?? b;
  const w = {
    maxRecords: pick(payload.maxRecords, config.workload.maxRecords),
    maxWeight: pick(payload.maxWeight, config.workload.maxWeight),
    maxChunks: pick(payload.maxChunks, config.workload.maxChunks),
  };
  if (w.maxWeight !== undefined && !config.source.weightField) {
    throw new BadInputError(`a weight cap needs source.weightField in config '${config.name}'`);
  }
  return Object.fromEntries(Object.entries(w).filter(([, v]) => v !== undefined));
}

function sampleOf(payload: Payload): Sample | undefined {
  if (payload.sampleEvery !== undefined) return { every: payload.sampleEvery };
  if (payload.sampleFirst !== undefined) return { first: payload.sampleFirst };
  return undefined;
}

function newJobDoc(
  deps: StepDeps,
  config: BatchConfig,
  payload: Payload,
  now: Date,
  job: Pick<JobDoc, "window" | "description"> & { jobId: string; lane?: JobDoc["lane"] },
): JobDoc {
  return {
    _id: job.jobId,
    config: config.name,
    configHash: configHash(config),
    mode: payload.mode,
    ...(payload.fromJob ? { fromJob: payload.fromJob } : {}),
    ...(payload.mode === "backfill"
      ? {
          backfill: {
            ...(payload.from !== undefined ? { from: keyFromPayload(payload.from) } : {}),
            ...(payload.to !== undefined ? { to: keyFromPayload(payload.to) } : {}),
          },
        }
      : {}),
    description: job.description,
    window: job.window,
    ...(job.lane ? { lane: job.lane } : {}),
    partitioning: partitioningOf(config, payload),
    ...(payload.iteration
      ? { iteration: payload.iteration }
      : payload.iterations > 1
        ? { iteration: { index: 1, of: payload.iterations, firstJob: job.jobId } }
        : {}),
    status: "planning",
    planning: { done: false, nextChunk: 1, records: 0, weight: 0, scanned: 0 },
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

/**
 * The lane of a backfill window, and its current pass. `again` starts a new pass (its jobs take
 * the window from its start again) — refused while a job of the current pass still runs.
 */
async function backfillLane(
  deps: StepDeps,
  config: BatchConfig,
  payload: Payload,
): Promise<{ laneId: string; lower?: Cut; upper?: Cut }> {
  const lower: Cut | undefined =
    payload.from !== undefined ? { key: keyFromPayload(payload.from), keyIncluded: false } : undefined;
  const upper: Cut | undefined =
    payload.to !== undefined ? { key: keyFromPayload(payload.to), keyIncluded: true } : undefined;
  if (lower && upper && compareCuts(lower, upper) > 0) {
    throw new BadInputError(
      `backfill window is empty: from ${EJSON.stringify(lower.key)} is after to ${EJSON.stringify(upper.key)}`,
    );
  }
  const base = `${config.name}:backfill:${EJSON.stringify({ from: lower?.key ?? null, to: upper?.key ?? null }, { relaxed: false })}`;
  const window = { ...(lower ? { from: lower } : {}), ...(upper ? { to: upper } : {}) };
  await deps.store.watermarks
    .updateOne(
      { _id: base },
      {
        $setOnInsert: {
          config: config.name,
          kind: "backfill",
          window,
          generation: 1,
          ...(lower ? { completedUpTo: lower } : {}),
        },
      },
      { upsert: true },
    )
    .catch((err: unknown) => {
      if (!isDuplicateOnly(err)) throw err;
    });
  let lane = await deps.store.watermarks.findOne({ _id: base });
  const laneIdOf = (generation: number) => (generation > 1 ? `${base}#${generation}` : base);
  if (payload.again && !payload.iteration) {
    const generation = lane?.generation ?? 1;
    const running = await deps.store.jobs.findOne(
      { "lane.id": laneIdOf(generation), status: { $in: ["planning", "running"] } },
      { projection: { _id: 1 } },
    );
    if (running) {
      throw new BadInputError(
        `backfill job '${running._id}' of this window is still running; let it finish (or resume it) before starting the window again`,
      );
    }
    await deps.store.watermarks.updateOne(
      { _id: base, generation },
      {
        $set: { generation: generation + 1, completedSeq: 0, ...(lower ? { completedUpTo: lower } : {}) },
        $unset: { claimedSeq: "", claimedUpTo: "", claimedBy: "", ...(lower ? {} : { completedUpTo: "" }) },
      },
    );
    lane = await deps.store.watermarks.findOne({ _id: base });
  }
  return {
    laneId: laneIdOf(lane?.generation ?? 1),
    ...(lower ? { lower } : {}),
    ...(upper ? { upper } : {}),
  };
}

/**
 * With `source.settleMs`, an incremental window ends before the records newer than that: writers
 * elsewhere may still be inserting records with slightly older keys, which a window ending at the
 * newest record would leave behind for good.
 */
async function settleBound(deps: StepDeps, config: BatchConfig, now: Date): Promise<Cut | undefined> {
  const source = config.source;
  if (source.type === "ndjson" || source.type === "csv" || source.settleMs === 0) return undefined;
  const at = new Date(now.getTime() - source.settleMs);
  const type = await readKeyType(deps.store, config);
  switch (type) {
    case undefined:
      return undefined; // no record yet: nothing to leave out
    case "date":
      return { key: at, keyIncluded: false };
    case "objectId":
      return { key: ObjectId.createFromTime(Math.floor(at.getTime() / 1000)), keyIncluded: false };
    case "number":
    case "string":
      throw new BadInputError(
        `source.settleMs of config '${config.name}' needs an order key holding dates or ObjectIds; '${source.orderBy}' holds ${type}s (set settleMs to 0)`,
      );
    default: {
      const never: never = type;
      throw new Error(`unknown key type ${String(never)}`);
    }
  }
}

/** Creates the job (or finds it) and claims its window. */
async function openJob(deps: StepDeps, config: BatchConfig, payload: Payload) {
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
  const description = payload.description ?? config.description;
  const source = openSource(store, config, payload.mode === "exceptions" ? payload.fromJob : undefined);
  const chunking = config.chunking;
  const make = (window: JobDoc["window"], lane?: JobDoc["lane"]) =>
    newJobDoc(deps, config, payload, now, { jobId, description, window, ...(lane ? { lane } : {}) });
  switch (payload.mode) {
    case "exceptions": {
      const fromJob = payload.fromJob as string;
      const from = await store.jobs.findOne({ _id: fromJob }, { projection: { config: 1 } });
      if (!from) throw new BadInputError(`job '${fromJob}' not found; its exceptions cannot be requeued`);
      if (from.config !== config.name) {
        throw new BadInputError(`job '${fromJob}' belongs to config '${from.config}', not '${config.name}'`);
      }
      // The exceptions still unresolved when the job starts; ones resolved meanwhile are skipped.
      const last = await source.lastRecord({});
      return createJob(deps, {
        ...make(last ? { to: cutAfter(last) } : { to: null }),
        description: payload.description ?? `exceptions of ${fromJob}`,
      });
    }
    case "sample": {
      // A sample is a trial: no claim, no watermark; its window is fixed at the newest record now.
      const last = await source.lastRecord({});
      return createJob(deps, make(last ? { to: cutAfter(last) } : { to: null }));
    }
    case "full": {
      await claimConfig(deps, config.name, jobId);
      return claimWindow(store, source, { laneId: config.name, full: true, caps: {}, chunking }, make);
    }
    case "incremental": {
      const upper = await settleBound(deps, config, now);
      return claimWindow(
        store,
        source,
        {
          laneId: config.name,
          full: false,
          caps: workloadOf(config, payload),
          chunking,
          ...(upper ? { upper } : {}),
        },
        make,
      );
    }
    case "backfill": {
      const lane = await backfillLane(deps, config, payload);
      return claimWindow(
        store,
        source,
        { ...lane, full: false, caps: workloadOf(config, payload), chunking },
        make,
      );
    }
    default: {
      const never: never = payload.mode;
      throw new Error(`unknown mode ${String(never)}`);
    }
  }
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

  const weightField = config.source.weightField;
  const source = openSource(store, config, job.mode === "exceptions" ? job.fromJob : undefined);
  const checkpoint: Cut | undefined =
    job.planning.lastKey !== undefined
      ? { key: job.planning.lastKey, id: job.planning.lastId }
      : job.window.from;
  const reading = source.read(
    { ...(checkpoint ? { from: checkpoint } : {}), ...(job.window.to ? { to: job.window.to } : {}) },
    DETAIL_BATCH,
  );
  const sample = job.partitioning.sample;
  // A sample keeps the records at the positions it selects; each kept record notes its position,
  // so the checkpoint can say where the next run goes on. Without a sample, batches pass as they
  // are (no copy per record: allocation rate shows in peak memory).
  type PlannedRecord = SourceRecord & { seq?: number };
  const batches: AsyncIterable<PlannedRecord[]> = sample
    ? (async function* () {
        let index = job.planning.scanned ?? job.planning.records;
        for await (const batch of reading.batches) {
          const kept: PlannedRecord[] = [];
          for (const r of batch) {
            if (sampleComplete(sample, index)) {
              if (kept.length > 0) yield kept;
              return;
            }
            if (inSample(sample, index)) kept.push(Object.assign(r, { seq: index }));
            index++;
          }
          if (kept.length > 0) yield kept;
        }
      })()
    : reading.batches;

  let chunkNo = job.planning.nextChunk;
  let total = job.planning.records;
  let totalWeight = job.planning.weight;
  const firstChunk = chunkNo;
  type Planned = {
    no: number;
    records: PlannedRecord[];
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
            ...(r.data ? { data: r.data } : {}),
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
        lastId: c.records[c.records.length - 1]?.id,
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
            "planning.scanned": lastRecord?.seq !== undefined ? lastRecord.seq + 1 : checkpoint.records,
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
    await reading.close();
  }
}
