/** Records of a MongoDB collection, in (orderBy, _id) order, selected by the config's filter. */
import { EJSON } from "bson";
import type { Document, Filter } from "mongodb";
import { BadInputError } from "../errors.js";
import type { MongoSourceConfig } from "../config/schema.js";
import { getPath } from "../embedded-mongo/values.js";
import { aboveCut, allOf, atOrBelowCut } from "../planning/cuts.js";
import { weightOf } from "../planning/chunking.js";
import type { Store } from "../store/store.js";
import { type Source, type Window, generatorBatches } from "./source.js";

/**
 * A record without the order key would sort before every other one, and a cut at it could not be
 * expressed as a range query: refuse it, saying how to fix it.
 */
function keyOf(doc: Document, key: string, collection: string): unknown {
  const value = getPath(doc, key);
  if (value === undefined || value === null) {
    throw new BadInputError(
      `record ${EJSON.stringify({ _id: doc._id as unknown }, { relaxed: true })} of ${collection} has no '${key}' (the config's source.orderBy); give it one, or exclude such records with source.filter {"${key}": {"$exists": true, "$ne": null}}`,
    );
  }
  return value;
}

export function mongoSource(store: Store, source: MongoSourceConfig): Source {
  const key = source.orderBy;
  const collection = store.db.collection(source.collection);
  const where = (window: Window): Filter<Document> =>
    allOf([
      source.filter,
      ...(window.from ? [aboveCut(key, window.from)] : []),
      ...(window.to ? [atOrBelowCut(key, window.to)] : []),
    ]);
  const weightField = source.weightField;
  return {
    description: `collection ${source.collection} by ${key}`,
    async lastRecord(window) {
      const doc = await collection
        .find(where(window), { projection: { [key]: 1 } })
        .sort({ [key]: -1, _id: -1 })
        .limit(1)
        .next();
      return doc ? { id: doc._id, key: keyOf(doc, key, source.collection) } : undefined;
    },
    async recordAt(window, index) {
      const doc = await collection
        .find(where(window), { projection: { [key]: 1 } })
        .sort({ [key]: 1, _id: 1 })
        .skip(index)
        .limit(1)
        .next();
      return doc ? { id: doc._id, key: keyOf(doc, key, source.collection) } : "none";
    },
    read(window, batchSize) {
      const projection: Document = { _id: 1, [key]: 1 };
      if (weightField) projection[weightField] = 1;
      const cursor = collection.find(where(window), { projection, batchSize }).sort({ [key]: 1, _id: 1 });
      // Whole cursor batches at a time: one await per batch of records, not one per record.
      async function* batches() {
        while (await cursor.hasNext()) {
          yield cursor.readBufferedDocuments().map((doc: Document) => ({
            id: doc._id as unknown,
            key: keyOf(doc, key, source.collection),
            weight: weightField ? weightOf(getPath(doc, weightField)) : 0,
          }));
        }
      }
      return generatorBatches(batches(), () => cursor.close());
    },
    async count(from) {
      const filter = where(from ? { from } : {});
      const records = await collection.countDocuments(filter);
      if (!weightField) return { records };
      const [row] = await collection
        .aggregate<{ w: number }>([
          { $match: filter },
          { $group: { _id: null, w: { $sum: `$${weightField}` } } },
        ])
        .toArray();
      return { records, weight: row?.w ?? 0 };
    },
  };
}
