/**
 * Extended JSON checked as written, before bson converts it: a value bson would repair (Feb 30
 * becomes Mar 2, "12abc" becomes 12), misread or drop part of (`$nin` next to a `$regex`) is
 * refused with its path and what to write instead. Used for config files and for the order-key
 * values of task payloads.
 */
import { Decimal128 } from "bson";

/** The type wrappers' own keys (`$regex`/`$options` and DBRefs are handled apart). */
const WRAPPER_KEYS = new Set([
  "$oid",
  "$binary",
  "$uuid",
  "$symbol",
  "$numberInt",
  "$numberLong",
  "$numberDouble",
  "$numberDecimal",
  "$minKey",
  "$maxKey",
  "$regularExpression",
  "$timestamp",
  "$date",
  "$code",
  "$scope",
  "$undefined",
  "$dbPointer",
]);

const INT32 = [-(2n ** 31n), 2n ** 31n - 1n] as const;
const INT64 = [-(2n ** 63n), 2n ** 63n - 1n] as const;
/** The most milliseconds from the epoch a JavaScript Date holds (±100,000,000 days). */
const MAX_DATE_MS = 8_640_000_000_000_000;
/** The regular expression options MongoDB's server takes. */
const REGEX_OPTIONS = /^[imsux]*$/;
const DECIMAL_NUMBER = /^-?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?$/;
const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;
const UUID =
  /^(?:[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}|[0-9a-fA-F]{32})$/;
/** ISO-8601 as JavaScript reads it exactly: a date, or a date and time with an offset. */
const ISO_DATE =
  /^(\d{4})-(\d{2})-(\d{2})(?:T(\d{2}):(\d{2})(?::(\d{2})(?:\.(\d+))?)?(Z|[+-]\d{2}:\d{2})?)?$/;

const isPlainObject = (v: unknown): v is Record<string, unknown> =>
  v !== null && typeof v === "object" && !Array.isArray(v);

/** A value as it appears in the file, cut short. */
const show = (v: unknown): string => {
  const text = JSON.stringify(v) ?? String(v);
  return text.length > 60 ? `${text.slice(0, 57)}…` : text;
};

const at = (path: string[], problem: string) =>
  `${path.length > 0 ? path.join(".") : "(config)"}: ${problem}`;

/** An integer written as a string of digits within [min, max]; undefined when it is not one. */
function integerString(v: unknown, [min, max]: readonly [bigint, bigint]): bigint | undefined {
  if (typeof v !== "string" || !/^-?\d{1,40}$/.test(v)) return undefined;
  const n = BigInt(v);
  return n >= min && n <= max ? n : undefined;
}

function daysInMonth(year: number, month: number): number {
  const d = new Date(0);
  d.setUTCFullYear(year, month, 0);
  return d.getUTCDate();
}

/** What is wrong with an ISO-8601 date string of a `$date`, or undefined. */
function isoDateProblem(text: string): string | undefined {
  const m = ISO_DATE.exec(text);
  if (!m) {
    return `${show(text)} is not an ISO-8601 date; write "2026-01-31" (midnight UTC) or "2026-01-31T23:59:59.999Z"`;
  }
  const [, y, mo, d, h, mi, s, frac, zone] = m as unknown as Array<string | undefined>;
  if (h !== undefined && zone === undefined) {
    return `${show(text)} has a time but no offset, so it would be read in the local time zone of whichever machine reads it; add Z (UTC) or an offset like +01:00`;
  }
  if (frac !== undefined && frac.length > 3) {
    return `${show(text)} is more precise than a millisecond, and a date keeps milliseconds only; give at most 3 digits after the seconds`;
  }
  const [year, month, day] = [Number(y), Number(mo), Number(d)];
  if (month < 1 || month > 12) return `${show(text)}: there is no month ${mo}`;
  if (day < 1 || day > daysInMonth(year, month)) {
    return `${show(text)}: ${y}-${mo} has no day ${d} (it would silently become another date)`;
  }
  const [hour, minute, second] = [Number(h ?? 0), Number(mi ?? 0), Number(s ?? 0)];
  if (hour > 23 || minute > 59 || second > 59)
    return `${show(text)}: ${h}:${mi}:${s ?? "00"} is not a time of day`;
  let offset = 0;
  if (zone !== undefined && zone !== "Z") {
    const [oh, om] = [Number(zone.slice(1, 3)), Number(zone.slice(4, 6))];
    if (oh > 23 || om > 59) return `${show(text)}: ${zone} is not a UTC offset`;
    offset = (zone.startsWith("-") ? -1 : 1) * (oh * 60 + om);
  }
  const instant = new Date(0);
  instant.setUTCFullYear(year, month - 1, day);
  instant.setUTCHours(hour, minute, second, Number((frac ?? "").padEnd(3, "0")));
  // What bson does with it (Date.parse) must be this very instant.
  if (Date.parse(text) !== instant.getTime() - offset * 60_000) {
    return `${show(text)} is read as another instant by JavaScript; write it as UTC, e.g. "2026-01-31T23:59:59.999Z"`;
  }
  return undefined;
}

/** What is wrong with the value of one type wrapper (its keys already checked), or undefined. */
function wrapperValueProblem(kind: string, obj: Record<string, unknown>, path: string[]): string | undefined {
  const v = obj[kind];
  const here = [...path, kind];
  switch (kind) {
    case "$oid":
      return typeof v === "string" && /^[0-9a-fA-F]{24}$/.test(v)
        ? undefined
        : at(here, `${show(v)} is not an ObjectId: 24 hexadecimal digits, e.g. "65a1f0c2e4b0a1b2c3d4e5f6"`);
    case "$symbol":
      return typeof v === "string" ? undefined : at(here, `${show(v)} is not a string`);
    case "$numberInt":
      return integerString(v, INT32) !== undefined
        ? undefined
        : at(
            here,
            `${show(v)} is not a 32-bit integer: a string of digits, optionally with a leading "-", from -2147483648 to 2147483647`,
          );
    case "$numberLong": {
      const n = integerString(v, INT64);
      if (n === undefined) {
        return at(
          here,
          `${show(v)} is not a 64-bit integer: a string of digits, optionally with a leading "-", from -9223372036854775808 to 9223372036854775807`,
        );
      }
      if (n > BigInt(Number.MAX_SAFE_INTEGER) || n < BigInt(Number.MIN_SAFE_INTEGER)) {
        return at(
          here,
          `${show(v)} is beyond ±9007199254740991: config values are read as JavaScript numbers, which would round it to ${Number(n)}; use a smaller value`,
        );
      }
      return undefined;
    }
    case "$numberDouble": {
      if (v === "Infinity" || v === "-Infinity" || v === "NaN") return undefined;
      if (typeof v !== "string" || !DECIMAL_NUMBER.test(v)) {
        return at(
          here,
          `${show(v)} is not a number: digits with an optional "-", "." and exponent (e.g. "-1.5e3"), or "Infinity", "-Infinity", "NaN"`,
        );
      }
      const n = Number(v);
      if (!Number.isFinite(n))
        return at(here, `${show(v)} is too large for a double (it would become Infinity)`);
      if (n === 0 && /[1-9]/.test(v.split(/[eE]/)[0] ?? "")) {
        return at(here, `${show(v)} is too small for a double (it would become 0)`);
      }
      return undefined;
    }
    case "$numberDecimal":
      if (typeof v !== "string")
        return at(here, `${show(v)} is not a decimal written as a string, e.g. "12.50"`);
      try {
        Decimal128.fromString(v);
        return undefined;
      } catch (err) {
        return at(
          here,
          `${show(v)} is not a 128-bit decimal (${(err as Error).message}); write e.g. "12.50"`,
        );
      }
    case "$binary": {
      if (!isPlainObject(v)) {
        return at(
          here,
          `${show(v)}: binary data is {"$binary": {"base64": "…", "subType": "00"}} (the legacy {"$binary": …, "$type": …} form is not read)`,
        );
      }
      const keys = Object.keys(v).sort().join(",");
      if (keys !== "base64,subType")
        return at(here, `needs exactly "base64" and "subType", not ${show(Object.keys(v))}`);
      if (typeof v.base64 !== "string" || !BASE64.test(v.base64)) {
        return at(
          [...here, "base64"],
          `${show(v.base64)} is not base64 (A–Z, a–z, 0–9, +, /, padded with =)`,
        );
      }
      if (typeof v.subType !== "string" || !/^[0-9a-fA-F]{1,2}$/.test(v.subType)) {
        return at(
          [...here, "subType"],
          `${show(v.subType)} is not a subtype: one or two hexadecimal digits, e.g. "00"`,
        );
      }
      if (parseInt(v.subType, 16) === 4 && Buffer.from(v.base64, "base64").length !== 16) {
        return at(
          here,
          `subtype 04 is a UUID, 16 bytes; this holds ${Buffer.from(v.base64, "base64").length}`,
        );
      }
      return undefined;
    }
    case "$uuid":
      return typeof v === "string" && UUID.test(v)
        ? undefined
        : at(here, `${show(v)} is not a UUID like "c8edabc3-f738-4ca3-b68d-ab92a91478a3"`);
    case "$minKey":
    case "$maxKey":
      return v === 1 ? undefined : at(here, `is written {"${kind}": 1}, not ${show(v)}`);
    case "$regularExpression": {
      if (!isPlainObject(v) || Object.keys(v).sort().join(",") !== "options,pattern") {
        return at(
          here,
          `a regular expression is {"$regularExpression": {"pattern": "…", "options": ""}}, not ${show(v)}`,
        );
      }
      return regexProblem(v.pattern, v.options, here, [...here, "options"]);
    }
    case "$timestamp": {
      const ok = (n: unknown) => typeof n === "number" && Number.isInteger(n) && n >= 0 && n <= 0xffffffff;
      return isPlainObject(v) && Object.keys(v).sort().join(",") === "i,t" && ok(v.t) && ok(v.i)
        ? undefined
        : at(
            here,
            `a timestamp is {"$timestamp": {"t": <seconds>, "i": <increment>}}, each a whole number from 0 to 4294967295, not ${show(v)}`,
          );
    }
    case "$date": {
      if (typeof v === "string") {
        const p = isoDateProblem(v);
        return p === undefined ? undefined : at(here, `not a valid date: ${p}`);
      }
      let ms: number | undefined;
      if (typeof v === "number") ms = Number.isInteger(v) ? v : undefined;
      else if (isPlainObject(v) && Object.keys(v).join(",") === "$numberLong") {
        const n = integerString(v.$numberLong, INT64);
        ms = n === undefined ? undefined : Number(n);
      }
      if (ms !== undefined && Math.abs(ms) <= MAX_DATE_MS) return undefined;
      return at(
        here,
        `not a valid date: ${show(v)}; a date is an ISO-8601 string ("2026-01-31T23:59:59Z"), or whole milliseconds since 1970 as a number or {"$numberLong": "…"} within ±${MAX_DATE_MS}`,
      );
    }
    case "$code": {
      if (typeof v !== "string") return at(here, `${show(v)} is not a string of code`);
      if (!Object.hasOwn(obj, "$scope")) return undefined;
      if (!isPlainObject(obj.$scope)) return at([...path, "$scope"], `${show(obj.$scope)} is not an object`);
      return extendedJsonProblem(obj.$scope, [...path, "$scope"]);
    }
    case "$undefined":
      return at(
        here,
        `BSON undefined is deprecated and would be read as null; write null (or {"$exists": false} to match a missing field)`,
      );
    case "$dbPointer":
      return at(
        here,
        `DBPointer is deprecated and would be read as a DBRef; write the DBRef itself: {"$ref": "<collection>", "$id": …}`,
      );
    default:
      return undefined;
  }
}

/** A regular expression's pattern and options, as bson and MongoDB's server take them. */
function regexProblem(
  pattern: unknown,
  options: unknown,
  patternPath: string[],
  optionsPath: string[],
): string | undefined {
  if (typeof pattern !== "string") return at(patternPath, `the pattern ${show(pattern)} is not a string`);
  if (pattern.includes("\u0000")) return at(patternPath, "a pattern cannot hold a NUL character");
  if (options !== undefined && (typeof options !== "string" || !REGEX_OPTIONS.test(options))) {
    return at(optionsPath, `${show(options)}: regular expression options are letters among i, m, s, u and x`);
  }
  return undefined;
}

/** An object holding `$regex`: the legacy regular expression wrapper, or the query operator. */
function regexObjectProblem(obj: Record<string, unknown>, path: string[]): string | undefined {
  const re = obj.$regex;
  const others = Object.keys(obj).filter((k) => k !== "$regex" && k !== "$options");
  if (typeof re === "string") {
    // {"$regex": "…", "$options": "…"}: read as one regular expression; anything beside it is lost.
    const dropped = others[0];
    if (dropped !== undefined) {
      const field = path[path.length - 1] ?? "field";
      const opts = typeof obj.$options === "string" ? obj.$options : "";
      return at(
        [...path, dropped],
        `would be dropped: Extended JSON reads an object with a string $regex as a regular expression value, whatever else it holds. Write the pattern as {"$regex": {"$regularExpression": {"pattern": ${show(re)}, "options": ${show(opts)}}}, "${dropped}": …}, or put each condition in an $and: {"$and": [{"${field}": {"$regex": ${show(re)}}}, {"${field}": {"${dropped}": …}}]}`,
      );
    }
    return regexProblem(re, obj.$options, [...path, "$regex"], [...path, "$options"]);
  }
  const isRegexWrapper =
    isPlainObject(re) && (Object.hasOwn(re, "$regularExpression") || typeof re.$regex === "string");
  if (!isRegexWrapper) {
    return at(
      [...path, "$regex"],
      `takes a pattern string, or {"$regularExpression": {"pattern": "…", "options": "…"}}; not ${show(re)}`,
    );
  }
  // The $regex query operator holding a BSON regular expression: EJSON keeps this object whole,
  // unless another wrapper key in it is taken first.
  const wrapper = others.find((k) => WRAPPER_KEYS.has(k));
  if (wrapper !== undefined) {
    return at(
      [...path, wrapper],
      `an Extended JSON ${wrapper} cannot stand beside $regex; put it under its own field`,
    );
  }
  if (Object.hasOwn(obj, "$options")) {
    const p = regexProblem("", obj.$options, [...path, "$regex"], [...path, "$options"]);
    if (p) return p;
  }
  for (const k of ["$regex", ...others]) {
    const p = extendedJsonProblem(obj[k], [...path, k]);
    if (p) return p;
  }
  return undefined;
}

/** A DBRef (`$ref` and `$id`): bson makes it a DBRef and writes its keys in the order below. */
function dbRefProblem(obj: Record<string, unknown>, path: string[]): string | undefined {
  const keys = Object.keys(obj);
  if (typeof obj.$ref !== "string")
    return at([...path, "$ref"], `${show(obj.$ref)} is not a collection name`);
  if (Object.hasOwn(obj, "$db") && typeof obj.$db !== "string") {
    return at([...path, "$db"], `${show(obj.$db)} is not a database name`);
  }
  const order = Object.hasOwn(obj, "$db") ? ["$ref", "$id", "$db"] : ["$ref", "$id"];
  if (order.some((k, i) => keys[i] !== k)) {
    return at(
      path,
      `a DBRef's keys come in the order ${order.join(", ")} (then plain fields); Extended JSON would reorder these, changing the document a filter matches`,
    );
  }
  const stray = keys.slice(order.length).find((k) => k.startsWith("$"));
  if (stray !== undefined) return at([...path, stray], "a DBRef holds $ref, $id, $db and plain fields only");
  for (const k of keys) {
    const p = extendedJsonProblem(obj[k], [...path, k]);
    if (p) return p;
  }
  return undefined;
}

/**
 * The first Extended JSON problem in a plain JSON value (as JSON.parse returns it), with its path
 * and the fix; undefined when bson's EJSON.parse would read it without changing anything.
 */
export function extendedJsonProblem(value: unknown, path: string[] = []): string | undefined {
  if (typeof value === "number") {
    return Number.isFinite(value) ? undefined : at(path, "the number is too large for a double");
  }
  if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i++) {
      const p = extendedJsonProblem(value[i], [...path, String(i)]);
      if (p) return p;
    }
    return undefined;
  }
  if (!isPlainObject(value)) return undefined;
  if (Object.hasOwn(value, "$regex")) return regexObjectProblem(value, path);
  const keys = Object.keys(value);
  const wrappers = keys.filter((k) => WRAPPER_KEYS.has(k));
  if (wrappers.length > 0) {
    const kind =
      wrappers.length === 2 && wrappers.includes("$code") && wrappers.includes("$scope")
        ? "$code"
        : wrappers[0];
    if (wrappers.length > 1 && kind !== "$code") {
      return at(
        path,
        `mixes the Extended JSON keys ${wrappers.join(", ")}; a type wrapper holds exactly one`,
      );
    }
    if (kind === "$scope")
      return at([...path, "$scope"], `belongs with $code: {"$code": "…", "$scope": {…}}`);
    if (kind === "$binary" && !isPlainObject(value.$binary)) return wrapperValueProblem(kind, value, path);
    const allowed = kind === "$code" ? ["$code", "$scope"] : [kind];
    const extra = keys.find((k) => !allowed.includes(k));
    if (extra !== undefined) {
      return at(
        [...path, extra],
        extra.startsWith("$")
          ? `would be dropped: Extended JSON reads an object with ${kind} as that one value, whatever else it holds; give each operator its own value, e.g. {"${extra}": {"${kind}": …}}`
          : `would be dropped: an Extended JSON {"${kind}": …} holds nothing else; put ${kind} under a field of its own`,
      );
    }
    return wrapperValueProblem(kind ?? "", value, path);
  }
  if (Object.hasOwn(value, "$ref") && Object.hasOwn(value, "$id") && value.$id !== null) {
    return dbRefProblem(value, path);
  }
  for (const k of keys) {
    const p = extendedJsonProblem(value[k], [...path, k]);
    if (p) return p;
  }
  return undefined;
}
