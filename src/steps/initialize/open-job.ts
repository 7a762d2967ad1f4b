/**
 * Opening a job: finding it again (same jobId: a resume or a replay), or creating it with its
 * window claimed — the config's one active full job, the next window of the config's incremental
 * lane (capped by the workload, short of records still settling), the next window of a backfill
 * lane, a sample's fixed window, or the exceptions of an earlier job. Also what the job records
 * about itself: mode, window, lane, partitioning, iteration.
 */
import { randomBytes } from "node:crypto";
import { EJSON, ObjectId } from "bson";
import { type BatchConfig, carriesData, configHash, orderKeyOf } from "../../config/schema.js";
import { BadInputError, isBadInput } from "../../common/errors.js";
import type { StepDeps } from "../handover.js";
import { type Cut, compareCuts, cutAfter, keyFromPayload } from "../../planning/cuts.js";
import { type Sample, type Workload, hasCaps } from "../../planning/workload.js";
import { parseKeyArgument, readKeyType } from "../../sources/key-values.js";
import { openSource } from "../../sources/open-source.js";
import { claimRequeueChain } from "../../jobs/requeue-claims.js";
import { findFullJobLockHolder } from "../../jobs/full-job-lock.js";
import {
  acceptJobConfigChange,
  findRunningJobInLane,
  insertJobUnlessExists,
  jobExists,
  readJob,
  readJobFields,
} from "../../store/jobs.js";
import {
  clearFullJobLock,
  deleteLockOnlyLane,
  ensureBackfillLane,
  readLane,
  releaseFullJobLock,
  startLanePass,
  takeFullJobLock,
} from "../../store/lanes.js";
import type { JobDoc } from "../../store/store.js";
import { claimWindow } from "../../lanes/claim-window.js";
import type { InitializeRequest } from "./payload.js";

/** A new job's id: its config, the time it was asked for, and a random suffix. */
export function newJobId(configName: string, now: Date): string {
  const stamp = now.toISOString().replace(/[-:]/g, "").replace(/\..*$/, "");
  return `${configName}-${stamp}-${randomBytes(3).toString("hex")}`;
}

/**
 * A full job covers every record of its config, so two at once would send records twice: the
 * config's document in batch_watermarks names its one active job, claimed atomically (two
 * initializers racing on one config: the unique _id lets exactly one upsert win). The claim is
 * released when the job finishes.
 */
async function claimConfig(deps: StepDeps, config: string, jobId: string): Promise<void> {
  // A lock whose job was never created (the initializer died between the two writes) is free
  // after a minute; a created job releases it when it finishes (the rule: full-job-lock.ts).
  const { store } = deps;
  const found = await findFullJobLockHolder(store, config, jobId, deps.now());
  const orphan = found && "orphan" in found ? found.orphan : undefined;
  for (let tries = 0; tries < 3; tries++) {
    // False also when another initializer created the document first: look at what it claimed.
    const lock = { config, jobId, now: deps.now(), ...(orphan !== undefined ? { orphan } : {}) };
    if (await takeFullJobLock(store, lock)) return;
    const current = await readLane(store, config);
    if (current?.activeJob && current.activeJob !== jobId) {
      const since = current.activeSince ?? new Date(0);
      if (!(await jobExists(store, current.activeJob))) {
        // Claimed by a run that has not created its job: one starting right now, or one that
        // stopped in between (its claim lapses a minute after it was made).
        throw new BadInputError(
          `config '${config}' is claimed by job '${current.activeJob}', which does not exist (yet): another run is starting it, or stopped before creating it; try again after ${new Date(since.getTime() + 60_000).toISOString()}`,
        );
      }
      throw new BadInputError(
        `config '${config}' already has an active job '${current.activeJob}'; resume it (\`npx chunkrelay resume ${current.activeJob}\`, or on Trigger.dev run batch-data-initializer with ${JSON.stringify({ config, jobId: current.activeJob })}) or wait for it to finish`,
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
export async function acceptConfig(
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
  const updated = await acceptJobConfigChange(deps.store, job._id, change);
  deps.log.warn(`job ${job._id} continues under a changed config`, change);
  return updated ?? job;
}

/** How a job of this payload is cut, as recorded on the job. */
function partitioningOf(config: BatchConfig, payload: InitializeRequest): JobDoc["partitioning"] {
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

function workloadOf(config: BatchConfig, payload: InitializeRequest): Workload {
  if (payload.mode !== "incremental" && payload.mode !== "backfill") return {};
  // A cap given for this run wins over the config's.
  const w = {
    maxRecords: payload.maxRecords ?? config.workload.maxRecords,
    maxWeight: payload.maxWeight ?? config.workload.maxWeight,
    maxChunks: payload.maxChunks ?? config.workload.maxChunks,
  };
  if (w.maxWeight !== undefined && !config.source.weightField) {
    throw new BadInputError(`a weight cap needs source.weightField in config '${config.name}'`);
  }
  return Object.fromEntries(Object.entries(w).filter(([, v]) => v !== undefined));
}

function sampleOf(payload: InitializeRequest): Sample | undefined {
  if (payload.sampleEvery !== undefined)
    return { every: payload.sampleEvery, ...(payload.sampleOffset ? { offset: payload.sampleOffset } : {}) };
  if (payload.sampleFirst !== undefined) return { first: payload.sampleFirst };
  return undefined;
}

function newJobDoc(
  deps: StepDeps,
  config: BatchConfig,
  payload: InitializeRequest,
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
  const created = await insertJobUnlessExists(deps.store, job);
  const stored = await readJob(deps.store, job._id);
  if (!stored) throw new Error(`job ${job._id} vanished right after it was created`);
  return { job: stored, resumed: !created };
}

/**
 * Backfill bounds typed as text (a dashboard payload `"from": "2026-01-01"`) are read in the order
 * key's stored type, as on the command line; a string compared with dates would match nothing.
 * Extended JSON values (`{"$date": …}`) and numbers are taken as they are.
 */
async function typeBounds(
  deps: StepDeps,
  config: BatchConfig,
  request: InitializeRequest,
): Promise<InitializeRequest> {
  const typed = async (value: NonNullable<InitializeRequest["from"]>, what: string) =>
    typeof value === "string"
      ? ((await parseKeyArgument(deps.store, config, value, what)) as NonNullable<InitializeRequest["from"]>)
      : value;
  return {
    ...request,
    ...(request.from !== undefined ? { from: await typed(request.from, "from") } : {}),
    ...(request.to !== undefined ? { to: await typed(request.to, "to") } : {}),
  };
}

/**
 * The lane of a backfill window, and its current pass. `again` starts a new pass (its jobs take
 * the window from its start again) — refused while a job of the current pass still runs.
 */
async function backfillLane(
  deps: StepDeps,
  config: BatchConfig,
  payload: InitializeRequest,
): Promise<{ laneId: string; lower?: Cut; upper?: Cut }> {
  const lower: Cut | undefined =
    payload.from !== undefined ? { key: keyFromPayload(payload.from), keyIncluded: false } : undefined;
  const upper: Cut | undefined =
    payload.to !== undefined ? { key: keyFromPayload(payload.to), keyIncluded: true } : undefined;
  // Offset vectors of a Kafka topic are bounds per partition, not points in one order: an empty
  // range of one partition is no error (the job takes the others').
  if (lower && upper && config.source.type !== "kafka" && compareCuts(lower, upper) > 0) {
    throw new BadInputError(
      `backfill window is empty: from ${EJSON.stringify(lower.key)} is after to ${EJSON.stringify(upper.key)}`,
    );
  }
  const base = `${config.name}:backfill:${EJSON.stringify({ from: lower?.key ?? null, to: upper?.key ?? null }, { relaxed: false })}`;
  const window = { ...(lower ? { from: lower } : {}), ...(upper ? { to: upper } : {}) };
  await ensureBackfillLane(deps.store, {
    id: base,
    config: config.name,
    window,
    ...(lower ? { lower } : {}),
  });
  let lane = await readLane(deps.store, base);
  const laneIdOf = (generation: number) => (generation > 1 ? `${base}#${generation}` : base);
  if (payload.again && !payload.iteration) {
    const generation = lane?.generation ?? 1;
    const running = await findRunningJobInLane(deps.store, laneIdOf(generation));
    if (running) {
      throw new BadInputError(
        `backfill job '${running._id}' of this window is still running; let it finish (or resume it) before starting the window again`,
      );
    }
    await startLanePass(deps.store, base, generation, lower);
    lane = await readLane(deps.store, base);
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
  if (carriesData(source) || source.settleMs === 0) return undefined;
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
export async function openJob(deps: StepDeps, config: BatchConfig, request: InitializeRequest) {
  const { store } = deps;
  const payload = request.mode === "backfill" ? await typeBounds(deps, config, request) : request;
  const now = deps.now();
  const jobId = payload.jobId ?? newJobId(config.name, now);
  const existing = await readJob(store, jobId);
  if (existing) {
    if (existing.config !== config.name) {
      throw new BadInputError(
        `job '${jobId}' belongs to config '${existing.config}', not '${config.name}'; use another jobId`,
      );
    }
    if (existing.mode === "full" && (existing.status === "succeeded" || existing.status === "failed")) {
      // A run of this job that stalled before its claim may have woken after the job finished,
      // taken the lock again and died before it released it (found by the simulation, seed 503
      // of the completion modes): a finished job holds no lock, whoever replays it.
      await releaseFullJobLock(store, config.name, jobId);
    }
    return { job: existing, resumed: true };
  }
  const description = payload.description ?? config.description;
  const source = openSource(store, config, payload.mode === "exceptions" ? payload.fromJob : undefined);
  const chunking = config.chunking;
  const make = (window: JobDoc["window"], lane?: JobDoc["lane"]) =>
    newJobDoc(deps, config, payload, now, { jobId, description, window, ...(lane ? { lane } : {}) });
  try {
    switch (payload.mode) {
      case "exceptions": {
        const fromJob = payload.fromJob as string;
        const from = await readJobFields(store, fromJob, ["config"]);
        if (!from) throw new BadInputError(`job '${fromJob}' not found; its exceptions cannot be requeued`);
        if (from.config !== config.name) {
          throw new BadInputError(
            `job '${fromJob}' belongs to config '${from.config}', not '${config.name}'`,
          );
        }
        // Its exceptions are claimed up the chain (a requeue of a requeue resolves them all):
        // none of those jobs runs a chunk again on demand meanwhile.
        await claimRequeueChain(deps, fromJob, jobId);
        // The exceptions still unresolved when the job starts; ones resolved meanwhile are skipped.
        const last = await source.lastRecord({});
        return await createJob(deps, {
          ...make(last ? { to: cutAfter(last) } : { to: null }),
          description: payload.description ?? `exceptions of ${fromJob}`,
        });
      }
      case "sample": {
        // A sample is a trial: no claim, no watermark; its window is fixed at the newest record now.
        const last = await source.lastRecord({});
        return await createJob(deps, make(last ? { to: cutAfter(last) } : { to: null }));
      }
      case "full": {
        await claimConfig(deps, config.name, jobId);
        try {
          const opened = await claimWindow(
            store,
            source,
            { laneId: config.name, full: true, caps: {}, chunking },
            make,
          );
          if (opened.job.status === "succeeded" || opened.job.status === "failed") {
            // A replay that stalled before its claim woke after its job had run and released the
            // lock (found by the simulation, seed 7300): the claim it just made would hold the
            // config for good. A finished job holds no lock.
            await releaseFullJobLock(store, config.name, jobId);
          }
          return opened;
        } catch (err) {
          // Refused before its job existed (a filter the server refuses, an order key no record
          // has): the lock goes at once, or the next run would be told to resume a job that does
          // not exist. A refusal is the same for every run of this payload, so no replay of it can
          // be creating the job meanwhile.
          if (isBadInput(err) && !(await jobExists(store, jobId))) {
            // A lane document this claim created holds nothing but the lock: it goes too.
            if (!(await deleteLockOnlyLane(store, config.name, jobId))) {
              await clearFullJobLock(store, config.name, jobId);
            }
          }
          throw err;
        }
      }
      case "incremental": {
        const upper = await settleBound(deps, config, now);
        return await claimWindow(
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
        return await claimWindow(
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
  } finally {
    await source.close();
  }
}
