/**
 * What a job is and did, read from the chunkrelay collections: the job list, one job's report
 * (times, config and its drift, counts, rate, chunk table, step statistics), and deleting a job's
 * documents. Every query is by job id or config on an index.
 */
import { secretValues } from "../config/headers.js";
import { readConfig } from "../store/configs.js";
import { listJobChunks } from "../store/chunks.js";
import { readJob } from "../store/jobs.js";
import { type JobListCursor, type JobListFilter, listJobsPage } from "../store/job-listing.js";
import { countSetAsideRecords } from "../store/set-aside-records.js";
import { REDACT_SCAN_CHARS, redactAndCut } from "../config/redact.js";
import { EJSON, type ObjectId } from "bson";
import { configHash, orderKeyOf } from "../config/schema.js";
import type { Cut } from "../planning/cuts.js";
import { partitioningName } from "../planning/workload.js";
import { openSource } from "../sources/open-source.js";
import { lanePass } from "../planning/lane-ids.js";
import { BadInputError } from "../common/errors.js";
import { type JobProgress, readJobProgress } from "./progress.js";
import type { ChunkDoc, JobDoc, Store } from "../store/store.js";
import { type StepSummary, stepStats } from "./step-stats.js";

export interface JobListing {
  jobId: string;
  config: string;
  mode: JobDoc["mode"];
  /** The partitioning's name, e.g. size_500/every_200. */
  partitioning: string;
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
  options: JobListFilter & { limit?: number; before?: JobListCursor | undefined } = {},
): Promise<JobListing[]> {
  const { limit, before, ...filter } = options;
  const jobs = await listJobsPage(store, filter, { limit: limit ?? 50, before });
  return jobs.map((j) => ({
    jobId: j._id,
    config: j.config,
    mode: j.mode,
    partitioning: partitioningName(j.partitioning),
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

/** The cursor of the page after this listing's last job (what `before` takes). */
export function jobListCursorOf(last: Pick<JobListing, "jobId" | "createdAt">): string {
  return Buffer.from(EJSON.stringify({ t: last.createdAt, id: last.jobId }, { relaxed: false })).toString(
    "base64url",
  );
}

/** Reads a job list cursor (`jobListCursorOf`); bad input when it is not one. */
export function parseJobListCursor(text: string): JobListCursor {
  try {
    const v = EJSON.parse(Buffer.from(text, "base64url").toString("utf8"), { relaxed: false }) as {
      t?: unknown;
      id?: unknown;
    };
    if (!(v.t instanceof Date) || Number.isNaN(v.t.getTime()) || typeof v.id !== "string")
      throw new Error("expected a time and a job id");
    return { createdAt: v.t, id: v.id };
  } catch (err) {
    throw new BadInputError(
      `'${text.slice(0, 60)}' is not a job list cursor (${(err as Error).message}); pass the one the previous page gave`,
    );
  }
}

export interface JobReport {
  job: JobDoc;
  progress: JobProgress;
  /** The hash of the config as it is now (undefined when the config is gone or invalid). */
  currentConfigHash?: string;
  /** Where the records come from, per the config as it is now. */
  source?: { description: string; orderBy: string; filter?: Record<string, unknown> };
  /** The job's mode, window, lane, partitioning and iteration, in words. */
  windowLines: string[];
  /** Chunks sent under another config than the job's current one (after a config change). */
  driftedChunks: number[];
  exceptions: number;
  recordsPerSecond: number;
  chunks: Array<Omit<ChunkDoc, "lease">>;
  steps: StepSummary[];
}

/**
 * Errors in the report (the job's and its chunks' `lastError`) hold a service's text, redacted when
 * written; they are redacted again with the secrets of the config as it is now, read from `env`.
 */
export async function jobReport(
  store: Store,
  jobId: string,
  env: Record<string, string | undefined> = process.env,
): Promise<JobReport> {
  const found = await readJob(store, jobId);
  if (!found) throw new BadInputError(`job '${jobId}' not found; list jobs with \`npx chunkrelay jobs\``);
  const [progress, storedChunks, exceptions, steps] = await Promise.all([
    readJobProgress(store, jobId),
    listJobChunks(store, jobId),
    countSetAsideRecords(store, jobId),
    stepStats(store, { jobId }),
  ]);
  let currentConfigHash: string | undefined;
  let source: JobReport["source"];
  let secrets: string[] = [];
  try {
    const config = await readConfig(store, found.config);
    currentConfigHash = configHash(config);
    secrets = secretValues(config, env);
    source = {
      description: openSource(store, config, found.mode === "exceptions" ? found.fromJob : undefined)
        .description,
      orderBy: orderKeyOf(config.source),
      ...("filter" in config.source ? { filter: config.source.filter } : {}),
    };
  } catch {
    currentConfigHash = undefined;
  }
  const redact = <T extends { lastError?: string }>(doc: T): T =>
    doc.lastError === undefined
      ? doc
      : { ...doc, lastError: redactAndCut(doc.lastError, secrets, REDACT_SCAN_CHARS) };
  const job = redact(found);
  const chunks = storedChunks.map(redact);
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
    windowLines: describeJobWindow(job),
    driftedChunks,
    exceptions,
    recordsPerSecond: secs > 0 ? Math.round(done / secs) : 0,
    chunks,
    steps,
  };
}

const formatKey = (v: unknown): string =>
  v instanceof Date
    ? v.toISOString()
    : (v as { _bsontype?: string } | null)?._bsontype === "ObjectId"
      ? `ObjectId(${(v as ObjectId).toHexString()})`
      : EJSON.stringify({ v }, { relaxed: true }).slice(5, -1);

/** A lane in words: the config's lane by name, a backfill window's lane by its pass. */
const laneLabel = (lane: NonNullable<JobDoc["lane"]>): string =>
  lane.id.includes(":backfill:")
    ? `backfill lane, pass ${lanePass(lane.id)}, job #${lane.seq}`
    : `lane ${lane.id} #${lane.seq}`;

export function formatCut(cut: Cut, side: "from" | "to", orderBy?: string): string {
  const key = formatKey(cut.key);
  // Ordered by _id, the key is the id: say it once.
  if (cut.id !== undefined && orderBy === "_id") return `${side === "from" ? "after" : "up to"} ${key}`;
  if (cut.id !== undefined) return `${side === "from" ? "after" : "up to"} ${key} (id ${formatKey(cut.id)})`;
  if (side === "from") return cut.keyIncluded ? `after ${key}` : `from ${key}`;
  return cut.keyIncluded ? `up to ${key}` : `before ${key}`;
}

/** A job's window and how it was cut, in words, for `status` and the status page. */
export function describeJobWindow(job: JobDoc): string[] {
  const lines: string[] = [];
  const { window } = job;
  const range =
    window.to === null
      ? "empty (nothing to take)"
      : `${window.from ? formatCut(window.from, "from", job.partitioning.orderBy) : "from the first record"}, ${window.to ? formatCut(window.to, "to", job.partitioning.orderBy) : "open-ended"}`;
  lines.push(
    `window ${range}${job.lane ? ` — ${laneLabel(job.lane)}` : ""}${job.fromJob ? ` — exceptions of ${job.fromJob}` : ""}`,
  );
  const p = job.partitioning;
  const parts = [
    `order ${p.orderBy}`,
    `chunks of ${[p.chunking.maxRecords !== undefined ? `≤${p.chunking.maxRecords} records` : "", p.chunking.maxWeight !== undefined ? `≤${p.chunking.maxWeight} weight` : ""].filter(Boolean).join(", ")}`,
  ];
  const w = p.workload;
  if (w) {
    const caps = [
      w.maxRecords !== undefined ? `≤${w.maxRecords} records` : "",
      w.maxWeight !== undefined ? `≤${w.maxWeight} weight` : "",
      w.maxChunks !== undefined ? `≤${w.maxChunks} chunks` : "",
    ].filter(Boolean);
    parts.push(`job capped at ${caps.join(", ")}`);
  }
  if (p.sample)
    parts.push(
      "every" in p.sample
        ? `sample: every ${p.sample.every}th record from position ${p.sample.offset ?? 0}`
        : `sample: first ${p.sample.first} records`,
    );
  lines.push(`partitioning ${partitioningName(p)}: ${parts.join("; ")}`);
  if (job.iteration)
    lines.push(
      `iteration ${job.iteration.index} of up to ${job.iteration.of} (first job ${job.iteration.firstJob})`,
    );
  if (job.complete !== undefined) {
    lines.push(
      job.complete
        ? "complete: every record processed or its exception resolved"
        : `incomplete: completed ${job.completedTo ? formatCut(job.completedTo, "to", job.partitioning.orderBy) : "nothing"} in order; unresolved exceptions hold the watermark`,
    );
  }
  return lines;
}
