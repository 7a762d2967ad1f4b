/**
 * The command layer: the catalog of databases and collections, open cursors, and one handler per
 * supported command. Handlers are synchronous (all data is in memory), validate their arguments
 * the way the server does, and either return a reply document or throw a `CommandError`.
 */
import { randomBytes } from "node:crypto";
import { Long, ObjectId } from "bson";
import { Collection, type IndexSpec, isIndexKeyDoc, newQueryStats } from "./collection.js";
import { CommandError, fail, toCommandError } from "./errors.js";
import {
  type Projector,
  type SortSpec,
  compileFilter,
  compileProjection,
  markWrapped,
  parseSort,
  runPipeline,
} from "./query.js";
import {
  applyUpdate,
  applyUpdates,
  buildUpsert,
  documentsDiffer,
  isOperatorUpdate,
  type UpdateSpec,
  validateUpdate,
} from "./update.js";
import {
  type BsonDocument,
  bsonTypeName,
  compareValues,
  isNumeric,
  isPlainObject,
  keyOf,
  normalizeDocument,
  toNumber,
  valuesAtPath,
  withIdFirst,
} from "./values.js";
import { checkCommandFields } from "./command-fields.js";
import {
  refusePositionalOperator,
  refuseUnimplementedQueryOperators,
  refuseUnimplementedStages,
} from "./operator-support.js";
import { MAX_BSON_BYTES, MAX_MESSAGE_BYTES, encodeCursorReply, serializeDocument } from "./wire.js";

/** What the engine reports as its version: the MongoDB release whose behaviour it follows. */
export const EMULATED_VERSION = "7.0.0";
const MAX_WIRE_VERSION = 21;
const DEFAULT_FIRST_BATCH = 101;
const CURSOR_IDLE_MS = 10 * 60 * 1000;

/** A reply is either a document to serialize or bytes already assembled (cursor batches). */
export type Reply = BsonDocument | Buffer;

interface OpenCursor {
  ns: string;
  docs: BsonDocument[];
  position: number;
  projector?: Projector | undefined;
  lastUsed: number;
  /** `noCursorTimeout`: kept until exhausted or killed, never reaped for idleness. */
  noTimeout?: boolean;
}

interface Context {
  db: string;
  connectionId: number;
}

const int = (v: unknown, name: string, fallback: number): number => {
  if (v === undefined || v === null) return fallback;
  if (!isNumeric(v)) {
    return fail("TypeMismatch", `Field '${name}' should be a number, but found type ${bsonTypeName(v)}`);
  }
  return toNumber(v);
};

const bool = (v: unknown, fallback = false): boolean =>
  v === undefined || v === null ? fallback : isNumeric(v) ? toNumber(v) !== 0 : Boolean(v);

const doc = (v: unknown, name: string): BsonDocument | undefined => {
  if (v === undefined || v === null) return undefined;
  if (!isPlainObject(v)) {
    return fail(
      "TypeMismatch",
      `BSON field '${name}' is the wrong type '${bsonTypeName(v)}', expected type 'object'`,
    );
  }
  return v;
};

function collectionName(command: BsonDocument, name: string): string {
  const v = command[name];
  if (typeof v !== "string") {
    return fail("InvalidNamespace", `collection name has invalid type ${bsonTypeName(v)}`);
  }
  if (v.length === 0 || v.includes("$") || v.includes("\0")) {
    fail("InvalidNamespace", `Invalid namespace specified '${command.$db as string}.${v}'`);
  }
  return v;
}

/**
 * A `hint` must name an index the collection has (by name or key pattern), or `{$natural: ±1}`;
 * servers refuse any other. The engine's own planner then runs the query (same results).
 */
function checkHint(coll: Collection, hint: unknown): void {
  if (hint === undefined) return;
  if (typeof hint === "string") {
    if (coll.getIndex(hint)) return;
  } else if (isPlainObject(hint)) {
    const keys = Object.keys(hint);
    if (keys.length === 1 && keys[0] === "$natural") return;
    const pattern = JSON.stringify(hint);
    if (coll.indexes.some((ix) => JSON.stringify(ix.spec.key) === pattern)) return;
  } else {
    fail("FailedToParse", "hint must be a string (an index name) or an object (an index key pattern)");
  }
  fail(
    "BadValue",
    "error processing query: planner returned error :: caused by :: hint provided does not correspond to an existing index",
  );
}

/** `_id` values are stored as they are: a `$`-prefixed field inside one is refused, as servers do. */
function checkIdForStorage(id: unknown): void {
  if (!isPlainObject(id)) return;
  for (const k of Object.keys(id)) {
    if (k.startsWith("$")) {
      fail(
        "DollarPrefixedFieldName",
        `_id fields may not contain '$'-prefixed fields: ${k} is not valid for storage.`,
      );
    }
  }
}

/** What an update may hold that the engine lacks: stages and operators, or the positional `$`. */
function refuseUnimplementedInUpdate(u: UpdateSpec, where: string): void {
  if (Array.isArray(u)) refuseUnimplementedStages(u, where);
  else if (isOperatorUpdate(u)) refusePositionalOperator(u, where);
}

function validateDbName(db: string): void {
  if (db.length === 0 || /[/\\. "$\0]/.test(db) || db.length >= 64) {
    fail("InvalidNamespace", `Invalid database name: '${db}'`);
  }
}

/**
 * Commands a MongoDB 7.0 server has that the engine does not: NotImplemented (238) naming the
 * command, so a tool learns the engine lacks it rather than that MongoDB does (59 is for names no
 * server knows).
 */
const UNIMPLEMENTED_COMMANDS: ReadonlySet<string> = new Set([
  "explain",
  "collMod",
  "renameCollection",
  "mapReduce",
  "dbStats",
  "collStats",
  "dataSize",
  "validate",
  "compact",
  "convertToCapped",
  "cloneCollectionAsCapped",
  "createUser",
  "dropUser",
  "updateUser",
  "usersInfo",
  "createRole",
  "rolesInfo",
  "saslStart",
  "saslContinue",
  "authenticate",
  "getParameter",
  "setParameter",
  "getCmdLineOpts",
  "hostInfo",
  "fsync",
  "currentOp",
  "killOp",
  "getLog",
  "top",
  "listSearchIndexes",
  "createSearchIndexes",
  "dropSearchIndex",
  "updateSearchIndex",
  "refreshSessions",
  "killSessions",
  "killAllSessions",
  "startSession",
]);

export class Engine {
  readonly databases = new Map<string, Map<string, Collection>>();
  private readonly cursors = new Map<bigint, OpenCursor>();
  private readonly startedAt = Date.now();
  /** Commands served, by name (the benchmark counts per-chunk database work with this). */
  readonly commandCounts = new Map<string, number>();
  /** Documents examined and index/collection scans, to prove queries use indexes. */
  readonly queryStats = newQueryStats();

  private readonly handlers: Record<string, (c: BsonDocument, ctx: Context) => Reply> = {
    hello: (c, ctx) => this.hello(c, ctx, false),
    isMaster: (c, ctx) => this.hello(c, ctx, true),
    ismaster: (c, ctx) => this.hello(c, ctx, true),
    ping: () => ({ ok: 1 }),
    buildInfo: () => this.buildInfo(),
    buildinfo: () => this.buildInfo(),
    endSessions: () => ({ ok: 1 }),
    connectionStatus: () => ({ authInfo: { authenticatedUsers: [], authenticatedUserRoles: [] }, ok: 1 }),
    serverStatus: () => this.serverStatus(),
    listDatabases: (c) => this.listDatabases(c),
    listCollections: (c, ctx) => this.listCollections(c, ctx),
    create: (c, ctx) => this.create(c, ctx),
    drop: (c, ctx) => this.drop(c, ctx),
    dropDatabase: (_c, ctx) => this.dropDatabase(ctx),
    createIndexes: (c, ctx) => this.createIndexes(c, ctx),
    listIndexes: (c, ctx) => this.listIndexes(c, ctx),
    dropIndexes: (c, ctx) => this.dropIndexes(c, ctx),
    insert: (c, ctx) => this.insert(c, ctx),
    update: (c, ctx) => this.update(c, ctx),
    delete: (c, ctx) => this.delete(c, ctx),
    find: (c, ctx) => this.find(c, ctx),
    getMore: (c, ctx) => this.getMore(c, ctx),
    killCursors: (c) => this.killCursors(c),
    findAndModify: (c, ctx) => this.findAndModify(c, ctx),
    findandmodify: (c, ctx) => this.findAndModify(c, ctx),
    aggregate: (c, ctx) => this.aggregate(c, ctx),
    count: (c, ctx) => this.count(c, ctx),
    distinct: (c, ctx) => this.distinct(c, ctx),
  };

  /** Runs one command and returns the reply; errors become `ok: 0` replies. */
  run(command: BsonDocument, db: string, connectionId: number): Reply {
    const name = Object.keys(command)[0];
    try {
      if (name === undefined) return fail("FailedToParse", "Command document is empty");
      this.commandCounts.set(name, (this.commandCounts.get(name) ?? 0) + 1);
      const handler = Object.hasOwn(this.handlers, name) ? this.handlers[name] : undefined;
      if (!handler) {
        if (UNIMPLEMENTED_COMMANDS.has(name)) {
          return fail(
            "NotImplemented",
            `${name}: the '${name}' command is not implemented by the embedded engine; run it against a MongoDB server`,
          );
        }
        return fail("CommandNotFound", `no such command: '${name}'`);
      }
      if (
        command.txnNumber !== undefined ||
        command.startTransaction !== undefined ||
        command.autocommit !== undefined ||
        name === "commitTransaction" ||
        name === "abortTransaction"
      ) {
        fail("IllegalOperation", "Transaction numbers are only allowed on a replica set member or mongos");
      }
      validateDbName(db);
      checkCommandFields(name, command);
      return handler(command, { db, connectionId });
    } catch (err) {
      return toCommandError(err).toReply();
    }
  }

  // -------------------------------------------------------------------------------------------
  // catalog

  private collection(db: string, name: string): Collection | undefined {
    return this.databases.get(db)?.get(name);
  }

  private ensureCollection(db: string, name: string): Collection {
    let colls = this.databases.get(db);
    if (!colls) {
      colls = new Map();
      this.databases.set(db, colls);
    }
    let coll = colls.get(name);
    if (!coll) {
      if (name.startsWith("system.")) fail("InvalidNamespace", `Invalid system namespace: ${db}.${name}`);
      coll = new Collection(db, name, this.queryStats);
      colls.set(name, coll);
    }
    return coll;
  }

  // -------------------------------------------------------------------------------------------
  // handshake and server info

  private hello(_c: BsonDocument, ctx: Context, legacy: boolean): BsonDocument {
    // No topologyVersion: the driver then polls instead of streaming (no exhaust cursors needed).
    return {
      ...(legacy ? { ismaster: true } : { isWritablePrimary: true }),
      helloOk: true,
      maxBsonObjectSize: MAX_BSON_BYTES,
      maxMessageSizeBytes: MAX_MESSAGE_BYTES,
      maxWriteBatchSize: 100000,
      localTime: new Date(),
      logicalSessionTimeoutMinutes: 30,
      connectionId: ctx.connectionId,
      minWireVersion: 0,
      maxWireVersion: MAX_WIRE_VERSION,
      readOnly: false,
      ok: 1,
    };
  }

  private buildInfo(): BsonDocument {
    return {
      version: EMULATED_VERSION,
      gitVersion: "chunkrelay-embedded",
      versionArray: EMULATED_VERSION.split(".").map(Number).concat(0),
      bits: 64,
      maxBsonObjectSize: MAX_BSON_BYTES,
      storageEngines: ["chunkrelay-embedded"],
      ok: 1,
    };
  }

  private serverStatus(): BsonDocument {
    return {
      host: "127.0.0.1",
      version: EMULATED_VERSION,
      process: "chunkrelay-embedded",
      uptime: Math.floor((Date.now() - this.startedAt) / 1000),
      localTime: new Date(),
      ok: 1,
    };
  }

  private listDatabases(c: BsonDocument): BsonDocument {
    const nameOnly = bool(c.nameOnly);
    const filter = compileFilter(c.filter);
    const databases = [...this.databases.entries()]
      .filter(([, colls]) => colls.size > 0)
      .map(([name, colls]) => {
        let size = 0;
        for (const coll of colls.values()) size += coll.docs.size;
        return nameOnly ? { name } : { name, sizeOnDisk: size, empty: size === 0 };
      })
      .filter((d) => filter(d));
    return nameOnly ? { databases, ok: 1 } : { databases, totalSize: 0, ok: 1 };
  }

  private listCollections(c: BsonDocument, ctx: Context): Reply {
    const filter = compileFilter(c.filter);
    const nameOnly = bool(c.nameOnly);
    const colls = [...(this.databases.get(ctx.db)?.values() ?? [])];
    const docs = colls
      .map((coll) =>
        nameOnly
          ? { name: coll.name, type: "collection" }
          : {
              name: coll.name,
              type: "collection",
              options: {},
              info: { readOnly: false },
              idIndex: { v: 2, key: { _id: 1 }, name: "_id_" },
            },
      )
      .filter((d) => filter(d));
    const cursor = doc(c.cursor, "cursor");
    return this.openCursor(`${ctx.db}.$cmd.listCollections`, docs, cursor?.batchSize, false);
  }

  private create(c: BsonDocument, ctx: Context): BsonDocument {
    const name = collectionName(c, "create");
    if (this.collection(ctx.db, name))
      fail("NamespaceExists", `Collection ${ctx.db}.${name} already exists.`);
    this.ensureCollection(ctx.db, name);
    return { ok: 1 };
  }

  private drop(c: BsonDocument, ctx: Context): BsonDocument {
    const name = collectionName(c, "drop");
    const colls = this.databases.get(ctx.db);
    const existed = colls?.get(name);
    colls?.delete(name);
    // Since MongoDB 7.0, dropping a collection that does not exist succeeds.
    return existed ? { nIndexesWas: existed.indexes.length, ns: existed.ns, ok: 1 } : { ok: 1 };
  }

  private dropDatabase(ctx: Context): BsonDocument {
    this.databases.delete(ctx.db);
    return { ok: 1 };
  }

  // -------------------------------------------------------------------------------------------
  // indexes

  private createIndexes(c: BsonDocument, ctx: Context): BsonDocument {
    const name = collectionName(c, "createIndexes");
    const specs = c.indexes;
    if (!Array.isArray(specs) || specs.length === 0) {
      return fail("BadValue", "Must specify at least one index to create");
    }
    const parsed: IndexSpec[] = specs.map((s: unknown) => {
      if (!isPlainObject(s))
        return fail("TypeMismatch", "The elements of the 'indexes' array must be objects");
      if (!isIndexKeyDoc(s.key))
        return fail("CannotCreateIndex", "The 'key' field must be a non-empty object");
      if (typeof s.name !== "string" || s.name.length === 0) {
        return fail("CannotCreateIndex", "The 'name' field must be a non-empty string");
      }
      for (const k of Object.keys(s)) {
        if (
          ![
            "key",
            "name",
            "unique",
            "sparse",
            "partialFilterExpression",
            "v",
            "background",
            "expireAfterSeconds",
          ].includes(k)
        ) {
          fail(
            "InvalidOptions",
            `The field '${k}' is not valid for an index specification. Specification: ${JSON.stringify(s)}`,
          );
        }
      }
      const spec: IndexSpec = { v: 2, key: s.key, name: s.name };
      if (bool(s.unique)) spec.unique = true;
      if (bool(s.sparse)) spec.sparse = true;
      if (s.partialFilterExpression !== undefined) {
        const partial = doc(s.partialFilterExpression, "partialFilterExpression");
        if (partial !== undefined) spec.partialFilterExpression = partial;
      }
      if (s.expireAfterSeconds !== undefined)
        spec.expireAfterSeconds = int(s.expireAfterSeconds, "expireAfterSeconds", 0);
      return spec;
    });
    const existed = this.collection(ctx.db, name) !== undefined;
    const coll = this.ensureCollection(ctx.db, name);
    const before = coll.indexes.length;
    for (const spec of parsed) {
      const sameName = coll.getIndex(spec.name);
      const sameKey = coll.indexes.find(
        (ix) => keyOf(ix.spec.key) === keyOf(spec.key) && sameOptions(ix.spec, spec),
      );
      if (sameName) {
        if (keyOf(sameName.spec.key) !== keyOf(spec.key)) {
          fail(
            "IndexKeySpecsConflict",
            `An existing index has the same name as the requested index. When index names are not specified, they are auto generated and can cause conflicts. Please refer to our documentation. Requested index: ${JSON.stringify(spec)}, existing index: ${JSON.stringify(sameName.spec)}`,
          );
        }
        if (!sameOptions(sameName.spec, spec)) {
          fail(
            "IndexOptionsConflict",
            `An equivalent index already exists with the same name but different options. Requested index: ${JSON.stringify(spec)}, existing index: ${JSON.stringify(sameName.spec)}`,
          );
        }
        continue;
      }
      if (sameKey)
        fail("IndexOptionsConflict", `Index already exists with a different name: ${sameKey.name}`);
      coll.addIndex(spec);
    }
    const reply: BsonDocument = {
      numIndexesBefore: before,
      numIndexesAfter: coll.indexes.length,
      createdCollectionAutomatically: !existed,
      ok: 1,
    };
    if (before === coll.indexes.length) reply.note = "all indexes already exist";
    return reply;
  }

  private listIndexes(c: BsonDocument, ctx: Context): Reply {
    const name = collectionName(c, "listIndexes");
    const coll = this.collection(ctx.db, name);
    if (!coll) return fail("NamespaceNotFound", `ns does not exist: ${ctx.db}.${name}`);
    const cursor = doc(c.cursor, "cursor");
    return this.openCursor(
      coll.ns,
      coll.listIndexSpecs() as unknown as BsonDocument[],
      cursor?.batchSize,
      false,
    );
  }

  private dropIndexes(c: BsonDocument, ctx: Context): BsonDocument {
    const name = collectionName(c, "dropIndexes");
    const coll = this.collection(ctx.db, name);
    if (!coll) return fail("NamespaceNotFound", `ns not found ${ctx.db}.${name}`);
    const before = coll.indexes.length;
    const target = c.index;
    const names: string[] = [];
    if (target === "*") {
      names.push(...coll.indexes.slice(1).map((ix) => ix.name));
    } else if (typeof target === "string") {
      names.push(target);
    } else if (Array.isArray(target)) {
      names.push(...target.map(String));
    } else if (isPlainObject(target)) {
      const found = coll.indexes.find((ix) => keyOf(ix.spec.key) === keyOf(target));
      if (!found) fail("IndexNotFound", `can't find index with key: ${JSON.stringify(target)}`);
      names.push((found as { name: string }).name);
    } else {
      fail("TypeMismatch", "The 'index' field must be a string, an array of strings or an object");
    }
    for (const n of names) {
      if (n === "_id_") fail("InvalidOptions", "cannot drop _id index");
      if (!coll.getIndex(n)) fail("IndexNotFound", `index not found with name [${n}]`);
    }
    for (const n of names) coll.dropIndex(n);
    return { nIndexesWas: before, ok: 1 };
  }

  // -------------------------------------------------------------------------------------------
  // writes

  private insert(c: BsonDocument, ctx: Context): BsonDocument {
    const name = collectionName(c, "insert");
    const docs = c.documents;
    if (!Array.isArray(docs))
      return fail("TypeMismatch", "BSON field 'insert.documents' is missing or not an array");
    const ordered = bool(c.ordered, true);
    const coll = this.ensureCollection(ctx.db, name);
    const writeErrors: BsonDocument[] = [];
    let n = 0;
    for (let i = 0; i < docs.length; i++) {
      try {
        const raw = docs[i] as BsonDocument;
        if (!isPlainObject(raw)) fail("TypeMismatch", "documents to insert must be objects");
        if (Array.isArray(raw._id)) fail("InvalidIdField", "The '_id' value cannot be of type array");
        checkIdForStorage(raw._id);
        const { doc: stored, wrappers } = normalizeDocument(
          raw._id === undefined ? { _id: new ObjectId(), ...raw } : withIdFirst(raw),
        );
        if (wrappers) markWrapped(stored);
        coll.insert(stored);
        n++;
      } catch (err) {
        writeErrors.push(toCommandError(err).toWriteError(i));
        if (ordered) break;
      }
    }
    return writeErrors.length > 0 ? { n, writeErrors, ok: 1 } : { n, ok: 1 };
  }

  private update(c: BsonDocument, ctx: Context): BsonDocument {
    const name = collectionName(c, "update");
    const statements = c.updates;
    if (!Array.isArray(statements))
      return fail("TypeMismatch", "BSON field 'update.updates' is missing or not an array");
    const ordered = bool(c.ordered, true);
    const coll = this.ensureCollection(ctx.db, name);
    const writeErrors: BsonDocument[] = [];
    const upserted: BsonDocument[] = [];
    let n = 0;
    let nModified = 0;
    for (let i = 0; i < statements.length; i++) {
      try {
        const s = statements[i] as BsonDocument;
        const q =
          doc(s.q, "q") ??
          fail("FailedToParse", "BSON field 'update.updates.q' is missing but a required field");
        refuseUnimplementedQueryOperators(q, "update.updates.q");
        const u = validateUpdate(s.u);
        refuseUnimplementedInUpdate(u, "update.updates.u");
        const multi = bool(s.multi);
        if (multi && !Array.isArray(u) && !isOperatorUpdate(u)) {
          fail("FailedToParse", "multi update is not supported for replacement-style update");
        }
        const arrayFilters = s.arrayFilters as BsonDocument[] | undefined;
        checkHint(coll, s.hint);
        const matched = coll.find(q, { limit: multi ? 0 : 1 });
        const { afters, error } = applyUpdates(matched, u, arrayFilters);
        afters.forEach((after, k) => {
          const before = matched[k] as BsonDocument;
          n++;
          if (documentsDiffer(before, after)) {
            coll.replace(before, after);
            nModified++;
          }
        });
        if (error !== undefined) throw toCommandError(error);
        if (matched.length === 0 && bool(s.upsert)) {
          const inserted = buildUpsert(q, u, arrayFilters);
          coll.insert(inserted);
          n++;
          upserted.push({ index: i, _id: inserted._id });
        }
      } catch (err) {
        writeErrors.push(toCommandError(err).toWriteError(i));
        if (ordered) break;
      }
    }
    const reply: BsonDocument = { n, nModified };
    if (upserted.length > 0) reply.upserted = upserted;
    if (writeErrors.length > 0) reply.writeErrors = writeErrors;
    reply.ok = 1;
    return reply;
  }

  private delete(c: BsonDocument, ctx: Context): BsonDocument {
    const name = collectionName(c, "delete");
    const statements = c.deletes;
    if (!Array.isArray(statements))
      return fail("TypeMismatch", "BSON field 'delete.deletes' is missing or not an array");
    const ordered = bool(c.ordered, true);
    const coll = this.collection(ctx.db, name);
    const writeErrors: BsonDocument[] = [];
    let n = 0;
    for (let i = 0; i < statements.length; i++) {
      try {
        const s = statements[i] as BsonDocument;
        if (coll) checkHint(coll, s.hint);
        const q =
          doc(s.q, "q") ??
          fail("FailedToParse", "BSON field 'delete.deletes.q' is missing but a required field");
        refuseUnimplementedQueryOperators(q, "delete.deletes.q");
        const limit = int(s.limit, "limit", 0);
        if (limit !== 0 && limit !== 1)
          fail("FailedToParse", "The limit field in delete objects must be 0 or 1. Got " + limit);
        if (!coll) {
          compileFilter(q);
          continue;
        }
        for (const d of coll.find(q, { limit })) {
          coll.remove(d);
          n++;
        }
      } catch (err) {
        writeErrors.push(toCommandError(err).toWriteError(i));
        if (ordered) break;
      }
    }
    return writeErrors.length > 0 ? { n, writeErrors, ok: 1 } : { n, ok: 1 };
  }

  private findAndModify(c: BsonDocument, ctx: Context): BsonDocument {
    const name = collectionName(c, Object.keys(c)[0] as string);
    const query = doc(c.query, "query") ?? {};
    refuseUnimplementedQueryOperators(query, "findAndModify.query");
    const remove = bool(c.remove);
    const upsert = bool(c.upsert);
    const returnNew = bool(c.new);
    if (remove && c.update !== undefined)
      fail("FailedToParse", "Cannot specify both an update and remove=true");
    if (!remove && c.update === undefined)
      fail("FailedToParse", "Either an update or remove=true must be specified");
    if (remove && upsert) fail("FailedToParse", "Cannot specify both upsert=true and remove=true");
    if (remove && returnNew)
      fail(
        "FailedToParse",
        "Cannot specify both new=true and remove=true; 'remove' always returns the deleted document",
      );
    const sort = parseSort(c.sort);
    const projector = compileProjection(c.fields);
    const show = (d: BsonDocument | undefined) => (d === undefined ? null : projector ? projector(d) : d);
    const coll = remove ? this.collection(ctx.db, name) : this.ensureCollection(ctx.db, name);
    const update = remove ? undefined : validateUpdate(c.update);
    if (update !== undefined) refuseUnimplementedInUpdate(update, "findAndModify.update");
    if (coll) checkHint(coll, c.hint);
    const [found] = coll ? coll.find(query, { sort, limit: 1 }) : [];
    if (remove) {
      if (found && coll) coll.remove(found);
      return { lastErrorObject: { n: found ? 1 : 0 }, value: show(found), ok: 1 };
    }
    const arrayFilters = c.arrayFilters as BsonDocument[] | undefined;
    const target = coll as Collection;
    if (found) {
      const after = applyUpdate(found, update as BsonDocument, arrayFilters, false);
      if (documentsDiffer(found, after)) target.replace(found, after);
      return {
        lastErrorObject: { n: 1, updatedExisting: true },
        value: show(returnNew ? after : found),
        ok: 1,
      };
    }
    if (!upsert) return { lastErrorObject: { n: 0, updatedExisting: false }, value: null, ok: 1 };
    const inserted = buildUpsert(query, update as BsonDocument, arrayFilters);
    target.insert(inserted);
    return {
      lastErrorObject: { n: 1, updatedExisting: false, upserted: inserted._id },
      value: returnNew ? show(inserted) : null,
      ok: 1,
    };
  }

  // -------------------------------------------------------------------------------------------
  // reads

  private find(c: BsonDocument, ctx: Context): Reply {
    const name = collectionName(c, "find");
    const filter = doc(c.filter, "filter");
    refuseUnimplementedQueryOperators(filter, "find.filter");
    const sort = parseSort(c.sort);
    const projector = compileProjection(c.projection);
    const skip = int(c.skip, "skip", 0);
    let limit = int(c.limit, "limit", 0);
    if (skip < 0) fail("BadValue", "Skip value must be non-negative, but received: " + skip);
    let singleBatch = bool(c.singleBatch);
    if (limit < 0) {
      // A negative limit is the legacy spelling of "limit, in a single batch".
      limit = -limit;
      singleBatch = true;
    }
    const batchSize = c.batchSize === undefined ? undefined : int(c.batchSize, "batchSize", 0);
    if (batchSize !== undefined && batchSize < 0)
      fail("BadValue", "BatchSize value must be non-negative, but received: " + batchSize);
    const coll = this.collection(ctx.db, name);
    if (coll) checkHint(coll, c.hint);
    const docs = coll ? coll.find(filter, { sort, skip, limit }) : (compileFilter(filter), []);
    return this.openCursor(
      `${ctx.db}.${name}`,
      docs,
      batchSize,
      singleBatch,
      projector,
      bool(c.noCursorTimeout),
    );
  }

  private aggregate(c: BsonDocument, ctx: Context): Reply {
    if (typeof c.aggregate !== "string") {
      return fail(
        "InvalidNamespace",
        "the embedded engine only runs collection aggregations (aggregate: <collection>)",
      );
    }
    const name = collectionName(c, "aggregate");
    const pipeline = c.pipeline;
    if (!Array.isArray(pipeline))
      return fail("TypeMismatch", "'pipeline' option must be specified as an array");
    const cursor = doc(c.cursor, "cursor");
    if (!cursor)
      fail(
        "FailedToParse",
        "The 'cursor' option is required, except for aggregate with the explain argument",
      );
    const stages = pipeline.map((s: unknown) => {
      if (!isPlainObject(s) || Object.keys(s).length !== 1) {
        return fail("Location40324", "A pipeline stage specification object must contain exactly one field.");
      }
      return s;
    });
    refuseUnimplementedStages(stages, "aggregate.pipeline");
    let out: { db: string; coll: string } | undefined;
    const last = stages[stages.length - 1];
    if (last && "$out" in last) {
      const target = last.$out;
      out =
        typeof target === "string"
          ? { db: ctx.db, coll: target }
          : isPlainObject(target) && typeof target.coll === "string"
            ? { db: typeof target.db === "string" ? target.db : ctx.db, coll: target.coll }
            : fail("FailedToParse", "$out stage requires a string or an object with 'coll'");
      stages.pop();
    }
    for (const s of stages) {
      if ("$out" in s) fail("Location40324", "$out can only be the final stage in the pipeline");
    }
    const coll = this.collection(ctx.db, name);
    if (coll) checkHint(coll, c.hint);
    // A leading $match (with $sort/$skip/$limit after it) runs through the index planner.
    let i = 0;
    let filter: BsonDocument | undefined;
    let sort: SortSpec | undefined;
    let skip = 0;
    let limit = 0;
    if (stages[0] && "$match" in stages[0]) {
      filter = doc(stages[0].$match, "$match") ?? {};
      i = 1;
      if (stages[i] && "$sort" in (stages[i] as BsonDocument)) {
        sort = parseSort((stages[i] as BsonDocument).$sort);
        i++;
        while (
          stages[i] &&
          ("$skip" in (stages[i] as BsonDocument) || "$limit" in (stages[i] as BsonDocument))
        ) {
          const st = stages[i] as BsonDocument;
          if ("$skip" in st) {
            if (limit > 0) break;
            skip += int(st.$skip, "$skip", 0);
          } else {
            const l = int(st.$limit, "$limit", 0);
            if (l <= 0) fail("Location16410", "the limit must be positive");
            limit = limit > 0 ? Math.min(limit, l) : l;
          }
          i++;
        }
      }
    }
    const input = coll ? coll.find(filter, { sort, skip, limit }) : (filter && compileFilter(filter), []);
    const rest = stages.slice(i);
    const results =
      rest.length > 0
        ? runPipeline(input, rest, (other) => [...(this.collection(ctx.db, other)?.docs.values() ?? [])])
        : input;
    if (out) {
      this.replaceCollection(out.db, out.coll, results);
      return this.openCursor(`${ctx.db}.${name}`, [], cursor?.batchSize, false);
    }
    return this.openCursor(`${ctx.db}.${name}`, results, cursor?.batchSize, false);
  }

  /** `$out`: builds the new contents beside the old ones and swaps only if all of it fits. */
  private replaceCollection(db: string, name: string, docs: BsonDocument[]): void {
    validateDbName(db);
    const existing = this.collection(db, name);
    const fresh = new Collection(db, name, this.queryStats);
    for (const spec of existing?.indexes.slice(1) ?? []) fresh.addIndex(spec.spec);
    for (const d of docs) {
      const { doc: stored, wrappers } = normalizeDocument(
        d._id === undefined ? { _id: new ObjectId(), ...d } : { ...d },
      );
      if (wrappers) markWrapped(stored);
      fresh.insert(stored);
    }
    this.ensureCollection(db, name);
    this.databases.get(db)?.set(name, fresh);
  }

  private count(c: BsonDocument, ctx: Context): BsonDocument {
    const name = collectionName(c, "count");
    const query = doc(c.query, "query");
    refuseUnimplementedQueryOperators(query, "count.query");
    const skip = int(c.skip, "skip", 0);
    const limit = Math.abs(int(c.limit, "limit", 0));
    const coll = this.collection(ctx.db, name);
    if (coll) checkHint(coll, c.hint);
    if (!coll) {
      compileFilter(query);
      return { n: 0, ok: 1 };
    }
    if (!query || Object.keys(query).length === 0) {
      const total = Math.max(0, coll.docs.size - skip);
      return { n: limit > 0 ? Math.min(limit, total) : total, ok: 1 };
    }
    return { n: coll.find(query, { skip, limit }).length, ok: 1 };
  }

  private distinct(c: BsonDocument, ctx: Context): BsonDocument {
    const name = collectionName(c, "distinct");
    if (typeof c.key !== "string")
      return fail("TypeMismatch", "BSON field 'distinct.key' is the wrong type, expected type 'string'");
    const path = c.key.split(".");
    refuseUnimplementedQueryOperators(c.query, "distinct.query");
    const coll = this.collection(ctx.db, name);
    const seen = new Map<string, unknown>();
    for (const d of coll ? coll.find(doc(c.query, "query")) : []) {
      for (const v of valuesAtPath(d, path)) {
        for (const el of Array.isArray(v) ? v : [v]) {
          const k = keyOf(el);
          if (!seen.has(k)) seen.set(k, el);
        }
      }
    }
    return { values: [...seen.values()].sort(compareValues), ok: 1 };
  }

  // -------------------------------------------------------------------------------------------
  // cursors

  private newCursorId(): bigint {
    for (;;) {
      const id = randomBytes(8).readBigInt64LE(0) & 0x7fffffffffffffffn;
      if (id !== 0n && !this.cursors.has(id)) return id;
    }
  }

  /** Serves the first batch and keeps the rest behind a cursor id (0 when all fit). */
  private openCursor(
    ns: string,
    docs: BsonDocument[],
    batchSizeArg: unknown,
    singleBatch: boolean,
    projector?: Projector,
    noTimeout = false,
  ): Buffer {
    const batchSize = batchSizeArg === undefined ? DEFAULT_FIRST_BATCH : int(batchSizeArg, "batchSize", 0);
    const cursor: OpenCursor = { ns, docs, position: 0, projector, lastUsed: Date.now(), noTimeout };
    const batch = this.nextBatch(cursor, batchSize);
    let id = 0n;
    if (!singleBatch && cursor.position < docs.length) {
      id = this.newCursorId();
      this.cursors.set(id, cursor);
    }
    return encodeCursorReply(ns, id, "firstBatch", batch);
  }

  /** Up to `batchSize` documents (0 = no count limit), never past 16 MiB (but at least one). */
  private nextBatch(cursor: OpenCursor, batchSize: number): Buffer[] {
    const out: Buffer[] = [];
    let bytes = 0;
    while (cursor.position < cursor.docs.length && (batchSize === 0 || out.length < batchSize)) {
      const d = cursor.docs[cursor.position] as BsonDocument;
      const shown = cursor.projector ? cursor.projector(d) : d;
      const buf = serializeDocument(shown);
      if (out.length > 0 && bytes + buf.length > MAX_BSON_BYTES) break;
      out.push(buf);
      bytes += buf.length;
      cursor.position++;
    }
    cursor.lastUsed = Date.now();
    return out;
  }

  private getMore(c: BsonDocument, ctx: Context): Reply {
    const raw = c.getMore;
    if (!(raw instanceof Long) && typeof raw !== "bigint") {
      return fail(
        "TypeMismatch",
        `BSON field 'getMore.getMore' is the wrong type '${bsonTypeName(raw)}', expected type 'long'`,
      );
    }
    const id = typeof raw === "bigint" ? raw : raw.toBigInt();
    const collName = collectionName(c, "collection");
    const cursor = this.cursors.get(id);
    if (!cursor) return fail("CursorNotFound", `cursor id ${id} not found`);
    const ns = `${ctx.db}.${collName}`;
    if (cursor.ns !== ns && !cursor.ns.startsWith(`${ctx.db}.$cmd`)) {
      return fail(
        "BadValue",
        `Requested getMore on namespace '${ns}', but cursor belongs to a different namespace ${cursor.ns}`,
      );
    }
    const batchSize = c.batchSize === undefined ? 0 : int(c.batchSize, "batchSize", 0);
    const batch = this.nextBatch(cursor, batchSize);
    let replyId = id;
    if (cursor.position >= cursor.docs.length) {
      this.cursors.delete(id);
      replyId = 0n;
    }
    return encodeCursorReply(cursor.ns, replyId, "nextBatch", batch);
  }

  private killCursors(c: BsonDocument): BsonDocument {
    const ids = Array.isArray(c.cursors) ? c.cursors : [];
    const killed: unknown[] = [];
    const notFound: unknown[] = [];
    // Cursor ids are longs; a server's parser refuses any other type before killing anything.
    for (const raw of ids) {
      if (!(raw instanceof Long) && typeof raw !== "bigint") {
        fail(
          "TypeMismatch",
          `BSON field 'killCursors.cursors' is the wrong type '${bsonTypeName(raw)}', expected type 'long'`,
        );
      }
    }
    for (const raw of ids) {
      const id = raw instanceof Long ? raw.toBigInt() : (raw as bigint);
      if (this.cursors.delete(id)) killed.push(raw);
      else notFound.push(raw);
    }
    return { cursorsKilled: killed, cursorsNotFound: notFound, cursorsAlive: [], cursorsUnknown: [], ok: 1 };
  }

  /**
   * The TTL monitor: deletes the documents whose value at a single-field TTL index's key is a date
   * (the earliest, for an array of them) older than `expireAfterSeconds`; other values never
   * expire. A server runs it every 60 s, and so does `startEmbeddedMongo`. Returns how many went.
   */
  expireDocuments(now = Date.now()): number {
    let removed = 0;
    for (const colls of this.databases.values()) {
      for (const coll of colls.values()) {
        for (const ix of coll.indexes) {
          const seconds = ix.spec.expireAfterSeconds;
          const fields = Object.keys(ix.spec.key);
          if (seconds === undefined || fields.length !== 1) continue;
          const field = fields[0] as string;
          // `$lt` on an array matches when any element is earlier: the earliest date decides.
          for (const d of coll.find({ [field]: { $lt: new Date(now - seconds * 1000) } })) {
            coll.remove(d);
            removed++;
          }
        }
      }
    }
    return removed;
  }

  /** Drops cursors idle for longer than the server's default timeout (10 minutes). */
  reapIdleCursors(now = Date.now()): void {
    for (const [id, cursor] of this.cursors) {
      if (!cursor.noTimeout && now - cursor.lastUsed > CURSOR_IDLE_MS) this.cursors.delete(id);
    }
  }

  get openCursorCount(): number {
    return this.cursors.size;
  }
}

function sameOptions(a: IndexSpec, b: IndexSpec): boolean {
  return (
    Boolean(a.unique) === Boolean(b.unique) &&
    Boolean(a.sparse) === Boolean(b.sparse) &&
    keyOf(a.partialFilterExpression ?? null) === keyOf(b.partialFilterExpression ?? null)
  );
}

export { CommandError };
