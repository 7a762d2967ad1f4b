/**
 * The engine's index planner must never change a query's answer, only its cost. Random filters
 * and sorts run on two collections with the same documents — one with secondary indexes, one
 * without — and must return the same documents in the same order; indexed lookups must examine
 * only a handful of documents.
 */
import { MongoClient } from "mongodb";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type EmbeddedMongo, startEmbeddedMongo } from "../src/index.js";
import { seededRandom } from "./support/random.js";

let server: EmbeddedMongo;
let client: MongoClient;

beforeAll(async () => {
  server = await startEmbeddedMongo();
  client = new MongoClient(server.uri);
  await client.connect();
});

afterAll(async () => {
  await client.close();
  await server.stop();
});

describe("index planner", () => {
  it("returns the same results with and without indexes", async () => {
    const db = client.db("planner");
    const rand = seededRandom(42);
    const pick = <T>(xs: T[]) => xs[Math.floor(rand() * xs.length)] as T;
    const docs = Array.from({ length: 2000 }, (_, i) => {
      const d: Record<string, unknown> = {
        _id: i,
        job: pick(["j1", "j2", "j3"]),
        chunk: Math.floor(rand() * 40),
      };
      if (rand() < 0.9) d.status = pick(["pending", "sent", "processed", "failed"]);
      if (rand() < 0.5) d.w = Math.floor(rand() * 100) / (rand() < 0.5 ? 1 : 7);
      if (rand() < 0.1) d.tags = [pick(["a", "b"]), pick(["c", "d"])];
      return d;
    });
    const plain = db.collection("plain");
    const indexed = db.collection("indexed");
    await plain.insertMany(docs.map((d) => ({ ...d })));
    await indexed.insertMany(docs.map((d) => ({ ...d })));
    await indexed.createIndex({ job: 1, chunk: 1, status: 1 });
    await indexed.createIndex({ job: 1, status: 1, chunk: -1 });
    await indexed.createIndex({ w: -1 });
    await indexed.createIndex({ tags: 1 });
    for (let q = 0; q < 300; q++) {
      const filter: Record<string, unknown> = {};
      if (rand() < 0.8) filter.job = pick(["j1", "j2", "j3", "j4"]);
      if (rand() < 0.5)
        filter.chunk =
          rand() < 0.5
            ? Math.floor(rand() * 40)
            : { [pick(["$gt", "$gte", "$lt", "$lte"])]: Math.floor(rand() * 40) };
      if (rand() < 0.5)
        filter.status = rand() < 0.8 ? pick(["pending", "sent", "processed", "failed"]) : null;
      if (rand() < 0.3) filter.w = { $gte: Math.floor(rand() * 50), $lt: 50 + Math.floor(rand() * 50) };
      if (rand() < 0.1) filter.tags = pick(["a", "b", "c", "d"]);
      if (rand() < 0.2)
        filter._id = {
          $in: Array.from({ length: 1 + Math.floor(rand() * 30) }, () => Math.floor(rand() * 2100)),
        };
      if (rand() < 0.1) filter.tags = { $in: [pick(["a", "b"]), pick(["c", "d"])] };
      const sortField = pick(["chunk", "w", "_id", "status", undefined]);
      const sort = sortField ? { [sortField]: pick([1, -1] as const), _id: 1 as const } : undefined;
      // Without a sort, which documents a limit keeps is unspecified: only limit sorted queries.
      const limit = sort ? pick([0, 1, 5, 50]) : 0;
      const run = async (c: typeof plain) =>
        (await c.find(filter, sort ? { sort, limit } : { limit }).toArray()).map(
          (d) => d._id as unknown as number,
        );
      const [a, b] = await Promise.all([run(plain), run(indexed)]);
      if (sort) expect(b, JSON.stringify({ filter, sort, limit })).toEqual(a);
      else
        expect(
          [...b].sort((x, y) => x - y),
          JSON.stringify({ filter, limit }),
        ).toEqual([...a].sort((x, y) => x - y));
    }
  });

  it("answers an indexed equality or range lookup without scanning the collection", async () => {
    const coll = client.db("planner").collection("lookup");
    await coll.insertMany(
      Array.from({ length: 20_000 }, (_, i) => ({
        job: `j${i % 4}`,
        chunk: Math.floor(i / 4),
        status: "pending",
      })),
    );
    await coll.createIndex({ job: 1, chunk: 1 });
    const stats = server.engine.queryStats;
    const before = stats.documentsExamined;
    expect(await coll.countDocuments({ job: "j1", chunk: 777 })).toBe(1);
    const claimed = await coll.findOneAndUpdate(
      { job: "j2", chunk: { $gte: 100 }, status: "pending" },
      { $set: { status: "sent" } },
      { sort: { chunk: 1 } },
    );
    expect(claimed?.chunk).toBe(100);
    const last = await coll.find({}).sort({ _id: -1 }).limit(1).toArray();
    expect(last).toHaveLength(1);
    const some = await coll.find({ _id: { $in: [last[0]!._id, claimed!._id] } }).toArray();
    expect(some).toHaveLength(2);
    expect(stats.documentsExamined - before).toBeLessThan(10);
  });
});
