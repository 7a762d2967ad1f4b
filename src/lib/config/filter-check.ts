/**
 * What a filter must be before it is stored: nothing the server would refuse later, nothing a
 * parser quietly repaired. Checked against MongoDB's own query operator set (not the embedded
 * engine's), so a filter valid on a real server is never refused here.
 */

/** Operators that combine whole filters, at the top of a filter (or of an `$elemMatch`). */
const TOP_LEVEL = new Set(["$and", "$or", "$nor", "$expr", "$jsonSchema", "$text", "$comment", "$where"]);

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
  "$geoIntersects",
  "$geoWithin",
  "$near",
  "$nearSphere",
  "$maxDistance",
  "$minDistance",
]);

/** Operators whose argument is not a filter (an aggregation expression, a schema, a shape). */
const OPAQUE = new Set([
  "$expr",
  "$jsonSchema",
  "$text",
  "$comment",
  "$where",
  "$geoIntersects",
  "$geoWithin",
  "$near",
  "$nearSphere",
]);

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
  return checkFilterDoc(filter, ["filter"], 1);
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

function checkFilterDoc(doc: Record<string, unknown>, path: string[], depth: number): string | undefined {
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
        const p = checkFilterDoc(sub, [...here, String(i)], depth + 2);
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
    let p: string | undefined;
    if (op === "$not") {
      p = isDocument(arg) ? checkCondition(arg, here, depth + 1) : checkValue(arg, here, depth + 1);
    } else if (op === "$elemMatch") {
      if (!isDocument(arg)) return `${here.join(".")}: $elemMatch needs an object`;
      const inner = Object.keys(arg);
      p = inner.every((k) => FIELD_LEVEL.has(k))
        ? checkCondition(arg, here, depth + 1)
        : checkFilterDoc(arg, here, depth + 1);
    } else if (op === "$in" || op === "$nin" || op === "$all") {
      if (!Array.isArray(arg)) return `${here.join(".")}: ${op} needs an array`;
      p = checkValue(arg, here, depth + 1);
    } else {
      p = checkValue(arg, here, depth + 1);
    }
    if (p) return p;
  }
  return undefined;
}
