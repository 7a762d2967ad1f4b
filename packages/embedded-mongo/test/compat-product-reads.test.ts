/**
 * MongoDB compatibility, the product's reads: every query form chunkrelay sends, in the form it
 * sends it, with the MongoDB 7.0 manual's answer. Driven only through the official driver, so this
 * file passes unchanged against a real mongod (MONGODB_URI).
 *
 * Product code paths it stands for (src/…:function):
 * - store/source-collection.ts: readSourceFields (`_id $in` of a chunk's ids, projection),
 *   findSourceRecordAt (sort on (key, _id), skip(index).limit(1), or sort -1 for the last),
 *   openSourceCursor (batchSize, hasNext/readBufferedDocuments over many getMores),
 *   countSourceRecords; planning/cuts.ts: aboveCut, atOrBelowCut, allOf (the window filters:
 *   $gt/$gte/$lt/$lte, $or of (key, _id) pairs, $and); sources/mongo-source.ts: mongoSource
 *   (config filters such as {"$exists": true, "$ne": null} and date ranges, a dotted orderBy).
 * - store/chunks.ts: findFirstUndoneChunk, listUndoneChunks, findFirstFailedChunk,
 *   findLastCompletedChunk (findOne with sort and projection), listWaitingChunks,
 *   listChunkConfigHashes ($or of (jobId, chunk) pairs), listJobChunks (exclusion projection).
 * - store/jobs.ts: listRecentJobs (sort createdAt -1, limit), readJobFields, jobExists
 *   (countDocuments limit 1), listOpenJobIdsWithPrefix (anchored, escaped $regex on _id),
 *   listUnsettledJobs, listFinishedIterations (date range, $exists on a dotted path, $gt),
 *   readLastLaneJob, streamLaneJobs.
 * - store/workers.ts: listWorkers (expiresAt $gt, sort lastHeartbeat -1 then _id, limit), readWorker.
 * - store/set-aside-records.ts: countUnresolvedRecords, findLastUnresolvedRecord,
 *   openUnresolvedRecords, listSetAsideRecords ($exists false, sort createdAt -1, limit,
 *   projection _id 0); store/configs.ts: streamScheduledConfigDocs ($exists on a dotted path);
 *   store/records.ts: readStoredRecordData, listRecordLineage, countProcessedRecords;
 *   queries/step-stats.ts via store/step-stats.ts: collectStepDurations (sort durationMs).
 * - the CLI's `where`/`exceptions show` (record ids read as ObjectId, number or string).
 */
import { type Document, Double, Int32, Long, ObjectId } from "mongodb";
import { describe, expect, it } from "vitest";
import { useTestDatabase } from "./support/db.js";

const t = useTestDatabase("compat_product_reads");

const at = (iso: string) => new Date(iso);
const NOW = at("2026-03-01T12:00:00.000Z");

describe("source collections", () => {
  it("reads a chunk's records by _id $in over 1,000 ids of mixed types, with a projection", async () => {
    const c = t.db().collection("src_in");
    const oids = Array.from({ length: 400 }, () => new ObjectId());
    const docs: Document[] = [
      ...oids.map((id, i) => ({ _id: id, n: i, big: "x".repeat(10), keep: { a: i } })),
      ...Array.from({ length: 400 }, (_, i) => ({ _id: i, n: i, big: "y", keep: { a: i } })),
      ...Array.from({ length: 400 }, (_, i) => ({ _id: `s${i}`, n: i, big: "z", keep: { a: i } })),
    ];
    await c.insertMany(docs);
    // 1,000 ids: 350 ObjectIds, 350 numbers (as Double, Int32 and Long alike), 290 strings, 10 absent.
    const ids: unknown[] = [
      ...oids.slice(0, 350),
      ...Array.from({ length: 350 }, (_, i) =>
        i % 3 === 0 ? new Double(i) : i % 3 === 1 ? new Int32(i) : Long.fromNumber(i),
      ),
      ...Array.from({ length: 290 }, (_, i) => `s${i}`),
      ...Array.from({ length: 10 }, (_, i) => `absent${i}`),
    ];
    expect(ids).toHaveLength(1000);
    const found = await c
      .find({ _id: { $in: ids } } as Document, { projection: { _id: 1, n: 1, "keep.a": 1 } })
      .toArray();
    expect(found).toHaveLength(990);
    expect(found.every((d) => Object.keys(d).sort().join() === "_id,keep,n")).toBe(true);
    const byId = new Map(found.map((d) => [String(d._id), d]));
    expect(byId.get(String(oids[7]))).toEqual({ _id: oids[7], n: 7, keep: { a: 7 } });
    expect(byId.get("349")).toEqual({ _id: 349, n: 349, keep: { a: 349 } });
    expect(byId.get("s289")).toEqual({ _id: "s289", n: 289, keep: { a: 289 } });
    expect(byId.has("350")).toBe(false);
  });

  it("orders by (key, _id) and cuts windows with $gt/$lte and $or of (key, _id) pairs inside $and", async () => {
    const c = t.db().collection("src_cuts");
    await c.createIndex({ k: 1, _id: 1 });
    // Keys with ties: (k, _id) = (1,1) (1,2) (2,3) (2,4) (2,5) (3,6) (4,7) (4,8)
    const keys = [1, 1, 2, 2, 2, 3, 4, 4];
    await c.insertMany(keys.map((k, i) => ({ _id: (i + 1) as never, k, state: i === 5 ? "held" : "ready" })));
    const ids = async (filter: Document, dir: 1 | -1 = 1) =>
      (
        await c
          .find(filter, { projection: { k: 1 } })
          .sort({ k: dir, _id: dir })
          .toArray()
      ).map((d) => d._id);
    // Above the cut (2, 3), at or below the cut (4, 7), with the config's filter.
    const window: Document = {
      $and: [
        { state: "ready" },
        { $or: [{ k: { $gt: 2 } }, { k: 2, _id: { $gt: 3 } }] },
        { $or: [{ k: { $lt: 4 } }, { k: 4, _id: { $lte: 7 } }] },
      ],
    };
    expect(await ids(window)).toEqual([4, 5, 7]);
    expect(await ids(window, -1)).toEqual([7, 5, 4]);
    // Cuts on the key alone: above key 1 included, at or below key 3 excluded.
    expect(await ids({ $and: [{ k: { $gte: 1 } }, { k: { $lt: 3 } }] })).toEqual([1, 2, 3, 4, 5]);
    expect(await ids({ $and: [{ k: { $gt: 1 } }, { k: { $lte: 3 } }] })).toEqual([3, 4, 5, 6]);
    // Cuts when the order key is _id itself.
    expect(await ids({ $and: [{ _id: { $gt: 2 } }, { _id: { $lte: 4 } }] })).toEqual([3, 4]);
    // The record at index i of the window (skip + limit 1), and the last one (sort -1, limit 1).
    const recordAt = (index: number) =>
      c
        .find(window, { projection: { k: 1 } })
        .sort({ k: 1, _id: 1 })
        .skip(index)
        .limit(1)
        .next();
    expect(await recordAt(0)).toEqual({ _id: 4, k: 2 });
    expect(await recordAt(2)).toEqual({ _id: 7, k: 4 });
    expect(await recordAt(3)).toBeNull();
    expect(
      await c
        .find(window, { projection: { k: 1 } })
        .sort({ k: -1, _id: -1 })
        .limit(1)
        .next(),
    ).toEqual({ _id: 7, k: 4 });
    expect(await c.countDocuments(window)).toBe(3);
  });

  it("streams 2,345 records in driver batches of 500 through getMore, in (key, _id) order", async () => {
    const c = t.db().collection("src_stream");
    const n = 2_345;
    await c.insertMany(
      Array.from({ length: n }, (_, i) => ({
        _id: i as never,
        k: Math.floor((n - i) / 3),
        w: i % 7,
        pad: "p",
      })),
    );
    const cursor = c.find({}, { projection: { _id: 1, k: 1, w: 1 }, batchSize: 500 }).sort({ k: 1, _id: 1 });
    const sizes: number[] = [];
    const seen: Document[] = [];
    try {
      while (await cursor.hasNext()) {
        const batch = cursor.readBufferedDocuments();
        sizes.push(batch.length);
        seen.push(...batch);
      }
    } finally {
      await cursor.close();
    }
    expect(sizes).toEqual([500, 500, 500, 500, 345]);
    expect(seen).toHaveLength(n);
    expect(seen.every((d) => Object.keys(d).length === 3)).toBe(true);
    for (let i = 1; i < seen.length; i++) {
      const a = seen[i - 1]!;
      const b = seen[i]!;
      expect(a.k < b.k || (a.k === b.k && a._id < b._id)).toBe(true);
    }
    expect(seen[0]).toEqual({ _id: 2343, k: 0, w: 2343 % 7 });
  });

  it("selects records with a config filter of $exists true and $ne null, and a date range", async () => {
    const c = t.db().collection("src_filter");
    await c.insertMany([
      { _id: 1 as never, createdAt: at("2026-01-01T00:00:00Z") },
      { _id: 2 as never, createdAt: at("2026-06-01T00:00:00Z") },
      { _id: 3 as never, createdAt: null },
      { _id: 4 as never },
      { _id: 5 as never, createdAt: "2026-06-01" },
      { _id: 6 as never, createdAt: at("2025-12-31T23:59:59.999Z") },
      { _id: 7 as never, createdAt: 1767225600000 },
    ]);
    const ids = async (filter: Document) =>
      (await c.find(filter).sort({ _id: 1 }).toArray()).map((d) => d._id);
    expect(await ids({ createdAt: { $exists: true, $ne: null } })).toEqual([1, 2, 5, 6, 7]);
    expect(await ids({ createdAt: { $exists: true } })).toEqual([1, 2, 3, 5, 6, 7]);
    expect(await ids({ createdAt: { $exists: false } })).toEqual([4]);
    // null matches null and missing alike.
    expect(await ids({ createdAt: null })).toEqual([3, 4]);
    // A date range matches dates only (no string, number or null in it).
    expect(await ids({ createdAt: { $gte: at("2026-01-01T00:00:00Z") } })).toEqual([1, 2]);
    expect(
      await ids({ createdAt: { $gte: at("2026-01-01T00:00:00Z"), $lte: at("2026-03-01T00:00:00Z") } }),
    ).toEqual([1]);
    expect(await ids({ createdAt: { $lt: at("2026-01-01T00:00:00Z") } })).toEqual([6]);
  });

  it("sorts and projects by a dotted order key, returning it nested", async () => {
    const c = t.db().collection("src_dotted");
    await c.insertMany([
      { _id: 1 as never, meta: { at: 3, other: "x" }, w: 1 },
      { _id: 2 as never, meta: { at: 1, other: "y" }, w: 2 },
      { _id: 3 as never, meta: { at: 2 }, w: 3 },
    ]);
    const docs = await c
      .find({ "meta.at": { $gt: 1 } }, { projection: { _id: 1, "meta.at": 1, w: 1 } })
      .sort({ "meta.at": 1, _id: 1 })
      .toArray();
    expect(docs).toEqual([
      { _id: 3, meta: { at: 2 }, w: 3 },
      { _id: 1, meta: { at: 3 }, w: 1 },
    ]);
  });

  it("compares Long keys beyond 2^53 exactly in ranges and sorts", async () => {
    const c = t.db().collection("src_long");
    const base = Long.fromString("9007199254740992"); // 2^53
    await c.insertMany([0, 1, 2, 3].map((d) => ({ _id: d as never, k: base.add(d) })));
    const ids = async (filter: Document, dir: 1 | -1) =>
      (await c.find(filter).sort({ k: dir, _id: 1 }).toArray()).map((d) => d._id);
    expect(await ids({ k: { $gt: base.add(1) } }, 1)).toEqual([2, 3]);
    expect(await ids({ k: { $lte: base.add(1) } }, -1)).toEqual([1, 0]);
    expect(await ids({ k: base.add(3) }, 1)).toEqual([3]);
    expect(await ids({}, -1)).toEqual([3, 2, 1, 0]);
  });
});

describe("chunk and job reads", () => {
  it("finds the first undone and the last completed chunk with sort, range and projection", async () => {
    const c = t.db().collection("chunks_first");
    await c.createIndex({ jobId: 1, done: 1, chunk: 1 });
    await c.insertMany([
      {
        jobId: "j",
        chunk: 0,
        done: true,
        status: "processed",
        attempt: 1,
        lastKey: 10,
        lastId: 10,
        lease: null,
      },
      { jobId: "j", chunk: 1, done: true, status: "processed", attempt: 1, lastKey: 20, lastId: 20 },
      {
        jobId: "j",
        chunk: 2,
        done: false,
        status: "failed",
        attempt: 3,
        lastError: "boom",
        lastKey: 30,
        lastId: 30,
      },
      { jobId: "j", chunk: 3, done: false, status: "pending", attempt: 1, lastKey: 40, lastId: 40 },
      { jobId: "j", chunk: 4, done: false, status: "pending", attempt: 1, lastKey: 50, lastId: 50 },
      { jobId: "k", chunk: 0, done: false, status: "pending", attempt: 1 },
    ]);
    const projection = { chunk: 1, status: 1, attempt: 1, lastError: 1 };
    const first = await c.findOne(
      { jobId: "j", done: false, chunk: { $lt: 4 } },
      { sort: { chunk: 1 }, projection },
    );
    expect(first).toMatchObject({ chunk: 2, status: "failed", attempt: 3, lastError: "boom" });
    expect(Object.keys(first!).sort()).toEqual(["_id", "attempt", "chunk", "lastError", "status"]);
    expect(
      await c.findOne({ jobId: "j", done: false, chunk: { $lt: 2 } }, { sort: { chunk: 1 }, projection }),
    ).toBeNull();
    const failed = await c.findOne(
      { jobId: "j", status: "failed" },
      { sort: { chunk: 1 }, projection: { _id: 0, chunk: 1 } },
    );
    expect(failed).toEqual({ chunk: 2 });
    const lastBefore = await c.findOne(
      { jobId: "j", chunk: { $lt: 2 } },
      { sort: { chunk: -1 }, projection: { _id: 0, lastKey: 1, lastId: 1 } },
    );
    expect(lastBefore).toEqual({ lastKey: 20, lastId: 20 });
    const lastDone = await c.findOne(
      { jobId: "j", done: true },
      { sort: { chunk: -1 }, projection: { _id: 0, lastKey: 1, lastId: 1 } },
    );
    expect(lastDone).toEqual({ lastKey: 20, lastId: 20 });
    const undone = await c
      .find(
        { jobId: "j", done: false },
        { sort: { chunk: 1 }, limit: 2, projection: { _id: 0, chunk: 1, attempt: 1, lease: 1 } },
      )
      .toArray();
    expect(undone).toEqual([
      { chunk: 2, attempt: 3 },
      { chunk: 3, attempt: 1 },
    ]);
    // An exclusion projection keeps everything else; a null lease is a value, kept by inclusion.
    const all = await c
      .find({ jobId: "j" }, { projection: { _id: 0, lease: 0 } })
      .sort({ chunk: 1 })
      .toArray();
    expect(all).toHaveLength(5);
    expect(all[0]).toEqual({
      jobId: "j",
      chunk: 0,
      done: true,
      status: "processed",
      attempt: 1,
      lastKey: 10,
      lastId: 10,
    });
    expect(await c.findOne({ jobId: "j", chunk: 0 }, { projection: { _id: 0, lease: 1 } })).toEqual({
      lease: null,
    });
  });

  it("reads chunks by an $or of (jobId, chunk) pairs and by a status $in inside a range", async () => {
    const c = t.db().collection("chunks_pairs");
    await c.createIndex({ jobId: 1, chunk: 1 }, { unique: true });
    await c.insertMany(
      ["a", "b"].flatMap((jobId) =>
        Array.from({ length: 5 }, (_, chunk) => ({
          jobId,
          chunk,
          configHash: `${jobId}${chunk}`,
          status: chunk % 2 ? "pending" : "dispatching",
        })),
      ),
    );
    const pairs = [
      { jobId: "a", chunk: 1 },
      { jobId: "b", chunk: 4 },
      { jobId: "b", chunk: 9 },
      { jobId: "a", chunk: 3 },
    ];
    const hashes = await c
      .find({ $or: pairs }, { projection: { _id: 0, jobId: 1, chunk: 1, configHash: 1 } })
      .toArray();
    expect(hashes.map((h) => h.configHash).sort()).toEqual(["a1", "a3", "b4"]);
    const waiting = await c
      .find(
        { jobId: "a", chunk: { $gte: 1, $lt: 4 }, status: { $in: ["pending", "dispatching"] } },
        { projection: { _id: 0, chunk: 1 } },
      )
      .sort({ chunk: 1 })
      .toArray();
    expect(waiting).toEqual([{ chunk: 1 }, { chunk: 2 }, { chunk: 3 }]);
  });

  it("lists the newest jobs first with a limit, and counts a job's existence with limit 1", async () => {
    const c = t.db().collection("jobs_recent");
    await c.createIndex({ config: 1, createdAt: -1 });
    await c.insertMany(
      Array.from({ length: 12 }, (_, i) => ({
        _id: `j${i}` as never,
        config: i % 3 === 0 ? "a" : "b",
        createdAt: new Date(NOW.getTime() + ((i * 7) % 12) * 1000),
      })),
    );
    const recent = await c.find({ config: "a" }).sort({ createdAt: -1 }).limit(3).toArray();
    // a: j0 (+0 s), j3 (+9 s), j6 (+6 s), j9 (+3 s)
    expect(recent.map((j) => j._id)).toEqual(["j3", "j6", "j9"]);
    expect((await c.find({}).sort({ createdAt: -1 }).limit(2).toArray()).map((j) => j._id)).toEqual([
      "j5",
      "j10",
    ]);
    expect(await c.countDocuments({ _id: "j4" as never }, { limit: 1 })).toBe(1);
    expect(await c.countDocuments({ _id: "nope" as never }, { limit: 1 })).toBe(0);
    expect(await c.countDocuments({}, { limit: 1 })).toBe(1);
    expect(await c.findOne({ _id: "j4" as never }, { projection: { config: 1 } })).toEqual({
      _id: "j4",
      config: "b",
    });
  });

  it("finds open jobs by an anchored $regex prefix on _id with its special characters escaped", async () => {
    const c = t.db().collection("jobs_prefix");
    await c.insertMany(
      ["kafka:t.1/0:5", "kafka:t.1/0:6", "kafka:tx1/0:7", "other:kafka:t.1/0:8", "kafka:t.1/1:9"].map(
        (id, i) => ({
          _id: id as never,
          status: i === 1 ? "succeeded" : "running",
        }),
      ),
    );
    const prefix = "kafka:t.1/0:";
    const escaped = prefix.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
    const docs = await c
      .find({ _id: { $regex: `^${escaped}` }, status: { $in: ["planning", "running"] } } as Document, {
        projection: { _id: 1 },
      })
      .toArray();
    expect(docs).toEqual([{ _id: "kafka:t.1/0:5" }]);
    const loose = await c.find({ _id: { $regex: "^kafka:t.1/0:" } } as Document).toArray();
    expect(loose.map((d) => d._id).sort()).toEqual(["kafka:t.1/0:5", "kafka:t.1/0:6", "kafka:tx1/0:7"]);
  });

  it("finds unsettled jobs and finished iterations by date ranges, $exists on a dotted path and $gt", async () => {
    const c = t.db().collection("jobs_iterations");
    const t0 = at("2026-03-01T00:00:00Z");
    const t1 = at("2026-03-02T00:00:00Z");
    await c.insertMany([
      {
        _id: "a" as never,
        status: "succeeded",
        iteration: { index: 0, of: 3 },
        finishedAt: t0,
        totals: { records: 5 },
      },
      {
        _id: "b" as never,
        status: "succeeded",
        iteration: { index: 1, of: 3 },
        finishedAt: t1,
        totals: { records: 0 },
      },
      { _id: "c" as never, status: "succeeded", finishedAt: t0, totals: { records: 5 }, unsettled: true },
      {
        _id: "d" as never,
        status: "failed",
        iteration: { index: 0, of: 3 },
        finishedAt: t0,
        totals: { records: 5 },
        unsettled: true,
      },
      {
        _id: "e" as never,
        status: "succeeded",
        iteration: { index: 2, of: 3 },
        finishedAt: at("2026-03-03T00:00:00Z"),
        totals: { records: 1 },
      },
      {
        _id: "f" as never,
        status: "succeeded",
        iteration: { of: 3 },
        finishedAt: t0,
        totals: { records: 5 },
      },
    ]);
    const finished = await c
      .find(
        {
          status: "succeeded",
          "iteration.index": { $exists: true },
          finishedAt: { $gte: t0, $lte: t1 },
          "totals.records": { $gt: 0 },
        },
        { projection: { iteration: 1 } },
      )
      .toArray();
    expect(finished).toEqual([{ _id: "a", iteration: { index: 0, of: 3 } }]);
    const unsettled = await c
      .find({ unsettled: true, finishedAt: { $lte: t0 } }, { projection: { _id: 1 } })
      .sort({ _id: 1 })
      .toArray();
    expect(unsettled).toEqual([{ _id: "c" }, { _id: "d" }]);
  });

  it("reads a lane's last job by sort on lane.seq -1, and streams the lane after a seq", async () => {
    const c = t.db().collection("jobs_lane");
    await c.createIndex({ "lane.id": 1, "lane.seq": 1 });
    await c.insertMany([
      { _id: "j2" as never, lane: { id: "L", seq: 2 }, status: "succeeded", complete: true },
      { _id: "j1" as never, lane: { id: "L", seq: 1 }, status: "succeeded", complete: true },
      { _id: "j4" as never, lane: { id: "L", seq: 4 }, status: "running" },
      { _id: "j3" as never, lane: { id: "L", seq: 3 }, status: "failed", complete: false },
      { _id: "x9" as never, lane: { id: "M", seq: 9 }, status: "running" },
      { _id: "x0" as never, status: "running" },
    ]);
    expect(
      await c.findOne({ "lane.id": "L" }, { sort: { "lane.seq": -1 }, projection: { lane: 1 } }),
    ).toEqual({
      _id: "j4",
      lane: { id: "L", seq: 4 },
    });
    const after = await c
      .find(
        { "lane.id": "L", "lane.seq": { $gt: 1 } },
        { projection: { lane: 1, status: 1, complete: 1, completedTo: 1 } },
      )
      .sort({ "lane.seq": 1 })
      .toArray();
    expect(after.map((j) => j._id)).toEqual(["j2", "j3", "j4"]);
    expect(after[2]).toEqual({ _id: "j4", lane: { id: "L", seq: 4 }, status: "running" });
    expect(
      await c.findOne(
        { "lane.id": "L", status: { $in: ["planning", "running"] } },
        { projection: { _id: 1 } },
      ),
    ).toEqual({ _id: "j4" });
  });
});

describe("workers, set-aside records, configs and statistics", () => {
  it("lists live workers by expiresAt $gt, newest heartbeat first then _id, with a limit", async () => {
    const c = t.db().collection("workers_list");
    const hb = (s: number) => new Date(NOW.getTime() + s * 1000);
    await c.insertMany([
      { _id: "w1" as never, lastHeartbeat: hb(10), expiresAt: hb(610) },
      { _id: "w3" as never, lastHeartbeat: hb(20), expiresAt: hb(620) },
      { _id: "w2" as never, lastHeartbeat: hb(20), expiresAt: hb(620) },
      { _id: "w0" as never, lastHeartbeat: hb(0), expiresAt: hb(600) },
    ]);
    const list = await c
      .find({ expiresAt: { $gt: hb(600) } })
      .sort({ lastHeartbeat: -1, _id: 1 })
      .limit(500)
      .toArray();
    expect(list.map((w) => w._id)).toEqual(["w2", "w3", "w1"]);
    expect(await c.findOne({ _id: "w0" as never, expiresAt: { $gt: hb(600) } })).toBeNull();
    expect(
      (await c.find({}).sort({ lastHeartbeat: -1, _id: 1 }).limit(2).toArray()).map((w) => w._id),
    ).toEqual(["w2", "w3"]);
  });

  it("counts, lists and pages unresolved set-aside records in recordId order within a window", async () => {
    const c = t.db().collection("set_aside_reads");
    await c.createIndex({ jobId: 1, recordId: 1 }, { unique: true });
    await c.insertMany(
      Array.from({ length: 30 }, (_, i) => ({
        jobId: i < 25 ? "j" : "k",
        config: "orders",
        recordId: i,
        reason: `r${i}`,
        createdAt: new Date(NOW.getTime() + i),
        ...(i % 4 === 0 ? { resolution: { note: "n", at: NOW } } : {}),
      })),
    );
    const unresolved = { jobId: "j", resolution: { $exists: false } };
    expect(await c.countDocuments({ jobId: "j" })).toBe(25);
    expect(await c.countDocuments(unresolved)).toBe(18);
    // The window (5, 15]: recordId $gt 5, $lte 15.
    const window = { $and: [unresolved, { recordId: { $gt: 5 } }, { recordId: { $lte: 15 } }] };
    expect(await c.findOne(window, { sort: { recordId: -1 }, projection: { recordId: 1 } })).toMatchObject({
      recordId: 15,
    });
    const cursor = c.find(window, { projection: { recordId: 1 }, batchSize: 3 }).sort({ recordId: 1 });
    const pages: number[][] = [];
    try {
      while (await cursor.hasNext())
        pages.push(cursor.readBufferedDocuments().map((d) => d.recordId as number));
    } finally {
      await cursor.close();
    }
    expect(pages).toEqual([
      [6, 7, 9],
      [10, 11, 13],
      [14, 15],
    ]);
    expect(await c.countDocuments(window)).toBe(8);
    const listed = await c
      .find({ config: "orders", resolution: { $exists: false } }, { projection: { _id: 0 } })
      .sort({ createdAt: -1 })
      .limit(2)
      .toArray();
    expect(listed).toEqual([
      { jobId: "k", config: "orders", recordId: 29, reason: "r29", createdAt: new Date(NOW.getTime() + 29) },
      { jobId: "k", config: "orders", recordId: 27, reason: "r27", createdAt: new Date(NOW.getTime() + 27) },
    ]);
    expect(await c.findOne({ jobId: "j", recordId: 8 }, { projection: { _id: 0 } })).toEqual({
      jobId: "j",
      config: "orders",
      recordId: 8,
      reason: "r8",
      createdAt: new Date(NOW.getTime() + 8),
      resolution: { note: "n", at: NOW },
    });
    const reasons = await c
      .find({ recordId: 26, jobId: { $in: ["j", "k"] } }, { projection: { jobId: 1, reason: 1 } })
      .toArray();
    expect(reasons.map(({ jobId, reason }) => ({ jobId, reason }))).toEqual([{ jobId: "k", reason: "r26" }]);
  });

  it("finds scheduled configs by $exists on a field and on a dotted path, in _id order", async () => {
    const c = t.db().collection("configs_sched");
    await c.insertMany([
      { _id: "c" as never, schedule: { cron: "0 * * * *" } },
      { _id: "a" as never, schedule: { everyMinutes: 5 } },
      { _id: "b" as never },
      { _id: "d" as never, schedule: null },
    ]);
    const names = async (filter: Document) =>
      (await c.find(filter).sort({ _id: 1 }).toArray()).map((d) => d._id);
    expect(await names({ schedule: { $exists: true } })).toEqual(["a", "c", "d"]);
    expect(await names({ "schedule.cron": { $exists: true } })).toEqual(["c"]);
  });

  it("finds a record's lineage by a recordId of any type, numbers matching across Int32, Long and Double", async () => {
    const c = t.db().collection("lineage");
    await c.createIndex({ recordId: 1 });
    const oid = new ObjectId("6560a1b2c3d4e5f601234567");
    await c.insertMany([
      { jobId: "j1", recordId: new Int32(42), status: "processed", chunk: 0 },
      { jobId: "j2", recordId: Long.fromNumber(42), status: "processed", chunk: 3 },
      { jobId: "j3", recordId: new Double(42), status: "sent", chunk: 1 },
      { jobId: "j4", recordId: "42", status: "processed", chunk: 0 },
      { jobId: "j5", recordId: oid, status: "processed", chunk: 0 },
    ]);
    const jobs = async (filter: Document) =>
      (await c.find(filter).toArray()).map((d) => d.jobId as string).sort();
    expect(await jobs({ recordId: 42 })).toEqual(["j1", "j2", "j3"]);
    expect(await jobs({ recordId: "42" })).toEqual(["j4"]);
    expect(await jobs({ recordId: new ObjectId("6560a1b2c3d4e5f601234567") })).toEqual(["j5"]);
    expect(await jobs({ recordId: { $in: [Long.fromNumber(42), oid] }, status: "processed" })).toEqual([
      "j1",
      "j2",
      "j5",
    ]);
    expect(await c.countDocuments({ jobId: "j2", chunk: 3, status: "processed" })).toBe(1);
  });

  it("reads step statistics sorted by duration with an inclusion projection that drops _id", async () => {
    const c = t.db().collection("stats_reads");
    await c.insertMany([
      { task: "watch", jobId: "j", durationMs: 30, outcome: "ok", startedAt: NOW },
      { task: "dispatch", jobId: "j", durationMs: 10, outcome: "error: x", startedAt: NOW },
      { task: "dispatch", jobId: "k", durationMs: 20, outcome: "ok", startedAt: NOW },
      { task: "dispatch", jobId: "z", durationMs: 5, outcome: "ok", startedAt: NOW },
    ]);
    const rows = await c
      .find({ jobId: { $in: ["j", "k"] } }, { projection: { _id: 0, task: 1, durationMs: 1, outcome: 1 } })
      .sort({ durationMs: 1 })
      .toArray();
    expect(rows).toEqual([
      { task: "dispatch", durationMs: 10, outcome: "error: x" },
      { task: "dispatch", durationMs: 20, outcome: "ok" },
      { task: "watch", durationMs: 30, outcome: "ok" },
    ]);
  });
});
