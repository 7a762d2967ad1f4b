/**
 * MongoDB 7.0 operators and stages the engine does not implement, refused by name with
 * NotImplemented (238) before anything runs — and the server's codes for names MongoDB does not
 * know either. Matching and aggregation come from mingo, whose own errors for a missing operator
 * are generic; without this a query using `$text` or `$meta` would fail with a message a server
 * never gives, and a stage mingo lacked would read as a typo.
 */
import { fail } from "./errors.js";
import { type BsonDocument, isPlainObject } from "./values.js";

/** Query operators: text and geospatial search, server-side JavaScript, JSON Schema. */
const QUERY: ReadonlySet<string> = new Set([
  "$text",
  "$near",
  "$nearSphere",
  "$geoWithin",
  "$geoIntersects",
  "$within",
  "$box",
  "$center",
  "$centerSphere",
  "$polygon",
  "$geometry",
  "$where",
  "$jsonSchema",
]);

/** Aggregation expressions and accumulators. */
const EXPRESSIONS: ReadonlySet<string> = new Set([
  "$meta",
  "$bsonSize",
  "$binarySize",
  "$toObjectId",
  "$tsIncrement",
  "$tsSecond",
  "$indexOfCP",
  "$function",
  "$accumulator",
]);

/** Stages: search, geo, server introspection, change streams, database-level sources. */
export const STAGES: ReadonlySet<string> = new Set([
  "$geoNear",
  "$search",
  "$searchMeta",
  "$vectorSearch",
  "$listSearchIndexes",
  "$collStats",
  "$indexStats",
  "$planCacheStats",
  "$currentOp",
  "$listSessions",
  "$listLocalSessions",
  "$listSampledQueries",
  "$listCatalog",
  "$queryStats",
  "$shardedDataDistribution",
  "$changeStream",
  "$changeStreamSplitLargeEvent",
  "$documents",
  "$merge",
]);

/** Stages MongoDB 7.0 has and the engine runs (mingo's, plus `$out`, which the engine runs). */
const IMPLEMENTED_STAGES: ReadonlySet<string> = new Set([
  "$addFields",
  "$bucket",
  "$bucketAuto",
  "$count",
  "$densify",
  "$facet",
  "$fill",
  "$graphLookup",
  "$group",
  "$limit",
  "$lookup",
  "$match",
  "$out",
  "$project",
  "$redact",
  "$replaceRoot",
  "$replaceWith",
  "$sample",
  "$set",
  "$setWindowFields",
  "$skip",
  "$sort",
  "$sortByCount",
  "$unionWith",
  "$unset",
  "$unwind",
]);

function refuse(where: string, name: string): never {
  return fail(
    "NotImplemented",
    `${where}: ${name} is not implemented by the embedded engine; run this against a MongoDB server`,
  );
}

/**
 * Walks a filter or expression tree and refuses the first operator name in `names`. `$literal`
 * values are data, never operators, so the walk does not enter them.
 */
function refuseNames(value: unknown, names: ReadonlySet<string>[], where: string): void {
  if (Array.isArray(value)) {
    for (const v of value) refuseNames(v, names, where);
    return;
  }
  if (!isPlainObject(value)) return;
  for (const [key, v] of Object.entries(value)) {
    if (key === "$literal") continue;
    if (key.startsWith("$") && names.some((set) => set.has(key))) refuse(where, key);
    refuseNames(v, names, where);
  }
}

/** A query filter (find, count, distinct, update/delete `q`, findAndModify `query`). */
export function refuseUnimplementedQueryOperators(filter: unknown, where: string): void {
  refuseNames(filter, [QUERY, EXPRESSIONS], where);
}

/**
 * An aggregation pipeline (also a pipeline-style update): each stage must be one MongoDB has —
 * else 40324 as a server answers — and one the engine runs; no expression or query operator in
 * it may be one the engine lacks.
 */
export function refuseUnimplementedStages(pipeline: BsonDocument[], where: string): void {
  for (const stage of pipeline) {
    const name = Object.keys(stage)[0] ?? "";
    if (STAGES.has(name)) refuse(where, `the ${name} stage`);
    if (!IMPLEMENTED_STAGES.has(name)) fail("Location40324", `Unrecognized pipeline stage name: '${name}'`);
    refuseNames(stage[name], [QUERY, EXPRESSIONS], where);
  }
}

/**
 * An operator-style update: the positional `$` (the first array element the query matched) is
 * not implemented; `$[]` and `$[<identifier>]` with arrayFilters are.
 */
export function refusePositionalOperator(update: BsonDocument, where: string): void {
  for (const fields of Object.values(update)) {
    if (!isPlainObject(fields)) continue;
    for (const path of Object.keys(fields)) {
      if (path.split(".").includes("$")) refuse(where, `the positional $ operator (in '${path}')`);
    }
  }
}
