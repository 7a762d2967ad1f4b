/**
 * BSON values in MongoDB's comparison/sort order, and dotted-path reads, for the product's own
 * use: cuts and windows are compared here exactly as the server orders the records they bound,
 * whichever server that is (a real mongod or the embedded engine).
 *
 * The order (MongoDB manual, "Comparison/Sort Order"), lowest first:
 * MinKey < null (and a missing value, `undefined`) < numbers < Symbol, String < Object < Array
 * < BinData < ObjectId < Boolean < Date < Timestamp < Regular Expression < JavaScript Code
 * < JavaScript Code with Scope < MaxKey. Within a type:
 * - numbers by exact value across int32, Long, Double and Decimal128 (as the server does: a Long
 *   beyond 2^53 is not rounded to a double, a Double is not rounded to 34 decimal digits);
 *   NaN is equal to NaN and below every other number; -0 equals 0;
 * - strings (and symbols) by their UTF-8 bytes (the server's "simple" binary comparison);
 * - objects field by field in stored order: first the field values' types, then the field
 *   names, then the values; a prefix sorts first;
 * - arrays element by element (types, then values); a prefix sorts first. This is how the server
 *   compares two whole values (`$lt` on an array, an `_id`, an element of a compound key). A sort
 *   on an array *field* instead uses its smallest or largest element: that is a property of the
 *   sort key, not of the value order, and the product never sorts on array fields;
 * - BinData by length, then subtype, then bytes; ObjectIds by their 12 bytes; false < true;
 *   Dates by milliseconds; Timestamps by seconds, then increment; regular expressions by pattern,
 *   then flags; Code by its text (with scope: then the scope).
 *
 * Values are what the driver hands out: JS numbers, bigints (`useBigInt64`), strings, booleans,
 * Dates, RegExps, Uint8Arrays, arrays, plain objects and the `bson` package's classes.
 * Anything else has no place in MongoDB's order and is refused with a TypeError.
 */
import { EJSON } from "bson";
import { ObjectId } from "bson";
import type { Binary, Code, Decimal128, Long, Timestamp } from "bson";

/** Type ranks in MongoDB's order (the server's canonical type numbers, renumbered). */
const RANK = {
  minKey: 0,
  null: 1,
  number: 2,
  string: 3,
  object: 4,
  array: 5,
  binData: 6,
  objectId: 7,
  boolean: 8,
  date: 9,
  timestamp: 10,
  regex: 11,
  code: 12,
  codeWithScope: 13,
  maxKey: 14,
} as const;

type Rank = (typeof RANK)[keyof typeof RANK];

const bsonTypeOf = (v: object): string | undefined =>
  (v as { _bsontype?: unknown })._bsontype as string | undefined;

function rankOf(v: unknown): Rank {
  if (v === undefined || v === null) return RANK.null;
  switch (typeof v) {
    case "number":
    case "bigint":
      return RANK.number;
    case "string":
      return RANK.string;
    case "boolean":
      return RANK.boolean;
    case "object":
      break;
    default:
      throw new TypeError(`not a BSON value: ${typeof v}`);
  }
  if (Array.isArray(v)) return RANK.array;
  if (v instanceof Date) return RANK.date;
  if (v instanceof RegExp) return RANK.regex;
  if (ArrayBuffer.isView(v)) return RANK.binData;
  const type = bsonTypeOf(v);
  switch (type) {
    case undefined:
    case "DBRef":
      return RANK.object;
    case "MinKey":
      return RANK.minKey;
    case "MaxKey":
      return RANK.maxKey;
    case "Int32":
    case "Double":
    case "Long":
    case "Decimal128":
      return RANK.number;
    case "BSONSymbol":
      return RANK.string;
    case "Binary":
      return RANK.binData;
    case "ObjectId":
      return RANK.objectId;
    case "Timestamp":
      return RANK.timestamp;
    case "BSONRegExp":
      return RANK.regex;
    case "Code":
      return (v as Code).scope ? RANK.codeWithScope : RANK.code;
    default:
      throw new TypeError(`not a BSON value the product compares: ${type}`);
  }
}

/** `$type` aliases of each rank (what a query names a BSON type by). */
const TYPE_ALIASES: Record<Rank, string[]> = {
  // MinKey and MaxKey ids are pathological, and FerretDB 1.x knows no alias for them.
  [RANK.minKey]: [],
  [RANK.null]: ["null"],
  [RANK.number]: ["double", "int", "long", "decimal"],
  // Symbols and code are deprecated BSON types: not every server knows their aliases any more
  // (FerretDB 1.x refuses "symbol"), and no driver writes them as an _id.
  [RANK.string]: ["string"],
  [RANK.object]: ["object"],
  [RANK.array]: ["array"],
  [RANK.binData]: ["binData"],
  [RANK.objectId]: ["objectId"],
  [RANK.boolean]: ["bool"],
  [RANK.date]: ["date"],
  [RANK.timestamp]: ["timestamp"],
  [RANK.regex]: ["regex"],
  [RANK.code]: [],
  [RANK.codeWithScope]: [],
  [RANK.maxKey]: [],
};

/**
 * The `$type` aliases of every type that sorts after `v`'s type. A range query (`$gt`) matches
 * values of the same type only (MongoDB brackets comparisons by type), so a keyset page that
 * runs out of its type continues with these.
 */
export function typesSortingAfter(v: unknown): string[] {
  const rank = rankOf(v);
  return (Object.keys(TYPE_ALIASES) as unknown as Rank[])
    .map(Number)
    .filter((r) => r > rank)
    .sort((a, b) => a - b)
    .flatMap((r) => TYPE_ALIASES[r as Rank]);
}

/** Whether a value is a numeric NaN (a double's, or a Decimal128's). */
export function isNaNValue(v: unknown): boolean {
  if (typeof v === "number") return Number.isNaN(v);
  const type = v !== null && typeof v === "object" ? bsonTypeOf(v) : undefined;
  if (type === "Double") return Number.isNaN((v as { value: number }).value);
  if (type === "Decimal128") return (v as Decimal128).toString() === "NaN";
  return false;
}

/**
 * The filter for values after `v` within `v`'s own type bracket. NaN sorts before every other
 * number, but `$gt: NaN` matches nothing: after a NaN come all numbers (`$gte: -Infinity`).
 */
export function rangeAfter(v: unknown): { $gt: unknown } | { $gte: number } {
  return isNaNValue(v) ? { $gte: Number.NEGATIVE_INFINITY } : { $gt: v };
}

/**
 * One page of ids in MongoDB's order after `after` (none: from the start), through `read`: the
 * ids after it within its own type (`rangeAfter`), then, while the page is not full, the ids of
 * the types that sort after it. Two indexed reads at most, however deep the page.
 */
export async function readPageAfter<T>(
  read: (idFilter: Record<string, unknown> | undefined, n: number) => Promise<T[]>,
  after: { id: unknown } | undefined,
  n: number,
): Promise<T[]> {
  if (!after) return read(undefined, n);
  const docs = await read(rangeAfter(after.id), n);
  if (docs.length >= n) return docs;
  const later = typesSortingAfter(after.id);
  return later.length === 0 ? docs : docs.concat(await read({ $type: later }, n - docs.length));
}

/**
 * A record id as a map key: the common id types directly, anything else as canonical Extended
 * JSON (the same id read twice gives the same key either way; a key per record per chunk was
 * the most expensive part of building a body when every id went through Extended JSON).
 */
export function recordIdKey(id: unknown): string {
  if (typeof id === "string") return `s:${id}`;
  if (typeof id === "number") return `n:${id}`;
  if (id instanceof ObjectId) return `o:${id.toHexString()}`;
  return `x:${EJSON.stringify({ v: id })}`;
}

/**
 * Why a record id cannot be a page cursor, or undefined: the types a keyset page moves through
 * (numbers, strings, documents, binary data, ObjectIds, booleans, dates, timestamps, null).
 * MinKey, MaxKey, arrays, regular expressions, code, symbols and undefined are never record ids.
 */
export function cursorIdProblem(v: unknown): string | undefined {
  if (v === undefined) return "undefined is not a record id";
  if (Array.isArray(v)) return "an array is not a record id";
  try {
    const rank = rankOf(v);
    if (
      rank === RANK.minKey ||
      rank === RANK.maxKey ||
      rank === RANK.regex ||
      rank === RANK.code ||
      rank === RANK.codeWithScope
    )
      return "MinKey, MaxKey, regular expressions and code are not record ids";
    if (v !== null && typeof v === "object" && bsonTypeOf(v) === "BSONSymbol")
      return "a symbol is not a record id";
  } catch (err) {
    return (err as Error).message;
  }
  return undefined;
}

const sign = (n: number): number => (n < 0 ? -1 : n > 0 ? 1 : 0);
const cmp = <T extends number | bigint | string>(a: T, b: T): number => (a < b ? -1 : a > b ? 1 : 0);

/**
 * Compares two BSON values in MongoDB's order: negative when `a` sorts first, 0 when the server
 * considers them equal, positive otherwise.
 */
export function compareBson(a: unknown, b: unknown): number {
  // The common cut keys first: two strings, two numbers that are not NaN.
  if (typeof a === "string" && typeof b === "string") return compareStrings(a, b);
  if (typeof a === "number" && typeof b === "number" && a === a && b === b) return cmp(a, b);
  const ra = rankOf(a);
  const rb = rankOf(b);
  if (ra !== rb) return ra - rb;
  switch (ra) {
    case RANK.minKey:
    case RANK.null:
    case RANK.maxKey:
      return 0;
    case RANK.number:
      return compareNumbers(a, b);
    case RANK.string:
      return compareStrings(textOf(a), textOf(b));
    case RANK.object:
      return compareObjects(plainObjectOf(a as object), plainObjectOf(b as object));
    case RANK.array:
      return compareArrays(a as readonly unknown[], b as readonly unknown[]);
    case RANK.binData:
      return compareBinData(a as object, b as object);
    case RANK.objectId:
      return compareBytes((a as ObjectId).id, (b as ObjectId).id);
    case RANK.boolean:
      return cmp(Number(a), Number(b));
    case RANK.date:
      return cmp((a as Date).getTime(), (b as Date).getTime());
    case RANK.timestamp:
      return cmp((a as Timestamp).t, (b as Timestamp).t) || cmp((a as Timestamp).i, (b as Timestamp).i);
    case RANK.regex: {
      const x = regexOf(a as object);
      const y = regexOf(b as object);
      return compareStrings(x.pattern, y.pattern) || compareStrings(x.flags, y.flags);
    }
    case RANK.code:
      return compareStrings((a as Code).code, (b as Code).code);
    case RANK.codeWithScope:
      return (
        compareStrings((a as Code).code, (b as Code).code) ||
        compareObjects((a as Code).scope ?? {}, (b as Code).scope ?? {})
      );
    default: {
      const never: never = ra;
      return never;
    }
  }
}

// ---------------------------------------------------------------------------------------------
// strings

const textOf = (v: unknown): string => (typeof v === "string" ? v : (v as { value: string }).value);

/**
 * UTF-8 byte order without encoding: it is code point order, which UTF-16 code units share
 * except when the first difference pits a surrogate (a code point above U+FFFF) against a unit
 * in U+E000..U+FFFF. Only then are code points compared.
 */
function compareStrings(a: string, b: string): number {
  if (a === b) return 0;
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    const x = a.charCodeAt(i);
    const y = b.charCodeAt(i);
    if (x === y) continue;
    if (x >= 0xd800 && y >= 0xd800) return sign((a.codePointAt(i) as number) - (b.codePointAt(i) as number));
    return sign(x - y);
  }
  return sign(a.length - b.length);
}

// ---------------------------------------------------------------------------------------------
// numbers

/** A finite number as coefficient × 10^exponent, exactly. */
interface Exact {
  coefficient: bigint;
  exponent: number;
}
type Numeric = { kind: "nan" } | { kind: "infinity"; sign: 1 | -1 } | { kind: "finite"; value: Exact };

/** The JS-native form: a double as a JS number, an integer as a bigint, or a Decimal128. */
function nativeNumber(v: unknown): number | bigint | Decimal128 {
  if (typeof v === "number" || typeof v === "bigint") return v;
  switch (bsonTypeOf(v as object)) {
    case "Int32":
    case "Double":
      return (v as { value: number }).value;
    case "Long":
      return (v as Long).toBigInt();
    default:
      return v as Decimal128;
  }
}

function compareNumbers(a: unknown, b: unknown): number {
  const x = nativeNumber(a);
  const y = nativeNumber(b);
  if (typeof x === "number" && typeof y === "number") {
    // NaN equals NaN and sorts below every other number, -Infinity included.
    if (Number.isNaN(x)) return Number.isNaN(y) ? 0 : -1;
    if (Number.isNaN(y)) return 1;
    return cmp(x, y);
  }
  if (typeof x === "bigint" && typeof y === "bigint") return cmp(x, y);
  if (typeof x === "bigint" && typeof y === "number") return compareIntegerToDouble(x, y);
  if (typeof x === "number" && typeof y === "bigint") return -compareIntegerToDouble(y, x);
  return compareNumerics(numericOf(x), numericOf(y));
}

/** Exact, without leaving 64-bit-sized integers: a Long against a Double is the hot mixed case. */
function compareIntegerToDouble(i: bigint, d: number): number {
  if (Number.isNaN(d)) return 1;
  if (d === Infinity) return -1;
  if (d === -Infinity) return 1;
  const floor = Math.floor(d);
  const byFloor = cmp(i, BigInt(floor));
  if (byFloor !== 0) return byFloor;
  // i equals ⌊d⌋: below d when d has a fraction.
  return floor === d ? 0 : -1;
}

function numericOf(v: number | bigint | Decimal128): Numeric {
  if (typeof v === "bigint") return { kind: "finite", value: { coefficient: v, exponent: 0 } };
  if (typeof v === "number") {
    if (Number.isNaN(v)) return { kind: "nan" };
    if (!Number.isFinite(v)) return { kind: "infinity", sign: v > 0 ? 1 : -1 };
    return { kind: "finite", value: exactDouble(v) };
  }
  return decimalOf(v);
}

/**
 * A double's exact value: mantissa × 2^e, and for e < 0, 2^e = 5^-e × 10^e, so the coefficient
 * is mantissa × 5^-e. (0.1 is 1000000000000000055511151231257827021181583404541015625 × 10^-55.)
 */
function exactDouble(d: number): Exact {
  if (Number.isInteger(d)) return { coefficient: BigInt(d), exponent: 0 };
  const view = new DataView(new ArrayBuffer(8));
  view.setFloat64(0, d);
  const bits = view.getBigUint64(0);
  const negative = bits >> 63n === 1n;
  const biased = Number((bits >> 52n) & 0x7ffn);
  const fraction = bits & 0xfffffffffffffn;
  // Subnormals have no implicit leading 1 and the smallest exponent.
  const mantissa = biased === 0 ? fraction : fraction | (1n << 52n);
  const e = (biased === 0 ? 1 : biased) - 1075;
  // Not an integer, so e < 0 here.
  const coefficient = mantissa * 5n ** BigInt(-e);
  return { coefficient: negative ? -coefficient : coefficient, exponent: e };
}

function decimalOf(d: Decimal128): Numeric {
  const text = d.toString();
  if (text === "NaN" || text === "-NaN") return { kind: "nan" };
  if (text === "Infinity") return { kind: "infinity", sign: 1 };
  if (text === "-Infinity") return { kind: "infinity", sign: -1 };
  const m = /^(-?)(\d+)(?:\.(\d+))?(?:E([+-]\d+))?$/.exec(text);
  if (!m) throw new TypeError(`unexpected Decimal128 text '${text}'`);
  const [, minus, whole, fraction = "", exp = "0"] = m;
  const coefficient = BigInt(`${whole}${fraction}`);
  return {
    kind: "finite",
    value: { coefficient: minus ? -coefficient : coefficient, exponent: Number(exp) - fraction.length },
  };
}

function compareNumerics(x: Numeric, y: Numeric): number {
  if (x.kind === "nan") return y.kind === "nan" ? 0 : -1;
  if (y.kind === "nan") return 1;
  if (x.kind === "infinity") return y.kind === "infinity" ? cmp(x.sign, y.sign) : x.sign;
  if (y.kind === "infinity") return -y.sign;
  return compareExact(x.value, y.value);
}

function compareExact(x: Exact, y: Exact): number {
  const sx = cmp(x.coefficient, 0n);
  const sy = cmp(y.coefficient, 0n);
  if (sx !== sy || sx === 0) return cmp(sx, sy);
  // Same sign, both non-zero: scale the one with the larger exponent down to the other's.
  if (x.exponent >= y.exponent)
    return cmp(x.coefficient * 10n ** BigInt(x.exponent - y.exponent), y.coefficient);
  return cmp(x.coefficient, y.coefficient * 10n ** BigInt(y.exponent - x.exponent));
}

// ---------------------------------------------------------------------------------------------
// objects and arrays

/** A DBRef is stored as the object `{ $ref, $id, $db?, ...fields }` and compares as one. */
function plainObjectOf(v: object): Record<string, unknown> {
  if (bsonTypeOf(v) !== "DBRef") return v as Record<string, unknown>;
  const ref = v as { collection: string; oid: unknown; db?: string; fields: Record<string, unknown> };
  return { $ref: ref.collection, $id: ref.oid, ...(ref.db ? { $db: ref.db } : {}), ...ref.fields };
}

function compareObjects(a: Record<string, unknown>, b: Record<string, unknown>): number {
  const ka = Object.keys(a);
  const kb = Object.keys(b);
  const n = Math.min(ka.length, kb.length);
  for (let i = 0; i < n; i++) {
    const fa = ka[i] as string;
    const fb = kb[i] as string;
    const va = a[fa];
    const vb = b[fb];
    const c = rankOf(va) - rankOf(vb) || compareStrings(fa, fb) || compareBson(va, vb);
    if (c !== 0) return c;
  }
  return sign(ka.length - kb.length);
}

function compareArrays(a: readonly unknown[], b: readonly unknown[]): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    const c = compareBson(a[i], b[i]);
    if (c !== 0) return c;
  }
  return sign(a.length - b.length);
}

// ---------------------------------------------------------------------------------------------
// binary data and regular expressions

function compareBinData(a: object, b: object): number {
  const x = binDataOf(a);
  const y = binDataOf(b);
  return cmp(x.bytes.length, y.bytes.length) || cmp(x.subtype, y.subtype) || compareBytes(x.bytes, y.bytes);
}

function binDataOf(v: object): { bytes: Uint8Array; subtype: number } {
  if (ArrayBuffer.isView(v))
    return { bytes: new Uint8Array(v.buffer, v.byteOffset, v.byteLength), subtype: 0 };
  const bin = v as Binary;
  return { bytes: bin.buffer.subarray(0, bin.position), subtype: bin.sub_type };
}

function compareBytes(x: Uint8Array, y: Uint8Array): number {
  const n = Math.min(x.length, y.length);
  for (let i = 0; i < n; i++) {
    const d = (x[i] as number) - (y[i] as number);
    if (d !== 0) return sign(d);
  }
  return sign(x.length - y.length);
}

/** Flags as the server stores them: sorted letters. */
function regexOf(v: object): { pattern: string; flags: string } {
  if (v instanceof RegExp) return { pattern: v.source, flags: [...v.flags].sort().join("") };
  const r = v as { pattern: string; options: string };
  return { pattern: r.pattern, flags: [...r.options].sort().join("") };
}

// ---------------------------------------------------------------------------------------------
// paths

/**
 * The value at a dotted path (`"a.b.c"`), or `undefined` when the path is missing. Plain
 * traversal of embedded documents; a numeric segment indexes an array (`"tags.0"`), as in a
 * MongoDB path. No array expansion: `"a.b"` on `{ a: [{ b: 1 }] }` is missing, because the product
 * reads single values (order keys, weights, picked fields), never the set a query would match.
 * BSON values (an ObjectId, a Long, a Date, …) are leaves: a path never reads their internals.
 */
export function readPath(doc: unknown, path: string): unknown {
  let cur: unknown = doc;
  for (const segment of path.split(".")) {
    if (cur === null || typeof cur !== "object") return undefined;
    if (Array.isArray(cur)) {
      if (!/^(0|[1-9]\d*)$/.test(segment)) return undefined;
      cur = (cur as unknown[])[Number(segment)];
      continue;
    }
    if (
      bsonTypeOf(cur) !== undefined ||
      cur instanceof Date ||
      cur instanceof RegExp ||
      ArrayBuffer.isView(cur)
    ) {
      return undefined;
    }
    cur = Object.hasOwn(cur, segment) ? (cur as Record<string, unknown>)[segment] : undefined;
  }
  return cur;
}
