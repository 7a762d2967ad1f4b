/**
 * Reads of the user's source collections (not chunkrelay's own): a record's current fields are
 * read when its chunk goes out, so the service gets them as they are then.
 */
import type { Document } from "bson";
import type { Store } from "./store.js";

/**
 * The documents of `collection` with these ids, projected to `_id` and `fields`: one `$in`
 * query on `_id` (the primary index), whatever the chunk's size.
 */
export async function readSourceFields(
  store: Store,
  collection: string,
  ids: readonly unknown[],
  fields: readonly string[],
): Promise<Document[]> {
  const projection: Document = { _id: 1 };
  for (const f of fields) projection[f] = 1;
  return store.db
    .collection(collection)
    .find({ _id: { $in: ids } } as Document, { projection })
    .toArray();
}

/** Sort on the order key then `_id`: the (key, id) order every cut is taken in. */
const byKey = (key: string, direction: 1 | -1) => ({ [key]: direction, _id: direction });

/**
 * The record at `index` (0-based) of the filter's records in (key, id) order, or the last one;
 * only `_id` and the key. A database skip: no record before it is handed over.
 */
export async function findSourceRecordAt(
  store: Store,
  collection: string,
  filter: Document,
  key: string,
  index: number | "last",
): Promise<Document | null> {
  const cursor = store.db
    .collection(collection)
    .find(filter, { projection: { [key]: 1 } })
    .sort(byKey(key, index === "last" ? -1 : 1));
  return (index === "last" ? cursor : cursor.skip(index)).limit(1).next();
}

/** The filter's records in (key, id) order, read a driver batch at a time; close it when done. */
export interface SourceCursor {
  hasNext(): Promise<boolean>;
  /** The documents of the batch already received (no round trip). */
  readBufferedDocuments(): Document[];
  close(): Promise<void>;
}

/** Opens a cursor over the filter's records in (key, id) order, only `projection`'s fields. */
export function openSourceCursor(
  store: Store,
  collection: string,
  filter: Document,
  key: string,
  projection: Document,
  batchSize: number,
): SourceCursor {
  return store.db.collection(collection).find(filter, { projection, batchSize }).sort(byKey(key, 1));
}

/** How many records match the filter. */
export async function countSourceRecords(
  store: Store,
  collection: string,
  filter: Document,
): Promise<number> {
  return store.db.collection(collection).countDocuments(filter);
}

/** The total of `weightField` over the records matching the filter. */
export async function sumSourceWeight(
  store: Store,
  collection: string,
  filter: Document,
  weightField: string,
): Promise<number> {
  const [row] = await store.db
    .collection(collection)
    .aggregate<{ w: number }>([{ $match: filter }, { $group: { _id: null, w: { $sum: `$${weightField}` } } }])
    .toArray();
  return row?.w ?? 0;
}

/** Drops a source collection (demo data seeded afresh); one that does not exist is no error. */
export async function dropSourceCollection(store: Store, collection: string): Promise<void> {
  await store.db
    .collection(collection)
    .drop()
    .catch(() => undefined);
}

/** Inserts records into a source collection (demo data), unordered. */
export async function insertSourceRecords(store: Store, collection: string, docs: Document[]): Promise<void> {
  await store.db.collection(collection).insertMany(docs, { ordered: false });
}
