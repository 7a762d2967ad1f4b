/**
 * The chunkrelay collections in MongoDB (names by prefix, `batch_` by default), their document
 * shapes, their indexes and the `Store` handle the verbs (the other modules here) take first. Everything a step does per chunk is a conditional update or an
 * indexed query on these; `ensureIndexes` creates the indexes idempotently.
 */
import type { Collection, Db, Document, Filter, IndexDescription, UpdateFilter } from "mongodb";
import type { ChunkStatus } from "../planning/chunk-state.js";
import type { Cut } from "../planning/cuts.js";
import type { Sample, Workload } from "../planning/workload.js";

export type RecordStatus = "pending" | "sent" | "processed" | "failed";
export type JobStatus = "planning" | "running" | "succeeded" | "failed";
export type JobMode = "full" | "incremental" | "backfill" | "sample" | "exceptions";

export interface Lease {
  owner: string;
  expiresAt: Date;
}

export interface ConfigDoc {
  _id: string;
  [key: string]: unknown;
}

/** One record of one job: the document the batch service updates to report progress. */
export interface DetailDoc {
  jobId: string;
  recordId: unknown;
  chunk: number;
  status: RecordStatus;
  /** The latest attempt that included this record (0 until it is first sent). */
  attempts: number;
  /**
   * The attempt a service report is about (optional in the contract). A `failed` report of an
   * attempt older than `attempts` came late and is ignored.
   */
  attempt?: number;
  weight?: number;
  /** The planning epoch that wrote this record (`JobDoc.planning.epoch`). */
  planEpoch?: number;
  /** The fields sent to the service, for records of a file (collections are read at send time). */
  data?: Document;
  sentAt?: Date;
  processedAt?: Date;
  error?: string;
  /**
   * The value the service returned for this record (an outcome entry's `result`, or written by
   * the service in "status" mode), at most the config's `results.maxBytes` of BSON.
   */
  result?: unknown;
  /** Why a value the service returned was not kept (larger than the cap). */
  resultError?: string;
}

/** A chunk sent again on demand (`run-chunk`): which attempt, which records, when, by whom. */
export interface ChunkRerun {
  /** The attempt the rerun sends. */
  attempt: number;
  /** `all`: every record of the chunk; `failed`: only those not processed (failed, set aside). */
  scope: "all" | "failed";
  at: Date;
  by: string;
  /**
   * Scope `failed`: records left out because their exception was resolved (by a human, or by an
   * exceptions job that processed them); sending them would process them twice.
   */
  skip?: unknown[];
}

/** A rerun as the job records it: which chunk, and the job's rerun count. */
export interface JobRerun extends ChunkRerun {
  chunk: number;
  seq: number;
}

export interface ChunkDoc {
  jobId: string;
  chunk: number;
  status: ChunkStatus;
  /** False until the chunk is processed or failed; the claim window starts at the first undone chunk. */
  done: boolean;
  attempt: number;
  /** HTTP tries of the current attempt. */
  deliveryTries: number;
  recordCount: number;
  weight: number;
  firstKey: unknown;
  lastKey: unknown;
  /** Id of the chunk's last record: (lastKey, lastId) is the cut after the chunk. */
  lastId?: unknown;
  configHash: string;
  /** The planning epoch that wrote this chunk (`JobDoc.planning.epoch`). */
  planEpoch?: number;
  lease?: Lease;
  /** Not claimable before this time (delivery backoff). */
  dueAt: Date;
  createdAt: Date;
  sentAt?: Date;
  finishedAt?: Date;
  processedCount?: number;
  failedCount?: number;
  lastError?: string;
  /** How each attempt ended (at most `retry.maxAttempts` entries, plus one per rerun). */
  history?: AttemptEnd[];
  /** The latest rerun on demand (`run-chunk`), while its attempt is the chunk's. */
  rerun?: ChunkRerun;
  /** Every rerun on demand, oldest first (at most the last 20). */
  reruns?: ChunkRerun[];
}

export type AttemptOutcome =
  | "processed"
  | "recordsFailed"
  | "timedOut"
  | "rejected"
  | "deliveryFailed"
  /** The service's outcome (reply or callback) did not match the attempt's records. */
  | "badReply";

export interface AttemptEnd {
  attempt: number;
  outcome: AttemptOutcome;
  at: Date;
}

export interface JobDoc {
  _id: string;
  config: string;
  configHash: string;
  mode: JobMode;
  /** With mode exceptions: the job whose exceptions this one sends again. */
  fromJob?: string;
  /** With mode backfill: the window asked for (order-key values, both included). */
  backfill?: { from?: unknown; to?: unknown };
  description: string;
  /**
   * The records this job covers: above `from`, at or below `to` (cuts on (orderKey, _id)).
   * `to: null` is an empty window (nothing to do); an exceptions job has neither bound.
   */
  window: { from?: Cut; to?: Cut | null };
  /**
   * The lane the window was claimed in (incremental, full and backfill jobs): consecutive jobs
   * of a lane have consecutive `seq` and adjacent windows; `end` is the lane's claimed-up-to cut
   * once this job is in it. Unique on (id, seq) through `claimKey`, which is what makes a claim atomic.
   */
  lane?: { id: string; seq: number; end?: Cut };
  /**
   * The job's slot, unique over all jobs (index `claim`): `lane:<lane id>:<seq>` for a job in a
   * lane, `job:<job id>` outside any lane. Inserting the job is the claim of its lane slot. Set
   * by the store's insert verbs (`claimKeyOf`), never by callers.
   */
  claimKey?: string;
  /** How the job was cut: chunk limits, caps, sample, order key. Recorded for the record. */
  partitioning: {
    orderBy: string;
    chunking: { maxRecords?: number; maxWeight?: number };
    workload?: Workload;
    sample?: Sample;
  };
  /** When one invocation runs several jobs: this is job `index` of at most `of`. */
  iteration?: { index: number; of: number; firstJob: string };
  status: JobStatus;
  /** Planning checkpoint: the initializer resumes after `lastKey` with chunk `nextChunk`. */
  planning: {
    done: boolean;
    lastKey?: unknown;
    lastId?: unknown;
    /** Records of the window read so far (sample positions continue from here). */
    scanned?: number;
    nextChunk: number;
    records: number;
    weight: number;
    /** Claims of the planning so far; what a planner writes carries its epoch. */
    epoch?: number;
  };
  /**
   * End of the job's completed prefix: the cut after its last chunk before the first failed one,
   * or the window's end once every record was processed or its exception resolved.
   */
  completedTo?: Cut;
  /**
   * Set with the final status, removed once everything a finished job entails is done
   * (completion, watermark, requeue resolutions, full-job lock, next iteration): a crash in
   * between leaves it set, and the next step to see the job (a replay, `resume`, the healer)
   * finishes that work.
   */
  unsettled?: boolean;
  /** True once nothing of the window is left unprocessed (all processed, or exceptions resolved). */
  complete?: boolean;
  totals?: { records: number; chunks: number; processed: number; failed: number; exceptions: number };
  /**
   * The job's progress as last counted over its chunks, for dashboards (Trigger.dev run metadata).
   * A cache that nothing decides on: recounted at most every few seconds by whichever step reports
   * progress first, so reporting costs one aggregation per job per period, not one per step.
   */
  progressSnapshot?: {
    at: Date;
    processedRecords: number;
    failedRecords: number;
    doneChunks: number;
    inFlightChunks: number;
  };
  /** Config changes accepted when the job was resumed (`resume --accept-config-change`). */
  configChanges?: Array<{ from: string; to: string; at: Date }>;
  /**
   * The latest rerun on demand (`run-chunk`): the job was reopened to send one chunk again.
   * `seq` counts the job's reruns; finishing is fenced on it, so a step that read the job before
   * a rerun cannot finish the job while the rerun runs.
   */
  rerun?: JobRerun;
  /** Every rerun of the job, oldest first (at most the last 20). */
  reruns?: JobRerun[];
  /**
   * Exceptions jobs sending this job's exceptions again, until they are settled (`job`, and when
   * the claim was made): no chunk of the job is run again meanwhile, so no record goes twice.
   */
  requeues?: Array<{ job: string; at: Date }>;
  /** Held by the initializer while it plans; renewed by heartbeat, taken over when expired. */
  planningLease?: Lease;
  triggeredBy: string;
  createdAt: Date;
  startedAt: Date;
  finishedAt?: Date;
  updatedAt: Date;
  lastError?: string;
}

export interface ExceptionDoc {
  jobId: string;
  config: string;
  recordId: unknown;
  chunk: number;
  attempts: number;
  reason: string;
  createdAt: Date;
  /** Set by a human (`exceptions resolve`) or by the exceptions job that processed the record. */
  resolution?: { note: string; at: Date; byJob?: string };
}

/**
 * One lane of windows: a config's incremental lane (`_id` = the config name), or a backfill
 * window's lane. `completedUpTo` is the watermark: the end of the completed prefix of the lane's
 * jobs, moved only forward and only over processed records. `claimedUpTo` mirrors the newest
 * job's window end for display (the jobs themselves are the claims).
 */
export interface WatermarkDoc {
  _id: string;
  config?: string;
  kind?: "incremental" | "backfill";
  /** The config lane: the one running full job (full jobs run one at a time). */
  activeJob?: string | null;
  activeSince?: Date;
  /** Backfill lanes: the window, and the pass (`--again` starts a new one). */
  window?: { from?: Cut; to?: Cut };
  generation?: number;
  claimedUpTo?: Cut;
  claimedBy?: string;
  claimedSeq?: number;
  completedUpTo?: Cut;
  /** The lane seq of the last job of the completed prefix. */
  completedSeq?: number;
  completedBy?: string;
  completedAt?: Date;
}

export interface TaskStatDoc {
  task: string;
  jobId: string;
  chunk?: number;
  startedAt: Date;
  durationMs: number;
  outcome: string;
}

/** What kind of process a worker is: `chunkrelay run`/`resume`/demo, a Trigger.dev worker, `listen`. */
export type WorkerKind = "local" | "trigger" | "listen";

/**
 * One process that runs pipeline steps (`src/store/workers.ts`). Written by the process itself;
 * ages out `WORKER_TTL_MS` after its last heartbeat (the `expires` TTL index, and the read verbs,
 * which never show an expired one).
 */
export interface WorkerDoc {
  /** `<host>:<pid>:<6 hex>`, chosen once per process (per worker handle). */
  _id: string;
  name: string;
  kind: WorkerKind;
  host: string;
  pid: number;
  startedAt: Date;
  /** The heartbeat interval the worker promised: a reader calls it stale after 3 of them. */
  heartbeatMs: number;
  lastHeartbeat: Date;
  /** `lastHeartbeat` (or `stoppedAt`) + `WORKER_TTL_MS`: when the document may be deleted. */
  expiresAt: Date;
  /** Set by a clean stop; a crashed worker never sets it and shows as stale instead. */
  stoppedAt?: Date;
  /** Chunks this worker finished (closed as processed or failed). */
  chunks: number;
  /** The records of those chunks. */
  records: number;
  /** Of those records, processed by the service. */
  succeeded: number;
  /** Of those records, failed and set aside. */
  failed: number;
}

export interface CollectionNames {
  config: string;
  details: string;
  chunks: string;
  jobs: string;
  watermarks: string;
  exceptions: string;
  taskStats: string;
  workers: string;
}

export const DEFAULT_PREFIX = "batch_";

export function collectionNames(prefix = DEFAULT_PREFIX): CollectionNames {
  return {
    config: `${prefix}config`,
    details: `${prefix}details`,
    chunks: `${prefix}chunks`,
    jobs: `${prefix}jobs`,
    watermarks: `${prefix}watermarks`,
    exceptions: `${prefix}exceptions`,
    taskStats: `${prefix}task_stats`,
    workers: `${prefix}workers`,
  };
}

export class Store {
  readonly names: CollectionNames;
  readonly configs: Collection<ConfigDoc>;
  readonly details: Collection<DetailDoc>;
  readonly chunks: Collection<ChunkDoc>;
  readonly jobs: Collection<JobDoc>;
  readonly exceptions: Collection<ExceptionDoc>;
  readonly watermarks: Collection<WatermarkDoc>;
  readonly taskStats: Collection<TaskStatDoc>;
  readonly workers: Collection<WorkerDoc>;

  constructor(
    readonly db: Db,
    prefix = DEFAULT_PREFIX,
  ) {
    this.names = collectionNames(prefix);
    this.configs = db.collection(this.names.config);
    this.details = db.collection(this.names.details);
    this.chunks = db.collection(this.names.chunks);
    this.jobs = db.collection(this.names.jobs);
    this.exceptions = db.collection(this.names.exceptions);
    this.watermarks = db.collection(this.names.watermarks);
    this.taskStats = db.collection(this.names.taskStats);
    this.workers = db.collection(this.names.workers);
  }

  /**
   * Creates every index chunkrelay relies on; a no-op when they exist. Every index is of a kind
   * all MongoDB implementations we test on build (no partial filter, no TTL, nothing resting on
   * `sparse`, which FerretDB 1.x accepts and ignores), so a database works the same on each.
   */
  async ensureIndexes(): Promise<void> {
    await this.upgradeIndexes();
    // Job indexes that the job list's (field, createdAt, _id) indexes below now cover as prefixes:
    // one index fewer to write per job update each, and the planner has no near-twin to pick.
    for (const name of ["config_created", "created", "status"]) await dropIndexIfPresent(this.jobs, name);
    await Promise.all([
      createEachIndex(this.details, [
        { key: { jobId: 1, recordId: 1 }, name: "job_record", unique: true },
        { key: { jobId: 1, chunk: 1, status: 1 }, name: "job_chunk_status" },
        // Lineage: which jobs included a record.
        { key: { recordId: 1 }, name: "record" },
      ]),
      createEachIndex(this.chunks, [
        { key: { jobId: 1, chunk: 1 }, name: "job_chunk", unique: true },
        { key: { jobId: 1, status: 1, chunk: 1 }, name: "job_status_chunk" },
        { key: { jobId: 1, done: 1, chunk: 1 }, name: "job_done_chunk" },
      ]),
      createEachIndex(this.jobs, [
        // The job list, filtered and paged (`listJobsPage`): each filter's fields, then
        // (createdAt, _id) newest first, so a page is one bounded index walk at any depth. They
        // replace `config_created`, `created` and `status` (dropped above): each of those was a
        // prefix of one of these, and every query on them (the healer's `status $in`, a config's
        // newest jobs) reads as well through the longer index.
        { key: { createdAt: -1, _id: -1 }, name: "created_id" },
        { key: { config: 1, createdAt: -1, _id: -1 }, name: "config_created_id" },
        { key: { status: 1, createdAt: -1, _id: -1 }, name: "status_created_id" },
        { key: { mode: 1, createdAt: -1, _id: -1 }, name: "mode_created_id" },
        { key: { config: 1, status: 1, createdAt: -1, _id: -1 }, name: "config_status_created_id" },
        { key: { config: 1, mode: 1, createdAt: -1, _id: -1 }, name: "config_mode_created_id" },
        // The exceptions jobs of a job (a rerun resolves what it processed in them too).
        { key: { fromJob: 1 }, name: "from_job" },
        // Finished jobs whose settling was interrupted (the healer looks them up).
        { key: { unsettled: 1 }, name: "unsettled", sparse: true },
        // The claim: two initializers taking the next window of one lane cannot both insert seq n
        // (`claimKey` is `lane:<id>:<seq>`; outside a lane it is the job's own id, so every job
        // has one and the index needs no partial filter).
        { key: { claimKey: 1 }, name: "claim", unique: true },
        // A lane's jobs in lane order (the last claimed, the completed prefix).
        { key: { "lane.id": 1, "lane.seq": 1 }, name: "lane_order" },
      ]),
      createEachIndex(this.exceptions, [
        { key: { jobId: 1, recordId: 1 }, name: "job_record", unique: true },
        { key: { config: 1, createdAt: -1 }, name: "config_created" },
        // The job list of every config, newest first, stays one index walk with 10,000s of jobs.
        { key: { createdAt: -1 }, name: "created" },
      ]),
      createEachIndex(this.taskStats, [{ key: { jobId: 1, task: 1 }, name: "job_task" }]),
      createEachIndex(this.workers, [
        // Aged-out workers: the read verbs filter on `expiresAt`, and `registerWorker` deletes
        // what has expired. No TTL option: not every implementation has a TTL monitor (the
        // embedded engine keeps the option but deletes nothing; FerretDB 1.x refuses it).
        { key: { expiresAt: 1 }, name: "expires_at" },
      ]),
    ]);
  }

  /**
   * Brings a database written by an earlier chunkrelay to today's indexes: gives jobs written
   * before `claimKey` theirs (else the unique index would see them all as one null key), then
   * drops the indexes of the old forms — `lane_seq` (partial; its key is `lane_order`'s) and the
   * TTL index `expires`. Idempotent and safe to run from several runners at once.
   */
  private async upgradeIndexes(): Promise<void> {
    await updateEachJob(this.jobs, { claimKey: { $exists: false } }, { lane: 1 }, (job) => ({
      filter: { _id: job._id, claimKey: { $exists: false } },
      update: { $set: { claimKey: claimKeyOf(job) } },
    }));
    await dropIndexIfPresent(this.jobs, "lane_seq");
    await dropIndexIfPresent(this.workers, "expires");
  }
}

/**
 * Applies one update to each job matching `filter` (read with `projection`), in unordered bulk
 * writes of 1,000: memory stays flat however many jobs match. For updates that need each job's
 * own fields — a pipeline update could do them in one command, but not every server has those.
 */
export async function updateEachJob(
  jobs: Collection<JobDoc>,
  filter: Filter<JobDoc>,
  projection: Document,
  updateOf: (job: Pick<JobDoc, "_id" | "lane">) => { filter: Filter<JobDoc>; update: UpdateFilter<JobDoc> },
): Promise<void> {
  const matching = jobs.find(filter, { projection }).batchSize(1000);
  let batch: Array<Pick<JobDoc, "_id" | "lane">> = [];
  const flush = async () => {
    if (batch.length === 0) return;
    await jobs.bulkWrite(
      batch.map((job) => ({ updateOne: updateOf(job) })),
      { ordered: false },
    );
    batch = [];
  };
  try {
    for await (const job of matching) {
      batch.push(job);
      if (batch.length >= 1000) await flush();
    }
    await flush();
  } finally {
    await matching.close();
  }
}

/** A job's `claimKey`: its lane slot, or its own id outside any lane. */
export function claimKeyOf(job: Pick<JobDoc, "_id" | "lane">): string {
  return job.lane ? `lane:${job.lane.id}:${job.lane.seq}` : `job:${job._id}`;
}

/**
 * Creates indexes one command each. One command for several is what the driver would send, but
 * FerretDB 1.x drops the connection when such a command names indexes that all exist already
 * (every start after the first); one index a command is a no-op there, as on MongoDB.
 */
async function createEachIndex<T extends Document>(
  collection: Collection<T>,
  indexes: IndexDescription[],
): Promise<void> {
  for (const index of indexes) await collection.createIndexes([index]);
}

/** Drops an index by name; nothing when the index or its collection does not exist. */
async function dropIndexIfPresent<T extends Document>(
  collection: Collection<T>,
  name: string,
): Promise<void> {
  try {
    await collection.dropIndex(name);
  } catch (err) {
    const code = (err as { code?: unknown }).code;
    // 27 IndexNotFound, 26 NamespaceNotFound (the collection does not exist yet).
    if (code !== 27 && code !== 26) throw err;
  }
}
