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
