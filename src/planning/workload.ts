/**
 * How much of the backlog one job takes, and which records a sample keeps — pure functions over
 * records arriving in order. A job's caps (records, weight, chunks) decide where its window
 * ends: records are taken while every cap still holds, so a job never exceeds a cap, except
 * that a job always takes at least one record (one record heavier than the weight cap is a job
 * of its own; otherwise it would block the backlog forever).
 */
import type { ChunkLimits } from "./chunking.js";

export interface Workload {
  maxRecords?: number;
  maxWeight?: number;
  maxChunks?: number;
}

export const hasCaps = (w: Workload): boolean =>
  w.maxRecords !== undefined || w.maxWeight !== undefined || w.maxChunks !== undefined;

interface OpenCount {
  records: number;
  weight: number;
}

/** `addRecord`'s rule on counts only: how many chunks adding a record closes, and what stays open. */
function addToCount(
  open: OpenCount,
  weight: number,
  limits: ChunkLimits,
): { closed: number; open: OpenCount } {
  let closed = 0;
  let current = open;
  if (current.records > 0 && limits.maxWeight !== undefined && current.weight + weight > limits.maxWeight) {
    closed++;
    current = { records: 0, weight: 0 };
  }
  current = { records: current.records + 1, weight: current.weight + weight };
  const full =
    (limits.maxRecords !== undefined && current.records >= limits.maxRecords) ||
    (limits.maxWeight !== undefined && current.weight >= limits.maxWeight);
  if (full) {
    closed++;
    current = { records: 0, weight: 0 };
  }
  return { closed, open: current };
}

/**
 * Tracks a job's running totals in constant memory. `admit(weight)` says whether the next record
 * still fits (and counts it); once a record does not fit, the window ends before it.
 */
export class WorkloadMeter {
  private records = 0;
  private weight = 0;
  private chunksClosed = 0;
  private open: OpenCount = { records: 0, weight: 0 };

  constructor(
    private readonly caps: Workload,
    private readonly chunking: ChunkLimits,
  ) {}

  admit(weight: number): boolean {
    const step = addToCount(this.open, weight, this.chunking);
    if (this.records > 0) {
      const { maxRecords, maxWeight, maxChunks } = this.caps;
      if (maxRecords !== undefined && this.records + 1 > maxRecords) return false;
      if (maxWeight !== undefined && this.weight + weight > maxWeight) return false;
      const chunksAfter = this.chunksClosed + step.closed + (step.open.records > 0 ? 1 : 0);
      if (maxChunks !== undefined && chunksAfter > maxChunks) return false;
    }
    this.chunksClosed += step.closed;
    this.open = step.open;
    this.records++;
    this.weight += weight;
    return true;
  }
}

/**
 * A sample: every k-th record of the window starting at position `offset` (0 = the 1st, (k+1)th,
 * …; offsets 0..k-1 are k disjoint slices that together cover the window), or its first n records.
 */
export type Sample = { every: number; offset?: number } | { first: number };

/** Whether the record at position `index` (0-based, in window order) belongs to the sample. */
export function inSample(sample: Sample, index: number): boolean {
  return "every" in sample ? index % sample.every === (sample.offset ?? 0) : index < sample.first;
}

/** True once no later position can belong to the sample (a first-n sample is complete). */
export const sampleComplete = (sample: Sample, index: number): boolean =>
  "first" in sample && index >= sample.first;

/**
 * A job's partitioning by name, as the batch job spec names them (`size_500`, `every_200`):
 * chunk limits, then the sample, then the job's caps, joined by `/`.
 */
export function partitioningName(p: {
  chunking: { maxRecords?: number; maxWeight?: number };
  sample?: Sample;
  workload?: Workload;
}): string {
  const parts: string[] = [];
  if (p.chunking.maxRecords !== undefined) parts.push(`size_${p.chunking.maxRecords}`);
  if (p.chunking.maxWeight !== undefined) parts.push(`weight_${p.chunking.maxWeight}`);
  if (p.sample && "every" in p.sample)
    parts.push(`every_${p.sample.every}${p.sample.offset ? `+${p.sample.offset}` : ""}`);
  if (p.sample && "first" in p.sample) parts.push(`first_${p.sample.first}`);
  const w = p.workload ?? {};
  if (w.maxRecords !== undefined) parts.push(`cap_${w.maxRecords}`);
  if (w.maxWeight !== undefined) parts.push(`capweight_${w.maxWeight}`);
  if (w.maxChunks !== undefined) parts.push(`capchunks_${w.maxChunks}`);
  return parts.join("/");
}
