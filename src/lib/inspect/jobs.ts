/**
 * What a job is and did, read from the chunkrelay collections: the job list, one job's report
 * (times, config and its drift, counts, rate, chunk table, step statistics), and deleting a job's
 * documents. Every query is by job id or config on an index.
 */
import { loadConfig } from "../config/load.js";
import { configHash, orderKeyOf } from "../config/schema.js";
import { openSource } from "../sources/source.js";
import { BadInputError } from "../errors.js";
import { type JobProgress, readJobProgress } from "../runner/progress.js";
import type { ChunkDoc, JobDoc, Store } from "../store/store.js";
import { type StepSummary, stepStats } from "./step-stats.js";

export interface JobListing {
  jobId: string;
  config: string;
  mode: JobDoc["mode"];
  status: JobDoc["status"];
  description: string;
  records: number;
  processed: number;
  exceptions: number;
  createdAt: Date;
  finishedAt?: Date;
  durationMs?: number;
}

export async function listJobs(
  store: Store,
  options: { config?: string; limit?: number } = {},
): Promise<JobListing[]> {
  const jobs = await store.jobs
    .find(options.config ? { config: options.config } : {})
    .sort({ createdAt: -1 })
    .limit(options.limit ?? 50)
    .toArray();
  return jobs.map((j) => ({
    jobId: j._id,
    config: j.config,
    mode: j.mode,
    status: j.status,
    description: j.description,
    records: j.totals?.records ?? j.planning.records,
    processed: j.totals?.processed ?? 0,
    exceptions: j.totals?.exceptions ?? 0,
    createdAt: j.createdAt,
    ...(j.finishedAt
      ? { finishedAt: j.finishedAt, durationMs: j.finishedAt.getTime() - j.startedAt.getTime() }
      : {}),
  }));
}

export interface JobReport {
  job: JobDoc;
  progress: JobProgress;
  /** The hash of the config as it is now (undefined when the config is gone or invalid). */
  currentConfigHash?: string;
  /** Where the records come from, per the config as it is now. */
  source?: { description: string; orderBy: string; filter?: Record<string, unknown> };
  /** Chunks sent under another config than the job's current one (after a config change). */
  driftedChunks: number[];
  exceptions: number;
  recordsPerSecond: number;
  chunks: Array<Omit<ChunkDoc, "lease">>;
  steps: StepSummary[];
}

export async function jobReport(store: Store, jobId: string): Promise<JobReport> {
  const job = await store.jobs.findOne({ _id: jobId });
  if (!job) throw new BadInputError(`job '${jobId}' not found; list jobs with \`npx chunkrelay jobs\``);
  const [progress, chunks, exceptions, steps] = await Promise.all([
    readJobProgress(store, jobId),
    store.chunks
      .find({ jobId }, { projection: { _id: 0, lease: 0 } })
      .sort({ chunk: 1 })
      .toArray(),
    store.exceptions.countDocuments({ jobId }),
    stepStats(store, { jobId }),
  ]);
  let currentConfigHash: string | undefined;
  let source: JobReport["source"];
  try {
    const config = await loadConfig(store, job.config);
    currentConfigHash = configHash(config);
    source = {
      description: openSource(store, config, job.mode === "exceptions" ? job.fromJob : undefined).description,
      orderBy: orderKeyOf(config.source),
      ...("filter" in config.source ? { filter: config.source.filter } : {}),
    };
  } catch {
    currentConfigHash = undefined;
  }
  const driftedChunks = chunks
    .filter((c) => c.sentAt !== undefined && c.configHash !== job.configHash)
    .map((c) => c.chunk);
  const end = job.finishedAt ?? new Date();
  const secs = (end.getTime() - job.startedAt.getTime()) / 1000;
  const done = progress.processedRecords + progress.failedRecords;
  return {
    job,
    progress,
    ...(currentConfigHash ? { currentConfigHash } : {}),
    ...(source ? { source } : {}),
    driftedChunks,
    exceptions,
    recordsPerSecond: secs > 0 ? Math.round(done / secs) : 0,
    chunks,
    steps,
  };
}

export interface DeletePlan {
  jobId: string;
  details: number;
  chunks: number;
  exceptions: number;
  taskStats: number;
  job: number;
}

/**
 * Deletes every document of one job from every chunkrelay collection. Without `confirm` it only
 * counts what it would delete. A job still planning or running is refused: stop it first.
 */
export async function deleteJob(
  store: Store,
  jobId: string,
  confirm: boolean,
): Promise<DeletePlan & { deleted: boolean }> {
  const job = await store.jobs.findOne({ _id: jobId });
  if (!job) throw new BadInputError(`job '${jobId}' not found`);
  const plan: DeletePlan = {
    jobId,
    details: await store.details.countDocuments({ jobId }),
    chunks: await store.chunks.countDocuments({ jobId }),
    exceptions: await store.exceptions.countDocuments({ jobId }),
    taskStats: await store.taskStats.countDocuments({ jobId }),
    job: 1,
  };
  if (!confirm) return { ...plan, deleted: false };
  if (job.status === "planning" || job.status === "running") {
    throw new BadInputError(
      `job '${jobId}' is ${job.status}; it cannot be deleted while it runs (stop its runner, let it finish, or resume it first)`,
    );
  }
  await store.details.deleteMany({ jobId });
  await store.chunks.deleteMany({ jobId });
  await store.exceptions.deleteMany({ jobId });
  await store.taskStats.deleteMany({ jobId });
  await store.watermarks.updateOne({ _id: job.config, activeJob: jobId }, { $set: { activeJob: null } });
  await store.jobs.deleteOne({ _id: jobId });
  return { ...plan, deleted: true };
}
