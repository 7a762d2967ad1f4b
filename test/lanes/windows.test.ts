/**
 * Windows, lanes and watermarks on ≥ 5,000 records, against a real wire connection and a fake
 * batch service on port 0: incremental jobs (records arriving while a job runs, failed and
 * interrupted jobs holding the watermark), strict backfill windows, workload caps and
 * iterations, concurrent claims, samples.
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
      chunking: { maxRecords: 500 },
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
    const docs = (from: number, to: number) => range(from, to).map((i) => ({ _id: i, t: Math.floor(i / 4) }));
    const src = store.db.collection<{ _id: number; t: number }>("inc_src");
    await src.insertMany(docs(0, 5000));
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
    expect(first).toMatchObject({ status: "succeeded", records: 5000, processed: 5000 });
    await src.insertMany(docs(5000, 6000));
    // While the second job runs, 700 more arrive: they belong to the next job, not this one.
    insertDuring = docs(6000, 6700);
    const second = await run("inc", { mode: "incremental" }, "inc-2");
    expect(second).toMatchObject({ status: "succeeded", records: 1000 });
    expect(await src.countDocuments()).toBe(6700);
    const third = await run("inc", { mode: "incremental" }, "inc-3");
    expect(third).toMatchObject({ status: "succeeded", records: 700 });
    const fourth = await run("inc", { mode: "incremental" }, "inc-4");
    expect(fourth).toMatchObject({ status: "succeeded", records: 0, chunks: 0 });

    const all = [...(await idsOf("inc-1")), ...(await idsOf("inc-2")), ...(await idsOf("inc-3"))];
    expect(all).toHaveLength(6700);
    expect(new Set(all).size).toBe(6700);
    // Delivered exactly once each.
    const delivered = s.requests.flatMap((r) => r.body.records.map((x) => x.id));
    expect(delivered).toHaveLength(6700);
    const jobs = await store.jobs.find({ config: "inc" }).sort({ "lane.seq": 1 }).toArray();
    expect(jobs.map((j) => [j.lane?.seq, j.window.from, j.window.to])).toEqual([
      [1, undefined, { key: 1249, id: 4999 }],
      [2, { key: 1249, id: 4999 }, { key: 1499, id: 5999 }],
      [3, { key: 1499, id: 5999 }, { key: 1674, id: 6699 }],
      [4, { key: 1674, id: 6699 }, null],
    ]);
    expect(await readBacklog(store, "inc")).toMatchObject({
      completedUpTo: { key: 1674, id: 6699 },
      claimedUpTo: { key: 1674, id: 6699 },
      records: 0,
    });
  });

  it("never moves the watermark past a failed chunk; a requeue of its exceptions closes the gap", async () => {
    const src = store.db.collection<{ _id: number }>("incf_src");
    await src.insertMany(range(0, 5000).map((i) => ({ _id: i })));
    const s = await service((req) =>
      (req.body.jobId === "incf-1" && req.body.chunk === 3) || req.body.jobId === "incf-requeue"
        ? { status: 400, body: '{"error":"bad"}' }
        : processed,
    );
    await config("incf", s.url, { source: { collection: "incf_src" } });
    expect(await run("incf", { mode: "incremental" }, "incf-1")).toMatchObject({
      status: "failed",
      records: 5000,
      exceptions: 500,
    });
    // Chunks 1-2 (records 0-999) done in order: the watermark stops there.
    expect((await readBacklog(store, "incf")).completedUpTo).toEqual({ key: 999, id: 999 });
    await src.insertMany(range(5000, 6000).map((i) => ({ _id: i })));
    // New records still flow: the next job takes what is new, not the failed range again.
    expect(await run("incf", { mode: "incremental" }, "incf-2")).toMatchObject({
      status: "succeeded",
      records: 1000,
    });
    expect(await idsOf("incf-2")).toEqual(range(5000, 6000));
    const held = await readBacklog(store, "incf");
    expect(held.completedUpTo).toEqual({ key: 999, id: 999 });
    expect(held.records).toBe(5000);
    // Requeue the 500 set-aside records; the service still refuses them, so they are set aside
    // again, now as the requeue's exceptions, and the watermark stays.
    const requeue = await runJobLocally({ store, config: "incf", jobId: "incf-requeue", fromJob: "incf-1" });
    expect(requeue).toMatchObject({ status: "failed", records: 500, exceptions: 500 });
    expect((await readBacklog(store, "incf")).completedUpTo).toEqual({ key: 999, id: 999 });
    // A requeue of the requeue gets them through: resolved up the chain, job 1 becomes complete
    // and the watermark moves over both incremental jobs.
    const again = await runJobLocally({
      store,
      config: "incf",
      jobId: "incf-requeue-2",
      fromJob: "incf-requeue",
    });
    expect(again).toMatchObject({ status: "succeeded", records: 500, processed: 500 });
    expect(await store.exceptions.countDocuments({ config: "incf", resolution: { $exists: false } })).toBe(0);
    expect(await readBacklog(store, "incf")).toMatchObject({
      completedUpTo: { key: 5999, id: 5999 },
      records: 0,
    });
  });

  it("holds the watermark behind an interrupted job until it is resumed", async () => {
    const src = store.db.collection<{ _id: number }>("inci_src");
    await src.insertMany(range(0, 5000).map((i) => ({ _id: i })));
    const s = await service();
    await config("inci", s.url, { source: { collection: "inci_src" } });
    // Job 1 is planned, then its runner dies before serving (a recording hand-over serves nothing).
    const deps = stepDeps(store, { owner: "dead-runner", leaseMs: 200 });
    await initializeJob(deps, { config: "inci", jobId: "inci-1", mode: "incremental", maxRecords: 2000 });
    await src.insertMany(range(5000, 5500).map((i) => ({ _id: i })));
    const second = await run("inci", { mode: "incremental" }, "inci-2");
    expect(second).toMatchObject({ status: "succeeded", records: 3500 });
    expect(await idsOf("inci-2")).toEqual(range(2000, 5500));
    expect((await readBacklog(store, "inci")).completedUpTo).toBeUndefined();
    expect(await resumeJob(deps, "inci-1")).toBe(0);
    const resumed = await runJobLocally({ store, config: "inci", jobId: "inci-1" });
    expect(resumed).toMatchObject({ status: "succeeded", records: 2000 });
    expect(await readBacklog(store, "inci")).toMatchObject({
      completedUpTo: { key: 5499, id: 5499 },
      records: 0,
    });
  });

  it("stay exact with three runners iterating in parallel while records keep arriving", async () => {
    const src = store.db.collection<{ _id: ObjectId; n: number }>("incp_src");
    let n = 0;
    const batch = (size: number) => range(0, size).map(() => ({ _id: new ObjectId(), n: n++ }));
    await src.insertMany(batch(5000));
    const s = await service();
    await config("incp", s.url, {
      source: { collection: "incp_src", fields: ["n"] },
      chunking: { maxRecords: 200 },
    });
    let inserting = true;
    const inserter = (async () => {
      for (let i = 0; i < 30 && inserting; i++) {
        await src.insertMany(batch(100));
        await new Promise((r) => setTimeout(r, 15));
      }
    })();
    const runners = await Promise.all(
      ["a", "b", "c"].map((r) =>
        run("incp", { mode: "incremental", maxRecords: 800, iterations: 6 }, `incp-${r}`),
      ),
    );
    inserting = false;
    await inserter;
    // A last sweep takes whatever the runners left.
    const sweep = await run("incp", { mode: "incremental" }, "incp-sweep");
    const jobs = [...runners.flatMap((r) => r.jobs ?? [r]), sweep];
    expect(jobs.every((j) => j.status === "succeeded")).toBe(true);
    expect(jobs.every((j) => j.records <= 800 || j.jobId === "incp-sweep")).toBe(true);
    const sent = s.requests.flatMap((r) => r.body.records.map((x) => x.n as number));
    expect(sent).toHaveLength(n);
    expect(new Set(sent).size).toBe(n);
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
      range(0, 5000).map((i) => ({
        _id: i,
        at: new Date(now - 7_200_000 + (i < 4700 ? i * 1000 : 7_170_000 + (i - 4700) * 100)),
      })),
    );
    const s = await service();
    await config("incs", s.url, { source: { collection: "incs_src", orderBy: "at", settleMs: 60_000 } });
    const first = await initializeJob(stepDeps(store, { now: () => new Date(now) }), {
      config: "incs",
      jobId: "incs-1",
      mode: "incremental",
    });
    expect(first.records).toBe(4700);
    // A minute later the rest has settled.
    const second = await initializeJob(stepDeps(store, { now: () => new Date(now + 60_000) }), {
      config: "incs",
      jobId: "incs-2",
      mode: "incremental",
    });
    expect(second.records).toBe(300);
    expect(await idsOf("incs-2")).toEqual(range(4700, 5000));
    await config("incs-num", s.url, { source: { collection: "incf_src", settleMs: 1000 } });
    await expect(run("incs-num", { mode: "incremental" })).rejects.toThrow(
      "needs an order key holding dates or ObjectIds",
    );
  });

  it("lets concurrent jobs claim disjoint windows atomically", async () => {
    const src = store.db.collection<{ _id: ObjectId; n: number }>("incc_src");
    await src.insertMany(range(0, 5000).map((n) => ({ _id: new ObjectId(), n })));
    const s = await service();
    await config("incc", s.url, { source: { collection: "incc_src", fields: ["n"] } });
    // Two full runs at once, each capped at 2,500.
    const [a, b] = await Promise.all([
      run("incc", { mode: "incremental", maxRecords: 2500 }, "incc-a"),
      run("incc", { mode: "incremental", maxRecords: 2500 }, "incc-b"),
    ]);
    expect([a.status, b.status, a.records, b.records]).toEqual(["succeeded", "succeeded", 2500, 2500]);
    const sent = s.requests.flatMap((r) => r.body.records.map((x) => x.n as number));
    expect(sent).toHaveLength(5000);
    expect(new Set(sent).size).toBe(5000);
    // Six initializers racing for windows of 1,000 over 5,000 new records: five windows, one empty.
    const more = range(0, 5000).map((n) => ({ _id: new ObjectId(), n: 5000 + n }));
    await src.insertMany(more);
    const results = await Promise.all(
      range(0, 6).map((i) =>
        initializeJob(stepDeps(store, { owner: `racer-${i}` }), {
          config: "incc",
          jobId: `incc-race-${i}`,
          mode: "incremental",
          maxRecords: 1000,
        }),
      ),
    );
    expect(results.map((r) => r.records).sort((x, y) => x - y)).toEqual([0, 1000, 1000, 1000, 1000, 1000]);
    const raced = (await Promise.all(results.map((r) => idsOf(r.jobId)))).flat().map(String);
    expect(new Set(raced).size).toBe(5000);
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
    await src.insertMany(range(0, 6000).map((i) => ({ _id: new ObjectId(), at: at(i), i })));
    let arrivals = 0;
    const s = await service(async (req) => {
      if (req.body.jobId === "bf-1" && arrivals++ < 3) {
        // Records past `to` and before `from` arrive while the backfill runs.
        await src.insertMany([
          { _id: new ObjectId(), at: new Date(at(3999).getTime() + 1 + arrivals), i: -1 },
          { _id: new ObjectId(), at: new Date(at(500).getTime() + 30_000), i: -2 },
        ]);
      }
      return processed;
    });
    await config("bf", s.url, { source: { collection: "bf_src", orderBy: "at", fields: ["i"] } });
    const first = await run("bf", { mode: "backfill", from: at(1000), to: at(3999) }, "bf-1");
    expect(first).toMatchObject({ status: "succeeded", records: 3000 });
    const sent = s.requests
      .filter((r) => r.body.jobId === "bf-1")
      .flatMap((r) => r.body.records.map((x) => x.i));
    expect(sent.sort((x, y) => (x as number) - (y as number))).toEqual(range(1000, 4000));
    expect(arrivals).toBeGreaterThan(0);
    const job = await store.jobs.findOne({ _id: "bf-1" });
    expect(job?.backfill).toEqual({ from: at(1000), to: at(3999) });

    // A capped backfill over a window: two jobs of 600 now, the rest by a later invocation.
    const capped = await run(
      "bf",
      { mode: "backfill", from: at(0), to: at(1999), maxRecords: 600, iterations: 2 },
      "bfc",
    );
    expect(capped.jobs?.map((j) => [j.jobId, j.records])).toEqual([
      ["bfc", 600],
      ["bfc.2", 600],
    ]);
    const rest = await run(
      "bf",
      { mode: "backfill", from: at(0), to: at(1999), maxRecords: 600, iterations: 5 },
      "bfr",
    );
    // The three records that arrived before `from` of bf-1 are inside this window: 2,003 in all.
    expect(rest.jobs?.map((j) => j.records)).toEqual([600, 203, 0]);
    const taken = (await Promise.all(["bfc", "bfc.2", "bfr", "bfr.2"].map(idsOf))).flat().map(String);
    expect(new Set(taken).size).toBe(2003);
    const lane = await store.watermarks.findOne({ _id: { $regex: "^bf:backfill:.*1767225600000" } });
    expect(lane?.completedUpTo?.key).toEqual(at(1999));
    // The whole window again: a new pass.
    const again = await run("bf", { mode: "backfill", from: at(0), to: at(1999), again: true }, "bfa");
    expect(again).toMatchObject({ status: "succeeded", records: 2003 });
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
      [at(0), 2, at(1999)],
      [at(10), 1, at(10)],
      [at(1000), 1, at(3999)],
    ]);
  });
});

describe("workload caps", () => {
  it("cap weight per job; a record heavier than the cap is a job of its own", async () => {
    const src = store.db.collection<{ _id: number; w: number }>("cap_src");
    await src.insertMany(range(0, 5000).map((i) => ({ _id: i, w: i === 2500 ? 5000 : 1 })));
    const s = await service();
    await config("capw", s.url, {
      source: { collection: "cap_src", weightField: "w" },
      chunking: { maxRecords: 100 },
      workload: { maxWeight: 1000 },
    });
    const summary = await run("capw", { mode: "incremental", iterations: 20 }, "capw");
    expect(summary.jobs?.map((j) => j.records)).toEqual([1000, 1000, 500, 1, 1000, 1000, 499, 0]);
    const jobs = await store.jobs.find({ config: "capw" }).sort({ "lane.seq": 1 }).toArray();
    expect(jobs.map((j) => j.planning.weight)).toEqual([1000, 1000, 500, 5000, 1000, 1000, 499, 0]);
    expect(jobs[0]?.partitioning).toEqual({
      orderBy: "_id",
      chunking: { maxRecords: 100 },
      workload: { maxWeight: 1000 },
    });
  });

  it("cap records and chunks per job", async () => {
    const s = await service();
    await config("capc", s.url, { source: { collection: "cap_src" }, chunking: { maxRecords: 100 } });
    const chunks = await run("capc", { mode: "incremental", maxChunks: 7, iterations: 3 }, "capc");
    expect(chunks.jobs?.map((j) => [j.records, j.chunks])).toEqual([
      [700, 7],
      [700, 7],
      [700, 7],
    ]);
    const records = await run("capc", { mode: "incremental", maxRecords: 1234 }, "capr");
    expect(records).toMatchObject({ records: 1234, chunks: 13 });
    expect(await idsOf("capr")).toEqual(range(2100, 3334));
    expect((await readBacklog(store, "capc")).records).toBe(5000 - 2100 - 1234);
  });
});

describe("samples", () => {
  it("take every k-th or the first n records, recorded on the job, without touching the watermark", async () => {
    const s = await service();
    await config("smp", s.url, { source: { collection: "cap_src" }, chunking: { maxRecords: 10 } });
    const every = await run("smp", { mode: "sample", sampleEvery: 200 }, "smp-every");
    expect(every).toMatchObject({ status: "succeeded", records: 25, chunks: 3 });
    expect(await idsOf("smp-every")).toEqual(range(0, 25).map((i) => i * 200));
    // Another slice of the same partitioning: disjoint from the first.
    const slice = await run("smp", { mode: "sample", sampleEvery: 200, sampleOffset: 199 }, "smp-slice");
    expect(slice).toMatchObject({ records: 25 });
    expect(await idsOf("smp-slice")).toEqual(range(0, 25).map((i) => i * 200 + 199));
    const first = await run("smp", { mode: "sample", sampleFirst: 42 }, "smp-first");
    expect(first).toMatchObject({ records: 42 });
    expect(await idsOf("smp-first")).toEqual(range(0, 42));
    expect((await store.jobs.findOne({ _id: "smp-every" }))?.partitioning).toEqual({
      orderBy: "_id",
      chunking: { maxRecords: 10 },
      sample: { every: 200 },
    });
    expect(await readBacklog(store, "smp")).toEqual({ config: "smp", records: 5000, backfills: [] });
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
