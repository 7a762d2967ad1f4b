/**
 * Chunk cutting, as pure functions: records arrive in order and are grouped into contiguous
 * chunks closed by record count or total weight, whichever limit is hit first. A record heavier
 * than the weight limit is a chunk of its own. Nothing here does I/O.
 */

export interface ChunkLimits {
  maxRecords?: number | undefined;
  maxWeight?: number | undefined;
}

export interface PlannedRecord {
  weight: number;
}

export interface OpenChunk<R extends PlannedRecord> {
  records: R[];
  weight: number;
}

export const emptyChunk = <R extends PlannedRecord>(): OpenChunk<R> => ({ records: [], weight: 0 });

const isFull = (c: OpenChunk<PlannedRecord>, limits: ChunkLimits): boolean =>
  (limits.maxRecords !== undefined && c.records.length >= limits.maxRecords) ||
  (limits.maxWeight !== undefined && c.weight >= limits.maxWeight);

/**
 * Adds one record (the open chunk is owned by the caller's loop and grows in place). Returns the chunks this closes (zero, one, or two when an oversize record
 * both ends the current chunk and fills one by itself) and the chunk left open.
 */
export function addRecord<R extends PlannedRecord>(
  open: OpenChunk<R>,
  record: R,
  limits: ChunkLimits,
): { closed: OpenChunk<R>[]; open: OpenChunk<R> } {
  const closed: OpenChunk<R>[] = [];
  let current = open;
  const wouldOverflow =
    current.records.length > 0 &&
    limits.maxWeight !== undefined &&
    current.weight + record.weight > limits.maxWeight;
  if (wouldOverflow) {
    closed.push(current);
    current = emptyChunk();
  }
  // The open chunk belongs to the cutter: appending in place keeps cutting O(n).
  current.records.push(record);
  current.weight += record.weight;
  if (isFull(current, limits)) {
    closed.push(current);
    current = emptyChunk();
  }
  return { closed, open: current };
}

/** Cuts an ordered sequence of records into chunks. */
export function* planChunks<R extends PlannedRecord>(
  records: Iterable<R>,
  limits: ChunkLimits,
): Generator<R[]> {
  let open = emptyChunk<R>();
  for (const r of records) {
    const step = addRecord(open, r, limits);
    for (const c of step.closed) yield c.records;
    open = step.open;
  }
  if (open.records.length > 0) yield open.records;
}

/**
 * The same over an async source delivering batches of records (a MongoDB cursor's batches),
 * holding at most one open chunk and one batch in memory.
 */
export async function* planChunksFrom<R extends PlannedRecord>(
  batches: AsyncIterable<readonly R[]>,
  limits: ChunkLimits,
): AsyncGenerator<R[]> {
  let open = emptyChunk<R>();
  for await (const batch of batches) {
    for (const r of batch) {
      const step = addRecord(open, r, limits);
      for (const c of step.closed) yield c.records;
      open = step.open;
    }
  }
  if (open.records.length > 0) yield open.records;
}

/** A record's weight from its weight field: a finite non-negative number, else 0. */
export function weightOf(value: unknown): number {
  const n =
    typeof value === "number"
      ? value
      : value !== null && typeof value === "object" && "valueOf" in value
        ? Number((value as { valueOf(): unknown }).valueOf())
        : Number.NaN;
  return Number.isFinite(n) && n > 0 ? n : 0;
}
