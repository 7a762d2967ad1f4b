/**
 * A job over time, for the status page's charts: records finished per second in at most
 * `MAX_BUCKETS` buckets between its start and its end (or now), and chunk round trips (sent to
 * done) — at most `MAX_POINTS` of them, evenly spread over the chunks, plus percentiles over all.
 * Computed here from the chunk documents, so a 10,000-chunk job ships a few hundred numbers.
 */
import { BadInputError } from "../common/errors.js";
import { listChunkTimings } from "../store/job-listing.js";
import { readJob } from "../store/jobs.js";
import type { Store } from "../store/store.js";

export const MAX_BUCKETS = 60;
export const MAX_POINTS = 200;

export interface JobTimeline {
  jobId: string;
  startedAt: Date;
  /** The end of the last bucket: the job's end, or now while it runs. */
  until: Date;
  bucketMs: number;
  /** Records finished (processed or failed for good) per second, in each bucket from `startedAt`. */
  recordsPerSecond: number[];
  /** Chunk round trips, sent to done, in ms (a spread of the chunks when there are many). */
  roundTrips: Array<{ chunk: number; ms: number; status: string }>;
  roundTripStats: { count: number; p50Ms: number; p95Ms: number; maxMs: number };
}

const percentile = (sorted: number[], p: number) =>
  sorted.length === 0
    ? 0
    : (sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)] ?? 0);

export async function readJobTimeline(store: Store, jobId: string, now = new Date()): Promise<JobTimeline> {
  const job = await readJob(store, jobId);
  if (!job) throw new BadInputError(`job '${jobId}' not found; list jobs with \`npx chunkrelay jobs\``);
  const chunks = await listChunkTimings(store, jobId);
  const start = job.startedAt.getTime();
  const end = Math.max(start + 1000, (job.finishedAt ?? now).getTime());
  // Whole seconds, at least one: a rate per second over less would be noise.
  const bucketMs = Math.max(1000, Math.ceil((end - start) / MAX_BUCKETS / 1000) * 1000);
  const buckets = Array.from({ length: Math.max(1, Math.ceil((end - start) / bucketMs)) }, () => 0);
  const trips: Array<{ chunk: number; ms: number; status: string }> = [];
  for (const c of chunks) {
    if (!c.done || !c.finishedAt) continue;
    const i = Math.min(
      buckets.length - 1,
      Math.max(0, Math.floor((c.finishedAt.getTime() - start) / bucketMs)),
    );
    buckets[i] = (buckets[i] ?? 0) + (c.processedCount ?? 0) + (c.failedCount ?? 0);
    if (c.sentAt)
      trips.push({
        chunk: c.chunk,
        ms: Math.max(0, c.finishedAt.getTime() - c.sentAt.getTime()),
        status: c.status,
      });
  }
  const sorted = trips.map((t) => t.ms).sort((a, b) => a - b);
  const step = Math.max(1, trips.length / MAX_POINTS);
  const shown: typeof trips = [];
  for (let k = 0; Math.floor(k) < trips.length && shown.length < MAX_POINTS; k += step) {
    const t = trips[Math.floor(k)];
    if (t) shown.push(t);
  }
  return {
    jobId,
    startedAt: job.startedAt,
    until: new Date(end),
    bucketMs,
    recordsPerSecond: buckets.map((n) => Math.round((n * 1000) / bucketMs)),
    roundTrips: shown,
    roundTripStats: {
      count: trips.length,
      p50Ms: percentile(sorted, 50),
      p95Ms: percentile(sorted, 95),
      maxMs: sorted[sorted.length - 1] ?? 0,
    },
  };
}
