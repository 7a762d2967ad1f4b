/**
 * MongoDB compatibility, strictness: what the engine does not implement is refused with a
 * server's error naming the option — never answered as if the work were done. Each test accepts
 * exactly MongoDB's answer or that refusal, so it passes unchanged against a real mongod
 * (MONGODB_URI) and against the engine. Expectations from the MongoDB 7.0 manual.
 */
import { MongoServerError } from "mongodb";

/** Test documents with numeric ids. */
type Doc = { _id: number; [field: string]: unknown };
import { describe, expect, it } from "vitest";
import { skipOnFerretDB, useTestDatabase } from "./support/db.js";

const t = useTestDatabase("compat_strict");

async function outcome<T>(p: Promise<T>): Promise<{ value: T } | { error: MongoServerError }> {
  try {
    return { value: await p };
  } catch (err) {
    if (err instanceof MongoServerError) return { error: err };
    throw err;
  }
}

/** The refusal of an option the engine does not implement: NotImplemented (238), naming it. */
function expectNotImplemented(error: MongoServerError, option: string): void {
  expect(error.code).toBe(238);
  expect(error.message).toContain(option);
}

describe("options the engine does not implement", () => {
  it("a find with a case-insensitive collation finds 'ping' for 'PING', or is refused naming collation", async () => {
    const c = t.db().collection<Doc>("strict_collation");
    await c.insertMany([
      { _id: 1, w: "ping" },
      { _id: 2, w: "pong" },
    ]);
    const r = await outcome(c.find({ w: "PING" }, { collation: { locale: "en", strength: 2 } }).toArray());
    if ("error" in r) expectNotImplemented(r.error, "collation");
    else expect(r.value).toEqual([{ _id: 1, w: "ping" }]);
  });

  it("a delete with a collation deletes the 4 matches, or is refused naming collation", async () => {
    const c = t.db().collection("strict_collation_delete");
    await c.insertMany([{ w: "a" }, { w: "A" }, { w: "a" }, { w: "A" }, { w: "b" }]);
    const r = await outcome(c.deleteMany({ w: "a" }, { collation: { locale: "en", strength: 2 } }));
    if ("error" in r) {
      expectNotImplemented(r.error, "collation");
      expect(await c.countDocuments()).toBe(5);
    } else expect(r.value.deletedCount).toBe(4);
  });

  it("$merge writes its target and returns no documents, or is refused naming $merge", async () => {
    const db = t.db();
    await db.collection<Doc>("strict_merge_src").insertMany([
      { _id: 1, n: 1 },
      { _id: 2, n: 2 },
    ]);
    const r = await outcome(
      db
        .collection<Doc>("strict_merge_src")
        .aggregate([{ $match: {} }, { $merge: { into: "strict_merge_dst" } }])
        .toArray(),
    );
    if ("error" in r) {
      expectNotImplemented(r.error, "$merge");
      expect(await db.collection<Doc>("strict_merge_dst").countDocuments()).toBe(0);
    } else {
      expect(r.value).toEqual([]);
      expect(await db.collection<Doc>("strict_merge_dst").find().sort({ _id: 1 }).toArray()).toEqual([
        { _id: 1, n: 1 },
        { _id: 2, n: 2 },
      ]);
    }
  });
});

describe("requests a server refuses", () => {
  it("refuses a hint naming an index that does not exist (BadValue), and takes one that does", async (ctx) => {
    skipOnFerretDB(ctx, "it ignores `hint`: a hint naming no index is accepted");
    const c = t.db().collection("strict_hint");
    await c.insertMany([{ a: 1 }, { a: 2 }]);
    await c.createIndex({ a: 1 }, { name: "a_1" });
    for (const hint of ["no_such_index", { b: 1 }] as const) {
      const r = await outcome(c.find({ a: 1 }, { hint }).toArray());
      expect("error" in r && r.error.code).toBe(2);
      if ("error" in r)
        expect(r.error.message).toContain("hint provided does not correspond to an existing index");
    }
    expect(await c.find({ a: 2 }, { hint: "a_1", projection: { _id: 0 } }).toArray()).toEqual([{ a: 2 }]);
    expect(await c.find({ a: 2 }, { hint: { a: 1 }, projection: { _id: 0 } }).toArray()).toEqual([{ a: 2 }]);
    expect(await c.countDocuments({}, { hint: { $natural: 1 } })).toBe(2);
    const del = await outcome(c.deleteOne({ a: 1 }, { hint: "no_such_index" }));
    expect("error" in del).toBe(true);
    expect(await c.countDocuments()).toBe(2);
  });

  it("refuses a $-prefixed field inside _id (DollarPrefixedFieldName, 52)", async (ctx) => {
    skipOnFerretDB(
      ctx,
      "it refuses a $-prefixed field in _id with BadValue (2), not DollarPrefixedFieldName (52)",
    );
    const c = t.db().collection("strict_dollar_id");
    const r = await outcome(c.insertOne({ _id: { $a: 1 } as never }));
    expect("error" in r && r.error.code).toBe(52);
    expect(await c.countDocuments()).toBe(0);
  });

  it("refuses sort on an update statement before 8.0 (unknown field, 40415)", async (ctx) => {
    skipOnFerretDB(
      ctx,
      "it refuses sort on an update statement with FailedToParse (9), not the 7.0 server's 40415",
    );
    const db = t.db();
    const info = await db.admin().command({ buildInfo: 1 });
    const major = Number(String(info.version).split(".")[0]);
    await db.collection<Doc>("strict_update_sort").insertMany([
      { _id: 1, a: 2 },
      { _id: 2, a: 1 },
    ]);
    const r = await outcome(
      db.command({
        update: "strict_update_sort",
        updates: [{ q: {}, u: { $set: { hit: true } }, sort: { a: 1 } }],
      }),
    );
    if (major >= 8) {
      expect("value" in r).toBe(true);
      expect(await db.collection<Doc>("strict_update_sort").findOne({ hit: true })).toMatchObject({
        _id: 2,
      });
    } else {
      expect("error" in r && r.error.code).toBe(40415);
      if ("error" in r) expect(r.error.message).toContain("update.updates.sort");
    }
  });
});

describe("pipeline updates", () => {
  it("keeps the original _id when $replaceRoot drops it", async (ctx) => {
    skipOnFerretDB(ctx, "pipeline updates are not implemented");
    const c = t.db().collection<Doc>("strict_replace_root");
    await c.insertOne({ _id: 7, inner: { a: 1 } });
    await c.updateOne({ _id: 7 }, [{ $replaceRoot: { newRoot: "$inner" } }]);
    expect(await c.findOne({ _id: 7 })).toEqual({ _id: 7, a: 1 });
  });
});
