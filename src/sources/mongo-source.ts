/** Records of a MongoDB collection, in (orderBy, _id) order, selected by the config's filter. */
import { type Document, EJSON } from "bson";
import { serverRefusal } from "../store/errors.js";
import {
  countSourceRecords,
  findSourceRecordAt,
  openSourceCursor,
  sumSourceWeight,
} from "../store/source-collection.js";
import { BadInputError } from "../common/errors.js";
import type { MongoSourceConfig } from "../config/schema.js";
import { readPath } from "../common/bson-order.js";
import { aboveCut, allOf, atOrBelowCut } from "../planning/cuts.js";
import { weightOf } from "../planning/chunking.js";
import type { Store } from "../store/store.js";
import { type Source, type Window, generatorBatches } from "./source.js";

/**
 * A record without the order key would sort before every other one, and a cut at it could not be
 * expressed as a range query: refuse it, saying how to fix it.
 */
function keyOf(doc: Document, key: string, collection: string): unknown {
  const value = readPath(doc, key);
  if (value === undefined || value === null) {
    throw new BadInputError(
      `record ${EJSON.stringify({ _id: doc._id as unknown }, { relaxed: true })} of ${collection} has no '${key}' (the config's source.orderBy); give it one, or exclude such records with source.filter {"${key}": {"$exists": true, "$ne": null}}`,
    );
  }
  return value;
}

/**
 * Server error codes that mean "this query can never run as written" (MongoDB's error_codes.yml):
 * an unknown `$type` alias, a `$text` without a text index, a `$near` without a geo index, an
 * unknown aggregation operator inside `$expr`, a malformed `$jsonSchema`, … Asking again gets the
 * same answer, so such a refusal is bad input (exit 2, never retried), not an outage.
 */
const QUERY_REFUSED_CODES = new Set([
  2, // BadValue
  9, // FailedToParse
  14, // TypeMismatch
  27, // IndexNotFound ($text without a text index)
  28, // PathNotViable
  72, // InvalidOptions
  168, // InvalidPipelineOperator (an unknown operator in $expr)
  224, // QueryFeatureNotAllowed
  238, // NotImplemented (a server, or the embedded engine, lacks an operator the filter uses)
  241, // ConversionFailure
  291, // NoQueryExecutionPlans ($near without a geo index)
  16410, // an aggregation field path starting with '$' badly
  17287, // $jsonSchema / $expr parse errors of older servers
  31253, // projection errors
  31254,
  40324, // unrecognized pipeline stage / operator
  51024, // $jsonSchema keyword errors
]);

/** A server's refusal of the config's query, as bad input naming the field to fix. */
export function asQueryRefusal(err: unknown, collection: string): unknown {
  const refusal = serverRefusal(err);
  if (!refusal || !QUERY_REFUSED_CODES.has(refusal.code)) return err;
  return new BadInputError(
    `the server refused the query of ${collection} (source.filter, source.orderBy or source.weightField): ${refusal.message} (code ${refusal.code}${refusal.codeName ? ` ${refusal.codeName}` : ""}); fix the config and apply it again (or, when the message names a value a record holds, that record)`,
  );
}

/** Runs a query of the config's source collection, a server refusal turned into bad input. */
export async function refusedAsBadInput<T>(collection: string, query: () => Promise<T>): Promise<T> {
  try {
    return await query();
  } catch (err) {
    throw asQueryRefusal(err, collection);
  }
}

export function mongoSource(store: Store, source: MongoSourceConfig): Source {
  const key = source.orderBy;
  const collection = source.collection;
  const where = (window: Window): Document =>
    allOf([
      source.filter,
      ...(window.from ? [aboveCut(key, window.from)] : []),
      ...(window.to ? [atOrBelowCut(key, window.to)] : []),
    ]);
  const weightField = source.weightField;
  const query = <T>(run: () => Promise<T>) => refusedAsBadInput(source.collection, run);
  return {
    description: `collection ${source.collection} by ${key}`,
    async lastRecord(window) {
      const doc = await query(() => findSourceRecordAt(store, collection, where(window), key, "last"));
      return doc ? { id: doc._id, key: keyOf(doc, key, source.collection) } : undefined;
    },
    async recordAt(window, index) {
      const doc = await query(() => findSourceRecordAt(store, collection, where(window), key, index));
      return doc ? { id: doc._id, key: keyOf(doc, key, source.collection) } : "none";
    },
    read(window, batchSize) {
      const projection: Document = { _id: 1, [key]: 1 };
      if (weightField) projection[weightField] = 1;
      const cursor = openSourceCursor(store, collection, where(window), key, projection, batchSize);
      // Whole cursor batches at a time: one await per batch of records, not one per record.
      async function* batches() {
        while (await query(() => cursor.hasNext())) {
          yield cursor.readBufferedDocuments().map((doc: Document) => ({
            id: doc._id as unknown,
            key: keyOf(doc, key, source.collection),
            weight: weightField ? weightOf(readPath(doc, weightField)) : 0,
          }));
        }
      }
      return generatorBatches(batches(), () => cursor.close());
    },
    async count(from) {
      const filter = where(from ? { from } : {});
      const records = await query(() => countSourceRecords(store, collection, filter));
      if (!weightField) return { records };
      const weight = await query(() => sumSourceWeight(store, collection, filter, weightField));
      return { records, weight };
    },
    close: () => Promise.resolve(),
  };
}
