/**
 * Verbs on `batch_jobs`. A job's final status is written once, from planning or running, and
 * together with `unsettled`: whatever a finished job entails is then done by whoever sees it
 * next, and `unsettled` is removed only after all of it.
 */
import type { Document } from "bson";
import { type JobDoc, type JobRerun, type Store, claimKeyOf, updateEachJob } from "./store.js";

/** The job with this id, or null. */
export async function readJob(store: Store, jobId: string): Promise<JobDoc | null> {
  return store.jobs.findOne({ _id: jobId });
}

/** Only these fields of the job with this id, or null (less to read where little is needed). */
export async function readJobFields<K extends keyof JobDoc>(
  store: Store,
  jobId: string,
  fields: readonly K[],
): Promise<Pick<JobDoc, K> | null> {
  const projection: Document = {};
  for (const f of fields) projection[f] = 1;
  return store.jobs.findOne({ _id: jobId }, { projection });
}

/**
 * Writes a job's final status, its totals and `unsettled`, in one write; only a job still
 * planning or running whose planning is done matches, so a final status is never overwritten.
 */
export async function finishJobStatus(
  store: Store,
  jobId: string,
  status: "succeeded" | "failed",
  totals: NonNullable<JobDoc["totals"]>,
  now: Date,
  /** The rerun count the finisher saw (`rerun.seq`; undefined: none): a later rerun is not finished. */
  rerunSeq?: number,
): Promise<void> {
  await store.jobs.updateOne(
    {
      _id: jobId,
      status: { $in: ["planning", "running"] },
      "planning.done": true,
      ...(rerunSeq === undefined ? { rerun: { $exists: false } } : { "rerun.seq": rerunSeq }),
    },
    { $set: { status, unsettled: true, finishedAt: now, updatedAt: now, totals } },
  );
}

/**
 * An exceptions job `byJob` claims the exceptions of `fromJob`: recorded on `fromJob` unless a
 * rerun on demand runs it (a rerun and a requeue would send the same records). True when the
 * claim is held (made now, or by an earlier run of the same exceptions job).
 */
export async function claimRequeue(store: Store, fromJob: string, byJob: string, at: Date): Promise<boolean> {
  const res = await store.jobs.updateOne(
    {
      _id: fromJob,
      "requeues.job": { $ne: byJob },
      $or: [{ rerun: { $exists: false } }, { status: { $in: ["succeeded", "failed"] } }],
    },
    { $push: { requeues: { job: byJob, at } } },
  );
  if (res.matchedCount > 0) return true;
  return (await store.jobs.countDocuments({ _id: fromJob, "requeues.job": byJob })) > 0;
}

/** The jobs whose exceptions an exceptions job of `fromJob` resolves: `fromJob` and up its chain. */
export async function listRequeueChain(store: Store, fromJob: string): Promise<string[]> {
  const chain: string[] = [];
  for (let from: string | undefined = fromJob; from && chain.length < 50;) {
    chain.push(from);
    const up: Pick<JobDoc, "mode" | "fromJob"> | null = await readJobFields(store, from, ["mode", "fromJob"]);
    from = up?.mode === "exceptions" ? up.fromJob : undefined;
  }
  return chain;
}

/** Drops an exceptions job's claim on `fromJob` (it is settled, or it was never created). */
export async function releaseRequeue(store: Store, fromJob: string, byJob: string): Promise<void> {
  // By the claim's exact value: `$pull` with a condition is not on every server chunkrelay is
  // tested on (FerretDB 1.x pulls exact values only).
  const job = await store.jobs.findOne({ _id: fromJob }, { projection: { requeues: 1 } });
  for (const claim of job?.requeues ?? []) {
    if (claim.job === byJob) await store.jobs.updateOne({ _id: fromJob }, { $pull: { requeues: claim } });
  }
}

/**
 * Reopens a finished, settled job for a rerun on demand (`run-chunk`): status back to running,
 * the rerun recorded. Only from the state the caller saw (`previousSeq`: the job's rerun count
 * then), so two reruns at once cannot both reopen it. True when it moved.
 */
export async function reopenJobForRerun(
  store: Store,
  jobId: string,
  rerun: JobRerun,
  previousSeq: number | undefined,
  now: Date,
): Promise<boolean> {
  const res = await store.jobs.updateOne(
    {
      _id: jobId,
      status: { $in: ["succeeded", "failed"] },
      unsettled: { $exists: false },
      // No exceptions job holds the job's exceptions (see claimRequeue).
      "requeues.0": { $exists: false },
      ...(previousSeq === undefined ? { rerun: { $exists: false } } : { "rerun.seq": previousSeq }),
    },
    {
      $set: { status: "running", rerun, updatedAt: now },
      $unset: { finishedAt: "" },
      $push: { reruns: { $each: [rerun], $slice: -20 } },
    },
  );
  return res.matchedCount > 0;
}

/** Removes `unsettled`: everything the finished job entails is done. */
export async function markJobSettled(store: Store, jobId: string): Promise<void> {
  await store.jobs.updateOne({ _id: jobId }, { $unset: { unsettled: "" } });
}

/**
 * Takes a job's planning lease for `owner`, starting a new planning epoch: only while planning
 * is not done, and the lease is free, expired, or already this owner's. Null: another holds it.
 */
export async function claimPlanning(
  store: Store,
  claim: { jobId: string; owner: string; now: Date; leaseMs: number },
): Promise<JobDoc | null> {
  const { now, owner } = claim;
  return store.jobs.findOneAndUpdate(
    {
      _id: claim.jobId,
      "planning.done": false,
      $or: [
        { planningLease: { $exists: false } },
        { "planningLease.expiresAt": { $lt: now } },
        { "planningLease.owner": owner },
      ],
    },
    {
      $set: { planningLease: { owner, expiresAt: new Date(now.getTime() + claim.leaseMs) } },
      // Each claim of the planning is a new epoch: what it writes carries it.
      $inc: { "planning.epoch": 1 },
    },
    { returnDocument: "after" },
  );
}

/** Extends the planning lease while `owner` still holds it. */
export async function renewPlanningLease(
  store: Store,
  jobId: string,
  owner: string,
  expiresAt: Date,
): Promise<{ matchedCount: number }> {
  return store.jobs.updateOne(
    { _id: jobId, "planningLease.owner": owner },
    { $set: { "planningLease.expiresAt": expiresAt } },
  );
}

/**
 * Saves a planning checkpoint: only the lease holder, and only in order (the checkpoint this one
 * follows, `planning.nextChunk` = `fromChunk`, must be the saved one). False: the lease was lost.
 */
export async function savePlanningCheckpoint(
  store: Store,
  checkpoint: {
    jobId: string;
    owner: string;
    fromChunk: number;
    lastKey: unknown;
    lastId: unknown;
    scanned: number;
    nextChunk: number;
    records: number;
    weight: number;
    now: Date;
  },
): Promise<boolean> {
  const saved = await store.jobs.updateOne(
    {
      _id: checkpoint.jobId,
      "planning.nextChunk": checkpoint.fromChunk,
      "planningLease.owner": checkpoint.owner,
    },
    {
      $set: {
        "planning.lastKey": checkpoint.lastKey,
        "planning.lastId": checkpoint.lastId,
        "planning.scanned": checkpoint.scanned,
        "planning.nextChunk": checkpoint.nextChunk,
        "planning.records": checkpoint.records,
        "planning.weight": checkpoint.weight,
        updatedAt: checkpoint.now,
      },
    },
  );
  return saved.matchedCount > 0;
}

/**
 * Ends planning (status running, lease dropped): only while the job is planning and `owner`
 * holds the lease, so a stale planner never marks another's planning done.
 */
export async function finishPlanning(store: Store, jobId: string, owner: string, now: Date): Promise<void> {
  await store.jobs.updateOne(
    { _id: jobId, status: "planning", "planningLease.owner": owner },
    { $set: { "planning.done": true, status: "running", updatedAt: now }, $unset: { planningLease: "" } },
  );
}

/** Whether a job with this id exists (at most one document is counted). */
export async function jobExists(store: Store, jobId: string): Promise<boolean> {
  return (await store.jobs.countDocuments({ _id: jobId }, { limit: 1 })) > 0;
}

/**
 * Inserts the job unless one with its id exists (an upsert of `$setOnInsert`): two initializers
 * racing on one job id create one job. True when this call created it.
 */
export async function insertJobUnlessExists(store: Store, job: JobDoc): Promise<boolean> {
  const res = await store.jobs.updateOne(
    { _id: job._id },
    { $setOnInsert: { ...job, claimKey: claimKeyOf(job) } },
    { upsert: true },
  );
  return res.upsertedCount > 0;
}

/**
 * Moves a job to a changed config, recording the change: only from the hash the caller saw, so
 * two resumes accepting changes do not both record one. Null: the job changed meanwhile.
 */
export async function acceptJobConfigChange(
  store: Store,
  jobId: string,
  change: { from: string; to: string; at: Date },
): Promise<JobDoc | null> {
  return store.jobs.findOneAndUpdate(
    { _id: jobId, configHash: change.from },
    { $set: { configHash: change.to, updatedAt: change.at }, $push: { configChanges: change } },
    { returnDocument: "after" },
  );
}

/** A job of this lane still planning or running, if any (only its id). */
export async function findRunningJobInLane(
  store: Store,
  laneId: string,
): Promise<Pick<JobDoc, "_id"> | null> {
  return store.jobs.findOne(
    { "lane.id": laneId, status: { $in: ["planning", "running"] } },
    { projection: { _id: 1 } },
  );
}

/**
 * Lets the planning leases `owner` holds on these jobs lapse now (its steps stopped): another
 * planner may take them over at once. Only the owner's own leases are touched.
 */
export async function expirePlanningLeases(
  store: Store,
  jobIds: readonly string[],
  owner: string,
): Promise<void> {
  await store.jobs.updateMany(
    { _id: { $in: [...jobIds] }, "planningLease.owner": owner },
    { $set: { "planningLease.expiresAt": new Date(0) } },
  );
}

/** Jobs still planning or running, with what the healer looks at. */
export async function listOpenJobs(
  store: Store,
): Promise<Array<Pick<JobDoc, "_id" | "config" | "status" | "planning" | "planningLease">>> {
  return store.jobs
    .find(
      { status: { $in: ["planning", "running"] } },
      { projection: { config: 1, status: 1, planning: 1, planningLease: 1 } },
    )
    .toArray();
}

/**
 * Ids of the jobs still planning or running whose id starts with `prefix` (an anchored prefix
 * query, which the `_id` index serves): the jobs a `listen` for one topic opened.
 */
export async function listOpenJobIdsWithPrefix(store: Store, prefix: string): Promise<string[]> {
  const escaped = prefix.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
  const docs = await store.jobs
    .find(
      { _id: { $regex: `^${escaped}` }, status: { $in: ["planning", "running"] } },
      { projection: { _id: 1 } },
    )
    .toArray();
  return docs.map((d) => d._id);
}

/** Finished jobs still `unsettled` since at or before `finishedBefore` (settling was cut short). */
export async function listUnsettledJobs(
  store: Store,
  finishedBefore: Date,
): Promise<Array<Pick<JobDoc, "_id">>> {
  return store.jobs
    .find({ unsettled: true, finishedAt: { $lte: finishedBefore } }, { projection: { _id: 1 } })
    .toArray();
}

/**
 * Succeeded iterations with records, finished between `from` and `to`: the ones whose next
 * iteration should exist by now.
 */
export async function listFinishedIterations(
  store: Store,
  from: Date,
  to: Date,
): Promise<Array<Pick<JobDoc, "_id" | "iteration">>> {
  return store.jobs
    .find(
      {
        status: "succeeded",
        "iteration.index": { $exists: true },
        finishedAt: { $gte: from, $lte: to },
        "totals.records": { $gt: 0 },
      },
      { projection: { iteration: 1 } },
    )
    .toArray();
}

/** A stream of documents that must be closed when left early. */
export type ClosableStream<T> = AsyncIterable<T> & { close(): Promise<void> };

/** The lane's newest job (highest seq), only its lane fields. */
export async function readLastLaneJob(
  store: Store,
  laneId: string,
): Promise<Pick<JobDoc, "_id" | "lane"> | null> {
  return store.jobs.findOne({ "lane.id": laneId }, { sort: { "lane.seq": -1 }, projection: { lane: 1 } });
}

/**
 * Inserts a job claiming its lane window. The unique `claim` index on `claimKey` (lane id and
 * seq) makes the claim atomic: a duplicate-key error means seq n or the job id was taken.
 */
export async function insertJob(store: Store, job: JobDoc): Promise<void> {
  await store.jobs.insertOne({ ...job, claimKey: claimKeyOf(job) });
}

/** A lane's jobs after `afterSeq`, in lane order, streamed (close it when stopping early). */
export function streamLaneJobs(
  store: Store,
  laneId: string,
  afterSeq: number,
): ClosableStream<Pick<JobDoc, "_id" | "lane" | "status" | "complete" | "completedTo">> {
  return store.jobs
    .find(
      { "lane.id": laneId, "lane.seq": { $gt: afterSeq } },
      { projection: { lane: 1, status: 1, complete: 1, completedTo: 1 } },
    )
    .sort({ "lane.seq": 1 });
}

/** Records how much of a finished job is complete: `completedTo` (removed when undefined) and `complete`. */
export async function saveJobCompletion(
  store: Store,
  jobId: string,
  completedTo: JobDoc["completedTo"],
  complete: boolean,
): Promise<void> {
  await store.jobs.updateOne(
    { _id: jobId },
    completedTo ? { $set: { completedTo, complete } } : { $set: { complete }, $unset: { completedTo: "" } },
  );
}

/**
 * Saves a job's progress snapshot (a cache for dashboards): only a newer count replaces one, so
 * two reporters counting at once never put an older count back.
 */
export async function saveProgressSnapshot(
  store: Store,
  jobId: string,
  snapshot: NonNullable<JobDoc["progressSnapshot"]>,
): Promise<void> {
  await store.jobs.updateOne(
    {
      _id: jobId,
      $or: [{ progressSnapshot: { $exists: false } }, { "progressSnapshot.at": { $lt: snapshot.at } }],
    },
    { $set: { progressSnapshot: snapshot } },
  );
}

/**
 * Fails a config's jobs still planning or running (their runner is gone for good: a demo run
 * supersedes the last one), so none of them holds the config's full-job lock by being open.
 */
export async function failOpenJobsOfConfig(
  store: Store,
  config: string,
  reason: string,
  at: Date,
): Promise<void> {
  await store.jobs.updateMany(
    { config, status: { $in: ["planning", "running"] } },
    { $set: { status: "failed", lastError: reason, finishedAt: at } },
  );
}

/** Takes every job of a config out of its lane (its records were replaced: the windows no longer describe them). */
export async function removeJobsFromLanes(store: Store, config: string): Promise<void> {
  // Each job's claim key goes back to its own id, which needs the id: one update per job.
  await updateEachJob(store.jobs, { config, lane: { $exists: true } }, { _id: 1 }, (job) => ({
    filter: { _id: job._id },
    update: { $unset: { lane: "" }, $set: { claimKey: claimKeyOf({ _id: job._id }) } },
  }));
}

/** The config and config hash of each of these jobs. */
export async function listJobConfigs(
  store: Store,
  jobIds: readonly string[],
): Promise<Array<Pick<JobDoc, "_id" | "config" | "configHash">>> {
  return store.jobs
    .find({ _id: { $in: [...jobIds] } }, { projection: { config: 1, configHash: 1 } })
    .toArray();
}
