/**
 * Every field each command may carry, and what the engine does with it. A command is checked
 * against its entry before it runs, so nothing a client asks for is silently dropped:
 *
 * - `handled`: the engine reads the field and does what the MongoDB manual says;
 * - `moot`: accepted, and it makes no difference on a single in-memory server — the answer is the
 *   one a standalone MongoDB server gives (each entry says why);
 * - `refused`: MongoDB 7.0 knows the field, the engine does not implement it: NotImplemented (238)
 *   naming `<command>.<field>`;
 * - anything else is unknown to MongoDB 7.0 as well: 40415 "BSON field '<command>.<field>' is an
 *   unknown field.", the answer of a 7.0 server's command parser.
 *
 * Field lists follow the 7.0 server's IDL definitions (find_command.idl, aggregate.idl,
 * write_ops.idl, count_command.idl, distinct_command.idl, getmore_command.idl,
 * create_indexes.idl, list_collections.idl, …) and generic_argument.idl for the fields every
 * command takes. Adding a command means adding its entry here: `run()` refuses a handler without
 * one.
 */
import { type BsonDocument, bsonTypeName, isNumeric, isPlainObject, toNumber } from "./values.js";
import { fail } from "./errors.js";

export type FieldRule = "handled" | "moot" | "refused";
type Fields = Readonly<Record<string, FieldRule>>;

export interface CommandFields {
  /** The command's own fields; `"any"` for commands whose extra fields only ask for more detail. */
  fields: Fields | "any";
  /** Sub-documents checked the same way (e.g. `cursor`), by field name. */
  nested?: Readonly<Record<string, Fields>>;
  /** The statement arrays of write commands (`updates`, `deletes`), checked element by element. */
  statements?: { field: string; fields: Fields };
}

/** Internal fields servers exchange among themselves, which a client never needs. */
const INTERNAL: Fields = {
  $audit: "refused",
  $client: "refused",
  $configServerState: "refused",
  $configTime: "refused",
  $topologyTime: "refused",
  $oplogQueryData: "refused",
  $queryOptions: "refused",
  $replData: "refused",
  clientOperationKey: "refused",
  databaseVersion: "refused",
  shardVersion: "refused",
  mayBypassWriteBlocking: "refused",
  txnRetryCounter: "refused",
  stmtId: "refused",
  stmtIds: "refused",
  collectionUUID: "refused",
  encryptionInformation: "refused",
  isTimeseriesNamespace: "refused",
  includeQueryStatsMetrics: "refused",
};

/** Fields every command takes (generic_argument.idl), as the driver sends them. */
const GENERIC: Fields = {
  ...INTERNAL,
  $db: "handled",
  // Sessions are accepted and have no state here: no transactions (refused in run()), no
  // retryable writes (the engine announces no `logicalSessionTimeoutMinutes` replica set).
  lsid: "handled",
  // Gossiped cluster time: a standalone ignores what it is sent.
  $clusterTime: "moot",
  // One server: every read preference reads it, as with a standalone.
  $readPreference: "moot",
  // Checked by checkReadConcern / checkWriteConcern below.
  readConcern: "handled",
  writeConcern: "handled",
  // Servers only log a comment.
  comment: "moot",
  // Commands run to completion synchronously; a time limit is never reached before the answer
  // (README, "What differs").
  maxTimeMS: "moot",
  // The stable API: every command the engine has is in API version 1 or answers the same.
  apiVersion: "moot",
  apiStrict: "moot",
  apiDeprecationErrors: "moot",
  // Refused with IllegalOperation (20) by run(), as a standalone refuses transactions.
  txnNumber: "handled",
  startTransaction: "handled",
  autocommit: "handled",
};

const CURSOR: Fields = { batchSize: "handled" };

export const COMMAND_FIELDS: Readonly<Record<string, CommandFields>> = {
  // The handshake carries client metadata, compression and auth mechanisms, none of which change
  // the reply's meaning; ping and buildInfo take no arguments a server would read.
  hello: { fields: "any" },
  isMaster: { fields: "any" },
  ismaster: { fields: "any" },
  ping: { fields: "any" },
  buildInfo: { fields: "any" },
  buildinfo: { fields: "any" },
  // Sections a serverStatus may be asked to include or exclude: the reply has the basic ones only.
  serverStatus: { fields: "any" },
  endSessions: { fields: {} },
  connectionStatus: { fields: { showPrivileges: "refused" } },
  listDatabases: {
    // No authentication: every database is authorized, as on a server without auth.
    fields: { filter: "handled", nameOnly: "handled", authorizedDatabases: "moot" },
  },
  listCollections: {
    fields: {
      filter: "handled",
      nameOnly: "handled",
      cursor: "handled",
      authorizedCollections: "moot",
      includePendingDrops: "refused",
    },
    nested: { cursor: CURSOR },
  },
  create: {
    fields: {
      capped: "refused",
      size: "refused",
      max: "refused",
      idIndex: "refused",
      storageEngine: "refused",
      validator: "refused",
      validationLevel: "refused",
      validationAction: "refused",
      indexOptionDefaults: "refused",
      viewOn: "refused",
      pipeline: "refused",
      collation: "refused",
      timeseries: "refused",
      clusteredIndex: "refused",
      expireAfterSeconds: "refused",
      changeStreamPreAndPostImages: "refused",
      encryptedFields: "refused",
      temp: "refused",
      flags: "refused",
      recordIdsReplicated: "refused",
    },
  },
  drop: { fields: {} },
  dropDatabase: { fields: {} },
  createIndexes: {
    // commitQuorum is refused as a standalone does (checkCommitQuorum).
    fields: { indexes: "handled", commitQuorum: "handled", ignoreUnknownIndexOptions: "refused" },
  },
  listIndexes: {
    fields: { cursor: "handled", includeBuildUUIDs: "refused", includeIndexBuildInfo: "refused" },
    nested: { cursor: CURSOR },
  },
  dropIndexes: { fields: { index: "handled" } },
  insert: {
    // No collection has a validator (create refuses them), so there is nothing to bypass.
    fields: { documents: "handled", ordered: "handled", bypassDocumentValidation: "moot" },
  },
  update: {
    fields: { updates: "handled", ordered: "handled", bypassDocumentValidation: "moot", let: "refused" },
    statements: {
      field: "updates",
      fields: {
        q: "handled",
        u: "handled",
        multi: "handled",
        upsert: "handled",
        arrayFilters: "handled",
        hint: "handled",
        c: "refused",
        collation: "refused",
        upsertSupplied: "refused",
        sampleId: "refused",
        // `sort` is new in 8.0: unknown to the 7.0 server this engine reports being (40415).
      },
    },
  },
  delete: {
    fields: { deletes: "handled", ordered: "handled", let: "refused" },
    statements: {
      field: "deletes",
      fields: { q: "handled", limit: "handled", hint: "handled", collation: "refused", sampleId: "refused" },
    },
  },
  findAndModify: { fields: findAndModifyFields() },
  findandmodify: { fields: findAndModifyFields() },
  find: {
    fields: {
      filter: "handled",
      projection: "handled",
      sort: "handled",
      hint: "handled",
      skip: "handled",
      limit: "handled",
      batchSize: "handled",
      singleBatch: "handled",
      noCursorTimeout: "handled",
      // Partial results only arise when a shard is down; there are no shards.
      allowPartialResults: "moot",
      // Sorts here have no memory limit, so spilling to disk changes nothing.
      allowDiskUse: "moot",
      // A hint to the storage cache about a collection scan.
      readOnce: "moot",
      max: "refused",
      min: "refused",
      returnKey: "refused",
      showRecordId: "refused",
      tailable: "refused",
      awaitData: "refused",
      oplogReplay: "refused",
      collation: "refused",
      let: "refused",
      term: "refused",
      allowSpeculativeMajorityRead: "refused",
      $_requestResumeToken: "refused",
      $_resumeAfter: "refused",
      $_startAt: "refused",
      maxTimeMSOpOnly: "refused",
    },
  },
  aggregate: {
    fields: {
      pipeline: "handled",
      cursor: "handled",
      hint: "handled",
      allowDiskUse: "moot",
      bypassDocumentValidation: "moot",
      explain: "refused",
      collation: "refused",
      let: "refused",
      needsMerge: "refused",
      fromMongos: "refused",
      fromRouter: "refused",
      exchange: "refused",
      isMapReduceCommand: "refused",
      runtimeConstants: "refused",
      passthroughToShard: "refused",
      $_requestReshardingResumeToken: "refused",
      $_generateV2ResumeTokens: "refused",
    },
    nested: { cursor: CURSOR },
  },
  count: {
    fields: {
      query: "handled",
      limit: "handled",
      skip: "handled",
      hint: "handled",
      // count.idl: "an unused field", taken and ignored by servers.
      fields: "moot",
      collation: "refused",
      mirrored: "refused",
      sampleId: "refused",
    },
  },
  distinct: {
    fields: {
      key: "handled",
      query: "handled",
      collation: "refused",
      mirrored: "refused",
      sampleId: "refused",
    },
  },
  getMore: {
    fields: {
      getMore: "handled",
      collection: "handled",
      batchSize: "handled",
      term: "refused",
      lastKnownCommittedOpTime: "refused",
    },
  },
  killCursors: { fields: { cursors: "handled" } },
};

function findAndModifyFields(): Fields {
  return {
    query: "handled",
    fields: "handled",
    sort: "handled",
    remove: "handled",
    update: "handled",
    new: "handled",
    upsert: "handled",
    arrayFilters: "handled",
    hint: "handled",
    bypassDocumentValidation: "moot",
    collation: "refused",
    let: "refused",
  };
}

function refuse(path: string, field: string): never {
  return fail(
    "NotImplemented",
    `${path}: '${field}' is not implemented by the embedded engine; leave it out, or run this against a MongoDB server`,
  );
}

function unknownField(path: string): never {
  return fail("Location40415", `BSON field '${path}' is an unknown field.`);
}

/** Checks one document's fields against a list (`skip` names fields checked elsewhere). */
function checkFields(d: BsonDocument, fields: Fields, path: string, generic: boolean, skip?: string): void {
  for (const field of Object.keys(d)) {
    if (field === skip) continue;
    const rule = Object.hasOwn(fields, field)
      ? fields[field]
      : generic && Object.hasOwn(GENERIC, field)
        ? GENERIC[field]
        : undefined;
    if (rule === undefined) unknownField(`${path}.${field}`);
    // A field sent as null is how a driver spells "not set"; only a value asks for something.
    if (rule === "refused" && d[field] !== null && d[field] !== undefined) refuse(`${path}.${field}`, field);
  }
}

/**
 * Refuses a command carrying any field the engine does not implement (238) or MongoDB does not
 * know (40415), before it runs. `name` is the command (its first field).
 */
export function checkCommandFields(name: string, command: BsonDocument): void {
  const spec = COMMAND_FIELDS[name];
  if (spec === undefined) {
    // A handler without an entry is a bug in the engine, not in the request.
    return fail("InternalError", `the embedded engine has no field list for '${name}'`);
  }
  if (spec.fields !== "any") checkFields(command, spec.fields, name, true, name);
  for (const [field, fields] of Object.entries(spec.nested ?? {})) {
    const sub = command[field];
    if (isPlainObject(sub)) checkFields(sub, fields, `${name}.${field}`, false);
  }
  if (spec.statements) {
    const list = command[spec.statements.field];
    if (Array.isArray(list)) {
      for (const st of list) {
        if (isPlainObject(st))
          checkFields(st, spec.statements.fields, `${name}.${spec.statements.field}`, false);
      }
    }
  }
  checkReadConcern(command.readConcern);
  checkWriteConcern(command.writeConcern);
  if (name === "createIndexes" && command.commitQuorum !== undefined) {
    fail("BadValue", "Standalones can't specify commitQuorum");
  }
}

/**
 * Read concern levels: one server holding everything in memory answers local, available,
 * majority and linearizable reads alike (as a standalone does). Snapshot reads and causal
 * consistency need cluster times the engine does not keep.
 */
function checkReadConcern(rc: unknown): void {
  if (rc === undefined || rc === null) return;
  if (!isPlainObject(rc)) {
    fail("TypeMismatch", `BSON field 'readConcern' is the wrong type, expected type 'object'`);
  }
  const r = rc as BsonDocument;
  checkFields(
    r,
    {
      level: "handled",
      afterClusterTime: "refused",
      atClusterTime: "refused",
      afterOpTime: "refused",
      provenance: "moot",
    },
    "readConcern",
    false,
  );
  const level = r.level;
  if (level === undefined || level === null) return;
  if (level === "snapshot") refuse("readConcern.level", "snapshot");
  if (typeof level !== "string" || !["local", "available", "majority", "linearizable"].includes(level)) {
    fail(
      "FailedToParse",
      `enumeration value '${typeof level === "string" ? level : bsonTypeName(level)}' for field 'readConcern.level' is not a valid value.`,
    );
  }
}

/**
 * Write concerns: a write the engine answers is applied and visible; w 0, 1 and "majority" mean
 * exactly that on one server. There is no journal (data lives in memory), so `j: true` is
 * refused as a server on an in-memory storage engine refuses it (`fsync: true` is accepted there:
 * it only waits for a journal flush); w > 1 and tag modes are refused as a standalone refuses them
 * (the server's write_concern.cpp).
 */
function checkWriteConcern(wc: unknown): void {
  if (wc === undefined || wc === null) return;
  if (!isPlainObject(wc)) {
    fail("TypeMismatch", `BSON field 'writeConcern' is the wrong type, expected type 'object'`);
  }
  const c = wc as BsonDocument;
  checkFields(
    c,
    {
      w: "handled",
      j: "handled",
      fsync: "moot",
      wtimeout: "moot",
      wtimeoutMS: "moot",
      provenance: "moot",
    },
    "writeConcern",
    false,
  );
  const on = (v: unknown) => v === true || (isNumeric(v) && toNumber(v) !== 0);
  if (on(c.j)) {
    fail("BadValue", "cannot use 'j' option when a host does not have journaling enabled");
  }
  const w = c.w;
  if (w === undefined || w === null || w === "majority") return;
  if (typeof w === "string") {
    fail("BadValue", `cannot use non-majority 'w' mode "${w}" when a host is not a member of a replica set`);
  }
  if (!isNumeric(w)) fail("FailedToParse", "w has to be a number or a string");
  if (toNumber(w) > 1) fail("BadValue", "cannot use 'w' > 1 when a host is not replicated");
}
