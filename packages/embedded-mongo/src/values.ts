/**
 * BSON values as the engine stores, compares and prints them.
 *
 * Stored form: documents arrive deserialized with `promoteValues: false`, then `normalizeValue`
 * turns every number that a JS number serializes back to *the same BSON type* into a JS number
 * (all Int32s, and Doubles that are not int32-range integers). What would lose its type stays a
 * wrapper: a Double holding an int32-range integer (the bson serializer would write it as Int32),
 * Long and Decimal128. Most documents therefore hold no wrappers at all, and for those the
 * "plain view" that mingo sees is the stored document itself.
 *
 * Comparison follows MongoDB's BSON order (type brackets first, numbers by value across types),
 * so indexes, sorts and unique keys behave as on a real server.
 */
import { Decimal128, Double, Long } from "bson";

/** A field path value as the wire delivers it: anything BSON can hold. */
export type BsonValue = unknown;
export type BsonDocument = Record<string, unknown>;

type Tagged = { _bsontype?: string };

const bsontype = (v: unknown): string | undefined =>
  v !== null && typeof v === "object" ? (v as Tagged)._bsontype : undefined;

export const isPlainObject = (v: unknown): v is BsonDocument =>
  v !== null &&
  typeof v === "object" &&
  !Array.isArray(v) &&
  bsontype(v) === undefined &&
  !(v instanceof Date) &&
  !(v instanceof RegExp) &&
  !ArrayBuffer.isView(v);

const INT32_MIN = -2147483648;
const INT32_MAX = 2147483647;
export const isInt32Number = (n: number): boolean =>
  Number.isInteger(n) && n >= INT32_MIN && n <= INT32_MAX && !Object.is(n, -0);

/** The MongoDB `$type` alias of a stored value. */
export function bsonTypeName(v: unknown): string {
  if (v === undefined) return "undefined";
  if (v === null) return "null";
  switch (typeof v) {
    case "number":
      return isInt32Number(v) ? "int" : "double";
    case "string":
      return "string";
    case "boolean":
      return "bool";
    case "bigint":
      return "long";
    default:
      break;
  }
  if (Array.isArray(v)) return "array";
  if (v instanceof Date) return "date";
  if (v instanceof RegExp) return "regex";
  if (ArrayBuffer.isView(v)) return "binData";
  switch (bsontype(v)) {
    case "Double":
      return "double";
    case "Int32":
      return "int";
    case "Long":
      return "long";
    case "Decimal128":
      return "decimal";
    case "ObjectId":
      return "objectId";
    case "Binary":
      return "binData";
    case "Timestamp":
      return "timestamp";
    case "MinKey":
      return "minKey";
    case "MaxKey":
      return "maxKey";
    case "BSONRegExp":
      return "regex";
    case "Code":
      return "javascript";
    case "BSONSymbol":
      return "symbol";
    case "DBPointer":
      return "dbPointer";
    default:
      return "object";
  }
}

/** `$type` accepts aliases and numbers; this maps the numbers to aliases. */
export const TYPE_NUMBERS: Readonly<Record<number, string>> = {
  1: "double",
  2: "string",
  3: "object",
  4: "array",
  5: "binData",
  6: "undefined",
  7: "objectId",
  8: "bool",
  9: "date",
  10: "null",
  11: "regex",
  13: "javascript",
  14: "symbol",
  16: "int",
  17: "timestamp",
  18: "long",
  19: "decimal",
  [-1]: "minKey",
  127: "maxKey",
};
export const TYPE_ALIASES = new Set([...Object.values(TYPE_NUMBERS), "number"]);

export const isNumeric = (v: unknown): boolean => {
  if (typeof v === "number" || typeof v === "bigint") return true;
  const t = bsontype(v);
  return t === "Double" || t === "Int32" || t === "Long" || t === "Decimal128";
};

/** The JS number closest to a numeric BSON value (Long beyond 2^53 and Decimal128 are rounded). */
export function toNumber(v: unknown): number {
  if (typeof v === "number") return v;
  if (typeof v === "bigint") return Number(v);
  switch (bsontype(v)) {
    case "Double":
    case "Int32":
      return (v as Double).value;
    case "Long":
      return (v as Long).toNumber();
    case "Decimal128":
      return Number.parseFloat((v as Decimal128).toString());
    default:
      return Number.NaN;
  }
}

/** Order of type brackets in MongoDB comparisons and sorts. */
function bracket(v: unknown): number {
  if (v === undefined || v === null) return 2;
  switch (typeof v) {
    case "number":
    case "bigint":
      return 3;
    case "string":
      return 4;
    case "boolean":
      return 9;
    default:
      break;
  }
  if (Array.isArray(v)) return 6;
  if (v instanceof Date) return 10;
  if (v instanceof RegExp) return 12;
  if (ArrayBuffer.isView(v)) return 7;
  switch (bsontype(v)) {
    case "MinKey":
      return 1;
    case "Double":
    case "Int32":
    case "Long":
    case "Decimal128":
      return 3;
    case "BSONSymbol":
      return 4;
    case "Binary":
      return 7;
    case "ObjectId":
      return 8;
    case "Timestamp":
      return 11;
    case "BSONRegExp":
      return 12;
    case "MaxKey":
      return 13;
    case "Code":
      return 14;
    default:
      return 5;
  }
}

const cmp = (a: number | string | bigint, b: number | string | bigint): number =>
  a < b ? -1 : a > b ? 1 : 0;

function compareStrings(a: string, b: string): number {
  if (a === b) return 0;
  // MongoDB compares UTF-8 bytes. UTF-16 code units order the same way unless the first
  // difference is between two units at or above U+D800 (a surrogate against U+E000..U+FFFF);
  // only then are the UTF-8 bytes compared.
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    const x = a.charCodeAt(i);
    const y = b.charCodeAt(i);
    if (x !== y) {
      if (x >= 0xd800 && y >= 0xd800) return Buffer.compare(Buffer.from(a, "utf8"), Buffer.from(b, "utf8"));
      return x - y;
    }
  }
  return a.length - b.length;
}

type ObjectIdLike = { id: Uint8Array; i0?: number; i1?: number; i2?: number; i3?: number };

/**
 * bson 7 keeps an ObjectId as four 24-bit big-endian integers (i0..i3); comparing them in order
 * is comparing the 12 bytes, without allocating the byte view `id` builds on every access.
 */
function compareObjectIds(a: ObjectIdLike, b: ObjectIdLike): number {
  if (typeof a.i0 === "number" && typeof b.i0 === "number") {
    return (
      a.i0 - b.i0 ||
      (a.i1 as number) - (b.i1 as number) ||
      (a.i2 as number) - (b.i2 as number) ||
      (a.i3 as number) - (b.i3 as number)
    );
  }
  return compareBytes(a.id, b.id);
}

function compareBytes(x: Uint8Array, y: Uint8Array): number {
  const n = Math.min(x.length, y.length);
  for (let i = 0; i < n; i++) {
    const d = (x[i] as number) - (y[i] as number);
    if (d !== 0) return d;
  }
  return x.length - y.length;
}

function compareNumbers(a: unknown, b: unknown): number {
  if (bsontype(a) === "Long" && bsontype(b) === "Long") {
    return (a as Long).compare(b as Long);
  }
  const x = toNumber(a);
  const y = toNumber(b);
  // NaN sorts below every other number in MongoDB.
  if (Number.isNaN(x)) return Number.isNaN(y) ? 0 : -1;
  if (Number.isNaN(y)) return 1;
  return cmp(x, y);
}

function bytesOf(v: unknown): Uint8Array {
  if (ArrayBuffer.isView(v)) return new Uint8Array(v.buffer, v.byteOffset, v.byteLength);
  const bin = v as { buffer: Uint8Array; sub_type: number };
  return bin.buffer;
}

/** Total order of BSON values, as MongoDB sorts and indexes them. */
export function compareValues(a: unknown, b: unknown): number {
  // Fast paths for the common index keys: two strings, two finite numbers.
  if (typeof a === "string" && typeof b === "string") return compareStrings(a, b);
  if (typeof a === "number" && typeof b === "number" && a === a && b === b) return a < b ? -1 : a > b ? 1 : 0;
  const ba = bracket(a);
  const bb = bracket(b);
  if (ba !== bb) return ba - bb;
  switch (ba) {
    case 1:
    case 2:
    case 13:
      return 0;
    case 3:
      return compareNumbers(a, b);
    case 4:
      return compareStrings(String(a), String(b));
    case 5:
      return compareObjects(a as BsonDocument, b as BsonDocument);
    case 6: {
      const xs = a as unknown[];
      const ys = b as unknown[];
      const n = Math.min(xs.length, ys.length);
      for (let i = 0; i < n; i++) {
        const c = compareValues(xs[i], ys[i]);
        if (c !== 0) return c;
      }
      return xs.length - ys.length;
    }
    case 7: {
      const x = bytesOf(a);
      const y = bytesOf(b);
      if (x.length !== y.length) return x.length - y.length;
      const sx = (a as { sub_type?: number }).sub_type ?? 0;
      const sy = (b as { sub_type?: number }).sub_type ?? 0;
      if (sx !== sy) return sx - sy;
      return Buffer.compare(x, y);
    }
    case 8:
      return compareObjectIds(a as ObjectIdLike, b as ObjectIdLike);
    case 9:
      return cmp(Number(a), Number(b));
    case 10:
      return cmp((a as Date).getTime(), (b as Date).getTime());
    case 11:
      return (a as Long).compare(b as Long);
    default:
      return compareStrings(String(a), String(b));
  }
}

function compareObjects(a: BsonDocument, b: BsonDocument): number {
  const ka = Object.keys(a);
  const kb = Object.keys(b);
  const n = Math.min(ka.length, kb.length);
  for (let i = 0; i < n; i++) {
    const va = a[ka[i] as string];
    const vb = b[kb[i] as string];
    const t = bracket(va) - bracket(vb);
    if (t !== 0) return t;
    const k = compareStrings(ka[i] as string, kb[i] as string);
    if (k !== 0) return k;
    const c = compareValues(va, vb);
    if (c !== 0) return c;
  }
  return ka.length - kb.length;
}

export const valuesEqual = (a: unknown, b: unknown): boolean => compareValues(a, b) === 0;

/**
 * A string that is equal for two values exactly when MongoDB considers them equal (numbers by
 * value across types). Used as the key of the `_id` map and of unique-index lookups.
 */
export function keyOf(v: unknown): string {
  if (v === undefined || v === null) return "z";
  switch (typeof v) {
    case "number":
      return `n${Object.is(v, -0) ? 0 : v}`;
    case "bigint":
      return `n${v}`;
    case "string":
      return `s${v}`;
    case "boolean":
      return v ? "bt" : "bf";
    default:
      break;
  }
  if (Array.isArray(v)) return `a[${v.map(keyOf).join(",")}]`;
  if (v instanceof Date) return `d${v.getTime()}`;
  if (v instanceof RegExp) return `r${v.source}/${v.flags}`;
  switch (bsontype(v)) {
    case "Long": {
      const l = v as Long;
      const n = l.toNumber();
      return Number.isSafeInteger(n) ? `n${n}` : `n${l.toString()}`;
    }
    case "Double":
    case "Int32":
    case "Decimal128": {
      const n = toNumber(v);
      return `n${Object.is(n, -0) ? 0 : n}`;
    }
    case "ObjectId":
      return `o${(v as { toHexString(): string }).toHexString()}`;
    case "Binary":
      return `b${(v as { sub_type: number }).sub_type}:${Buffer.from(bytesOf(v)).toString("base64")}`;
    case "Timestamp":
      return `t${(v as Long).toString()}`;
    case "MinKey":
      return "-";
    case "MaxKey":
      return "+";
    case undefined: {
      if (ArrayBuffer.isView(v)) return `b0:${Buffer.from(bytesOf(v)).toString("base64")}`;
      const o = v as BsonDocument;
      return `{${Object.keys(o)
        .map((k) => `${JSON.stringify(k)}:${keyOf(o[k])}`)
        .join(",")}}`;
    }
    default:
      return `${bsontype(v)}:${JSON.stringify(v)}`;
  }
}

/** Turns wire values into the stored form (see the header). Returns whether wrappers remain. */
export function normalizeValue(v: unknown, marks: { wrappers: boolean }): unknown {
  if (v === null || typeof v !== "object") return v;
  if (Array.isArray(v)) {
    for (let i = 0; i < v.length; i++) v[i] = normalizeValue(v[i], marks);
    return v;
  }
  switch (bsontype(v)) {
    case "Int32":
      return (v as { value: number }).value;
    case "Double": {
      const n = (v as Double).value;
      if (isInt32Number(n)) {
        marks.wrappers = true;
        return v;
      }
      return n;
    }
    case "Long":
    case "Decimal128":
      marks.wrappers = true;
      return v;
    case undefined: {
      if (v instanceof Date || v instanceof RegExp || ArrayBuffer.isView(v)) return v;
      const o = v as BsonDocument;
      for (const k of Object.keys(o)) o[k] = normalizeValue(o[k], marks);
      return o;
    }
    default:
      return v;
  }
}

export function normalizeDocument<T>(doc: T): { doc: T; wrappers: boolean } {
  const marks = { wrappers: false };
  const out = normalizeValue(doc, marks) as T;
  return { doc: out, wrappers: marks.wrappers };
}

/** The view mingo works on: numeric wrappers become JS numbers. */
export function plainValue(v: unknown): unknown {
  if (v === null || typeof v !== "object") return v;
  if (Array.isArray(v)) return v.map(plainValue);
  switch (bsontype(v)) {
    case "Double":
    case "Int32":
    case "Long":
    case "Decimal128":
      return toNumber(v);
    case undefined: {
      if (v instanceof Date || v instanceof RegExp || ArrayBuffer.isView(v)) return v;
      const o = v as BsonDocument;
      const out: BsonDocument = {};
      for (const k of Object.keys(o)) out[k] = plainValue(o[k]);
      return out;
    }
    default:
      return v;
  }
}

/** Numeric type rank for MongoDB's arithmetic promotion (int < long < double < decimal). */
export type NumericKind = "int" | "long" | "double" | "decimal";
const RANK: Record<NumericKind, number> = { int: 0, long: 1, double: 2, decimal: 3 };

export function numericKind(v: unknown): NumericKind | undefined {
  const t = bsonTypeName(v);
  return t === "int" || t === "long" || t === "double" || t === "decimal" ? t : undefined;
}

export const widerKind = (a: NumericKind, b: NumericKind): NumericKind => (RANK[a] >= RANK[b] ? a : b);

/** Wraps a JS number so that it serializes as the given BSON numeric type. */
export function asKind(n: number, kind: NumericKind): unknown {
  switch (kind) {
    case "int":
      if (isInt32Number(n)) return n;
      // Integer overflow promotes to long, as on a real server.
      return Number.isInteger(n) ? Long.fromNumber(n) : n;
    case "long":
      return Number.isInteger(n) ? Long.fromNumber(n) : n;
    case "double":
      return isInt32Number(n) ? new Double(n) : n;
    case "decimal":
      return Decimal128.fromString(String(n));
    default: {
      const never: never = kind;
      return never;
    }
  }
}

/** Formats a value the way the server prints it in messages (`{ a: "x", b: 1 }`). */
export function formatValue(v: unknown): string {
  if (v === undefined) return "undefined";
  if (v === null) return "null";
  switch (typeof v) {
    case "string":
      return JSON.stringify(v);
    case "number":
      return String(v);
    case "boolean":
    case "bigint":
      return String(v);
    default:
      break;
  }
  if (Array.isArray(v)) return `[ ${v.map(formatValue).join(", ")} ]`;
  if (v instanceof Date) return `new Date(${v.getTime()})`;
  if (v instanceof RegExp) return `/${v.source}/${v.flags}`;
  switch (bsontype(v)) {
    case "ObjectId":
      return `ObjectId('${(v as { toHexString(): string }).toHexString()}')`;
    case "Double":
      return `${(v as Double).value}.0`;
    case "Long":
      return (v as Long).toString();
    case "Decimal128":
      return `NumberDecimal("${(v as Decimal128).toString()}")`;
    case "Int32":
      return String((v as { value: number }).value);
    case undefined: {
      const o = v as BsonDocument;
      const keys = Object.keys(o);
      if (keys.length === 0) return "{}";
      return `{ ${keys.map((k) => `${k}: ${formatValue(o[k])}`).join(", ")} }`;
    }
    default:
      return JSON.stringify(v);
  }
}

/** Flattens one level of arrays (an empty array counts as `undefined`), as indexes and sorts do. */
export function flattenArrays(vals: readonly unknown[]): unknown[] {
  const out: unknown[] = [];
  for (const v of vals) {
    if (!Array.isArray(v)) out.push(v);
    else if (v.length === 0) out.push(undefined);
    else for (const el of v as unknown[]) out.push(el);
  }
  return out;
}

/**
 * Values at a dotted path, expanding arrays the way query matching does: `a.b` on
 * `{a: [{b: 1}, {b: 2}]}` yields 1 and 2. Missing paths yield nothing.
 */
export function valuesAtPath(doc: unknown, path: readonly string[], from = 0): unknown[] {
  if (from === path.length) return [doc];
  if (Array.isArray(doc)) {
    const arr = doc as unknown[];
    const seg = path[from] as string;
    const out: unknown[] = [];
    if (/^\d+$/.test(seg)) {
      const el = arr[Number(seg)];
      if (el !== undefined) out.push(...valuesAtPath(el, path, from + 1));
    }
    for (const el of arr) {
      if (el !== null && typeof el === "object") out.push(...valuesAtPath(el, path, from));
    }
    return out;
  }
  if (doc === null || typeof doc !== "object" || bsontype(doc) !== undefined) return [];
  const next = (doc as BsonDocument)[path[from] as string];
  if (next === undefined) return [];
  return valuesAtPath(next, path, from + 1);
}

/** The single value at a dotted path without array expansion (for `_id`, sort keys, etc.). */
export function getPath(doc: unknown, path: string): unknown {
  let cur: unknown = doc;
  for (const seg of path.split(".")) {
    if (cur === null || typeof cur !== "object") return undefined;
    cur = (cur as BsonDocument)[seg];
  }
  return cur;
}

/** Deep copy of arrays and plain objects; BSON values (immutable) are shared, Dates copied. */
export function cloneValue<T>(v: T): T {
  if (Array.isArray(v)) return v.map(cloneValue) as T;
  if (v instanceof Date) return new Date(v.getTime()) as T;
  if (isPlainObject(v)) {
    const out: BsonDocument = {};
    for (const k of Object.keys(v)) out[k] = cloneValue(v[k]);
    return out as T;
  }
  return v;
}

/** The same document with `_id` as its first field, as the server stores it. */
export function withIdFirst(doc: BsonDocument): BsonDocument {
  if (Object.keys(doc)[0] === "_id" || doc._id === undefined) return doc;
  const { _id, ...rest } = doc;
  return { _id, ...rest };
}
