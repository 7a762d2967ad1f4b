/**
 * MongoDB compatibility, strictness by construction: every command field, operator and stage is
 * either done as the MongoDB 7.0 manual says or refused — NotImplemented (238) naming it where a
 * server would do the work, the server's own error where a server refuses too. Each test accepts
 * exactly MongoDB's answer or that refusal, so it passes unchanged against a real mongod
 * (MONGODB_URI) and against the engine (its table: src/command-fields.ts, src/operator-support.ts).
 */
import { calculateObjectSize } from "bson";
import { type Collection, Long, MongoServerError, ObjectId } from "mongodb";
import { describe, expect, it } from "vitest";
import { skipOnFerretDB, useTestDatabase } from "./support/db.js";

/** Test documents with numeric ids. */
type Doc = { _id: number; [field: string]: unknown };

const t = useTestDatabase("compat_strict_fields");

async function outcome<T>(p: Promise<T>): Promise<{ value: T } | { error: MongoServerError }> {
  try {
    return { value: await p };
  } catch (err) {
    if (err instanceof MongoServerError) return { error: err };
    throw err;
  }
}

async function refusal(p: Promise<unknown>): Promise<MongoServerError> {
  const r = await outcome(p);
  if (!("error" in r)) throw new Error(`expected a server error, got ${JSON.stringify(r.value)}`);
  return r.error;
}

/** The refusal of something the engine does not implement: NotImplemented (238), naming it. */
function expectNotImplemented(error: MongoServerError, name: string): void {
  expect(error.code).toBe(238);
  expect(error.message).toContain(name);
}

async function seeded(name: string): Promise<Collection<Doc>> {
  const c = t.db().collection<Doc>(name);
  await c.insertMany([
    { _id: 1, a: 1, s: "x" },
    { _id: 2, a: 2, s: "y", b: true },
    { _id: 3, a: 3, s: "z" },
  ]);
  return c;
}

/** Whether the server is a replica set member (write concerns and commitQuorum differ). */
async function replicated(): Promise<boolean> {
  const hello = await t.db().admin().command({ hello: 1 });
  return typeof hello.setName === "string";
}

describe("fields no MongoDB command has: 40415, as a 7.0 server's parser answers", () => {
  it("on find, findAndModify, aggregate's cursor, and update and delete statements", async (ctx) => {
    skipOnFerretDB(ctx, "it refuses an unknown field with FailedToParse (9), not the 7.0 parser's 40415");
    const db = t.db();
    await seeded("fields_unknown");
    const cases: [Record<string, unknown>, string][] = [
      [{ find: "fields_unknown", filter: {}, bogusField: 1 }, "find.bogusField"],
      [
        { findAndModify: "fields_unknown", query: {}, update: { $set: { z: 1 } }, bogus: 1 },
        "findAndModify.bogus",
      ],
      [
        { aggregate: "fields_unknown", pipeline: [], cursor: { batchSize: 1, bogus: 1 } },
        "aggregate.cursor.bogus",
      ],
      [
        { update: "fields_unknown", updates: [{ q: {}, u: { $set: { z: 1 } }, bogus: 1 }] },
        "update.updates.bogus",
      ],
      [{ delete: "fields_unknown", deletes: [{ q: {}, limit: 0, bogus: 1 }] }, "delete.deletes.bogus"],
      [{ count: "fields_unknown", query: {}, bogus: 1 }, "count.bogus"],
      [{ insert: "fields_unknown", documents: [{ _id: 9 }], bogus: 1 }, "insert.bogus"],
    ];
    for (const [command, field] of cases) {
      const error = await refusal(db.command(command));
      expect(error.code, field).toBe(40415);
      expect(error.message).toBe(`BSON field '${field}' is an unknown field.`);
    }
    // Nothing ran: no document was changed, inserted or deleted.
    expect(await db.collection<Doc>("fields_unknown").find().sort({ _id: 1 }).toArray()).toEqual([
      { _id: 1, a: 1, s: "x" },
      { _id: 2, a: 2, s: "y", b: true },
      { _id: 3, a: 3, s: "z" },
    ]);
  });
});

describe("cursor ids are longs", () => {
  it("refuses an int cursor id in getMore and killCursors (TypeMismatch, 14)", async () => {
    const db = t.db();
    await seeded("cursor_int");
    const first = await db.command({ find: "cursor_int", filter: {}, batchSize: 1 }, { promoteLongs: false });
    const id = (first.cursor as { id: Long }).id;
    expect(id.isZero()).toBe(false);
    expect((await refusal(db.command({ getMore: 7, collection: "cursor_int" }))).code).toBe(14);
    expect((await refusal(db.command({ killCursors: "cursor_int", cursors: [7] }))).code).toBe(14);
    // The cursor is still there for its long id.
    const more = await db.command({ getMore: id, collection: "cursor_int", batchSize: 5 });
    expect((more.cursor as { nextBatch: Doc[] }).nextBatch.map((d) => d._id)).toEqual([2, 3]);
  });

  it("keeps a noCursorTimeout cursor and serves it to the end", async (ctx) => {
    skipOnFerretDB(
      ctx,
      "it refuses noCursorTimeout: true (support for the field with a non-default value is not implemented yet)",
    );
    const c = await seeded("cursor_no_timeout");
    const ids = [];
    for await (const d of c.find({}, { noCursorTimeout: true, batchSize: 1 }).sort({ _id: 1 }))
      ids.push(d._id);
    expect(ids).toEqual([1, 2, 3]);
  });
});

describe("fields MongoDB has and the engine does not implement: the manual's answer, or 238", () => {
  it("find: min with a hint, returnKey, showRecordId, let", async (ctx) => {
    skipOnFerretDB(ctx, "it ignores `min`: a find with min {a: 2} and its hint returns every document");
    const c = await seeded("fields_find");
    await c.createIndex({ a: 1 }, { name: "a_1" });
    const min = await outcome(
      c.find({}, { min: { a: 2 }, hint: { a: 1 }, projection: { _id: 1 } }).toArray(),
    );
    if ("error" in min) expectNotImplemented(min.error, "min");
    else expect(min.value).toEqual([{ _id: 2 }, { _id: 3 }]);

    const key = await outcome(c.find({ a: 2 }, { returnKey: true, hint: { a: 1 } }).toArray());
    if ("error" in key) expectNotImplemented(key.error, "returnKey");
    else expect(key.value).toEqual([{ a: 2 }]);

    const rid = await outcome(c.find({ a: 2 }, { showRecordId: true }).toArray());
    if ("error" in rid) expectNotImplemented(rid.error, "showRecordId");
    else expect(rid.value[0]).toHaveProperty("$recordId");

    const withLet = await outcome(
      c.find({ $expr: { $eq: ["$a", "$$want"] } }, { let: { want: 3 } }).toArray(),
    );
    if ("error" in withLet) expectNotImplemented(withLet.error, "let");
    else expect(withLet.value.map((d) => d._id)).toEqual([3]);
  });

  it("aggregate with let, and explain", async () => {
    const c = await seeded("fields_aggregate");
    const withLet = await outcome(
      c
        .aggregate([{ $match: { $expr: { $gt: ["$a", "$$floor"] } } }, { $project: { _id: 1 } }], {
          let: { floor: 1 },
        })
        .toArray(),
    );
    if ("error" in withLet) expectNotImplemented(withLet.error, "let");
    else expect(withLet.value).toEqual([{ _id: 2 }, { _id: 3 }]);

    const explained = await outcome(c.aggregate([{ $match: { a: 1 } }]).explain());
    if ("error" in explained) expectNotImplemented(explained.error, "explain");
    else expect(explained.value).toHaveProperty("ok", 1);
  });

  it("update and delete with let: the manual's result, or refused and nothing changed", async () => {
    const c = await seeded("fields_write_let");
    const upd = await outcome(
      c.updateMany({ $expr: { $eq: ["$a", "$$which"] } }, { $set: { hit: true } }, { let: { which: 2 } }),
    );
    if ("error" in upd) expectNotImplemented(upd.error, "let");
    else expect(upd.value.modifiedCount).toBe(1);
    const del = await outcome(c.deleteMany({ $expr: { $eq: ["$a", "$$which"] } }, { let: { which: 3 } }));
    if ("error" in del) {
      expectNotImplemented(del.error, "let");
      expect(await c.countDocuments()).toBe(3);
    } else expect(del.value.deletedCount).toBe(1);
  });

  it("create capped: a capped collection, or refused naming capped and nothing created", async () => {
    const db = t.db();
    const r = await outcome(db.createCollection("fields_capped", { capped: true, size: 4096 }));
    if ("error" in r) {
      expectNotImplemented(r.error, "capped");
      expect(await db.listCollections({ name: "fields_capped" }).toArray()).toEqual([]);
    } else {
      const [info] = await db.listCollections({ name: "fields_capped" }).toArray();
      expect(info).toMatchObject({ options: { capped: true } });
    }
  });
});

describe("write and read concerns on one server", () => {
  it("takes w 1 and majority; refuses w > 1 and tag modes when not replicated (BadValue, 2)", async (ctx) => {
    skipOnFerretDB(ctx, "it ignores write concerns: w 2 on a standalone is accepted");
    const c = t.db().collection<Doc>("concern_w");
    await c.insertOne({ _id: 1 }, { writeConcern: { w: 1 } });
    await c.insertOne({ _id: 2 }, { writeConcern: { w: "majority", wtimeoutMS: 1000 } });
    if (!(await replicated())) {
      const two = await refusal(c.insertOne({ _id: 3 }, { writeConcern: { w: 2 } }));
      expect(two.code).toBe(2);
      expect(two.message).toContain("'w' > 1");
      const tag = await refusal(c.insertOne({ _id: 4 }, { writeConcern: { w: "dc" as never } }));
      expect(tag.code).toBe(2);
      expect(tag.message).toContain("non-majority 'w' mode");
      expect(await c.countDocuments()).toBe(2);
    }
  });

  it("j true: journaled, or refused where nothing is journaled (BadValue, 2)", async () => {
    const c = t.db().collection<Doc>("concern_j");
    const r = await outcome(c.insertOne({ _id: 1 }, { writeConcern: { j: true } }));
    if ("error" in r) {
      expect(r.error.code).toBe(2);
      expect(r.error.message).toBe("cannot use 'j' option when a host does not have journaling enabled");
      expect(await c.countDocuments()).toBe(0);
    } else expect(await c.countDocuments()).toBe(1);
  });

  it("reads at local and majority alike; refuses an unknown level (FailedToParse, 9)", async (ctx) => {
    skipOnFerretDB(ctx, "it accepts any read concern level (an unknown one too)");
    const db = t.db();
    await seeded("concern_read");
    for (const level of ["local", "majority", "available"]) {
      const r = await db.command({ find: "concern_read", filter: {}, readConcern: { level } });
      expect((r.cursor as { firstBatch: Doc[] }).firstBatch).toHaveLength(3);
    }
    const bad = await refusal(
      db.command({ find: "concern_read", filter: {}, readConcern: { level: "nope" } }),
    );
    expect(bad.code).toBe(9);
  });

  it("refuses commitQuorum on a standalone (BadValue, 2)", async (ctx) => {
    skipOnFerretDB(ctx, "it accepts commitQuorum on a standalone and builds the index");
    if (await replicated()) return;
    const c = await seeded("concern_commit_quorum");
    const r = await refusal(c.createIndex({ a: 1 }, { commitQuorum: 1 }));
    expect(r.code).toBe(2);
    expect(r.message).toBe("Standalones can't specify commitQuorum");
    expect((await c.listIndexes().toArray()).map((ix) => ix.name)).toEqual(["_id_"]);
  });
});

describe("operators and stages", () => {
  it("query operators: $where, $jsonSchema, $geoWithin — the manual's matches, or 238 naming each", async (ctx) => {
    skipOnFerretDB(ctx, "it refuses $where with BadValue (2), not by name with NotImplemented (238)");
    const c = await seeded("ops_query");
    await c.updateOne({ _id: 1 }, { $set: { loc: [0, 0] } });
    await c.updateOne({ _id: 2 }, { $set: { loc: [5, 5] } });
    const cases: [Record<string, unknown>, string, number[]][] = [
      [{ $where: "this.a > 1" }, "$where", [2, 3]],
      [{ $jsonSchema: { required: ["b"] } }, "$jsonSchema", [2]],
      [{ loc: { $geoWithin: { $center: [[0, 0], 1] } } }, "$geoWithin", [1]],
    ];
    for (const [filter, name, ids] of cases) {
      const r = await outcome(c.find(filter).sort({ _id: 1 }).toArray());
      if ("error" in r) expectNotImplemented(r.error, name);
      else expect(r.value.map((d) => d._id)).toEqual(ids);
    }
  });

  it("ignores a $comment in a filter, as servers do", async () => {
    const c = await seeded("ops_comment");
    expect((await c.find({ $comment: "why", a: { $gte: 2 } }).toArray()).map((d) => d._id)).toEqual([2, 3]);
    expect(await c.countDocuments({ $comment: "why" })).toBe(3);
  });

  it("expressions: $bsonSize, $toObjectId, $indexOfCP — the manual's values, or 238 naming each", async () => {
    const c = await seeded("ops_expr");
    const hex = "5ab9cbfa31c2ab715d42129e";
    const cases: [unknown, string, unknown][] = [
      [{ $bsonSize: "$$ROOT" }, "$bsonSize", calculateObjectSize({ _id: 1, a: 1, s: "x" })],
      [{ $toObjectId: hex }, "$toObjectId", new ObjectId(hex)],
      [{ $indexOfCP: ["cafétéria", "é"] }, "$indexOfCP", 3],
    ];
    for (const [expr, name, value] of cases) {
      const r = await outcome(
        c.aggregate([{ $match: { _id: 1 } }, { $project: { _id: 0, v: expr } }]).toArray(),
      );
      if ("error" in r) expectNotImplemented(r.error, name);
      else expect(r.value).toEqual([{ v: value }]);
    }
  });

  it("stages: $collStats — the collection's count, or 238 naming it", async () => {
    const c = await seeded("ops_collstats");
    const r = await outcome(c.aggregate([{ $collStats: { count: {} } }]).toArray());
    if ("error" in r) expectNotImplemented(r.error, "$collStats");
    else expect(r.value[0]).toMatchObject({ count: 3 });
  });

  it("names MongoDB does not have: 40324 for a stage, 168 for an expression, 2 for a query operator", async (ctx) => {
    skipOnFerretDB(ctx, "it answers an unknown stage with code 40234, not the manual's 40324");
    const c = await seeded("ops_unknown");
    const stage = await refusal(c.aggregate([{ $bogusStage: {} }]).toArray());
    expect(stage.code).toBe(40324);
    expect(stage.message).toContain("$bogusStage");
    const expr = await refusal(c.aggregate([{ $project: { v: { $bogusExpr: 1 } } }]).toArray());
    expect(expr.code).toBe(168);
    expect(expr.message).toContain("$bogusExpr");
    const query = await refusal(c.find({ a: { $bogusOp: 1 } }).toArray());
    expect(query.code).toBe(2);
    expect(query.message).toContain("unknown operator: $bogusOp");
  });

  it("the positional $ update: the first matched element set, or 238 and nothing changed", async (ctx) => {
    skipOnFerretDB(
      ctx,
      "it refuses the positional $ update with PathNotViable (28), where the manual sets the matched element",
    );
    const c = t.db().collection<Doc>("ops_positional");
    await c.insertOne({ _id: 1, grades: [80, 85, 90] });
    const r = await outcome(c.updateOne({ _id: 1, grades: 85 }, { $set: { "grades.$": 86 } }));
    const after = await c.findOne({ _id: 1 });
    if ("error" in r) {
      expectNotImplemented(r.error, "positional $");
      expect(after).toEqual({ _id: 1, grades: [80, 85, 90] });
    } else expect(after).toEqual({ _id: 1, grades: [80, 86, 90] });
  });
});
