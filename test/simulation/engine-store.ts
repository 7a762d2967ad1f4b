/**
 * The simulation's database: chunkrelay's embedded engine in-process, reached through a small
 * stand-in for the driver's `Db`/`Collection` that builds the same commands the driver sends
 * (`find`, `update`, `findAndModify`, `aggregate`, …), passes them through BSON exactly as the wire
 * does, and raises the driver's own error classes. Why not the wire: a seed makes hundreds of
 * store calls and `npm test` runs thousands of seeds; a socket round trip per call would take
 * minutes, and a reply arriving on its own time would make a seed's history depend on the
 * machine. The same step functions run over a real connection in the integration tests (with
 * written-out interleavings in `test/integration/interleavings.test.ts`).
 *
 * Every call first awaits `gate(label)`: the simulation's scheduler decides there which actor
 * moves next, so each store call is one atomic, ordered step of the history.
 */
import { BSON, type Db, type Document, MongoBulkWriteError, MongoServerError } from "mongodb";
import { Engine } from "@chunkrelay/embedded-mongo";

const TO_ENGINE = { promoteValues: false, promoteBuffers: false } as const;

export type Gate = (label: string) => Promise<void>;

export class EngineDatabase {
  readonly engine = new Engine();
  /** Commands run, for the report. */
  commands = 0;

  constructor(readonly name: string) {}

  /** Runs one command the way the wire would: BSON in, BSON out, driver-side types. */
  run(command: Document): Document {
    this.commands++;
    const toEngine = BSON.deserialize(BSON.serialize(command), TO_ENGINE);
    const reply = this.engine.run(toEngine, this.name, 1);
    const bytes = Buffer.isBuffer(reply) ? reply : BSON.serialize(reply);
    const doc = BSON.deserialize(bytes);
    if (doc.ok !== 1) throw new MongoServerError(doc);
    return doc;
  }

  /** A `Db` whose collections gate every call. */
  db(gate: Gate): Db {
    return {
      databaseName: this.name,
      collection: (name: string) => new EngineCollection(this, name, gate),
    } as never;
  }
}

function writeResult(reply: Document) {
  const upserted = (reply.upserted as Array<{ _id: unknown }> | undefined) ?? [];
  return {
    acknowledged: true,
    matchedCount: (reply.n as number) - upserted.length,
    modifiedCount: (reply.nModified as number | undefined) ?? 0,
    upsertedCount: upserted.length,
    upsertedId: upserted[0]?._id ?? null,
  };
}

function throwWriteErrors(reply: Document, bulk: boolean): void {
  const errors = reply.writeErrors as Array<Document> | undefined;
  if (!errors || errors.length === 0) return;
  const first = errors[0] as Document;
  if (!bulk) throw new MongoServerError({ ...first, message: first.errmsg as string });
  throw new MongoBulkWriteError(
    { message: first.errmsg as string, code: first.code as number, writeErrors: errors } as never,
    { insertedCount: reply.n ?? 0 } as never,
  );
}

class EngineCursor {
  private options: Document = {};
  private loaded: Document[] | undefined;
  private position = 0;

  constructor(
    private readonly load: (options: Document) => Document[],
    private readonly gate: Gate,
    private readonly label: string,
    options: Document = {},
  ) {
    this.options = { ...options };
  }

  private with(option: string, value: unknown) {
    this.options[option] = value;
    return this;
  }
  sort(sort: Document) {
    return this.with("sort", sort);
  }
  limit(n: number) {
    return this.with("limit", n);
  }
  skip(n: number) {
    return this.with("skip", n);
  }
  project(p: Document) {
    return this.with("projection", p);
  }
  batchSize() {
    return this;
  }

  private async fill(): Promise<Document[]> {
    if (!this.loaded) {
      await this.gate(this.label);
      this.loaded = this.load(this.options);
    }
    return this.loaded;
  }
  async toArray(): Promise<Document[]> {
    const docs = await this.fill();
    const rest = docs.slice(this.position);
    this.position = docs.length;
    return rest;
  }
  async next(): Promise<Document | null> {
    const docs = await this.fill();
    return this.position < docs.length ? (docs[this.position++] as Document) : null;
  }
  async hasNext(): Promise<boolean> {
    const docs = await this.fill();
    return this.position < docs.length;
  }
  readBufferedDocuments(): Document[] {
    const docs = this.loaded ?? [];
    const rest = docs.slice(this.position);
    this.position = docs.length;
    return rest;
  }
  close(): Promise<void> {
    return Promise.resolve();
  }
  async *[Symbol.asyncIterator]() {
    for (;;) {
      const d = await this.next();
      if (d === null) return;
      yield d;
    }
  }
}

class EngineCollection {
  constructor(
    private readonly database: EngineDatabase,
    readonly collectionName: string,
    private readonly gate: Gate,
  ) {}

  private label(op: string) {
    return `${op} ${this.collectionName}`;
  }

  private findAll(filter: Document, options: Document): Document[] {
    const reply = this.database.run({
      find: this.collectionName,
      filter,
      ...(options.sort ? { sort: options.sort } : {}),
      ...(options.projection ? { projection: options.projection } : {}),
      ...(options.skip ? { skip: options.skip } : {}),
      ...(options.limit ? { limit: options.limit } : {}),
      batchSize: 1_000_000,
    });
    const cursor = reply.cursor as { firstBatch: Document[]; id: unknown };
    return cursor.firstBatch;
  }

  find(filter: Document = {}, options: Document = {}) {
    return new EngineCursor((o) => this.findAll(filter, o), this.gate, this.label("find"), options);
  }

  async findOne(filter: Document = {}, options: Document = {}): Promise<Document | null> {
    await this.gate(this.label("findOne"));
    return this.findAll(filter, { ...options, limit: 1 })[0] ?? null;
  }

  aggregate(pipeline: Document[]) {
    return new EngineCursor(
      () => {
        const reply = this.database.run({
          aggregate: this.collectionName,
          pipeline,
          cursor: { batchSize: 1_000_000 },
        });
        return (reply.cursor as { firstBatch: Document[] }).firstBatch;
      },
      this.gate,
      this.label("aggregate"),
    );
  }

  async countDocuments(filter: Document = {}, options: Document = {}): Promise<number> {
    await this.gate(this.label("count"));
    const pipeline: Document[] = [{ $match: filter }];
    if (options.skip) pipeline.push({ $skip: options.skip });
    if (options.limit) pipeline.push({ $limit: options.limit });
    pipeline.push({ $group: { _id: 1, n: { $sum: 1 } } });
    const reply = this.database.run({ aggregate: this.collectionName, pipeline, cursor: {} });
    const row = (reply.cursor as { firstBatch: Document[] }).firstBatch[0];
    return (row?.n as number | undefined) ?? 0;
  }

  async findOneAndUpdate(filter: Document, update: Document, options: Document = {}) {
    await this.gate(this.label("findOneAndUpdate"));
    const reply = this.database.run({
      findAndModify: this.collectionName,
      query: filter,
      update,
      new: options.returnDocument === "after",
      upsert: options.upsert ?? false,
      ...(options.sort ? { sort: options.sort } : {}),
      ...(options.projection ? { fields: options.projection } : {}),
    });
    return (reply.value as Document | null) ?? null;
  }

  private async update(filter: Document, update: Document, options: Document, multi: boolean) {
    await this.gate(this.label(multi ? "updateMany" : "updateOne"));
    const reply = this.database.run({
      update: this.collectionName,
      updates: [{ q: filter, u: update, upsert: options.upsert ?? false, multi }],
    });
    throwWriteErrors(reply, false);
    return writeResult(reply);
  }
  updateOne(filter: Document, update: Document, options: Document = {}) {
    return this.update(filter, update, options, false);
  }
  updateMany(filter: Document, update: Document, options: Document = {}) {
    return this.update(filter, update, options, true);
  }

  async replaceOne(filter: Document, replacement: Document, options: Document = {}) {
    await this.gate(this.label("replaceOne"));
    const reply = this.database.run({
      update: this.collectionName,
      updates: [{ q: filter, u: replacement, upsert: options.upsert ?? false, multi: false }],
    });
    throwWriteErrors(reply, false);
    return writeResult(reply);
  }

  async insertOne(doc: Document) {
    await this.gate(this.label("insertOne"));
    const withId = doc._id === undefined ? { _id: new BSON.ObjectId(), ...doc } : doc;
    const reply = this.database.run({ insert: this.collectionName, documents: [withId] });
    throwWriteErrors(reply, false);
    return { acknowledged: true, insertedId: withId._id as unknown };
  }

  async insertMany(docs: Document[], options: Document = {}) {
    await this.gate(this.label("insertMany"));
    const withIds = docs.map((d) => (d._id === undefined ? { _id: new BSON.ObjectId(), ...d } : d));
    const reply = this.database.run({
      insert: this.collectionName,
      documents: withIds,
      ordered: options.ordered ?? true,
    });
    throwWriteErrors(reply, true);
    return { acknowledged: true, insertedCount: reply.n as number };
  }

  private async remove(filter: Document, limit: number) {
    await this.gate(this.label(limit === 0 ? "deleteMany" : "deleteOne"));
    const reply = this.database.run({ delete: this.collectionName, deletes: [{ q: filter, limit }] });
    throwWriteErrors(reply, false);
    return { acknowledged: true, deletedCount: reply.n as number };
  }
  deleteMany(filter: Document = {}) {
    return this.remove(filter, 0);
  }
  deleteOne(filter: Document = {}) {
    return this.remove(filter, 1);
  }

  /** The update-only bulk writes chunkrelay makes (exception upserts), as one `update` command. */
  async bulkWrite(ops: Document[], options: Document = {}) {
    await this.gate(this.label("bulkWrite"));
    const updates = ops.map((op) => {
      const u = (op.updateOne ?? op.updateMany) as Document | undefined;
      if (!u) throw new Error(`the simulation's bulkWrite takes updates only, got ${Object.keys(op).join()}`);
      return { q: u.filter, u: u.update, upsert: u.upsert ?? false, multi: op.updateMany !== undefined };
    });
    const reply = this.database.run({
      update: this.collectionName,
      updates,
      ordered: options.ordered ?? true,
    });
    throwWriteErrors(reply, true);
    return writeResult(reply);
  }

  createIndexes(indexes: Document[]) {
    this.database.run({ createIndexes: this.collectionName, indexes });
    return Promise.resolve(indexes.map((i) => i.name as string));
  }

  /** Index set-up (`ensureIndexes` drops indexes of earlier versions): not a step of the history. */
  dropIndex(name: string): Promise<Document> {
    return new Promise((resolve) =>
      resolve(this.database.run({ dropIndexes: this.collectionName, index: name })),
    );
  }
}
