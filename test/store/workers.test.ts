/** The `batch_workers` verbs and the worker handle runtimes start, against a real wire connection. */
import { beforeAll, describe, expect, it } from "vitest";
import type { Store } from "../../src/store/store.js";
import {
  WORKER_TTL_MS,
  type WorkerIdentity,
  type WorkerView,
  deleteExpiredWorkers,
  heartbeatWorker,
  listWorkers,
  markWorkerStopped,
  readWorker,
  recordWorkerActivity,
  registerWorker,
} from "../../src/store/workers.js";
import { startWorker } from "../../src/runtimes/worker-registry.js";
import { usePipelineStore } from "../support/pipeline.js";
import { waitUntil } from "../support/wait.js";

const { store: currentStore } = usePipelineStore("workers");
let store: Store;
beforeAll(() => {
  store = currentStore();
});

const T0 = new Date("2026-12-01T10:00:00Z");
const at = (ms: number) => new Date(T0.getTime() + ms);

function identity(id: string, overrides: Partial<WorkerIdentity> = {}): WorkerIdentity {
  return {
    id,
    name: `local@${id}`,
    kind: "local",
    host: "h1",
    pid: 42,
    startedAt: T0,
    heartbeatMs: 1000,
    ...overrides,
  };
}

describe("worker verbs", () => {
  it("registers idempotently: one document, counters kept", async () => {
    const w = identity("reg");
    await registerWorker(store, w, T0);
    await recordWorkerActivity(store, w, { chunks: 2, records: 20, succeeded: 19, failed: 1 }, at(100));
    await registerWorker(store, w, at(200));
    expect(await store.workers.countDocuments({ _id: "reg" })).toBe(1);
    expect(await readWorker(store, "reg", at(300))).toMatchObject({
      id: "reg",
      name: "local@reg",
      kind: "local",
      host: "h1",
      pid: 42,
      startedAt: T0,
      lastHeartbeat: at(200),
      heartbeatAgeMs: 100,
      state: "live",
      chunks: 2,
      records: 20,
      succeeded: 19,
      failed: 1,
    });
  });

  it("loses no count under concurrent increments", async () => {
    const w = identity("conc");
    await registerWorker(store, w, T0);
    await Promise.all(
      Array.from({ length: 50 }, (_, i) =>
        recordWorkerActivity(store, w, { chunks: 1, records: 3, succeeded: 2, failed: 1 }, at(i)),
      ),
    );
    expect(await readWorker(store, "conc", at(60))).toMatchObject({
      chunks: 50,
      records: 150,
      succeeded: 100,
      failed: 50,
    });
  });

  it("brings back a worker that aged out when it reports again", async () => {
    const w = identity("back");
    await heartbeatWorker(store, w, T0);
    expect(await readWorker(store, "back", at(1))).toMatchObject({ chunks: 0, state: "live" });
  });

  it("judges live, stale (3 heartbeats missed) and stopped, and lists only live ones without all", async () => {
    await registerWorker(store, identity("live", { host: "judge" }), at(10_000));
    await registerWorker(store, identity("stale", { host: "judge" }), at(10_000 - 3001));
    await registerWorker(store, identity("stopped", { host: "judge" }), at(9_000));
    expect(await markWorkerStopped(store, "stopped", at(9_500))).toBe(true);
    expect(await markWorkerStopped(store, "never-there", at(9_500))).toBe(false);
    const now = at(10_000);
    const mine = (ws: WorkerView[]) => ws.filter((w) => w.host === "judge");
    const all = mine(await listWorkers(store, { now, all: true }));
    expect(Object.fromEntries(all.map((w) => [w.id, w.state]))).toEqual({
      live: "live",
      stale: "stale",
      stopped: "stopped",
    });
    expect(mine(await listWorkers(store, { now })).map((w) => w.id)).toEqual(["live"]);
  });

  it("ages workers out after the TTL: hidden by the reads, deleted by the prune", async () => {
    await registerWorker(store, identity("old", { host: "ttl" }), T0);
    await markWorkerStopped(store, "old", at(1000));
    const justBefore = at(1000 + WORKER_TTL_MS - 1);
    const after = at(1000 + WORKER_TTL_MS);
    expect(await readWorker(store, "old", justBefore)).toMatchObject({ state: "stopped" });
    expect(await readWorker(store, "old", after)).toBeNull();
    expect((await listWorkers(store, { now: after, all: true })).some((w) => w.id === "old")).toBe(false);
    // Read-only: the document is still there until something prunes.
    expect(await store.workers.countDocuments({ _id: "old" })).toBe(1);
    expect(await deleteExpiredWorkers(store, after)).toBeGreaterThanOrEqual(1);
    expect(await store.workers.countDocuments({ _id: "old" })).toBe(0);
  });

  it("has a plain index on expiresAt, and no TTL index (not every server has a TTL monitor)", async () => {
    const indexes = await store.workers.indexes();
    expect(indexes.find((i) => i.name === "expires_at")).toMatchObject({ key: { expiresAt: 1 } });
    expect(indexes.some((i) => i.expireAfterSeconds !== undefined)).toBe(false);
  });
});

describe("startWorker", () => {
  it("registers, counts tallies, heartbeats and stops", async () => {
    const w = startWorker(store, {
      kind: "listen",
      env: { CHUNKRELAY_WORKER_NAME: "night shift" },
      heartbeatMs: 50,
    });
    expect(w.name).toBe("night shift");
    w.tally({ chunks: 1, records: 10, succeeded: 10 });
    w.tally({ chunks: 1, records: 5, succeeded: 3, failed: 2 });
    await w.flush();
    expect(await readWorker(store, w.id, new Date())).toMatchObject({
      kind: "listen",
      pid: process.pid,
      state: "live",
      chunks: 2,
      records: 15,
      succeeded: 13,
      failed: 2,
    });
    const first = (await readWorker(store, w.id, new Date()))?.lastHeartbeat.getTime() ?? 0;
    await waitUntil(
      async () => ((await readWorker(store, w.id, new Date()))?.lastHeartbeat.getTime() ?? 0) > first,
      { what: "a heartbeat after the first write", deadlineMs: 10_000 },
    );
    w.tally({ chunks: 1, records: 1, succeeded: 1 });
    await w.stop();
    expect(await readWorker(store, w.id, new Date())).toMatchObject({ state: "stopped", chunks: 3 });
    // A tally after stop is dropped, not written.
    w.tally({ chunks: 5 });
    await w.flush();
    expect(await readWorker(store, w.id, new Date())).toMatchObject({ chunks: 3 });
  });

  it("uses <kind>@<host> when the name variable is missing or invalid, and warns about the invalid one", async () => {
    const warnings: string[] = [];
    const log = { info: () => undefined, warn: (m: string) => warnings.push(m) };
    const a = startWorker(store, { kind: "local", env: {}, host: "box" });
    const b = startWorker(store, {
      kind: "trigger",
      env: { CHUNKRELAY_WORKER_NAME: "a\u001bb" },
      host: "box",
      log,
    });
    expect(a.name).toBe("local@box");
    expect(b.name).toBe("trigger@box");
    expect(warnings.join()).toMatch(/CHUNKRELAY_WORKER_NAME is invalid/);
    await Promise.all([a.stop(), b.stop()]);
  });

  it("never throws when the store fails: it warns once and steps go on", async () => {
    const warnings: string[] = [];
    const broken = {
      workers: {
        updateOne: () => Promise.reject(new Error("database away")),
        deleteMany: () => Promise.reject(new Error("database away")),
      },
    } as unknown as Store;
    const w = startWorker(broken, {
      kind: "local",
      log: { info: () => undefined, warn: (m: string) => warnings.push(m) },
    });
    w.tally({ chunks: 1 });
    w.tally({ chunks: 1 });
    await w.flush();
    await w.stop();
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toMatch(/could not register the worker \(database away\)/);
  });
});
