/**
 * The interleavings that once broke exactly-once delivery, written out one by one over the real
 * wire connection: each actor has its own store (`test/support/interleave.ts`), and the test stops
 * one at a chosen call, moves another, and lets the first go on — or kills it there. The
 * simulation (`test/simulation`) finds such orders at random; these pin the ones we fixed.
 */
import { beforeAll, describe, expect, it } from "vitest";
import { saveConfig } from "../../src/store/configs.js";
import { dispatchJob } from "../../src/steps/dispatch/dispatch.js";
import type { StepDeps } from "../../src/steps/handover.js";
import { healStalledJobs } from "../../src/jobs/heal-stalled-jobs.js";
import { initializeJob } from "../../src/steps/initialize/initialize.js";
import type { Store } from "../../src/store/store.js";
import { watchChunk } from "../../src/steps/watch/watch.js";
import { Crashed, Interleaving, callOf } from "../support/interleave.js";
import { waitUntil } from "../support/wait.js";
import {
  type FakeReply,
  type FakeRequest,
  recordingHandOver,
  startFakeService,
  stepDeps,
  usePipelineStore,
} from "../support/pipeline.js";

const { t, cleanups, store: currentStore } = usePipelineStore("interleavings");
let store: Store;
beforeAll(() => {
  store = currentStore();
});

type Recording = ReturnType<typeof recordingHandOver>;

/** Runs the recorded hand-overs (and those they record) until none is left. */
async function drive(deps: StepDeps & { handOver: Recording }): Promise<void> {
  for (let i = 0; i < 500; i++) {
    const call = deps.handOver.calls.shift();
    if (!call) return;
    switch (call.kind) {
      case "serve":
        await dispatchJob(deps, call.payload);
        break;
      case "watch":
        await watchChunk(deps, call.payload, { maxPolls: 1_000, maxRunMs: 20_000 });
        break;
      case "initialize":
        await initializeJob(deps, call.payload);
        break;
      default: {
        const never: never = call;
        throw new Error(`unexpected hand-over ${JSON.stringify(never)}`);
      }
    }
  }
  throw new Error("the hand-overs did not come to an end");
}

/** A fresh source and config; the service answers as `decide` says (default: accept, report). */
async function setUp(
  name: string,
  records: number,
  decide: (req: FakeRequest, n: number) => FakeReply | Promise<FakeReply> = () => ({
    status: 202,
    report: "processed",
  }),
  extra: Record<string, unknown> = {},
) {
  await store.db
    .collection(name)
    .insertMany(Array.from({ length: records }, (_, i) => ({ _id: i as never, v: i })));
  const service = await startFakeService(store, decide);
  cleanups.push(() => service.stop());
  await saveConfig(
    store,
    {
      name,
      source: { collection: name },
      chunking: { maxRecords: 10 },
      target: { url: service.url, timeoutMs: 30_000 },
      maxInFlight: 1,
      watch: { pollIntervalMs: 10, chunkTimeoutMs: 600_000 },
      ...extra,
    },
    new Date(),
  );
  return service;
}

/** Per job and record id, the idempotency keys under which the service was sent it. */
function keysPerRecord(requests: FakeRequest[]): Map<string, Set<string>> {
  const keys = new Map<string, Set<string>>();
  for (const r of requests) {
    for (const rec of r.body.records) {
      const id = `${r.body.jobId}|${JSON.stringify(rec.id)}`;
      const set = keys.get(id) ?? new Set<string>();
      set.add(r.key);
      keys.set(id, set);
    }
  }
  return keys;
}

const deps = (s: Store, overrides: Partial<StepDeps> = {}) =>
  stepDeps(s, { handOver: recordingHandOver(), ...overrides }) as StepDeps & { handOver: Recording };

describe("written-out interleavings", () => {
  it("a server that catches up with planning never closes the job before its last chunk: at every point of its run", async () => {
    // Break 1: the server read "no unfinished chunk", the planner then wrote its last group and
    // set planning done, the server read "planning done" and closed the job: succeeded, with its
    // last chunk pending forever. Here the planner's last group lands before each call of the
    // server's run in turn.
    const service = await setUp("gate_src", 30);
    for (let point = 1; ; point++) {
      const jobId = `gate-${point}`;
      const il = new Interleaving(t.db());
      const planner = deps(il.storeFor("planner"), { owner: "planner", planningBatch: 10 });
      // The planner writes groups of one chunk; it stops before writing the third.
      let groups = 0;
      const plannerAtLastGroup = il.pauseAt(
        (c) => callOf("planner", "chunks", "insertMany")(c) && ++groups === 3,
      );
      const planning = initializeJob(planner, { config: "gate_src", jobId });
      await plannerAtLastGroup.reached;
      // The planner writes a group while its earlier checkpoints are still in flight (they overlap
      // reading the next group), so reaching the third group's insert does not mean the second
      // group's checkpoint has landed; on a slower server the helper below read planning.nextChunk
      // 1 or 2 and served fewer than two chunks. Wait for the checkpoint that commits chunks 1–2.
      await waitUntil(async () => (await store.jobs.findOne({ _id: jobId }))?.planning.nextChunk === 3, {
        what: "the planner's checkpoint committing chunks 1 and 2",
        context: () => JSON.stringify(il.calls.map((c) => `${c.actor}:${c.collection}.${c.method}`)),
      });
      // Chunks 1 and 2 are committed: serve and watch them to the end.
      const helper = deps(store, { owner: "helper" });
      await dispatchJob(helper, { jobId });
      await drive(helper);
      expect(await store.chunks.countDocuments({ jobId, done: true })).toBe(2);

      // The server under test; the planner finishes its last group just before its `point`-th call.
      const server = deps(il.storeFor("server"), { owner: "server" });
      let calls = 0;
      const serverAtPoint = il.pauseAt((c) => c.actor === "server" && ++calls === point);
      const serving = dispatchJob(server, { jobId });
      const paused = await Promise.race([serverAtPoint.reached.then(() => true), serving.then(() => false)]);
      if (paused) {
        plannerAtLastGroup.release();
        await planning;
        serverAtPoint.release();
      } else {
        serverAtPoint.release(); // past the end of the server's run: let it never stop
        plannerAtLastGroup.release();
        await planning;
      }
      await serving;
      const job = await store.jobs.findOne({ _id: jobId });
      if (job?.status === "succeeded") {
        // Closed only if every committed chunk and record really is done.
        expect(job.planning.done).toBe(true);
        expect(await store.chunks.countDocuments({ jobId, done: false })).toBe(0);
        expect(await store.details.countDocuments({ jobId, status: { $ne: "processed" } })).toBe(0);
      }
      // And the job comes to its end with every record sent once.
      server.handOver.calls.push({ kind: "serve", payload: { jobId }, key: "again" });
      await drive(server);
      expect(await store.jobs.findOne({ _id: jobId })).toMatchObject({
        status: "succeeded",
        totals: { records: 30, processed: 30 },
      });
      if (!paused) break; // the server's whole run was covered
    }
    const keys = keysPerRecord(service.requests);
    expect([...keys.values()].every((k) => k.size === 1)).toBe(true);
  });

  it("a planner that dies before its checkpoint: nothing past it is sent, and the resumed planner sends nothing twice", async () => {
    // Break 2: the planner died after writing a group but before its checkpoint; serving sent and
    // finished those chunks; the resumed planner deleted everything past its checkpoint and wrote
    // it again — processed statuses wiped, the chunks sent again.
    const service = await setUp("replan_src", 30);
    const jobId = "replan";
    const il = new Interleaving(t.db());
    const planner = deps(il.storeFor("planner"), { owner: "planner", planningBatch: 10, leaseMs: 1 });
    let checkpoints = 0;
    // Only checkpoints count: with a 1 ms lease the planner also renews its lease, as often as a
    // loaded machine lets its timer fire.
    il.crashAt(
      (c) =>
        callOf("planner", "jobs", "updateOne")(c) &&
        JSON.stringify(c.args[1]).includes('"planning.nextChunk"') &&
        ++checkpoints === 3,
    );
    await expect(initializeJob(planner, { config: "replan_src", jobId })).rejects.toBeInstanceOf(Crashed);
    // The third group's chunk is written, past the checkpoint.
    const job = await store.jobs.findOne({ _id: jobId });
    expect(job?.planning).toMatchObject({ nextChunk: 3, done: false });
    expect(await store.chunks.countDocuments({ jobId, chunk: 3 })).toBe(1);

    // Serving goes on: chunks 1 and 2 only.
    const server = deps(store, { owner: "server" });
    await dispatchJob(server, { jobId });
    await drive(server);
    expect(await store.chunks.findOne({ jobId, chunk: 3 })).toMatchObject({ status: "pending" });
    expect(service.requests.map((r) => r.body.chunk)).toEqual([1, 2]);

    // The planner is resumed (its lease has lapsed): it cuts chunk 3 again; the job ends.
    const resumed = deps(store, { owner: "resumed", planningBatch: 10 });
    await expect(initializeJob(resumed, { config: "replan_src", jobId })).resolves.toMatchObject({
      records: 30,
      chunks: 3,
    });
    resumed.handOver.calls.push({ kind: "serve", payload: { jobId }, key: "after-resume" });
    await drive(resumed);
    expect(await store.jobs.findOne({ _id: jobId })).toMatchObject({
      status: "succeeded",
      totals: { records: 30, processed: 30 },
    });
    const keys = keysPerRecord(service.requests);
    expect(keys.size).toBe(30);
    expect([...keys.values()].every((k) => k.size === 1)).toBe(true);
    expect(service.requests).toHaveLength(3);
  });

  it("a stalled planner's late clean-up cannot touch what a later planner committed", async () => {
    // Found by the simulation (seed 34): a planner stalled at its start-up clean-up ("remove what
    // lies past the checkpoint"), lost its lease, and ran the delete after another planner had
    // planned the whole job and the service had processed it.
    const service = await setUp("epoch_src", 30);
    const jobId = "epoch";
    const il = new Interleaving(t.db());
    // P1 is stalled: its lease (1 ms) is never renewed.
    const stalled = (_ms: number, signal?: AbortSignal) =>
      new Promise<void>((_, reject) => signal?.addEventListener("abort", () => reject(new Error("stopped"))));
    const stale = deps(il.storeFor("P1"), { owner: "P1", planningBatch: 10, leaseMs: 1, timer: stalled });
    const cleanUp = il.pauseAt(callOf("P1", "details", "deleteMany"));
    const stalePlanning = initializeJob(stale, { config: "epoch_src", jobId });
    await cleanUp.reached;
    // P1's lease lapses; P2 plans the whole job, and it is served to the end.
    const p2 = deps(store, { owner: "P2", planningBatch: 10 });
    await expect(initializeJob(p2, { config: "epoch_src", jobId })).resolves.toMatchObject({ records: 30 });
    await drive(p2);
    expect(await store.jobs.findOne({ _id: jobId })).toMatchObject({ status: "succeeded" });
    // P1 wakes up: its delete and its writes change nothing, and it stops at its checkpoint.
    cleanUp.release();
    await expect(stalePlanning).rejects.toThrow(/planning lease was lost/);
    expect(await store.details.countDocuments({ jobId, status: "processed" })).toBe(30);
    expect(await store.chunks.countDocuments({ jobId, status: "processed" })).toBe(3);
    expect(service.requests).toHaveLength(3);
  });

  it("a crash right after a job's final status: a replayed server run, or the healer, settles it", async () => {
    // Break 3: the crash left the job `succeeded` with its completion, watermark and full-job lock
    // never written; every later full run was refused ("already has an active job") for good.
    await setUp("settle_src", 20);
    for (const recovery of ["replay", "healer"] as const) {
      const jobId = `settle-${recovery}`;
      const il = new Interleaving(t.db());
      const runner = deps(il.storeFor("runner"), { owner: "runner" });
      let finalWritten = false;
      il.crashAt((c) => {
        if (finalWritten) return c.actor === "runner";
        finalWritten =
          callOf("runner", "jobs", "updateOne")(c) && JSON.stringify(c.args[1]).includes('"unsettled":true');
        return false;
      });
      await initializeJob(runner, { config: "settle_src", jobId, mode: "full" });
      await expect(drive(runner)).rejects.toBeInstanceOf(Crashed);
      expect(await store.jobs.findOne({ _id: jobId })).toMatchObject({
        status: "succeeded",
        unsettled: true,
      });
      expect(await store.watermarks.findOne({ _id: "settle_src" })).toMatchObject({ activeJob: jobId });

      const next = deps(store, { owner: "next" });
      if (recovery === "replay") {
        await dispatchJob(next, { jobId });
      } else {
        const healer = recordingHandOver();
        await healStalledJobs(
          { store, now: () => new Date(Date.now() + 3_600_000), handOver: healer },
          { staleAfterMs: 0 },
        );
        expect(healer.calls).toContainEqual(expect.objectContaining({ kind: "serve", payload: { jobId } }));
        next.handOver.calls.push(...healer.calls);
        await drive(next);
      }
      const settled = await store.jobs.findOne({ _id: jobId });
      expect(settled?.status).toBe("succeeded");
      expect(settled?.unsettled).toBeUndefined();
      expect(await store.watermarks.findOne({ _id: "settle_src" })).toMatchObject({ activeJob: null });
      // The lane is free: the next full run starts.
      await expect(
        initializeJob(next, { config: "settle_src", jobId: `${jobId}-next`, mode: "full" }),
      ).resolves.toMatchObject({ jobId: `${jobId}-next` });
      next.handOver.calls.push({ kind: "serve", payload: { jobId: `${jobId}-next` }, key: "next" });
      await drive(next);
    }
  });

  it("a replayed initializer that claims the lock after its full job finished leaves it free", async () => {
    // Found by the simulation (seed 7300): a dashboard replay of the initializer stalled just
    // before claiming the config; the first run then ran the job to its end and released the
    // lock; the replay woke, claimed it, found the job finished — and held the lock for good.
    await setUp("relock_src", 10);
    const jobId = "relock";
    const il = new Interleaving(t.db());
    const replay = deps(il.storeFor("replay"));
    const claim = il.pauseAt(callOf("replay", "watermarks", "updateOne"));
    const replaying = initializeJob(replay, { config: "relock_src", jobId, mode: "full" });
    await claim.reached;
    const first = deps(store);
    await initializeJob(first, { config: "relock_src", jobId, mode: "full" });
    await drive(first);
    expect(await store.jobs.findOne({ _id: jobId })).toMatchObject({ status: "succeeded" });
    claim.release();
    await replaying;
    expect(await store.watermarks.findOne({ _id: "relock_src" })).toMatchObject({ activeJob: null });
    await expect(
      initializeJob(deps(store), { config: "relock_src", jobId: "relock-2", mode: "full" }),
    ).resolves.toMatchObject({ jobId: "relock-2" });
  });

  it("a stale runner's late 4xx does not fail a chunk another runner delivered", async () => {
    // Break 4: runner A's lease lapsed while its POST hung; runner B took the chunk over and was
    // accepted; A's request then came back 400 and A set the records aside and failed the chunk.
    let answerA!: () => void;
    const aAnswered = new Promise<void>((r) => (answerA = r));
    let aArrived!: () => void;
    const aAtService = new Promise<void>((r) => (aArrived = r));
    await setUp("stale_src", 10, async (_req, n) => {
      if (n === 1) {
        aArrived();
        await aAnswered;
        return { status: 400, body: '{"error":"bad chunk"}' };
      }
      return { status: 202, report: "processed" };
    });
    const jobId = "stale";
    await initializeJob(deps(store), { config: "stale_src", jobId });
    // A never renews its lease (a stalled process): its timer never fires.
    const stalled = (_ms: number, signal?: AbortSignal) =>
      new Promise<void>((_, reject) => signal?.addEventListener("abort", () => reject(new Error("stopped"))));
    const a = deps(store, { owner: "A", timer: stalled });
    const serving = dispatchJob(a, { jobId });
    await aAtService;
    // B's clock is past A's lease: it takes the chunk over, under the same key, and is accepted.
    // A's late 400 lands just before B records the chunk as sent.
    const il = new Interleaving(t.db());
    const b = deps(il.storeFor("B"), { owner: "B", now: () => new Date(Date.now() + 3_600_000) });
    const bMarksSent = il.pauseAt(
      (c) => callOf("B", "chunks", "updateOne")(c) && JSON.stringify(c.args[1]).includes('"status":"sent"'),
    );
    const bServing = dispatchJob(b, { jobId });
    await bMarksSent.reached;
    answerA();
    await serving;
    expect(await store.exceptions.countDocuments({ jobId })).toBe(0);
    expect(await store.chunks.findOne({ jobId, chunk: 1 })).toMatchObject({
      status: "dispatching",
      lease: { owner: "B" },
    });
    bMarksSent.release();
    await bServing;
    expect(await store.chunks.findOne({ jobId, chunk: 1 })).toMatchObject({ status: "sent", attempt: 1 });
    await drive(b);
    expect(await store.jobs.findOne({ _id: jobId })).toMatchObject({
      status: "succeeded",
      totals: { records: 10, processed: 10, exceptions: 0 },
    });
  });

  it("a stale runner that builds its body late sends the attempt's records, not the next attempt's", async () => {
    // Found by the simulation (seeds 4136, 4880, 7101, 9387, 11486, 11656 of 10,000): runner A
    // stalled between marking attempt 1 and building its body; attempt 1 was delivered by B,
    // partly failed, and attempt 2 re-marked the failed records; A then built attempt 1's body
    // from the records still marked 1 and sent fewer records under the key `…:1:1`.
    const service = await setUp("body_src", 10, () => ({ status: 202 }), { retry: { maxAttempts: 2 } });
    const jobId = "body";
    await initializeJob(deps(store), { config: "body_src", jobId });
    const il = new Interleaving(t.db());
    const stalled = (_ms: number, signal?: AbortSignal) =>
      new Promise<void>((_, reject) => signal?.addEventListener("abort", () => reject(new Error("stopped"))));
    const a = deps(il.storeFor("A"), { owner: "A", timer: stalled });
    const building = il.pauseAt(callOf("A", "details", "find"));
    const serving = dispatchJob(a, { jobId });
    await building.reached;
    // B takes over (A's lease lapsed), attempt 1 goes out; three records fail, seven are processed.
    const later = deps(store, { owner: "B", now: () => new Date(Date.now() + 3_600_000) });
    await dispatchJob(later, { jobId });
    const ids = service.requests[0]?.body.records.map((r) => r.id) ?? [];
    expect(ids).toHaveLength(10);
    await store.details.updateMany(
      { jobId, recordId: { $in: ids.slice(0, 3) }, status: "sent", attempts: 1 },
      { $set: { status: "failed", attempt: 1, error: "failed in attempt 1" } },
    );
    await store.details.updateMany(
      { jobId, recordId: { $in: ids.slice(3) }, status: "sent", attempts: 1 },
      { $set: { status: "processed", attempt: 1 } },
    );
    await watchChunk(later, { jobId, chunk: 1, attempt: 1 }, { maxPolls: 1, maxRunMs: 10_000 });
    await dispatchJob(later, { jobId });
    expect(service.requests.map((r) => [r.key, r.body.records.length])).toEqual([
      [`${jobId}:1:1`, 10],
      [`${jobId}:1:2`, 3],
    ]);
    // A wakes up and sends its (late) attempt 1: the same ten records under the same key.
    building.release();
    await serving;
    const firstKey = service.requests.filter((r) => r.key === `${jobId}:1:1`);
    expect(firstKey).toHaveLength(2);
    const sets = firstKey.map((r) => JSON.stringify(r.body.records.map((x) => x.id).sort()));
    expect(sets[1]).toBe(sets[0]);
  });

  it("the chunk lease is renewed for the whole delivery, marking records included", async () => {
    // Also found: the lease was renewed only around the POST; a runner slow to mark records lost
    // its chunk to another runner while still delivering it.
    const service = await setUp("lease_src", 10);
    const jobId = "lease";
    await initializeJob(deps(store), { config: "lease_src", jobId });
    const il = new Interleaving(t.db());
    const t0 = Date.now();
    let clock = t0;
    let tick!: () => void;
    const manualTimer = (_ms: number, signal?: AbortSignal) =>
      new Promise<void>((resolve, reject) => {
        tick = resolve;
        signal?.addEventListener("abort", () => reject(new Error("stopped")));
      });
    const a = deps(il.storeFor("A"), {
      owner: "A",
      now: () => new Date(clock),
      timer: manualTimer,
      leaseMs: 10_000,
    });
    // A stops while marking the chunk's records (before its POST).
    const marking = il.pauseAt(callOf("A", "details"));
    const serving = dispatchJob(a, { jobId });
    await marking.reached;
    const claimed = await store.chunks.findOne({ jobId, chunk: 1 });
    expect(claimed?.lease?.owner).toBe("A");
    // Most of a lease period later, A's heartbeat fires while it is still marking.
    clock = t0 + 9_000;
    tick();
    const deadline = Date.now() + 10_000;
    for (;;) {
      const c = await store.chunks.findOne({ jobId, chunk: 1 });
      if ((c?.lease?.expiresAt.getTime() ?? 0) >= t0 + 19_000) break;
      if (Date.now() > deadline) throw new Error(`lease not renewed: ${JSON.stringify(c?.lease)}`);
      await new Promise((r) => setTimeout(r, 5));
    }
    // Past the first lease, another runner finds the chunk taken.
    const b = deps(store, { owner: "B", now: () => new Date(t0 + 12_000) });
    await expect(dispatchJob(b, { jobId })).resolves.toMatchObject({ outcome: "idle" });
    marking.release();
    await serving;
    await drive(a);
    expect(service.requests.map((r) => r.key)).toEqual([`${jobId}:1:1`]);
    expect(await store.jobs.findOne({ _id: jobId })).toMatchObject({ status: "succeeded" });
  });

  it("a late failed report of an older attempt does not count against the current one", async () => {
    // Also found: statuses carried no attempt, so a `failed` report from attempt 1 arriving after
    // attempt 2 went out failed attempt 2's records.
    const service = await setUp("fence_src", 10, () => ({ status: 202 }), {
      retry: { maxAttempts: 2 },
      watch: { pollIntervalMs: 10, chunkTimeoutMs: 1_000 },
    });
    const jobId = "fence";
    await initializeJob(deps(store), { config: "fence_src", jobId });
    const runner = deps(store);
    await dispatchJob(runner, { jobId });
    // Attempt 1 is accepted but never reported: past the timeout it goes out again as attempt 2.
    const later = deps(store, { now: () => new Date(Date.now() + 60_000) });
    await watchChunk(later, { jobId, chunk: 1, attempt: 1 }, { maxPolls: 1, maxRunMs: 10_000 });
    await dispatchJob(later, { jobId });
    expect(service.requests.map((r) => r.key)).toEqual([`${jobId}:1:1`, `${jobId}:1:2`]);
    const ids = service.requests[1]?.body.records.map((r) => r.id) ?? [];
    // The service's late report of attempt 1: three records failed (it names its attempt).
    await store.details.updateMany(
      { jobId, recordId: { $in: ids.slice(0, 3) } },
      { $set: { status: "failed", attempt: 1, error: "attempt 1 failed" } },
    );
    // Attempt 2's report: the others processed, fenced on the attempt.
    await store.details.updateMany(
      { jobId, recordId: { $in: ids.slice(3) }, status: "sent", attempts: 2 },
      { $set: { status: "processed", attempt: 2 } },
    );
    await watchChunk(later, { jobId, chunk: 1, attempt: 2 }, { maxPolls: 1, maxRunMs: 10_000 });
    // Attempt 2 is still waiting for those three: not failed, nothing set aside.
    expect(await store.chunks.findOne({ jobId, chunk: 1 })).toMatchObject({ status: "sent", attempt: 2 });
    expect(await store.exceptions.countDocuments({ jobId })).toBe(0);
  });
});
