/**
 * Claiming a job's window. Every job of a lane (a config's incremental lane, or one backfill
 * window) takes the records right after the previous job's window: the new job document carries
 * (lane, seq = previous seq + 1), and a unique index on that pair makes inserting it the atomic
 * claim — two initializers racing for the next window cannot both win; the loser looks again and
 * takes the window after. Since the job document *is* the claim, a crash can never leave a window
 * claimed by nobody. Caps (records, weight, chunks) end the window early; the rest stays for the
 * next job.
 */
import { insertJob, readJob, readLastLaneJob } from "../store/jobs.js";
import { mirrorLaneClaim } from "../store/lanes.js";
import { isDuplicateKey } from "../store/errors.js";
import type { ChunkLimits } from "../planning/chunking.js";
import { type Cut, cutAfter, laterCut } from "../planning/cuts.js";
import { type Workload, WorkloadMeter, hasCaps } from "../planning/workload.js";
import type { Source } from "../sources/source.js";
import type { JobDoc, Store } from "../store/store.js";
import { laneDocId } from "../planning/lane-ids.js";

const BATCH = 1000;

/** The end of a window starting after `from` (bounded by `upper`), as far as the caps allow. */
export async function findWindowEnd(
  source: Source,
  from: Cut | undefined,
  upper: Cut | undefined,
  caps: Workload,
  chunking: ChunkLimits,
): Promise<Cut | undefined> {
  const window = { ...(from ? { from } : {}), ...(upper ? { to: upper } : {}) };
  if (!hasCaps(caps)) {
    const last = await source.lastRecord(window);
    return last ? cutAfter(last) : undefined;
  }
  // Capped by count alone (records, or chunks cut by count only): the database finds the last
  // record without sending those before it.
  const byCount = countCap(caps, chunking);
  if (byCount !== undefined && source.recordAt) {
    const at = await source.recordAt(window, byCount - 1);
    if (at !== "none") return cutAfter(at);
    const last = await source.lastRecord(window);
    return last ? cutAfter(last) : undefined;
  }
  // Stream the window's first records (keys and weights only) until a cap stops it.
  const meter = new WorkloadMeter(caps, chunking);
  const reading = source.read(window, BATCH);
  let end: Cut | undefined;
  try {
    for await (const batch of reading.batches) {
      for (const r of batch) {
        if (!meter.admit(r.weight)) return end;
        end = cutAfter(r);
      }
    }
    // Read to the window's end without a cap stopping it: up to where the read ended, past
    // records it passed over (skipped Kafka messages), not only to the last one it handed out.
    return reading.endCut?.() ?? end;
  } finally {
    await reading.close();
  }
}

/** The most records a job may take when only counts limit it (no weight anywhere), else undefined. */
function countCap(caps: Workload, chunking: ChunkLimits): number | undefined {
  if (caps.maxWeight !== undefined || chunking.maxWeight !== undefined) return undefined;
  const byChunks =
    caps.maxChunks !== undefined && chunking.maxRecords !== undefined
      ? caps.maxChunks * chunking.maxRecords
      : undefined;
  if (caps.maxChunks !== undefined && byChunks === undefined) return undefined;
  const limits = [caps.maxRecords, byChunks].filter((n): n is number => n !== undefined);
  return limits.length > 0 ? Math.min(...limits) : undefined;
}

export interface LaneClaim {
  /** Lane id with its pass (`#n` after the first pass of a backfill window). */
  laneId: string;
  /** Bounds of the lane itself (a backfill window); absent for a config's incremental lane. */
  lower?: Cut;
  upper?: Cut;
  /** Full jobs take everything up to the newest record, whatever was claimed before. */
  full: boolean;
  caps: Workload;
  chunking: ChunkLimits;
}

/**
 * Inserts the job built by `makeJob` as the next window of the lane. Returns the stored job and
 * whether it existed already (same jobId: a resume or a replay).
 */
export async function claimWindow(
  store: Store,
  source: Source,
  claim: LaneClaim,
  makeJob: (window: JobDoc["window"], lane: NonNullable<JobDoc["lane"]>) => JobDoc,
): Promise<{ job: JobDoc; resumed: boolean }> {
  for (let tries = 0; tries < 50; tries++) {
    const previous = await readLastLaneJob(store, claim.laneId);
    const seq = (previous?.lane?.seq ?? 0) + 1;
    // A lane's first job starts where the source says (a Kafka group's committed offsets), pinned
    // in its window so that planning it again reads the same records.
    const claimedEnd =
      previous?.lane?.end ?? claim.lower ?? (previous ? undefined : await source.startCut?.());
    const from = claim.full ? undefined : claimedEnd;
    const to = await findWindowEnd(source, from, claim.upper, claim.full ? {} : claim.caps, claim.chunking);
    const window: JobDoc["window"] = { ...(from ? { from } : {}), to: to ?? null };
    const end = claim.full ? laterCut(claimedEnd, to) : (to ?? from);
    const job = makeJob(window, { id: claim.laneId, seq, ...(end ? { end } : {}) });
    try {
      await insertJob(store, job);
    } catch (err) {
      if (!isDuplicateKey(err)) throw err;
      // Which unique index was hit is not read from the error (servers word it differently):
      // a job with this id means a resume or a replay; otherwise another job took seq n first,
      // and the next try claims the window after it.
      const existing = await readJob(store, job._id);
      if (existing) return { job: existing, resumed: true };
      continue;
    }
    await mirrorLaneClaim(store, laneDocId(claim.laneId), {
      seq,
      config: job.config,
      jobId: job._id,
      ...(end ? { end } : {}),
    });
    return { job, resumed: false };
  }
  throw new Error(`could not claim a window in lane ${claim.laneId}: too many concurrent claims`);
}
