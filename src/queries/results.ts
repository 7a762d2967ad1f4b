/**
 * Results per record: what the batch service returned for each record of a job (`result`, kept
 * up to the config's `results.maxBytes`), beside its status and error. Paged on the record id
 * with the `job_record` index (keyset, so a page costs the same however far in it is), or
 * streamed whole for an export.
 */
import { EJSON } from "bson";
import type { Document } from "bson";
import { BadInputError } from "../common/errors.js";
import { cursorIdProblem, readPageAfter } from "../common/bson-order.js";
import type { DetailDoc, RecordStatus, Store } from "../store/store.js";

export interface ResultRow {
  recordId: unknown;
  chunk: number;
  status: RecordStatus;
  attempts: number;
  result?: unknown;
  /** Why a value the service returned was not kept. */
  resultError?: string;
  error?: string;
  processedAt?: Date;
}

export interface ResultPage {
  rows: ResultRow[];
  /** Extended JSON of the last row's record id: pass it back as `after` for the next page. */
  next?: string;
}

/** Rows per page: default and most. */
export const RESULT_PAGE_DEFAULT = 100;
export const RESULT_PAGE_MAX = 1000;

const PROJECTION = {
  _id: 0,
  recordId: 1,
  chunk: 1,
  status: 1,
  attempts: 1,
  result: 1,
  resultError: 1,
  error: 1,
  processedAt: 1,
} as const;

function rowOf(d: Partial<DetailDoc>): ResultRow {
  return {
    recordId: d.recordId,
    chunk: d.chunk ?? 0,
    status: d.status ?? "pending",
    attempts: d.attempts ?? 0,
    ...(d.result !== undefined ? { result: d.result } : {}),
    ...(d.resultError ? { resultError: d.resultError } : {}),
    ...(d.error ? { error: d.error } : {}),
    ...(d.processedAt ? { processedAt: d.processedAt } : {}),
  };
}

/** Reads a page cursor (`next` of the previous page): one record id in Extended JSON. */
export function parseResultCursor(after: string): unknown {
  try {
    const parsed = EJSON.parse(after, { relaxed: false }) as unknown;
    if (parsed === null || typeof parsed !== "object" || Array.isArray(parsed) || !("id" in parsed))
      throw new Error('expected {"id": …}');
    if (Object.keys(parsed).length !== 1) throw new Error('expected {"id": …} and nothing else');
    const problem = cursorIdProblem(parsed.id);
    if (problem) throw new Error(problem);
    return parsed.id;
  } catch (err) {
    throw new BadInputError(
      `'${after.slice(0, 80)}' is not a results cursor (${(err as Error).message}); pass the "next" of the previous page`,
    );
  }
}

/** The cursor after a record id. */
export const resultCursorOf = (recordId: unknown): string =>
  EJSON.stringify({ id: recordId }, { relaxed: false });

/**
 * One page of a job's records in record-id order, after the cursor `after`. Two indexed reads
 * at most: ids above `after` of its own type, then (when the page is not full) ids of the types
 * that sort after it.
 */
export async function listJobResults(
  store: Store,
  jobId: string,
  options: { after?: string; limit?: number; onlyWithResult?: boolean } = {},
): Promise<ResultPage> {
  const limit = options.limit ?? RESULT_PAGE_DEFAULT;
  if (!Number.isInteger(limit) || limit < 1 || limit > RESULT_PAGE_MAX)
    throw new BadInputError(`limit must be a whole number from 1 to ${RESULT_PAGE_MAX}, not ${limit}`);
  const extra: Document = options.onlyWithResult ? { result: { $exists: true } } : {};
  const read = (recordFilter: Document | undefined, n: number) =>
    store.details
      .find(
        { jobId, ...(recordFilter ? { recordId: recordFilter } : {}), ...extra },
        { projection: PROJECTION, sort: { recordId: 1 }, limit: n },
      )
      .toArray();
  const after = options.after === undefined ? undefined : { id: parseResultCursor(options.after) };
  const docs: Array<Partial<DetailDoc>> = await readPageAfter(read, after, limit + 1);
  const rows = docs.slice(0, limit).map(rowOf);
  const last = rows[rows.length - 1];
  return { rows, ...(docs.length > limit && last ? { next: resultCursorOf(last.recordId) } : {}) };
}

/** Every record of a job in record-id order, streamed (an export: a job may hold millions). */
export async function* streamJobResults(
  store: Store,
  jobId: string,
  options: { onlyWithResult?: boolean } = {},
): AsyncGenerator<ResultRow> {
  const cursor = store.details.find(
    { jobId, ...(options.onlyWithResult ? { result: { $exists: true } } : {}) },
    { projection: PROJECTION, sort: { recordId: 1 } },
  );
  try {
    for await (const d of cursor) yield rowOf(d);
  } finally {
    await cursor.close();
  }
}

/** A result value as one line of text (relaxed Extended JSON), cut to `max` characters. */
export function showResult(value: unknown, max = 200): string {
  const text = EJSON.stringify(value, { relaxed: true });
  return text.length > max ? `${text.slice(0, max - 1)}…` : text;
}
