/**
 * MongoDB compatibility, the server errors the product relies on: the duplicate keys its claims
 * and idempotent inserts rest on (11000, alone, in unordered bulk writes and in upserts), and the
 * refusals of a config's query that it reports as bad input rather than retrying. Expectations
 * from the MongoDB 7.0 manual; where the embedded engine does not implement a feature by design,
 * a refusal naming it (NotImplemented, 238) is accepted in place of MongoDB's answer, as in
 * compat-strict.test.ts. Driven only through the official driver, so this file passes unchanged
 * against a real mongod (MONGODB_URI).
 *
 * Product code paths it stands for (src/…:function):
 * - store/errors.ts: isDuplicateKey (a MongoServerError of code 11000, or a MongoBulkWriteError
 *   whose every write error is 11000), serverRefusal.
 * - store/jobs.ts: insertJob (the lane claim: insertOne over the unique `claim` index).
 * - store/lanes.ts: takeFullJobLock, mirrorLaneClaim, moveWatermark, ensureBackfillLane (an
 *   upsert losing a race on _id). store/chunks.ts: insertPlannedChunks; store/records.ts:
 *   insertPlannedRecords (unordered insertMany, duplicates ignored).
 * - store/set-aside-records.ts: insertSetAsideRecords and store/store.ts: updateEachJob
 *   (unordered bulkWrite of updateOne, upserts among them).
 * - sources/mongo-source.ts: QUERY_REFUSED_CODES / asQueryRefusal (README, "Bad input": an
 *   unknown $type alias, an unknown operator inside $expr, $text or $near without their index,
 *   bad projections).
 */
import { MongoBulkWriteError, MongoServerError } from "mongodb";
import { describe, expect, it } from "vitest";
import { skipOnFerretDB, useTestDatabase } from "./support/db.js";

const t = useTestDatabase("compat_product_errors");

async function serverError(p: Promise<unknown>): Promise<MongoServerError> {
  try {
    await p;
  } catch (err) {
    if (err instanceof MongoServerError) return err;
    throw err;
  }
  throw new Error("expected a server error, but the command succeeded");
}

function writeErrorsOf(err: MongoBulkWriteError) {
  return Array.isArray(err.writeErrors) ? err.writeErrors : [err.writeErrors];
}

describe("duplicate keys (11000)", () => {
  it("refuses a second job claiming the same lane slot on the unique claim index", async () => {
    const c = t.db().collection("dup_claim");
    await c.createIndexes([{ key: { claimKey: 1 }, name: "claim", unique: true }]);
    await c.insertOne({ _id: "j1" as never, claimKey: "lane:orders:1" });
    const err = await serverError(c.insertOne({ _id: "j2" as never, claimKey: "lane:orders:1" }));
    expect(err.code).toBe(11000);
    // The job id taken is a duplicate too (on _id_).
    const sameId = await serverError(c.insertOne({ _id: "j1" as never, claimKey: "lane:orders:2" }));
    expect(sameId.code).toBe(11000);
    expect(await c.countDocuments()).toBe(1);
  });

  it("names the claim index, its key pattern and the key value in the duplicate key error", async (ctx) => {
    skipOnFerretDB(
      ctx,
      "its E11000 message names neither the index nor the key, and carries no keyPattern/keyValue",
    );
    const c = t.db().collection("dup_claim_detail");
    await c.createIndexes([{ key: { claimKey: 1 }, name: "claim", unique: true }]);
    await c.insertOne({ _id: "j1" as never, claimKey: "lane:orders:1" });
    const err = await serverError(c.insertOne({ _id: "j2" as never, claimKey: "lane:orders:1" }));
    expect(err.message).toBe(
      `E11000 duplicate key error collection: ${t.db().databaseName}.dup_claim_detail index: claim dup key: { claimKey: "lane:orders:1" }`,
    );
    expect(err.keyPattern).toEqual({ claimKey: 1 });
    expect(err.keyValue).toEqual({ claimKey: "lane:orders:1" });
  });

  it("names both fields of a compound unique index in keyPattern and keyValue", async (ctx) => {
    skipOnFerretDB(ctx, "its duplicate key errors carry no keyPattern/keyValue");
    const c = t.db().collection("dup_compound_detail");
    await c.createIndexes([{ key: { jobId: 1, chunk: 1 }, name: "job_chunk", unique: true }]);
    await c.insertOne({ jobId: "j", chunk: 7 });
    const err = await serverError(c.insertOne({ jobId: "j", chunk: 7 }));
    expect(err.code).toBe(11000);
    expect(err.keyPattern).toEqual({ jobId: 1, chunk: 1 });
    expect(err.keyValue).toEqual({ jobId: "j", chunk: 7 });
  });

  it("refuses an upsert whose filter misses an existing _id with a duplicate key, writing nothing", async () => {
    const c = t.db().collection("dup_upsert");
    await c.insertOne({ _id: "orders" as never, activeJob: "j1", claimedSeq: 5 });
    const lock = await serverError(
      c.updateOne(
        {
          _id: "orders" as never,
          $or: [{ activeJob: { $exists: false } }, { activeJob: null }, { activeJob: "j2" }],
        },
        { $set: { activeJob: "j2" } },
        { upsert: true },
      ),
    );
    expect(lock.code).toBe(11000);
    const mirror = await serverError(
      c.updateOne(
        { _id: "orders" as never, $or: [{ claimedSeq: { $lt: 3 } }, { claimedSeq: { $exists: false } }] },
        { $set: { claimedSeq: 3 } },
        { upsert: true },
      ),
    );
    expect(mirror.code).toBe(11000);
    const watermark = await serverError(
      c.updateOne(
        { _id: "orders" as never, completedSeq: 1 },
        { $set: { completedSeq: 2 } },
        { upsert: true },
      ),
    );
    expect(watermark.code).toBe(11000);
    expect(await c.find().toArray()).toEqual([{ _id: "orders", activeJob: "j1", claimedSeq: 5 }]);
  });

  it("continues an unordered insertMany past duplicates on a compound unique index: every write error 11000", async () => {
    const c = t.db().collection("dup_planned");
    await c.createIndexes([{ key: { jobId: 1, chunk: 1 }, name: "job_chunk", unique: true }]);
    await c.insertMany([0, 1, 2].map((chunk) => ({ jobId: "j", chunk })));
    const err = await c
      .insertMany(
        [0, 1, 2, 3, 4].map((chunk) => ({ jobId: "j", chunk, replanned: true })),
        { ordered: false },
      )
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(MongoBulkWriteError);
    const bulk = err as MongoBulkWriteError;
    expect(writeErrorsOf(bulk).map((e) => [e.index, e.code])).toEqual([
      [0, 11000],
      [1, 11000],
      [2, 11000],
    ]);
    expect(bulk.result.insertedCount).toBe(2);
    expect(await c.countDocuments({ replanned: true })).toBe(2);
    expect(await c.countDocuments()).toBe(5);
  });

  it("continues an unordered bulkWrite of upserts past one that collides on a unique index", async (ctx) => {
    skipOnFerretDB(
      ctx,
      "it reports the duplicate key of a bulk upsert with write error index 0 whatever its position, and only one write error for two collisions",
    );
    const c = t.db().collection("dup_bulk_upsert");
    await c.createIndexes([{ key: { claimKey: 1 }, name: "claim", unique: true }]);
    await c.insertOne({ _id: "x" as never, claimKey: "k0" });
    const op = (id: string, claimKey: string) => ({
      updateOne: { filter: { _id: id as never }, update: { $setOnInsert: { claimKey } }, upsert: true },
    });
    const err = await c
      .bulkWrite([op("a", "k1"), op("b", "k1"), op("c", "k3"), op("x", "k9"), op("d", "k0")], {
        ordered: false,
      })
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(MongoBulkWriteError);
    const bulk = err as MongoBulkWriteError;
    expect(writeErrorsOf(bulk).map((e) => [e.index, e.code])).toEqual([
      [1, 11000],
      [4, 11000],
    ]);
    expect([bulk.result.upsertedCount, bulk.result.matchedCount, bulk.result.modifiedCount]).toEqual([
      2, 1, 0,
    ]);
    expect(await c.find().sort({ _id: 1 }).toArray()).toEqual([
      { _id: "a", claimKey: "k1" },
      { _id: "c", claimKey: "k3" },
      { _id: "x", claimKey: "k0" },
    ]);
  });

  it("stops an ordered bulkWrite of upserts at the first collision", async (ctx) => {
    skipOnFerretDB(
      ctx,
      "it reports the duplicate key of a bulk upsert with write error index 0, not the index of the colliding operation (1)",
    );
    const c = t.db().collection("dup_bulk_ordered");
    await c.createIndexes([{ key: { claimKey: 1 }, name: "claim", unique: true }]);
    const op = (id: string, claimKey: string) => ({
      updateOne: { filter: { _id: id as never }, update: { $setOnInsert: { claimKey } }, upsert: true },
    });
    const err = await c.bulkWrite([op("a", "k1"), op("b", "k1"), op("c", "k3")]).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(MongoBulkWriteError);
    const bulk = err as MongoBulkWriteError;
    expect(writeErrorsOf(bulk).map((e) => [e.index, e.code])).toEqual([[1, 11000]]);
    expect(bulk.result.upsertedCount).toBe(1);
    expect(await c.countDocuments()).toBe(1);
  });
});

describe("refusals of a config's query (reported as bad input)", () => {
  it("refuses an unknown $type alias (BadValue, 2)", async () => {
    const c = t.db().collection("refuse_type");
    await c.insertOne({ a: 1 });
    const err = await serverError(c.find({ a: { $type: "nonsense" } }).toArray());
    expect(err.code).toBe(2);
    expect(err.codeName).toBe("BadValue");
  });

  it("refuses an unknown top-level and an unknown field operator (BadValue, 2)", async () => {
    const c = t.db().collection("refuse_operator");
    await c.insertOne({ a: 1 });
    const top = await serverError(c.find({ $foo: [{ a: 1 }] }).toArray());
    expect(top.code).toBe(2);
    expect(top.message).toContain("unknown top level operator: $foo");
    const field = await serverError(c.find({ a: { $foo: 1 } }).toArray());
    expect(field.code).toBe(2);
    expect(field.message).toContain("unknown operator: $foo");
    const counted = await serverError(c.countDocuments({ a: { $foo: 1 } }));
    expect(counted.code).toBe(2);
  });

  it("refuses an unknown operator inside $expr (InvalidPipelineOperator, 168)", async () => {
    const c = t.db().collection("refuse_expr");
    await c.insertOne({ a: 1 });
    const err = await serverError(c.find({ $expr: { $frobnicate: ["$a", 1] } }).toArray());
    expect(err.code).toBe(168);
    expect(err.codeName).toBe("InvalidPipelineOperator");
    expect(err.message).toContain("Unrecognized expression '$frobnicate'");
  });

  it("refuses a projection mixing inclusion and exclusion (31254, 31253)", async () => {
    const c = t.db().collection("refuse_projection");
    await c.insertOne({ a: 1, b: 2, c: 3 });
    const incl = await serverError(c.find({}, { projection: { a: 1, b: 0 } }).toArray());
    expect(incl.code).toBe(31254);
    expect(incl.message).toContain("Cannot do exclusion on field b in inclusion projection");
    const excl = await serverError(c.find({}, { projection: { a: 0, b: 1 } }).toArray());
    expect(excl.code).toBe(31253);
    expect(excl.message).toContain("Cannot do inclusion on field b in exclusion projection");
  });

  it("refuses $text without a text index (IndexNotFound, 27), or refuses it by name as not implemented", async (ctx) => {
    skipOnFerretDB(ctx, "it refuses $text without a text index with BadValue (2), not IndexNotFound (27)");
    const c = t.db().collection("refuse_text");
    await c.insertOne({ a: "hello world" });
    const err = await serverError(c.find({ $text: { $search: "hello" } }).toArray());
    if (err.code === 238) expect(err.message).toContain("$text");
    else {
      expect(err.code).toBe(27);
      expect(err.codeName).toBe("IndexNotFound");
      expect(err.message).toContain("text index required for $text query");
    }
  });

  it("refuses $near without a geospatial index (NoQueryExecutionPlans, 291), or refuses it by name", async (ctx) => {
    skipOnFerretDB(
      ctx,
      "it refuses $near without a geospatial index with BadValue (2), not NoQueryExecutionPlans (291)",
    );
    const c = t.db().collection("refuse_near");
    await c.insertOne({ loc: [0, 0] });
    const err = await serverError(c.find({ loc: { $near: [0, 0] } }).toArray());
    if (err.code === 238) expect(err.message).toContain("$near");
    else {
      expect(err.code).toBe(291);
      expect(err.codeName).toBe("NoQueryExecutionPlans");
      expect(err.message).toContain("unable to find index for $geoNear query");
    }
  });

  it("runs the operators the config check lets through ($alwaysTrue, $sampleRate 1, $within), or refuses each by name as not implemented", async (ctx) => {
    skipOnFerretDB(ctx, "it refuses $alwaysTrue with BadValue (2) instead of running it");
    const c = t.db().collection("pass_through_operators");
    await c.insertMany([
      { _id: 1 as never, loc: [0, 0] },
      { _id: 2 as never, loc: [5, 5] },
    ]);
    const cases: Array<[string, object, number[]]> = [
      ["$alwaysTrue", { $alwaysTrue: 1 }, [1, 2]],
      ["$sampleRate", { $sampleRate: 1 }, [1, 2]],
      [
        "$within",
        {
          loc: {
            $within: {
              $box: [
                [-1, -1],
                [1, 1],
              ],
            },
          },
        },
        [1],
      ],
    ];
    for (const [name, filter, ids] of cases) {
      try {
        const docs = await c.find(filter).sort({ _id: 1 }).toArray();
        expect([name, docs.map((d) => d._id)]).toEqual([name, ids]);
      } catch (err) {
        if (!(err instanceof MongoServerError)) throw err;
        expect([name, err.code]).toEqual([name, 238]);
        expect(err.message).toContain(name);
      }
    }
  });
});
