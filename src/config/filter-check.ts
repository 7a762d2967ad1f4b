/**
 * What a filter must be before it is stored: nothing the server would refuse later, nothing a
 * parser quietly repaired. Checked against MongoDB's own query operator set (not the embedded
 * engine's), so a filter valid on a real server is never refused here. The set is the server's
 * match expression parser (mongodb/mongo src/mongo/db/matcher/expression_parser.cpp): its
 * `pathlessOperatorMap` (TOP_LEVEL below) and `queryOperatorMap` (FIELD_LEVEL), less the
 * `$_internal…` operators, and less `$ref`/`$id`/`$db`, which match DBRef fields (a DBRef is
 * written whole: {"$ref": …, "$id": …}). Geometry and `$text` arguments (`$box`, `$center`,
 * `$centerSphere`, `$polygon`, `$geometry`, `$uniqueDocs`, `$search`, `$language`, …) are not
 * filters and are not looked into.
 */

/** Operators that combine whole filters, at the top of a filter (or of an `$elemMatch`). */
const TOP_LEVEL = new Set([
  "$and",
  "$or",
  "$nor",
  "$expr",
  "$jsonSchema",
  "$text",
  "$comment",
  "$where",
  "$sampleRate",
  "$alwaysTrue",
  "$alwaysFalse",
]);

/** Operators the server takes only at the top of a filter, not inside an `$elemMatch`. */
const TOP_DOCUMENT_ONLY = new Set(["$expr", "$text", "$where", "$sampleRate"]);

/** Geospatial operators (with their aliases): shapes as arguments, not filters. */
const GEO = ["$geoIntersects", "$geoWithin", "$within", "$near", "$nearSphere", "$geoNear"];

/** Operators on one field's value. */
const FIELD_LEVEL = new Set([
  "$eq",
  "$ne",
  "$gt",
  "$gte",
  "$lt",
  "$lte",
  "$in",
  "$nin",
  "$not",
  "$exists",
  "$type",
  "$mod",
  "$regex",
  "$options",
  "$all",
  "$elemMatch",
  "$size",
  "$bitsAllClear",
  "$bitsAllSet",
  "$bitsAnyClear",
  "$bitsAnySet",
  ...GEO,
  "$maxDistance",
  "$minDistance",
]);

/** `$near` and its aliases: `$maxDistance` and `$minDistance` are only read beside one of them. */
const NEAR = ["$near", "$nearSphere", "$geoNear"];

/** Operators whose argument is not a filter (an aggregation expression, a schema, a shape). */
const OPAQUE = new Set(["$expr", "$jsonSchema", "$text", "$comment", "$where", ...GEO]);

/** Deeper than this, a filter is refused (MongoDB nests documents at most 100 levels deep in queries). */
export const MAX_FILTER_DEPTH = 100;

const isDocument = (v: unknown): v is Record<string, unknown> =>
  v !== null &&
  typeof v === "object" &&
  !Array.isArray(v) &&
  !(v instanceof Date) &&
  !(v instanceof RegExp) &&
  (v as { _bsontype?: string })._bsontype === undefined;

/** The first problem of a filter, with its path and what to do; undefined when it is sound. */
export function filterProblem(filter: Record<string, unknown>): string | undefined {
  return checkFilterDoc(filter, ["filter"], 1, false);
}

/** A number as the server reads a numeric argument (BSON numbers of any width), or undefined. */
function numeric(value: unknown): number | undefined {
  if (typeof value === "number") return value;
  const type = (value as { _bsontype?: unknown } | null)?._bsontype;
  if (type === "Decimal128" || type === "Long" || type === "Int32" || type === "Double") {
    return Number(String(value));
  }
  return undefined;
}

const isRegex = (v: unknown): boolean =>
  v instanceof RegExp || (v as { _bsontype?: unknown } | null)?._bsontype === "BSONRegExp";

/** The flags of a regular expression value (`flags` of a RegExp, `options` of a BSONRegExp). */
function regexFlags(v: unknown): string {
  if (v instanceof RegExp) return v.flags;
  const options = (v as { options?: unknown }).options;
  return typeof options === "string" ? options : "";
}

function checkValue(value: unknown, path: string[], depth: number): string | undefined {
  if (depth > MAX_FILTER_DEPTH) return `${path.join(".")}: nested more than ${MAX_FILTER_DEPTH} levels deep`;
  if (value instanceof Date && Number.isNaN(value.getTime())) {
    return `${path.join(".")}: not a valid date (an Extended JSON {"$date": …} must hold an ISO-8601 date or milliseconds)`;
  }
  if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i++) {
      const p = checkValue(value[i], [...path, String(i)], depth + 1);
      if (p) return p;
    }
    return undefined;
  }
  if (!isDocument(value)) return undefined;
  for (const [k, v] of Object.entries(value)) {
    if (k === "__proto__")
      return `${path.join(".")}: a field named __proto__ cannot be given safely; rename it`;
    const p = checkValue(v, [...path, k], depth + 1);
    if (p) return p;
  }
  return undefined;
}

/** A filter document; `inElemMatch` when it is the object of an `$elemMatch` (a sub-document). */
function checkFilterDoc(
  doc: Record<string, unknown>,
  path: string[],
  depth: number,
  inElemMatch: boolean,
): string | undefined {
  if (depth > MAX_FILTER_DEPTH) return `${path.join(".")}: nested more than ${MAX_FILTER_DEPTH} levels deep`;
  for (const [key, value] of Object.entries(doc)) {
    const here = [...path, key];
    if (key === "__proto__")
      return `${path.join(".")}: a field named __proto__ cannot be given safely; rename it`;
    if (key.startsWith("$")) {
      if (!TOP_LEVEL.has(key)) {
        return FIELD_LEVEL.has(key)
          ? `${here.join(".")}: ${key} applies to a field, e.g. {"status": {"${key}": …}}`
          : `${here.join(".")}: unknown query operator ${key}; see MongoDB's query operators`;
      }
      if (inElemMatch && TOP_DOCUMENT_ONLY.has(key)) {
        return `${here.join(".")}: ${key} applies to whole documents only, not inside an $elemMatch`;
      }
      if (key === "$sampleRate") {
        const rate = numeric(value);
        if (rate === undefined || !(rate >= 0 && rate <= 1)) {
          return `${here.join(".")}: $sampleRate takes a number from 0 to 1 (the share of documents kept), e.g. 0.1`;
        }
        continue;
      }
      if (key === "$alwaysTrue" || key === "$alwaysFalse") {
        if (numeric(value) !== 1) return `${here.join(".")}: ${key} is written {"${key}": 1}`;
        continue;
      }
      if (OPAQUE.has(key)) {
        const p = checkValue(value, here, depth + 1);
        if (p) return p;
        continue;
      }
      // $and / $or / $nor: a non-empty array of filters.
      if (!Array.isArray(value) || value.length === 0)
        return `${here.join(".")}: ${key} needs a non-empty array of filters`;
      for (let i = 0; i < value.length; i++) {
        const sub: unknown = value[i];
        if (!isDocument(sub))
          return `${[...here, String(i)].join(".")}: each entry of ${key} must be a filter object`;
        const p = checkFilterDoc(sub, [...here, String(i)], depth + 2, inElemMatch);
        if (p) return p;
      }
      continue;
    }
    const p = checkCondition(value, here, depth + 1);
    if (p) return p;
  }
  return undefined;
}

/** A field's condition: a literal to match, or an object of field operators. */
function checkCondition(value: unknown, path: string[], depth: number): string | undefined {
  if (!isDocument(value)) return checkValue(value, path, depth);
  const keys = Object.keys(value);
  const operators = keys.filter((k) => k.startsWith("$"));
  if (operators.length === 0) return checkValue(value, path, depth);
  if (operators.length !== keys.length) {
    return `${path.join(".")}: mixes operators (${operators.join(", ")}) with fields; use one or the other`;
  }
  for (const op of operators) {
    const here = [...path, op];
    const arg = value[op];
    if (!FIELD_LEVEL.has(op)) {
      return TOP_LEVEL.has(op)
        ? `${here.join(".")}: ${op} combines whole filters; put it at the top level`
        : `${here.join(".")}: unknown query operator ${op}; see MongoDB's query operators`;
    }
    if (op === "$options") {
      if (!operators.includes("$regex")) return `${here.join(".")}: $options needs a $regex beside it`;
      if (typeof arg !== "string") return `${here.join(".")}: $options takes a string of flags, e.g. "i"`;
    }
    if (op === "$regex") {
      if (typeof arg !== "string" && !isRegex(arg)) {
        return `${here.join(".")}: $regex takes a pattern string or a regular expression`;
      }
      const options = value.$options;
      if (isRegex(arg) && regexFlags(arg) !== "" && typeof options === "string" && options !== "") {
        return `${here.join(".")}: options set both in the regular expression and in $options; keep one`;
      }
    }
    if ((op === "$maxDistance" || op === "$minDistance") && !NEAR.some((n) => operators.includes(n))) {
      return `${here.join(".")}: ${op} is read only beside $near or $nearSphere`;
    }
    let p: string | undefined;
    if (op === "$not") {
      p = isDocument(arg) ? checkCondition(arg, here, depth + 1) : checkValue(arg, here, depth + 1);
    } else if (op === "$elemMatch") {
      if (!isDocument(arg)) return `${here.join(".")}: $elemMatch needs an object`;
      const inner = Object.keys(arg);
      p = inner.every((k) => FIELD_LEVEL.has(k))
        ? checkCondition(arg, here, depth + 1)
        : checkFilterDoc(arg, here, depth + 1, true);
    } else if (op === "$in" || op === "$nin" || op === "$all") {
      if (!Array.isArray(arg)) return `${here.join(".")}: ${op} needs an array`;
      // The server refuses operators inside $in/$nin ("cannot nest $ under $in"): the values
      // are matched as they are. ($all may hold {"$elemMatch": …}.)
      if (op !== "$all") {
        const nested = arg.findIndex((v) => isDocument(v) && Object.keys(v).some((k) => k.startsWith("$")));
        if (nested >= 0) {
          return `${[...here, String(nested)].join(".")}: ${op} takes values, not operators; to combine conditions use $or (e.g. {"$or": [{"f": {"$gt": 1}}, {"f": 5}]})`;
        }
      }
      p = checkValue(arg, here, depth + 1);
    } else {
      p = checkValue(arg, here, depth + 1);
    }
    if (p) return p;
  }
  return undefined;
}
