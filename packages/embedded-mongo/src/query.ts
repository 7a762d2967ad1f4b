/**
 * Query semantics on top of mingo: filters, sort order, projections, and the bridge between the
 * stored form (which keeps BSON numeric types) and the plain view mingo evaluates.
 *
 * mingo does the matching, projection operators and aggregation; this module only (1) hands it
 * plain numbers, (2) routes `$type` to the stored BSON type instead of mingo's guess from a JS
 * number, and (3) puts BSON numeric types back on whatever mingo produced.
 */
import { Long } from "bson";
import { Aggregator } from "mingo/aggregator";
import { Context } from "mingo/core";
import * as accumulatorOperators from "mingo/operators/accumulator";
import * as expressionOperators from "mingo/operators/expression";
import * as pipelineOperators from "mingo/operators/pipeline";
import * as projectionOperators from "mingo/operators/projection";
import * as queryOperators from "mingo/operators/query";
import * as windowOperators from "mingo/operators/window";
import { Query } from "mingo/query";
import type { Options } from "mingo/types";
import { CommandError, fail } from "./errors.js";
import {
  type BsonDocument,
  type NumericKind,
  TYPE_ALIASES,
  TYPE_NUMBERS,
  asKind,
  bsonTypeName,
  compareValues,
  flattenArrays,
  isNumeric,
  isPlainObject,
  keyOf,
  numericKind,
  widerKind,
  plainValue,
  toNumber,
  valuesAtPath,
} from "./values.js";

/** Stored documents that still hold numeric wrappers (their plain view differs). */
const WRAPPED = new WeakSet<object>();
const PLAIN = new WeakMap<object, BsonDocument>();
const STORED_OF_PLAIN = new WeakMap<object, BsonDocument>();

export function markWrapped(doc: BsonDocument): void {
  WRAPPED.add(doc);
}

/** The document mingo sees: the stored one itself unless it holds numeric wrappers. */
export function plainOf(doc: BsonDocument): BsonDocument {
  if (!WRAPPED.has(doc)) return doc;
  let plain = PLAIN.get(doc);
  if (!plain) {
    plain = plainValue(doc) as BsonDocument;
    PLAIN.set(doc, plain);
    STORED_OF_PLAIN.set(plain, doc);
  }
  return plain;
}

function typeMatches(value: unknown, wanted: readonly string[]): boolean {
  const name = bsonTypeName(value);
  return wanted.some((w) => w === name || (w === "number" && isNumeric(value)));
}

/** `$type` against the stored BSON type (mingo would only see a JS number). */
const bsonTypeOperator = (selector: string, value: unknown) => {
  const wanted = (Array.isArray(value) ? value : [value]) as string[];
  const path = selector.split(".");
  return (obj: BsonDocument): boolean => {
    const stored = STORED_OF_PLAIN.get(obj) ?? obj;
    for (const v of valuesAtPath(stored, path)) {
      if (typeMatches(v, wanted)) return true;
      if (Array.isArray(v) && v.some((el) => typeMatches(el, wanted))) return true;
    }
    return false;
  };
};

/**
 * `$in` over plain values as a hash-set lookup. mingo's `$in` intersects arrays per document
 * (O(n) per test), which makes `{_id: {$in: [...500 ids]}}` quadratic over a chunk.
 */
const inKeysOperator = (selector: string, value: unknown) => {
  const wanted = new Set((value as unknown[]).map(keyOf));
  const path = selector.split(".");
  return (obj: BsonDocument): boolean => {
    const stored = STORED_OF_PLAIN.get(obj) ?? obj;
    for (const v of valuesAtPath(stored, path)) {
      if (wanted.has(keyOf(v))) return true;
      if (Array.isArray(v) && v.some((el) => wanted.has(keyOf(el)))) return true;
    }
    return false;
  };
};

const isHashable = (v: unknown): boolean =>
  v !== null &&
  v !== undefined &&
  !Array.isArray(v) &&
  !isPlainObject(v) &&
  !(v instanceof RegExp) &&
  bsonTypeName(v) !== "regex";

// Every operator mingo has, plus ours, merged once. mingo's default Query merges its operator
// tables into the given context on every construction (several copies of a few hundred entries),
// which was over half of the engine's time per command; its base Query takes the context as is.
/**
 * `$sum` in `$group` over a field: mingo adds plain numbers, so the result's BSON type is rebuilt
 * from the stored values summed — Int32 while it fits, Long past 2^31 or when a Long is summed,
 * Double when a Double is — as a server types it.
 */
const typedSum = (collection: unknown[], expr: unknown, options: unknown): unknown => {
  const total = (accumulatorOperators.$sum as (c: unknown[], e: unknown, o: unknown) => unknown)(
    collection,
    expr,
    options,
  );
  if (
    typeof total !== "number" ||
    typeof expr !== "string" ||
    !expr.startsWith("$") ||
    expr.startsWith("$$")
  ) {
    return total;
  }
  const path = expr.slice(1).split(".");
  let kind: NumericKind = "int";
  for (const d of collection) {
    const stored = isPlainObject(d) ? (STORED_OF_PLAIN.get(d) ?? d) : d;
    for (const v of valuesAtPath(stored, path)) {
      const k = numericKind(v);
      if (k !== undefined) kind = widerKind(kind, k);
    }
  }
  return asKind(total, kind);
};

const CONTEXT = Context.init({
  accumulator: { ...accumulatorOperators, $sum: typedSum },
  expression: expressionOperators,
  pipeline: pipelineOperators,
  projection: projectionOperators,
  query: queryOperators,
  window: windowOperators,
}).addQueryOps({
  $bsonType: bsonTypeOperator as never,
  $inKeys: inKeysOperator as never,
});

export const MINGO_OPTIONS: Partial<Options> = {
  context: CONTEXT,
  scriptEnabled: false,
  useStrictMode: true,
};

/**
 * mingo's compiled options (its internal `ComputeOptions`), built once. Given plain options, a
 * Query copies every operator table of the context (about 10 µs, a quarter of a small find); given
 * a `ComputeOptions` it takes its context as is. The class is not exported, so one query is
 * compiled with an operator whose only job is to hand its options over; after that the operator
 * refuses to compile, exactly as an unknown operator would.
 */
const CAPTURE_OPERATOR = "$__chunkrelayComputeOptions";
let capturedOptions: unknown;
new Query(
  { _: { [CAPTURE_OPERATOR]: 1 } },
  {
    ...MINGO_OPTIONS,
    context: Context.from(CONTEXT).addQueryOps({
      [CAPTURE_OPERATOR]: (_selector: string, _value: unknown, options: unknown) => {
        if (capturedOptions !== undefined) throw new Error(`unknown query operator ${CAPTURE_OPERATOR}`);
        capturedOptions = options;
        return () => true;
      },
    }),
  },
);
if (capturedOptions === undefined) throw new Error("mingo did not hand its compiled options over");
const QUERY_OPTIONS = capturedOptions as Partial<Options>;

function typeArgument(arg: unknown): string[] {
  const list = Array.isArray(arg) ? arg : [arg];
  return list.map((t) => {
    if (typeof t === "string") {
      if (!TYPE_ALIASES.has(t)) fail("BadValue", `Unknown type name alias: ${t}`);
      return t;
    }
    if (isNumeric(t)) {
      const alias = TYPE_NUMBERS[toNumber(t)];
      if (alias === undefined) fail("BadValue", `Invalid numerical type code: ${toNumber(t)}`);
      return alias as string;
    }
    return fail("TypeMismatch", "type must be represented as a number or a string");
  });
}

function rewriteOperators(ops: BsonDocument): BsonDocument {
  const out: BsonDocument = {};
  for (const [op, arg] of Object.entries(ops)) {
    if (op === "$type") out.$bsonType = typeArgument(arg);
    else if (op === "$in" && Array.isArray(arg) && arg.length > 4 && arg.every(isHashable)) out.$inKeys = arg;
    else if (op === "$not" && isPlainObject(arg)) out.$not = rewriteOperators(arg);
    else if (op === "$elemMatch" && isPlainObject(arg)) out.$elemMatch = rewriteFilter(arg);
    else out[op] = arg;
  }
  return out;
}

const isOperatorObject = (v: unknown): v is BsonDocument =>
  isPlainObject(v) && Object.keys(v).length > 0 && Object.keys(v).every((k) => k.startsWith("$"));

function rewriteFilter(filter: BsonDocument): BsonDocument {
  const out: BsonDocument = {};
  /** Clauses standing for operators mingo lacks, joined to the filter with `$and`. */
  const extra: BsonDocument[] = [];
  for (const [key, value] of Object.entries(filter)) {
    if (key === "$and" || key === "$or" || key === "$nor") {
      if (!Array.isArray(value) || value.length === 0) {
        fail("BadValue", `${key} must be a nonempty array`);
      }
      out[key] = (value as unknown[]).map((f) => {
        if (!isPlainObject(f)) return fail("BadValue", `${key} argument's entries must be objects`);
        return rewriteFilter(f);
      });
    } else if (key === "$alwaysTrue" || key === "$alwaysFalse") {
      // The manual's constant predicates, as the `$expr` each one is.
      extra.push({ $expr: key === "$alwaysTrue" });
    } else if (key === "$sampleRate") {
      // The manual defines it as `{$expr: {$lt: [{$rand: {}}, rate]}}`, a rate in [0, 1].
      if (!isNumeric(value) || toNumber(value) < 0 || toNumber(value) > 1) {
        fail("BadValue", "numeric argument to $sampleRate must be in [0, 1]");
      }
      extra.push({ $expr: { $lt: [{ $rand: {} }, toNumber(value)] } });
    } else if (key === "$comment") {
      // A note for the server's logs: it never changes what matches.
      continue;
    } else if (key === "$where") {
      fail("BadValue", "$where is not allowed in this context (no server-side JavaScript)");
    } else if (isOperatorObject(value)) {
      out[key] = rewriteOperators(value);
    } else {
      out[key] = value;
    }
  }
  if (extra.length > 0) out.$and = [...((out.$and as BsonDocument[] | undefined) ?? []), ...extra];
  return out;
}

export type Matcher = (doc: BsonDocument) => boolean;

/**
 * mingo's error for a name it does not know, in a server's words: an unknown query operator is
 * BadValue (2) "unknown operator: $x"; an unknown expression — mingo calls every expression
 * operator an "accumulator" — is InvalidPipelineOperator (168) "Unrecognized expression '$x'".
 * Anything else mingo refuses is BadValue with its own message.
 */
function failFromMingo(err: unknown): never {
  if (err instanceof CommandError) throw err;
  const message = (err as Error).message;
  const query = /^unknown query operator (\$\S+)/.exec(message);
  if (query) return fail("BadValue", `unknown operator: ${query[1]}`);
  const expression = /^accumulator '(\$[^']+)' is not registered/.exec(message);
  if (expression) return fail("InvalidPipelineOperator", `Unrecognized expression '${expression[1]}'`);
  return fail("BadValue", message);
}

/** Compiles a query filter into a predicate over stored documents. */
export function compileFilter(filter: unknown): Matcher {
  if (filter === undefined || filter === null) return () => true;
  if (!isPlainObject(filter)) return fail("TypeMismatch", "filter must be an object");
  if (Object.keys(filter).length === 0) return () => true;
  let query: Query;
  try {
    query = new Query(plainValue(rewriteFilter(filter)) as BsonDocument, QUERY_OPTIONS);
  } catch (err) {
    return failFromMingo(err);
  }
  return (doc) => {
    try {
      return query.test(plainOf(doc));
    } catch (err) {
      return failFromMingo(err);
    }
  };
}

/** A bound on one field, taken from the top-level conjunction of a filter, for index planning. */
export interface FieldBounds {
  eq?: { value: unknown };
  /** `$in` with scalar values: a union of point lookups. */
  in?: unknown[];
  lower?: { value: unknown; inclusive: boolean };
  upper?: { value: unknown; inclusive: boolean };
}

const isScalarBound = (v: unknown): boolean =>
  !Array.isArray(v) && !isPlainObject(v) && !(v instanceof RegExp) && v !== undefined;

/** Equality and range bounds implied by a filter's top-level conjunction. */
export function extractBounds(filter: unknown, into = new Map<string, FieldBounds>()) {
  if (!isPlainObject(filter)) return into;
  for (const [key, value] of Object.entries(filter)) {
    if (key === "$and" && Array.isArray(value)) {
      for (const f of value) extractBounds(f, into);
      continue;
    }
    if (key.startsWith("$")) continue;
    const b = into.get(key) ?? {};
    if (isOperatorObject(value)) {
      for (const [op, arg] of Object.entries(value)) {
        if (op === "$in" && Array.isArray(arg) && arg.length > 0 && arg.every(isScalarBound)) {
          b.in ??= arg as unknown[];
          continue;
        }
        if (!isScalarBound(arg)) continue;
        if (op === "$eq") b.eq ??= { value: arg };
        else if (op === "$gt" || op === "$gte") b.lower ??= { value: arg, inclusive: op === "$gte" };
        else if (op === "$lt" || op === "$lte") b.upper ??= { value: arg, inclusive: op === "$lte" };
      }
    } else if (isScalarBound(value)) {
      b.eq ??= { value };
    }
    if (b.eq || b.in || b.lower || b.upper) into.set(key, b);
  }
  return into;
}

export type SortSpec = Array<[string, 1 | -1]>;

export function parseSort(sort: unknown): SortSpec | undefined {
  if (sort === undefined || sort === null) return undefined;
  if (!isPlainObject(sort)) return fail("TypeMismatch", "sort must be an object");
  const spec: SortSpec = [];
  for (const [path, dir] of Object.entries(sort)) {
    if (!isNumeric(dir)) {
      return fail("BadValue", `$sort key ordering must be 1 (for ascending) or -1 (for descending)`);
    }
    const n = toNumber(dir);
    if (n !== 1 && n !== -1) {
      fail("BadValue", "$sort key ordering must be 1 (for ascending) or -1 (for descending)");
    }
    spec.push([path, n as 1 | -1]);
  }
  return spec.length > 0 ? spec : undefined;
}

/** The value a document sorts by: arrays sort by their least (asc) or greatest (desc) element. */
function sortKey(doc: BsonDocument, path: string, dir: 1 | -1): unknown {
  const vals = flattenArrays(valuesAtPath(doc, path.split(".")));
  if (vals.length === 0) return null;
  let best = vals[0];
  for (const v of vals) {
    const c = compareValues(v, best);
    if ((dir === 1 && c < 0) || (dir === -1 && c > 0)) best = v;
  }
  return best;
}

export function sortDocuments(docs: BsonDocument[], spec: SortSpec): BsonDocument[] {
  if (spec.length === 1 && spec[0]?.[0] === "$natural") {
    return spec[0][1] === 1 ? docs : docs.slice().reverse();
  }
  const keyed = docs.map((doc, i) => ({ doc, i, keys: spec.map(([p, d]) => sortKey(doc, p, d)) }));
  keyed.sort((a, b) => {
    for (let k = 0; k < spec.length; k++) {
      const c = compareValues(a.keys[k], b.keys[k]) * (spec[k]?.[1] ?? 1);
      if (c !== 0) return c;
    }
    return a.i - b.i;
  });
  return keyed.map((k) => k.doc);
}

// ---------------------------------------------------------------------------------------------
// Projection

type SimpleProjection = { include: boolean; paths: string[][]; id: boolean };

function simpleProjection(spec: BsonDocument): SimpleProjection | undefined {
  let include: boolean | undefined;
  let id = true;
  const paths: string[][] = [];
  for (const [path, v] of Object.entries(spec)) {
    let on: boolean;
    if (typeof v === "boolean") on = v;
    else if (isNumeric(v)) on = toNumber(v) !== 0;
    else return undefined;
    if (path.includes("$")) return undefined;
    if (path === "_id") {
      id = on;
      continue;
    }
    if (include === undefined) include = on;
    else if (include !== on) {
      fail(
        include ? "Location31254" : "Location31253",
        `Cannot do ${include ? "exclusion" : "inclusion"} on field ${path} in ${include ? "inclusion" : "exclusion"} projection`,
      );
    }
    paths.push(path.split("."));
  }
  // Only `_id` named: {_id: 1} keeps just the id, {_id: 0} drops just the id.
  if (include === undefined)
    return id ? { include: true, paths: [], id } : { include: false, paths: [["_id"]], id };
  if (!include && !id) paths.push(["_id"]);
  return { include, paths, id };
}

function includePaths(value: unknown, paths: string[][]): unknown {
  if (Array.isArray(value)) {
    return value.filter((el) => isPlainObject(el) || Array.isArray(el)).map((el) => includePaths(el, paths));
  }
  if (!isPlainObject(value)) return undefined;
  const out: BsonDocument = {};
  for (const key of Object.keys(value)) {
    const sub = paths.filter((p) => p[0] === key);
    if (sub.length === 0) continue;
    if (sub.some((p) => p.length === 1)) out[key] = value[key];
    else {
      const inner = includePaths(
        value[key],
        sub.map((p) => p.slice(1)),
      );
      if (inner !== undefined) out[key] = inner;
    }
  }
  return out;
}

function excludePaths(value: unknown, paths: string[][]): unknown {
  if (Array.isArray(value)) return value.map((el) => excludePaths(el, paths));
  if (!isPlainObject(value)) return value;
  const out: BsonDocument = {};
  for (const key of Object.keys(value)) {
    const sub = paths.filter((p) => p[0] === key);
    if (sub.some((p) => p.length === 1)) continue;
    out[key] =
      sub.length === 0
        ? value[key]
        : excludePaths(
            value[key],
            sub.map((p) => p.slice(1)),
          );
  }
  return out;
}

export type Projector = (doc: BsonDocument) => BsonDocument;

/** Compiles a find projection. Simple inclusion/exclusion keeps stored values untouched. */
export function compileProjection(spec: unknown): Projector | undefined {
  if (spec === undefined || spec === null) return undefined;
  if (!isPlainObject(spec)) return fail("TypeMismatch", "projection must be an object");
  if (Object.keys(spec).length === 0) return undefined;
  const simple = simpleProjection(spec);
  if (simple) {
    const { include, paths, id } = simple;
    if (!include) return (doc) => excludePaths(doc, paths) as BsonDocument;
    return (doc) => {
      const out = includePaths(doc, paths) as BsonDocument;
      if (id && doc._id !== undefined) return { _id: doc._id, ...out };
      return out;
    };
  }
  const plainSpec = plainValue(spec) as BsonDocument;
  const query = new Query({}, QUERY_OPTIONS);
  return (doc) => {
    try {
      const projected = query.find([plainOf(doc)], plainSpec).next() as BsonDocument;
      return restoreTypes(projected, doc) as BsonDocument;
    } catch (err) {
      return fail("BadValue", (err as Error).message);
    }
  };
}

// ---------------------------------------------------------------------------------------------
// Types back onto mingo's output

/**
 * How a numeric value at a path got its new value during an update: `set` carries the exact
 * value written; `arith` carries the operand of `$inc`/`$mul` (the result widens both types).
 */
export type TypeHint = { kind: "set" | "arith"; value: unknown };

/**
 * Puts BSON numeric types back on a plain value produced by mingo. A number equal to the stored
 * value at the same path keeps the stored type; a number written by an update takes the type
 * MongoDB would give it; any other number gets the type the driver would have sent.
 */
export function restoreTypes(
  plain: unknown,
  stored: unknown,
  hints?: Map<string, TypeHint>,
  path = "",
): unknown {
  if (typeof plain === "number") {
    const hint = hints?.get(path) ?? (hints ? wildcardHint(hints, path) : undefined);
    if (hint) {
      if (hint.kind === "set") {
        if (isNumeric(hint.value) && toNumber(hint.value) === plain) return hint.value;
      } else {
        const before = numericKind(stored) ?? "int";
        const operand = numericKind(hint.value) ?? "int";
        const kind = widerKind(before, operand);
        return asKind(plain, kind);
      }
    }
    if (
      isNumeric(stored) &&
      (toNumber(stored) === plain || (Number.isNaN(plain) && Number.isNaN(toNumber(stored))))
    ) {
      return stored;
    }
    return plain;
  }
  if (Array.isArray(plain)) {
    const old = Array.isArray(stored) ? stored : [];
    return plain.map((el, i) => restoreTypes(el, old[i], hints, path ? `${path}.${i}` : String(i)));
  }
  if (isPlainObject(plain)) {
    const old = isPlainObject(stored) ? stored : {};
    const out: BsonDocument = {};
    for (const [k, v] of Object.entries(plain)) {
      out[k] = restoreTypes(v, old[k], hints, path ? `${path}.${k}` : k);
    }
    return out;
  }
  return plain;
}

/** Hints written for `a.$[].b` or `a.$.b` apply to every concrete `a.N.b`. */
function wildcardHint(hints: Map<string, TypeHint>, path: string): TypeHint | undefined {
  if (hints.size === 0 || !/\.\d+(\.|$)/.test(path)) return undefined;
  const segs = path.split(".");
  for (const [pattern, hint] of hints) {
    const ps = pattern.split(".");
    if (ps.length !== segs.length) continue;
    if (ps.every((p, i) => p === segs[i] || (p.startsWith("$") && /^\d+$/.test(segs[i] ?? "")))) {
      return hint;
    }
  }
  return undefined;
}

/**
 * Numbers a pipeline computed reach the wire as Int32 when they fit and Double otherwise; a server
 * sums and adds integers into a Long past 2^31. Integral values beyond Int32 (and exact, within
 * 2^53) are therefore sent as Long — the type a server gives integer arithmetic; a sum of doubles
 * that happens to be integral is the one case a server keeps as Double (README, "What differs").
 */
function widenComputedIntegers(v: unknown): unknown {
  if (typeof v === "number") {
    return Number.isInteger(v) && (v > 2_147_483_647 || v < -2_147_483_648) && Number.isSafeInteger(v)
      ? Long.fromNumber(v)
      : v;
  }
  if (Array.isArray(v)) return v.map(widenComputedIntegers);
  if (isPlainObject(v)) {
    const out: BsonDocument = {};
    for (const [k, x] of Object.entries(v)) out[k] = widenComputedIntegers(x);
    return out;
  }
  return v;
}

/** Runs an aggregation pipeline over stored documents with mingo, restoring types. */
export function runPipeline(
  docs: Iterable<BsonDocument>,
  pipeline: BsonDocument[],
  resolveCollection: (name: string) => BsonDocument[],
): BsonDocument[] {
  const inputs: BsonDocument[] = [];
  for (const d of docs) inputs.push(plainOf(d));
  try {
    const agg = new Aggregator(plainValue(pipeline) as BsonDocument[], {
      ...MINGO_OPTIONS,
      collectionResolver: (name: string) => resolveCollection(name).map(plainOf),
    });
    const out = agg.run<BsonDocument>(inputs);
    return out.map((d) => STORED_OF_PLAIN.get(d) ?? (widenComputedIntegers(d) as BsonDocument));
  } catch (err) {
    return failFromMingo(err);
  }
}
