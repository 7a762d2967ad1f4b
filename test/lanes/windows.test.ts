/**
 * Windows, lanes and watermarks on ≥ 5,000 records (a fiftieth on FerretDB), against a real
 * wire connection and a fake batch service on port 0: incremental jobs (records arriving while a
 * job runs, failed and interrupted jobs holding the watermark), strict backfill windows, workload
 * caps and iterations, concurrent claims, samples.
 */
import { ObjectId } from "mongodb";
import { beforeAll, describe, expect, it } from "vitest";
import { saveConfig } from "../../src/store/configs.js";
import type { BatchConfigInput } from "../../src/config/schema.js";
import { initializeJob } from "../../src/steps/initialize/initialize.js";
import { readBacklog } from "../../src/queries/backlog.js";
import { resumeJob, runJobLocally } from "../../src/runtimes/local/local-runner.js";
import type { LocalRunOptions } from "../../src/runtimes/local/local-runner.js";
import type { Store } from "../../src/store/store.js";
import {
  type FakeReply,
  type FakeRequest,
  startFakeService,
  stepDeps,
  usePipelineStore,
} from "../support/pipeline.js";
import { onFerretDB } from "../support/server-kind.js";

// FerretDB 1.x reads a whole collection for every query not on _id alone, so each query costs
// as much as the records in the file's database so far, and this file runs dozens of jobs: on
// FerretDB every record count, cap and chunk size here is a fiftieth (`n(5000)` is 100; at a
// tenth, two tests overran their 90 s), which keeps each test's shape — the same chunks per
// job, jobs per run, windows and watermarks, each at a fiftieth of its key.
const SCALE = onFerretDB() ? 50 : 1;
const n = (records: number) => records / SCALE;
/** The order key `t` of record `i` in the first test: four records per value. */
const tOf = (i: number) => Math.floor(i / 4);

const { cleanups, store: currentStore } = usePipelineStore("windows");
let store: Store;
beforeAll(() => {
  store = currentStore();
});

const processed: FakeReply = { status: 202, report: "processed" };

/** A service that processes everything unless `decide` says otherwise; counts deliveries per record. */
async function service(
  decide: (req: FakeRequest, n: number) => FakeReply | Promise<FakeReply> = () => processed,
) {
  const s = await startFakeService(store, decide);
  cleanups.push(() => s.stop());
  return s;
}

async function config(
  name: string,
  url: string,
  extra: Partial<BatchConfigInput> & { source: BatchConfigInput["source"] },
) {
  await saveConfig(
    store,
    {
      name,
      target: { url },
      chunking: { maxRecords: n(500) },
      maxInFlight: 4,
      watch: { pollIntervalMs: 10 },
      ...extra,
    },
    new Date(),
  );
}

const run = (configName: string, request: LocalRunOptions["request"], jobId?: string) =>
  runJobLocally({ store, config: configName, request, ...(jobId ? { jobId } : {}) });

/** Record ids of a job, in chunk order. */
async function idsOf(jobId: string): Promise<unknown[]> {
  const docs = await store.details
    .find({ jobId }, { projection: { recordId: 1 } })
    .sort({ chunk: 1, recordId: 1 })
    .toArray();
  return docs.map((d) => d.recordId);
}

const range = (from: number, to: number) => Array.from({ length: to - from }, (_, i) => from + i);

describe("incremental jobs", () => {
  it("take every record after the watermark once, including records inserted while a job runs", async () => {
    // Order key `t` with ties (four records per value): cuts must split exactly on (t, _id).
    const docs = (from: number, to: number) => range(from, to).map((i) => ({ _id: i, t: tOf(i) }));
    const src = store.db.collection<{ _id: number; t: number }>("inc_src");
    await src.insertMany(docs(0, n(5000)));
    let insertDuring: Array<{ _id: number; t: number }> = [];
    const s = await service(async () => {
      if (insertDuring.length > 0) {
        const batch = insertDuring;
        insertDuring = [];
        await src.insertMany(batch);
      }
      return processed;
    });
    await config("inc", s.url, { source: { collection: "inc_src", orderBy: "t" } });

    const first = await run("inc", { mode: "incremental" }, "inc-1");
    expect(first).toMatchObject({ status: "succeeded", records: n(5000), processed: n(5000) });
    await src.insertMany(docs(n(5000), n(6000)));
    // While the second job runs, 700 more arrive: they belong to the next job, not this one.
    insertDuring = docs(n(6000), n(6700));
    const second = await run("inc", { mode: "incremental" }, "inc-2");
    expect(second).toMatchObject({ status: "succeeded", records: n(1000) });
    expect(await src.countDocuments()).toBe(n(6700));
    const third = await run("inc", { mode: "incremental" }, "inc-3");
    expect(third).toMatchObject({ status: "succeeded", records: n(700) });
    const fourth = await run("inc", { mode: "incremental" }, "inc-4");
    expect(fourth).toMatchObject({ status: "succeeded", records: 0, chunks: 0 });

    const all = [...(await idsOf("inc-1")), ...(await idsOf("inc-2")), ...(await idsOf("inc-3"))];
    expect(all).toHaveLength(n(6700));
    expect(new Set(all).size).toBe(n(6700));
    // Delivered exactly once each.
    const delivered = s.requests.flatMap((r) => r.body.records.map((x) => x.id));
    expect(delivered).toHaveLength(n(6700));
    // Each window ends at the last record of its job: (t, _id) of records 4,999, 5,999, 6,699.
    const end = (records: number) => ({ key: tOf(n(records) - 1), id: n(records) - 1 });
    const jobs = await store.jobs.find({ config: "inc" }).sort({ "lane.seq": 1 }).toArray();
    expect(jobs.map((j) => [j.lane?.seq, j.window.from, j.window.to])).toEqual([
      [1, undefined, end(5000)],
      [2, end(5000), end(6000)],
      [3, end(6000), end(6700)],
      [4, end(6700), null],
    ]);
    expect(await readBacklog(store, "inc")).toMatchObject({
      completedUpTo: end(6700),
      claimedUpTo: end(6700),
      records: 0,
    });
  });

  it("never moves the watermark past a failed chunk; a requeue of its exceptions closes the gap", async () => {
    const src = store.db.collection<{ _id: number }>("incf_src");
    await src.insertMany(range(0, n(5000)).map((i) => ({ _id: i })));
    const s = await service((req) =>
      (req.body.jobId === "incf-1" && req.body.chunk === 3) || req.body.jobId === "incf-requeue"
        ? { status: 400, body: '{"error":"bad"}' }
        : processed,
    );
    await config("incf", s.url, { source: { collection: "incf_src" } });
    expect(await run("incf", { mode: "incremental" }, "incf-1")).toMatchObject({
      status: "failed",
      records: n(5000),
      exceptions: n(500),
    });
    // Chunks 1-2 (records 0-999) done in order: the watermark stops there.
    const twoChunks = { key: n(1000) - 1, id: n(1000) - 1 };
    expect((await readBacklog(store, "incf")).completedUpTo).toEqual(twoChunks);
    await src.insertMany(range(n(5000), n(6000)).map((i) => ({ _id: i })));
    // New records still flow: the next job takes what is new, not the failed range again.
    expect(await run("incf", { mode: "incremental" }, "incf-2")).toMatchObject({
      status: "succeeded",
      records: n(1000),
    });
    expect(await idsOf("incf-2")).toEqual(range(n(5000), n(6000)));
    const held = await readBacklog(store, "incf");
    expect(held.completedUpTo).toEqual(twoChunks);
    expect(held.records).toBe(n(5000));
    // Requeue the 500 set-aside records; the service still refuses them, so they are set aside
    // again, now as the requeue's exceptions, and the watermark stays.
    const requeue = await runJobLocally({ store, config: "incf", jobId: "incf-requeue", fromJob: "incf-1" });
    expect(requeue).toMatchObject({ status: "failed", records: n(500), exceptions: n(500) });
    expect((await readBacklog(store, "incf")).completedUpTo).toEqual(twoChunks);
    // A requeue of the requeue gets them through: resolved up the chain, job 1 becomes complete
    // and the watermark moves over both incremental jobs.
    const again = await runJobLocally({
      store,
      config: "incf",
      jobId: "incf-requeue-2",
      fromJob: "incf-requeue",
    });
    expect(again).toMatchObject({ status: "succeeded", records: n(500), processed: n(500) });
    expect(await store.exceptions.countDocuments({ config: "incf", resolution: { $exists: false } })).toBe(0);
    expect(await readBacklog(store, "incf")).toMatchObject({
      completedUpTo: { key: n(6000) - 1, id: n(6000) - 1 },
      records: 0,
    });
  });

  it("holds the watermark behind an interrupted job until it is resumed", async () => {
    const src = store.db.collection<{ _id: number }>("inci_src");
    await src.insertMany(range(0, n(5000)).map((i) => ({ _id: i })));
    const s = await service();
    await config("inci", s.url, { source: { collection: "inci_src" } });
    // Job 1 is planned, then its runner dies before serving (a recording hand-over serves nothing).
    const deps = stepDeps(store, { owner: "dead-runner", leaseMs: 200 });
    await initializeJob(deps, { config: "inci", jobId: "inci-1", mode: "incremental", maxRecords: n(2000) });
    await src.insertMany(range(n(5000), n(5500)).map((i) => ({ _id: i })));
    const second = await run("inci", { mode: "incremental" }, "inci-2");
    expect(second).toMatchObject({ status: "succeeded", records: n(3500) });
    expect(await idsOf("inci-2")).toEqual(range(n(2000), n(5500)));
    expect((await readBacklog(store, "inci")).completedUpTo).toBeUndefined();
    expect(await resumeJob(deps, "inci-1")).toBe(0);
    const resumed = await runJobLocally({ store, config: "inci", jobId: "inci-1" });
    expect(resumed).toMatchObject({ status: "succeeded", records: n(2000) });
    expect(await readBacklog(store, "inci")).toMatchObject({
      completedUpTo: { key: n(5500) - 1, id: n(5500) - 1 },
      records: 0,
    });
  });

  it("stay exact with three runners iterating in parallel while records keep arriving", async () => {
    const src = store.db.collection<{ _id: ObjectId; n: number }>("incp_src");
    let inserted = 0;
    const batch = (size: number) => range(0, size).map(() => ({ _id: new ObjectId(), n: inserted++ }));
    await src.insertMany(batch(n(5000)));
    const s = await service();
    await config("incp", s.url, {
      source: { collection: "incp_src", fields: ["n"] },
      chunking: { maxRecords: n(200) },
    });
    let inserting = true;
    const inserter = (async () => {
      for (let i = 0; i < 30 && inserting; i++) {
        await src.insertMany(batch(n(100)));
        await new Promise((r) => setTimeout(r, 15));
      }
    })();
    const runners = await Promise.all(
      ["a", "b", "c"].map((r) =>
        run("incp", { mode: "incremental", maxRecords: n(800), iterations: 6 }, `incp-${r}`),
      ),
    );
    inserting = false;
    await inserter;
    // A last sweep takes whatever the runners left.
    const sweep = await run("incp", { mode: "incremental" }, "incp-sweep");
    const jobs = [...runners.flatMap((r) => r.jobs ?? [r]), sweep];
    expect(jobs.every((j) => j.status === "succeeded")).toBe(true);
    expect(jobs.every((j) => j.records <= n(800) || j.jobId === "incp-sweep")).toBe(true);
    const sent = s.requests.flatMap((r) => r.body.records.map((x) => x.n as number));
    expect(sent).toHaveLength(inserted);
    expect(new Set(sent).size).toBe(inserted);
    const last = await src.find().sort({ _id: -1 }).limit(1).next();
    expect(await readBacklog(store, "incp")).toMatchObject({
      completedUpTo: { key: last?._id, id: last?._id },
      records: 0,
    });
  });

  it("leave records newer than source.settleMs for the next job (writers still in flight)", async () => {
    const now = Date.now();
    const src = store.db.collection<{ _id: number; at: Date }>("incs_src");
    // 5,000 records written over the last two hours, the newest 300 within the last 30 s.
    await src.insertMany(
      range(0, n(5000)).map((i) => ({
        _id: i,
        at: new Date(now - 7_200_000 + (i < n(4700) ? i * 1000 : 7_170_000 + (i - n(4700)) * 100)),
      })),
    );
    const s = await service();
    await config("incs", s.url, { source: { collection: "incs_src", orderBy: "at", settleMs: 60_000 } });
    const first = await initializeJob(stepDeps(store, { now: () => new Date(now) }), {
      config: "incs",
      jobId: "incs-1",
      mode: "incremental",
    });
    expect(first.records).toBe(n(4700));
    // A minute later the rest has settled.
    const second = await initializeJob(stepDeps(store, { now: () => new Date(now + 60_000) }), {
      config: "incs",
      jobId: "incs-2",
      mode: "incremental",
    });
    expect(second.records).toBe(n(300));
    expect(await idsOf("incs-2")).toEqual(range(n(4700), n(5000)));
    await config("incs-num", s.url, { source: { collection: "incf_src", settleMs: 1000 } });
    await expect(run("incs-num", { mode: "incremental" })).rejects.toThrow(
      "needs an order key holding dates or ObjectIds",
    );
  });

  it("lets concurrent jobs claim disjoint windows atomically", async () => {
    const src = store.db.collection<{ _id: ObjectId; n: number }>("incc_src");
    await src.insertMany(range(0, n(5000)).map((i) => ({ _id: new ObjectId(), n: i })));
    const s = await service();
    await config("incc", s.url, { source: { collection: "incc_src", fields: ["n"] } });
    // Two full runs at once, each capped at 2,500.
    const [a, b] = await Promise.all([
      run("incc", { mode: "incremental", maxRecords: n(2500) }, "incc-a"),
      run("incc", { mode: "incremental", maxRecords: n(2500) }, "incc-b"),
    ]);
    expect([a.status, b.status, a.records, b.records]).toEqual(["succeeded", "succeeded", n(2500), n(2500)]);
    const sent = s.requests.flatMap((r) => r.body.records.map((x) => x.n as number));
    expect(sent).toHaveLength(n(5000));
    expect(new Set(sent).size).toBe(n(5000));
    // Six initializers racing for windows of 1,000 over 5,000 new records: five windows, one empty.
    const more = range(0, n(5000)).map((i) => ({ _id: new ObjectId(), n: n(5000) + i }));
    await src.insertMany(more);
    const results = await Promise.all(
      range(0, 6).map((i) =>
        initializeJob(stepDeps(store, { owner: `racer-${i}` }), {
          config: "incc",
          jobId: `incc-race-${i}`,
          mode: "incremental",
          maxRecords: n(1000),
        }),
      ),
    );
    expect(results.map((r) => r.records).sort((x, y) => x - y)).toEqual([
      0,
      ...Array<number>(5).fill(n(1000)),
    ]);
    const raced = (await Promise.all(results.map((r) => idsOf(r.jobId)))).flat().map(String);
    expect(new Set(raced).size).toBe(n(5000));
    expect(raced.sort()).toEqual(more.map((d) => String(d._id)).sort());
    const seqs = (await store.jobs.find({ "lane.id": "incc" }).toArray())
      .map((j) => j.lane?.seq)
      .sort((x, y) => (x ?? 0) - (y ?? 0));
    expect(seqs).toEqual([1, 2, 3, 4, 5, 6, 7, 8]);
  });
});

describe("backfill jobs", () => {
  const base = Date.UTC(2026, 0, 1);
  const at = (i: number) => new Date(base + i * 60_000);

  it("take exactly the window, whatever arrives meanwhile; caps and iterations continue it; again starts over", async () => {
    const src = store.db.collection<{ _id: ObjectId; at: Date; i: number }>("bf_src");
    await src.insertMany(range(0, n(6000)).map((i) => ({ _id: new ObjectId(), at: at(i), i })));
    let arrivals = 0;
    const s = await service(async (req) => {
      if (req.body.jobId === "bf-1" && arrivals++ < 3) {
        // Records past `to` and before `from` arrive while the backfill runs.
        await src.insertMany([
          { _id: new ObjectId(), at: new Date(at(n(4000) - 1).getTime() + 1 + arrivals), i: -1 },
          // Half a minute before minute 500 (10 on FerretDB): outside the typed window below.
          { _id: new ObjectId(), at: new Date(at(n(500)).getTime() - 30_000), i: -2 },
        ]);
      }
      return processed;
    });
    await config("bf", s.url, { source: { collection: "bf_src", orderBy: "at", fields: ["i"] } });
    const first = await run("bf", { mode: "backfill", from: at(n(1000)), to: at(n(4000) - 1) }, "bf-1");
    expect(first).toMatchObject({ status: "succeeded", records: n(3000) });
    const sent = s.requests
      .filter((r) => r.body.jobId === "bf-1")
      .flatMap((r) => r.body.records.map((x) => x.i));
    expect(sent.sort((x, y) => (x as number) - (y as number))).toEqual(range(n(1000), n(4000)));
    expect(arrivals).toBeGreaterThan(0);
    const job = await store.jobs.findOne({ _id: "bf-1" });
    expect(job?.backfill).toEqual({ from: at(n(1000)), to: at(n(4000) - 1) });

    // A capped backfill over a window: two jobs of 600 now, the rest by a later invocation.
    const capped = await run(
      "bf",
      { mode: "backfill", from: at(0), to: at(n(2000) - 1), maxRecords: n(600), iterations: 2 },
      "bfc",
    );
    expect(capped.jobs?.map((j) => [j.jobId, j.records])).toEqual([
      ["bfc", n(600)],
      ["bfc.2", n(600)],
    ]);
    const rest = await run(
      "bf",
      { mode: "backfill", from: at(0), to: at(n(2000) - 1), maxRecords: n(600), iterations: 5 },
      "bfr",
    );
    // The three records that arrived before `from` of bf-1 are inside this window: 2,003 in all.
    expect(rest.jobs?.map((j) => j.records)).toEqual([n(600), n(200) + 3, 0]);
    const taken = (await Promise.all(["bfc", "bfc.2", "bfr", "bfr.2"].map(idsOf))).flat().map(String);
    expect(new Set(taken).size).toBe(n(2000) + 3);
    const lane = await store.watermarks.findOne({ _id: { $regex: "^bf:backfill:.*1767225600000" } });
    expect(lane?.completedUpTo?.key).toEqual(at(n(2000) - 1));
    // The whole window again: a new pass.
    const again = await run("bf", { mode: "backfill", from: at(0), to: at(n(2000) - 1), again: true }, "bfa");
    expect(again).toMatchObject({ status: "succeeded", records: n(2000) + 3 });
    // A dashboard payload with the bounds as text: read in the key's stored type (dates here).
    const typed = await initializeJob(stepDeps(store), {
      config: "bf",
      jobId: "bf-text",
      mode: "backfill",
      from: "2026-01-01T00:10",
      to: "2026-01-01T00:19:00Z",
    });
    expect(typed.records).toBe(10);
    expect((await store.jobs.findOne({ _id: "bf-text" }))?.backfill).toEqual({ from: at(10), to: at(19) });
    await expect(
      initializeJob(stepDeps(store), { config: "bf", mode: "backfill", from: "yesterday" }),
    ).rejects.toThrow("'yesterday' is not a date");
    // Backfills do not move the config's incremental watermark; each window has its own.
    const backlog = await readBacklog(store, "bf");
    expect(backlog.completedUpTo).toBeUndefined();
    expect(backlog.backfills.map((l) => [l.window.from?.key, l.pass, l.completedUpTo?.key])).toEqual([
      [at(0), 2, at(n(2000) - 1)],
      [at(10), 1, at(10)],
      [at(n(1000)), 1, at(n(4000) - 1)],
    ]);
  });
});

describe("workload caps", () => {
  it("cap weight per job; a record heavier than the cap is a job of its own", async () => {
    const src = store.db.collection<{ _id: number; w: number }>("cap_src");
    await src.insertMany(range(0, n(5000)).map((i) => ({ _id: i, w: i === n(2500) ? n(5000) : 1 })));
    const s = await service();
    await config("capw", s.url, {
      source: { collection: "cap_src", weightField: "w" },
      chunking: { maxRecords: n(100) },
      workload: { maxWeight: n(1000) },
    });
    const summary = await run("capw", { mode: "incremental", iterations: 20 }, "capw");
    // Before the heavy record (2,500 of weight 1): 1,000, 1,000, 500; after it, 2,499 the same way.
    const last = n(2500) - 1 - 2 * n(1000);
    expect(summary.jobs?.map((j) => j.records)).toEqual([
      n(1000),
      n(1000),
      n(500),
      1,
      n(1000),
      n(1000),
      last,
      0,
    ]);
    const jobs = await store.jobs.find({ config: "capw" }).sort({ "lane.seq": 1 }).toArray();
    expect(jobs.map((j) => j.planning.weight)).toEqual([
      n(1000),
      n(1000),
      n(500),
      n(5000),
      n(1000),
      n(1000),
      last,
      0,
    ]);
    expect(jobs[0]?.partitioning).toEqual({
      orderBy: "_id",
      chunking: { maxRecords: n(100) },
      workload: { maxWeight: n(1000) },
    });
  });

  it("cap records and chunks per job", async () => {
    const s = await service();
    await config("capc", s.url, { source: { collection: "cap_src" }, chunking: { maxRecords: n(100) } });
    const chunks = await run("capc", { mode: "incremental", maxChunks: 7, iterations: 3 }, "capc");
    expect(chunks.jobs?.map((j) => [j.records, j.chunks])).toEqual([
      [n(700), 7],
      [n(700), 7],
      [n(700), 7],
    ]);
    // Twelve full chunks and a part of one (1,234; 25 on FerretDB).
    const cap = Math.round(n(1234));
    const records = await run("capc", { mode: "incremental", maxRecords: cap }, "capr");
    expect(records).toMatchObject({ records: cap, chunks: 13 });
    expect(await idsOf("capr")).toEqual(range(n(2100), n(2100) + cap));
    expect((await readBacklog(store, "capc")).records).toBe(n(5000) - n(2100) - cap);
  });
});

describe("samples", () => {
  it("take every k-th or the first n records, recorded on the job, without touching the watermark", async () => {
    const s = await service();
    await config("smp", s.url, { source: { collection: "cap_src" }, chunking: { maxRecords: 10 } });
    // Every k-th of the records: 25 of them, k a tenth as large on FerretDB.
    const k = n(200);
    const every = await run("smp", { mode: "sample", sampleEvery: k }, "smp-every");
    expect(every).toMatchObject({ status: "succeeded", records: 25, chunks: 3 });
    expect(await idsOf("smp-every")).toEqual(range(0, 25).map((i) => i * k));
    // Another slice of the same partitioning: disjoint from the first.
    const slice = await run("smp", { mode: "sample", sampleEvery: k, sampleOffset: k - 1 }, "smp-slice");
    expect(slice).toMatchObject({ records: 25 });
    expect(await idsOf("smp-slice")).toEqual(range(0, 25).map((i) => i * k + k - 1));
    const first = await run("smp", { mode: "sample", sampleFirst: 42 }, "smp-first");
    expect(first).toMatchObject({ records: 42 });
    expect(await idsOf("smp-first")).toEqual(range(0, 42));
    expect((await store.jobs.findOne({ _id: "smp-every" }))?.partitioning).toEqual({
      orderBy: "_id",
      chunking: { maxRecords: 10 },
      sample: { every: k },
    });
    expect(await readBacklog(store, "smp")).toEqual({ config: "smp", records: n(5000), backfills: [] });
  });

  it("refuses mixed-up requests with messages that say what belongs where", async () => {
    const s = await service();
    await config("smp2", s.url, { source: { collection: "cap_src" } });
    await expect(run("smp2", { mode: "full", maxRecords: 5 })).rejects.toThrow(
      "belong to modes incremental and backfill",
    );
    await expect(run("smp2", { mode: "sample" })).rejects.toThrow("exactly one of sampleEvery");
    await expect(run("smp2", { mode: "sample", sampleEvery: 5, sampleOffset: 5 })).rejects.toThrow(
      "must be below it",
    );
    await expect(run("smp2", { mode: "backfill" })).rejects.toThrow("needs a window");
    await expect(run("smp2", { mode: "incremental", from: 3 })).rejects.toThrow("belong to mode backfill");
    await expect(run("smp2", { mode: "incremental", maxWeight: 3 })).rejects.toThrow(
      "needs source.weightField",
    );
    await expect(run("smp2", { mode: "backfill", from: 10, to: 5 })).rejects.toThrow("window is empty");
  });
});
