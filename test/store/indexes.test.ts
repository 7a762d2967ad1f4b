/**
 * `ensureIndexes` on a database an earlier chunkrelay wrote (a partial unique `lane_seq`, a TTL
 * `expires`, jobs without `claimKey`), and the claim key through the lane verbs.
 */
import { describe, expect, it } from "vitest";
import { Store, type JobDoc } from "../../src/store/store.js";
import { insertJob, removeJobsFromLanes } from "../../src/store/jobs.js";
import { isDuplicateKey } from "../../src/store/errors.js";
import { useTestDatabase } from "../support/db.js";
import { onFerretDB } from "../support/server-kind.js";

const t = useTestDatabase("indexes");

function job(id: string, lane?: JobDoc["lane"]): JobDoc {
  return {
    _id: id,
    config: "idx",
    configHash: "h",
    mode: lane ? "incremental" : "sample",
    description: "",
    window: { to: null },
    ...(lane ? { lane } : {}),
    partitioning: { orderBy: "_id", chunking: { maxRecords: 10 }, workload: {} },
    status: "succeeded",
    planning: { done: true, nextChunk: 1, records: 0, weight: 0 },
    totals: { records: 0, chunks: 0, processed: 0, failed: 0, exceptions: 0 },
    triggeredBy: "test",
    createdAt: new Date(),
  } as JobDoc;
}

describe("ensureIndexes", () => {
  it("brings a database with the old indexes and jobs without claim keys up to date, twice at once", async () => {
    const store = new Store(t.db(), "old");
    // What chunkrelay before the claim key created (FerretDB never could build the partial index).
    await store.jobs.createIndexes([
      onFerretDB()
        ? { key: { "lane.id": 1, "lane.seq": 1 }, name: "lane_seq" }
        : {
            key: { "lane.id": 1, "lane.seq": 1 },
            name: "lane_seq",
            unique: true,
            partialFilterExpression: { "lane.id": { $exists: true } },
          },
    ]);
    if (!onFerretDB()) {
      await store.workers.createIndexes([{ key: { expiresAt: 1 }, name: "expires", expireAfterSeconds: 0 }]);
    }
    await store.jobs.insertMany([job("a"), job("b"), job("c", { id: "L", seq: 1 })]);

    await Promise.all([store.ensureIndexes(), store.ensureIndexes()]);

    const keys = await store.jobs
      .find({}, { projection: { claimKey: 1 } })
      .sort({ _id: 1 })
      .toArray();
    expect(keys).toEqual([
      { _id: "a", claimKey: "job:a" },
      { _id: "b", claimKey: "job:b" },
      { _id: "c", claimKey: "lane:L:1" },
    ]);
    const jobIndexes = (await store.jobs.indexes()).map((i) => i.name);
    expect(jobIndexes).toEqual(expect.arrayContaining(["claim", "lane_order"]));
    expect(jobIndexes).not.toContain("lane_seq");
    const workerIndexes = (await store.workers.indexes()).map((i) => i.name);
    expect(workerIndexes).toContain("expires_at");
    expect(workerIndexes).not.toContain("expires");

    // The claim holds on the upgraded database: seq 1 of lane L is taken, seq 2 is free.
    const lost = await insertJob(store, job("d", { id: "L", seq: 1 })).catch((e: unknown) => e);
    expect(isDuplicateKey(lost)).toBe(true);
    await insertJob(store, job("d", { id: "L", seq: 2 }));
    expect(await store.jobs.countDocuments({ "lane.id": "L" })).toBe(2);
  });

  it("gives jobs taken out of their lanes their own claim keys, freeing the lane's slots", async () => {
    const store = new Store(t.db(), "lanes");
    await store.ensureIndexes();
    await insertJob(store, job("x1", { id: "M", seq: 1 }));
    await insertJob(store, job("x2", { id: "M", seq: 2 }));
    await insertJob(store, job("x3"));
    await removeJobsFromLanes(store, "idx");
    const keys = await store.jobs
      .find({}, { projection: { claimKey: 1, lane: 1 } })
      .sort({ _id: 1 })
      .toArray();
    expect(keys).toEqual([
      { _id: "x1", claimKey: "job:x1" },
      { _id: "x2", claimKey: "job:x2" },
      { _id: "x3", claimKey: "job:x3" },
    ]);
    // A new pass of lane M starts at seq 1 again.
    await insertJob(store, job("y1", { id: "M", seq: 1 }));
  });
});
