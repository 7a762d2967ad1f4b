/**
 * Update documents: operator updates (applied by mingo's updater), replacements and pipeline
 * updates, with the checks a real server makes before touching anything (unknown or
 * conflicting operators, immutable `_id`) and the upsert seed taken from the query.
 */
import { updateMany } from "mingo";
import { ObjectId, serialize } from "bson";
import { CommandError, fail } from "./errors.js";
import { type TypeHint, markWrapped, plainOf, restoreTypes, runPipeline } from "./query.js";
import {
  type BsonDocument,
  bsonTypeName,
  cloneValue,
  formatValue,
  getPath,
  isNumeric,
  isPlainObject,
  keyOf,
  normalizeDocument,
  plainValue,
} from "./values.js";

const OPERATORS = new Set([
  "$set",
  "$unset",
  "$inc",
  "$mul",
  "$min",
  "$max",
  "$rename",
  "$push",
  "$addToSet",
  "$pop",
  "$pull",
  "$pullAll",
  "$currentDate",
  "$bit",
  "$setOnInsert",
]);

export type UpdateSpec = BsonDocument | BsonDocument[];

export function isOperatorUpdate(u: UpdateSpec): boolean {
  return !Array.isArray(u) && Object.keys(u).some((k) => k.startsWith("$"));
}

/** Rejects malformed update documents before any document is touched. */
export function validateUpdate(u: unknown): UpdateSpec {
  if (Array.isArray(u)) {
    for (const stage of u) {
      if (!isPlainObject(stage) || Object.keys(stage).length !== 1) {
        fail("FailedToParse", "A pipeline stage specification object must contain exactly one field.");
      }
    }
    return u as BsonDocument[];
  }
  if (!isPlainObject(u)) return fail("FailedToParse", "Update argument must be either an object or an array");
  const keys = Object.keys(u);
  if (keys.length === 0 || !(keys[0] as string).startsWith("$")) {
    for (const k of keys) {
      if (k.startsWith("$")) {
        fail(
          "DollarPrefixedFieldName",
          `The dollar ($) prefixed field '${k}' in '${k}' is not allowed in the context of an update's replacement document. Consider using an aggregation pipeline with $replaceWith.`,
        );
      }
    }
    return u;
  }
  const targets: Array<{ path: string; op: string }> = [];
  for (const op of keys) {
    if (!OPERATORS.has(op)) {
      fail(
        "FailedToParse",
        `Unknown modifier: ${op}. Expected a valid update modifier or pipeline-style update specified as an array`,
      );
    }
    const arg = u[op];
    if (!isPlainObject(arg)) {
      fail(
        "FailedToParse",
        `Modifiers operate on fields but we found type ${bsonTypeName(arg)} instead. For example: {$mod: {<field>: ...}} not {${op}: ${formatValue(arg)}}`,
      );
    }
    for (const [path, value] of Object.entries(arg as BsonDocument)) {
      if (path === "") fail("FailedToParse", "An empty update path is not valid.");
      if ((op === "$inc" || op === "$mul") && !isNumeric(value)) {
        fail(
          "TypeMismatch",
          `Cannot ${op === "$inc" ? "increment" : "multiply"} with non-numeric argument: {${path}: ${formatValue(value)}}`,
        );
      }
      targets.push({ path, op });
      if (op === "$rename") {
        if (typeof value !== "string") {
          fail("BadValue", `The 'to' field for $rename must be a string: ${path}: ${formatValue(value)}`);
        }
        targets.push({ path: value as string, op });
      }
    }
  }
  // Two operators may not touch the same path, or a path and its prefix.
  const sorted = targets.map((t) => t.path).sort();
  for (let i = 1; i < sorted.length; i++) {
    const a = sorted[i - 1] as string;
    const b = sorted[i] as string;
    if (a === b || b.startsWith(`${a}.`)) {
      fail("ConflictingUpdateOperators", `Updating the path '${b}' would create a conflict at '${a}'`);
    }
  }
  return u;
}

function addHints(hints: Map<string, TypeHint>, path: string, value: unknown, kind: TypeHint["kind"]) {
  if (isNumeric(value)) hints.set(path, { kind, value });
  else if (isPlainObject(value)) {
    for (const [k, v] of Object.entries(value)) addHints(hints, `${path}.${k}`, v, kind);
  } else if (Array.isArray(value)) {
    value.forEach((v, i) => addHints(hints, `${path}.${i}`, v, kind));
  }
}

function typeHints(update: BsonDocument): Map<string, TypeHint> {
  const hints = new Map<string, TypeHint>();
  for (const [op, arg] of Object.entries(update)) {
    for (const [path, value] of Object.entries(arg as BsonDocument)) {
      switch (op) {
        case "$set":
        case "$setOnInsert":
        case "$min":
        case "$max":
          addHints(hints, path, value, "set");
          break;
        case "$inc":
        case "$mul":
          hints.set(path, { kind: "arith", value });
          break;
        case "$push":
        case "$addToSet": {
          const each = isPlainObject(value) && Array.isArray(value.$each) ? value.$each : [value];
          for (const v of each) addHints(hints, `${path}.$`, v, "set");
          break;
        }
        default:
          break;
      }
    }
  }
  return hints;
}

function finish(before: BsonDocument | undefined, plainAfter: unknown, hints?: Map<string, TypeHint>) {
  const restored = restoreTypes(plainAfter, before, hints) as BsonDocument;
  const { doc, wrappers } = normalizeDocument(restored);
  if (wrappers) markWrapped(doc);
  return doc;
}

function idFirst(doc: BsonDocument, id: unknown): BsonDocument {
  if (Object.keys(doc)[0] === "_id") return doc;
  const { _id: _ignored, ...rest } = doc;
  return { _id: id, ...rest };
}

/**
 * Applies an update to a stored document and returns the new stored document. `inserting` is
 * true when the document is an upsert seed (so `$setOnInsert` applies).
 */
export function applyUpdate(
  before: BsonDocument,
  update: UpdateSpec,
  arrayFilters: BsonDocument[] | undefined,
  inserting: boolean,
): BsonDocument {
  let after: BsonDocument;
  if (Array.isArray(update)) {
    const [out] = runPipeline([before], update, () => []);
    if (!out) return fail("BadValue", "the update pipeline removed the document");
    // A stage that drops _id ($replaceRoot, $replaceWith, $project without it) keeps the
    // original: MongoDB treats _id as immutable, not as removed.
    if (out._id === undefined) out._id = before._id;
    after = finish(before, out);
  } else if (!isOperatorUpdate(update)) {
    if (update._id !== undefined && keyOf(update._id) !== keyOf(before._id)) {
      fail(
        "ImmutableField",
        `After applying the update, the (immutable) field '_id' was found to have been altered to _id: ${formatValue(update._id)}`,
      );
    }
    const { _id: _ignored, ...rest } = update;
    const { doc, wrappers } = normalizeDocument({ _id: before._id, ...rest });
    if (wrappers) markWrapped(doc);
    return doc;
  } else {
    const ops = operatorsFor(update, inserting);
    checkTargets(before, ops, inserting);
    const working = [cloneValue(plainOf(before))];
    const error = runOperators(working, ops, arrayFilters);
    if (error) throw error;
    after = finish(before, working[0], typeHints(update));
  }
  if (keyOf(after._id) !== keyOf(before._id) || after._id === undefined) {
    if (before._id === undefined) return idFirst(after, after._id ?? new ObjectId());
    fail("ImmutableField", "Performing an update on the path '_id' would modify the immutable field '_id'");
  }
  return idFirst(after, after._id);
}

/**
 * Applies update operators in place to plain documents with mingo's updater, set up once for all
 * of them. Returns the server error to report when mingo refuses the update.
 */
function runOperators(
  working: BsonDocument[],
  ops: BsonDocument,
  arrayFilters: BsonDocument[] | undefined,
): CommandError | undefined {
  if (working.length === 0 || Object.keys(ops).length === 0) return undefined;
  if ((arrayFilters === undefined || arrayFilters.length === 0) && applySimpleOperators(working, ops)) {
    return undefined;
  }
  try {
    updateMany(
      working,
      {},
      plainValue(ops) as never,
      { arrayFilters: plainValue(arrayFilters ?? []) as BsonDocument[] },
      { scriptEnabled: false },
    );
    return undefined;
  } catch (err) {
    const message = (err as Error).message;
    return new CommandError(/path|field/i.test(message) ? "PathNotViable" : "BadValue", message);
  }
}

/** Names that reach a JavaScript object's prototype machinery; mingo's updater refuses them. */
const PROTOTYPE_NAMES = new Set(["__proto__", "constructor", "prototype"]);

/**
 * A path of plain field names: no positional `$`, no array index, no empty part, and nothing that
 * would walk into `Object.prototype` (a `$set` of `__proto__.x` must never touch the process).
 */
function simplePath(path: string): string[] | undefined {
  const parts = path.split(".");
  for (const p of parts) {
    if (p === "" || p.startsWith("$") || /^[0-9]+$/.test(p) || PROTOTYPE_NAMES.has(p)) return undefined;
  }
  return parts;
}

/**
 * The parent object of `parts`' last field in `doc`, creating missing objects on the way when
 * `create` is set; `undefined` when the path crosses anything but a plain object (an array or a
 * scalar: mingo's updater decides those) or, without `create`, a missing field.
 */
function parentOf(doc: BsonDocument, parts: string[], create: boolean): BsonDocument | undefined | null {
  let cur = doc;
  for (let i = 0; i < parts.length - 1; i++) {
    const key = parts[i] as string;
    const next = Object.hasOwn(cur, key) ? cur[key] : undefined;
    if (next === undefined) {
      if (!create) return null;
      const made: BsonDocument = {};
      cur[key] = made;
      cur = made;
    } else if (isPlainObject(next)) {
      cur = next;
    } else {
      return undefined;
    }
  }
  return cur;
}

/**
 * `$set`, `$unset` and `$inc` on plain numbers along plain-object paths: the updates chunkrelay
 * makes on every chunk, applied directly. mingo's updater sets up its operator tables on every
 * call, which cost more than the rest of a small update. Anything else (other operators, array
 * paths, typed numbers, conflicts in the document's shape) returns false before touching a
 * document, and mingo applies the update as before.
 */
export function applySimpleOperators(working: BsonDocument[], ops: BsonDocument): boolean {
  const steps: Array<{ op: "$set" | "$unset" | "$inc"; parts: string[]; value: unknown }> = [];
  for (const [op, arg] of Object.entries(ops)) {
    if (op !== "$set" && op !== "$unset" && op !== "$inc") return false;
    for (const [path, value] of Object.entries(arg as BsonDocument)) {
      const parts = simplePath(path);
      if (!parts) return false;
      const plain = plainValue(value);
      if (op === "$inc" && typeof plain !== "number") return false;
      steps.push({ op, parts, value: plain });
    }
  }
  // Check every document first, so a fallback never follows a half-applied update.
  for (const doc of working) {
    for (const { op, parts } of steps) {
      let cur: unknown = doc;
      for (let i = 0; i < parts.length; i++) {
        if (cur === undefined) break;
        if (!isPlainObject(cur)) return false;
        const key = parts[i] as string;
        cur = Object.hasOwn(cur, key) ? cur[key] : undefined;
      }
      if (op === "$inc" && cur !== undefined && typeof cur !== "number") return false;
    }
  }
  for (const doc of working) {
    for (const { op, parts, value } of steps) {
      const field = parts[parts.length - 1] as string;
      switch (op) {
        case "$set": {
          const parent = parentOf(doc, parts, true);
          if (parent) parent[field] = cloneValue(value);
          break;
        }
        case "$unset": {
          const parent = parentOf(doc, parts, false);
          if (parent) delete parent[field];
          break;
        }
        case "$inc": {
          const parent = parentOf(doc, parts, true);
          if (parent) parent[field] = ((parent[field] as number | undefined) ?? 0) + (value as number);
          break;
        }
        default: {
          const never: never = op;
          throw new Error(`unexpected operator ${String(never)}`);
        }
      }
    }
  }
  return true;
}

/** The operators to apply: `$setOnInsert` folds into `$set` on insert and is dropped otherwise. */
function operatorsFor(update: BsonDocument, inserting: boolean): BsonDocument {
  const ops: BsonDocument = {};
  for (const [op, arg] of Object.entries(update)) {
    if (op === "$setOnInsert") {
      if (inserting) ops.$set = { ...(ops.$set ?? {}), ...(arg as BsonDocument) };
      continue;
    }
    if (op === "$set" && ops.$set) ops.$set = { ...(ops.$set as BsonDocument), ...(arg as BsonDocument) };
    else ops[op] = { ...(arg as BsonDocument) };
  }
  return ops;
}

const touchesId = (update: BsonDocument): boolean =>
  Object.values(update).some((arg) =>
    Object.keys(arg as BsonDocument).some((p) => p === "_id" || p.startsWith("_id.")),
  );

/**
 * Applies one update to many documents (a multi update), setting mingo's updater up once instead
 * of once per document. Like the server, a document that cannot be updated stops the statement:
 * the documents before it are updated (`afters`) and `error` says why the rest were not.
 */
export function applyUpdates(
  befores: BsonDocument[],
  update: UpdateSpec,
  arrayFilters: BsonDocument[] | undefined,
): { afters: BsonDocument[]; error?: unknown } {
  if (befores.length <= 1 || Array.isArray(update) || !isOperatorUpdate(update) || touchesId(update)) {
    const afters: BsonDocument[] = [];
    for (const b of befores) {
      try {
        afters.push(applyUpdate(b, update, arrayFilters, false));
      } catch (error) {
        return { afters, error };
      }
    }
    return { afters };
  }
  const ops = operatorsFor(update, false);
  let error: unknown;
  let usable = befores;
  for (let i = 0; i < befores.length; i++) {
    try {
      checkTargets(befores[i] as BsonDocument, ops, false);
    } catch (err) {
      error = err;
      usable = befores.slice(0, i);
      break;
    }
  }
  const working = usable.map((b) => cloneValue(plainOf(b)));
  const failure = runOperators(working, ops, arrayFilters);
  if (failure) return { afters: [], error: failure };
  const hints = typeHints(update);
  const afters = usable.map((b, i) => idFirst(finish(b, working[i], hints), b._id));
  return error === undefined ? { afters } : { afters, error };
}

/**
 * Checks mingo does not make: `_id` is immutable (a `$set` to its current value is a no-op and is
 * dropped here), and `$inc`/`$mul` need a numeric field.
 */
function checkTargets(before: BsonDocument, ops: BsonDocument, inserting: boolean): void {
  for (const [op, arg] of Object.entries(ops)) {
    const fields = arg as BsonDocument;
    for (const path of Object.keys(fields)) {
      if (path === "_id" || path.startsWith("_id.")) {
        // Setting _id to the value it has is a no-op (mingo would refuse it); an upsert seed
        // without _id takes it from the update.
        if (op === "$set" && path === "_id" && keyOf(fields[path]) === keyOf(before._id)) {
          delete fields[path];
          continue;
        }
        if (inserting && op === "$set" && path === "_id" && before._id === undefined) {
          before._id = fields[path];
          delete fields[path];
          continue;
        }
        fail(
          "ImmutableField",
          "Performing an update on the path '_id' would modify the immutable field '_id'",
        );
      }
      if ((op === "$inc" || op === "$mul") && !path.includes("$")) {
        const current = getPath(before, path);
        if (current !== undefined && current !== null && !isNumeric(current)) {
          fail(
            "TypeMismatch",
            `Cannot apply ${op} to a value of non-numeric type. {_id: ${formatValue(before._id)}} has the field '${path.split(".").pop() ?? path}' of non-numeric type ${bsonTypeName(current)}`,
          );
        }
      }
    }
  }
}

/**
 * Whether an update changed anything (BSON types included). Plain objects, arrays, strings,
 * booleans and numbers are compared here (a JS number serializes by its value alone); any other
 * value (dates, ObjectIds, typed numbers, binaries…) by its BSON bytes. Serializing both whole
 * documents cost as much as the rest of an update.
 */
export function documentsDiffer(a: BsonDocument, b: BsonDocument): boolean {
  if (a === b) return false;
  return !sameValue(a, b);
}

function sameValue(a: unknown, b: unknown): boolean {
  if (a === b) return a !== 0 || Object.is(a, b); // 0 and -0 are different doubles
  const ta = typeof a;
  if (ta !== typeof b) return false;
  if (ta === "number") return Number.isNaN(a) && Number.isNaN(b);
  if (ta !== "object" || a === null || b === null) return false;
  if (Array.isArray(a)) {
    if (!Array.isArray(b) || a.length !== b.length) return false;
    for (let i = 0; i < a.length; i++) if (!sameValue(a[i], b[i])) return false;
    return true;
  }
  if (Array.isArray(b)) return false;
  if (isPlainObject(a) && isPlainObject(b) && Object.getPrototypeOf(a) === Object.getPrototypeOf(b)) {
    const ka = Object.keys(a);
    const kb = Object.keys(b);
    if (ka.length !== kb.length) return false;
    for (let i = 0; i < ka.length; i++) {
      const k = ka[i] as string;
      if (k !== kb[i] || !sameValue(a[k], b[k])) return false;
    }
    return true;
  }
  return Buffer.compare(serialize({ v: a }), serialize({ v: b })) === 0;
}

function setPath(doc: BsonDocument, path: string, value: unknown): void {
  const segs = path.split(".");
  let cur = doc;
  for (let i = 0; i < segs.length - 1; i++) {
    const seg = segs[i] as string;
    if (!isPlainObject(cur[seg])) cur[seg] = {};
    cur = cur[seg] as BsonDocument;
  }
  cur[segs[segs.length - 1] as string] = value;
}

/** The document an upsert starts from: the query's equality fields. */
export function upsertSeed(filter: BsonDocument): BsonDocument {
  const seed: BsonDocument = {};
  const visit = (f: BsonDocument) => {
    for (const [k, v] of Object.entries(f)) {
      if (k === "$and" && Array.isArray(v)) {
        for (const sub of v) if (isPlainObject(sub)) visit(sub);
        continue;
      }
      if (k.startsWith("$")) continue;
      if (isPlainObject(v) && Object.keys(v).some((op) => op.startsWith("$"))) {
        if ("$eq" in v) setPath(seed, k, v.$eq);
        continue;
      }
      if (v instanceof RegExp) continue;
      setPath(seed, k, v);
    }
  };
  visit(filter);
  return seed;
}

/** Builds the document an upsert inserts. */
export function buildUpsert(
  filter: BsonDocument,
  update: UpdateSpec,
  arrayFilters: BsonDocument[] | undefined,
): BsonDocument {
  const seed = upsertSeed(filter);
  let doc: BsonDocument;
  if (!Array.isArray(update) && !isOperatorUpdate(update)) {
    const { _id: _ignored, ...rest } = update;
    doc = { ...rest };
    const id = update._id ?? seed._id;
    if (id !== undefined) doc = { _id: id, ...doc };
  } else {
    doc = applyUpdate(seed, update, arrayFilters, true);
  }
  if (doc._id === undefined) doc = { _id: new ObjectId(), ...doc };
  const { doc: out, wrappers } = normalizeDocument(idFirst(doc, doc._id));
  if (wrappers) markWrapped(out);
  return out;
}
