/**
 * Where a job's records come from. A Source reads the records of a window in (order key, id)
 * order, in batches (bounded memory), finds the last record of a window (to fix a job's upper
 * bound) and counts a backlog. Implementations: a MongoDB collection (the default), an NDJSON or
 * CSV file, a Kafka topic, and the unresolved exceptions of an earlier job. Records of a collection are sent with
 * their current fields, read when a chunk goes out; records of a file carry their fields (`data`),
 * which the initializer stores in batch_details so a chunk can be sent without the file.
 */
import type { Document } from "bson";
import { readPath } from "../common/bson-order.js";
import type { Cut } from "../planning/cuts.js";

export interface SourceRecord {
  id: unknown;
  key: unknown;
  weight: number;
  /** The fields sent to the service, when they are not read from MongoDB at send time. */
  data?: Document;
}

export interface Window {
  /** Records above this cut; absent: from the first record. */
  from?: Cut;
  /** Records at or below this cut; absent: up to the last one. */
  to?: Cut;
}

export interface RecordBatches {
  batches: AsyncIterable<SourceRecord[]>;
  close(): Promise<void>;
  /**
   * Once the batches are read to their end: the cut after the whole window, when the source
   * passes over records it does not hand out (Kafka messages skipped as invalid), so a window
   * ending in them still covers them. Absent or undefined: the cut after the last record handed out.
   */
  endCut?(): Cut | undefined;
}

export interface Source {
  /** One line for `status`, e.g. "collection orders by createdAt". */
  readonly description: string;
  /** The last record inside the window, or undefined when it is empty. */
  lastRecord(window: Window): Promise<{ id: unknown; key: unknown } | undefined>;
  /**
   * The record at position `index` (0-based) of the window, if the source can find it without
   * handing every record before it over (a database skip); undefined: it cannot.
   */
  recordAt?(window: Window, index: number): Promise<{ id: unknown; key: unknown } | "none">;
  /** The window's records in order, in batches of about `batchSize`. Close it when done. */
  read(window: Window, batchSize: number): RecordBatches;
  /** Records (and their total weight, with a weight field) above a cut: the backlog. */
  count(from: Cut | undefined): Promise<{ records: number; weight?: number }>;
  /**
   * Where a lane with no job yet starts, when that is not simply "the first record": a Kafka
   * topic starts at its consumer group's committed offsets (or its `startFrom`). Pinned in the
   * first job's window, so the job reads the same records however often it is planned again.
   * Absent: from the first record.
   */
  startCut?(): Promise<Cut | undefined>;
  /** Releases what the source opened (a Kafka connection); the source is not used after it. */
  close(): Promise<void>;
}

/** Runs `use` with a source and closes it, however `use` ends. */
export async function withSource<T>(source: Source, use: (source: Source) => Promise<T>): Promise<T> {
  try {
    return await use(source);
  } finally {
    await source.close();
  }
}

/** Turns an async batch generator into RecordBatches with a close that ends it early. */
export function generatorBatches(
  gen: AsyncGenerator<SourceRecord[]>,
  cleanup: () => Promise<void> = () => Promise.resolve(),
): RecordBatches {
  return {
    batches: gen,
    close: async () => {
      await gen.return(undefined);
      await cleanup();
    },
  };
}

/**
 * The fields of a record that carries its data (a file line, a Kafka message) sent to the
 * service: the named paths that exist, or the whole record when none are named.
 */
export function pickFields(doc: Document, fields: readonly string[]): Document {
  if (fields.length === 0) return doc;
  const out: Document = {};
  for (const f of fields) {
    const v = readPath(doc, f);
    if (v !== undefined) out[f] = v;
  }
  return out;
}
