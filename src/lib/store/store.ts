/**
 * The chunkrelay collections in MongoDB (names by prefix, `batch_` by default), their document
 * shapes and their indexes. Everything a step does per chunk is a conditional update or an
 * indexed query on these; `ensureIndexes` creates the indexes idempotently.
 */
import { type Collection, type Db, MongoClient } from "mongodb";

export type ChunkStatus = "pending" | "dispatching" | "sent" | "processed" | "failed";
export type RecordStatus = "pending" | "sent" | "processed" | "failed";
export type JobStatus = "planning" | "running" | "succeeded" | "failed";
export type JobMode = "full" | "exceptions";

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
  /** Attempts that included this record. */
  attempts: number;
  weight?: number;
  sentAt?: Date;
  processedAt?: Date;
  error?: string;
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
  configHash: string;
  lease?: Lease;
  /** Not claimable before this time (delivery backoff). */
  dueAt: Date;
  createdAt: Date;
  sentAt?: Date;
  finishedAt?: Date;
  processedCount?: number;
  failedCount?: number;
  lastError?: string;
}

export interface JobDoc {
  _id: string;
  config: string;
  configHash: string;
  mode: JobMode;
  /** With mode exceptions: the job whose exceptions this one sends again. */
  fromJob?: string;
  description: string;
  window: { from?: unknown; to?: unknown };
  status: JobStatus;
  /** Planning checkpoint: the initializer resumes after `lastKey` with chunk `nextChunk`. */
  planning: {
    done: boolean;
    lastKey?: unknown;
    lastId?: unknown;
    nextChunk: number;
    records: number;
    weight: number;
  };
  totals?: { records: number; chunks: number; processed: number; failed: number; exceptions: number };
  /** Config changes accepted when the job was resumed (`resume --accept-config-change`). */
  configChanges?: Array<{ from: string; to: string; at: Date }>;
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
  resolution?: { note: string; at: Date };
}

/** Per config: the job currently holding it (full jobs run one at a time) and the watermark. */
export interface WatermarkDoc {
  _id: string;
  activeJob?: string | null;
  /** End of the completed prefix, on the config's order key. */
  completedUpTo?: unknown;
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

export interface CollectionNames {
  config: string;
  details: string;
  chunks: string;
  jobs: string;
  watermarks: string;
  exceptions: string;
  taskStats: string;
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
  }

  /** Creates every index chunkrelay relies on; a no-op when they exist. */
  async ensureIndexes(): Promise<void> {
    await Promise.all([
      this.details.createIndexes([
        { key: { jobId: 1, recordId: 1 }, name: "job_record", unique: true },
        { key: { jobId: 1, chunk: 1, status: 1 }, name: "job_chunk_status" },
        // Lineage: which jobs included a record.
        { key: { recordId: 1 }, name: "record" },
      ]),
      this.chunks.createIndexes([
        { key: { jobId: 1, chunk: 1 }, name: "job_chunk", unique: true },
        { key: { jobId: 1, status: 1, chunk: 1 }, name: "job_status_chunk" },
        { key: { jobId: 1, done: 1, chunk: 1 }, name: "job_done_chunk" },
      ]),
      this.jobs.createIndexes([
        { key: { config: 1, createdAt: -1 }, name: "config_created" },
        { key: { status: 1 }, name: "status" },
      ]),
      this.exceptions.createIndexes([
        { key: { jobId: 1, recordId: 1 }, name: "job_record", unique: true },
        { key: { config: 1, createdAt: -1 }, name: "config_created" },
      ]),
      this.taskStats.createIndexes([{ key: { jobId: 1, task: 1 }, name: "job_task" }]),
    ]);
  }
}

/** The database named in the URI's path, or `chunkrelay`. */
export function databaseNameOf(uri: string, fallback = "chunkrelay"): string {
  const match = /^mongodb(?:\+srv)?:\/\/[^/]+\/([^?]*)/.exec(uri);
  const name = match?.[1] ? decodeURIComponent(match[1]) : "";
  return name || fallback;
}

/** Removes the password from a MongoDB URI before it is printed anywhere. */
export function redactUri(uri: string): string {
  return uri.replace(/^(mongodb(?:\+srv)?:\/\/)([^@/]*)@/, (_m, scheme: string, auth: string) => {
    const user = auth.split(":")[0] ?? "";
    return `${scheme}${user ? `${user}:***` : "***"}@`;
  });
}

/** Opens a client, runs `fn` with the store, and always closes the client. */
export async function withMongo<T>(
  uri: string,
  fn: (store: Store, client: MongoClient) => Promise<T>,
): Promise<T> {
  // 10 s to find the server unless the URI says otherwise.
  const client = new MongoClient(
    uri,
    /serverSelectionTimeoutMS=/i.test(uri) ? {} : { serverSelectionTimeoutMS: 10_000 },
  );
  try {
    await client.connect();
    const store = new Store(client.db(databaseNameOf(uri)));
    await store.ensureIndexes();
    return await fn(store, client);
  } finally {
    await client.close();
  }
}

/** The same URI pointing at another database (query options kept). */
export function uriWithDatabase(uri: string, db: string): string {
  const m = /^(mongodb(?:\+srv)?:\/\/[^/?]+)(\/[^?]*)?(\?.*)?$/.exec(uri);
  if (!m) throw new Error(`not a MongoDB URI: ${redactUri(uri)}`);
  return `${m[1]}/${encodeURIComponent(db)}${m[3] ?? ""}`;
}
