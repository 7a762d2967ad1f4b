/**
 * The task bodies through the real Trigger.dev SDK, against a stand-in for the platform's API
 * (test/support/trigger-platform.ts): what the SDK sends for every hand-over (idempotency key and
 * its scope and TTL, delay, tags, concurrency key), the tags and live progress on runs, the
 * watcher's waits, the nightly batch trigger, and replays from the dashboard.
 */
import {
  type ApiRequest,
  type FakeTriggerApi,
  type PlatformRun,
  drainRuns,
  executeRun,
  runtimeWaits,
  startFakeTriggerApi,
} from "../../support/trigger-platform.js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { saveConfig } from "../../../src/store/configs.js";
import { type BatchService, startBatchService } from "../../../src/service/batch-service.js";
import { Store } from "../../../src/store/store.js";
import { type WorkerView, listWorkers } from "../../../src/store/workers.js";
import { uriWithDatabase } from "../../../src/store/connection.js";
import { runBatchDataInitializer } from "../../../src/tasks/batch-data-initializer.js";
import { runBatchDataServer } from "../../../src/tasks/batch-data-server.js";
import { runChunkProcessWatcher } from "../../../src/tasks/chunk-process-watcher.js";
import { runNightlyIncremental } from "../../../src/tasks/nightly-incremental.js";
import { platformSleep } from "../../../src/runtimes/trigger/worker.js";
import { useTestDatabase, useWorkerDatabase } from "../../support/db.js";
import { waitUntil } from "../../support/wait.js";

const t = useTestDatabase("sdk_calls");
useWorkerDatabase(t);
let store: Store;
let api: FakeTriggerApi;
let service: BatchService;

const bodies: Record<
  string,
  (payload: unknown, ctx: Parameters<typeof runBatchDataServer>[1]) => Promise<unknown>
> = {
  "batch-data-initializer": runBatchDataInitializer,
  "batch-data-server": runBatchDataServer,
  "chunk-process-watcher": runChunkProcessWatcher,
};

/** Executes triggered runs until the chain ends (one at a time, the first due first). */
const drain = (limit = 200): Promise<PlatformRun[]> => drainRuns(api, bodies, limit);

const triggers = (from: ApiRequest[]) =>
  from
    .filter((r) => r.method === "POST" && /^\/api\/v1\/tasks\/[^/]+\/trigger$/.test(r.path))
    .map((r) => ({
      task: r.path.split("/")[4] as string,
      fromRun: r.fromRun,
      options: (r.body as { options: Record<string, unknown> }).options,
    }));

beforeAll(async () => {
  store = new Store(t.db());
  await store.ensureIndexes();
  api = await startFakeTriggerApi();
  // The first request is throttled (429, Retry-After 1 s): the server backs off with a delayed run.
  let rolls = 0;
  service = await startBatchService({
    mongoUri: uriWithDatabase(t.uri, t.db().databaseName),
    latencyMs: 150,
    faults: { throttle: 0.5 },
    random: () => (rolls++ === 0 ? 0 : 0.99),
  });
  await store.db
    .collection("sdk_orders")
    .insertMany(Array.from({ length: 25 }, (_, i) => ({ _id: i as never, total: i })));
  await saveConfig(
    store,
    {
      name: "sdk-orders",
      source: { collection: "sdk_orders" },
      chunking: { maxRecords: 10 },
      target: { url: service.url },
      watch: { pollIntervalMs: 40 },
    },
    new Date(),
  );
});

afterAll(async () => {
  await service?.stop();
  await api?.close();
});

describe("a job started from the dashboard, through the real SDK", () => {
  let root: PlatformRun;
  let chain: PlatformRun[];
  let jobId: string;

  beforeAll(async () => {
    root = api.startRun("batch-data-initializer", { config: "sdk-orders" });
    chain = await drain();
    const job = await store.jobs.findOne({ config: "sdk-orders" });
    jobId = job?._id ?? "";
  });

  it("runs the job to the end, every record delivered once", async () => {
    expect(await store.jobs.countDocuments({ config: "sdk-orders" })).toBe(1);
    expect(await store.jobs.findOne({ _id: jobId })).toMatchObject({ status: "succeeded" });
    expect(await store.details.countDocuments({ jobId, status: "processed" })).toBe(25);
    const accepted = service.ledger.filter((d) => !d.duplicate);
    expect(accepted.flatMap((d) => d.recordIds)).toHaveLength(25);
    expect(chain[0]).toBe(root);
  });

  it("counts the chunks its watchers finished under one worker of this process, of kind trigger", async () => {
    let workers: WorkerView[] = [];
    await waitUntil(
      async () => {
        workers = await listWorkers(store, { now: new Date() });
        return workers.length === 1 && workers[0]?.chunks === 3;
      },
      { what: "the worker's tallies written", deadlineMs: 10_000, context: () => JSON.stringify(workers) },
    );
    expect(workers[0]).toMatchObject({
      kind: "trigger",
      pid: process.pid,
      state: "live",
      chunks: 3,
      records: 25,
      succeeded: 25,
      failed: 0,
    });
  });

  it("tags the dashboard's run with its job before the job exists, and every run of the chain with job and config", () => {
    const first = api.requests.find((r) => r.path === `/api/v1/runs/${root.id}/tags`);
    expect(first?.body).toEqual({ tags: [`job:${jobId}`] });
    // The job tag came before any write of the job: before the first hand-over of the run.
    const firstTrigger = api.requests.findIndex((r) => r.fromRun === root.id && r.path.endsWith("/trigger"));
    expect(api.requests.indexOf(first as ApiRequest)).toBeLessThan(firstTrigger);
    for (const run of chain) {
      expect(run.tags, `${run.taskId} ${run.id}`).toEqual(
        expect.arrayContaining([`job:${jobId}`, "config:sdk-orders"]),
      );
      if (run.taskId === "chunk-process-watcher") {
        expect(run.tags).toContain(`chunk:${(run.payload as { chunk: number }).chunk}`);
      }
    }
  });

  it("hands over with one trigger per hand-over, keys from business ids (global scope, 30 days)", () => {
    const sent = triggers(api.requests);
    const keys = sent.map((s) => (s.options.idempotencyKeyOptions as { key: string; scope: string }).key);
    expect(sent.every((s) => (s.options.idempotencyKeyOptions as { scope: string }).scope === "global")).toBe(
      true,
    );
    expect(sent.every((s) => s.options.idempotencyKeyTTL === "30d")).toBe(true);
    // Each key names a step by job, chunk, attempt and try, and one key is one run: a hand-over
    // asked for twice (two servers both waking the job for the same due time) runs once.
    const twice = keys.filter((k, i) => keys.indexOf(k) !== i);
    expect(
      twice.every((k) => k.startsWith(`serve:${jobId}:wake:`)),
      twice.join(),
    ).toBe(true);
    expect(chain.length - 1).toBe(new Set(keys).size);
    expect(keys).toContain(`serve:${jobId}:planned`);
    for (const chunk of [1, 2, 3]) {
      expect(keys).toContain(`watch:${jobId}:${chunk}:1`);
      expect(keys).toContain(`serve:${jobId}:${chunk}:1:closed`);
    }
    // Every run but the root was triggered exactly once, by the run before it in the chain.
    for (const run of chain.slice(1)) {
      expect(sent.filter((s) => s.fromRun === run.parentId && s.task === run.taskId).length).toBeGreaterThan(
        0,
      );
    }
    // The server runs one at a time per job: every server trigger carries the job as its key.
    const servers = sent.filter((s) => s.task === "batch-data-server");
    expect(servers.length).toBeGreaterThan(3);
    expect(servers.every((s) => s.options.concurrencyKey === jobId)).toBe(true);
  });

  it("backs off a throttled chunk with a delayed trigger, not a wait", () => {
    const retry = triggers(api.requests).find((s) =>
      /^serve:.*:1:1:try1$/.test((s.options.idempotencyKeyOptions as { key: string }).key),
    );
    expect(retry?.task).toBe("batch-data-server");
    expect(typeof retry?.options.delay).toBe("string");
    expect(service.faultCounts.throttle).toBe(1);
  });

  it("shows live progress on the root run, updated while the watcher polls", () => {
    const key = `job:${jobId}`;
    expect(root.metadata[key]).toMatchObject({
      jobId,
      config: "sdk-orders",
      state: "succeeded",
      records: { total: 25, processed: 25, failed: 0, percent: 100 },
      chunks: { total: 3, done: 3, inFlight: 0 },
    });
    // Watcher runs wrote the root's metadata while a chunk was still being processed.
    const watcherRuns = new Set(chain.filter((r) => r.taskId === "chunk-process-watcher").map((r) => r.id));
    const live = api.requests.filter((r) => {
      if (!watcherRuns.has(r.fromRun ?? "") || !r.path.endsWith("/metadata")) return false;
      const ops = (
        r.body as { rootOperations?: Array<{ key: string; value: { chunk?: { waiting?: number } } }> }
      ).rootOperations;
      return (ops ?? []).some((op) => op.key === key && (op.value.chunk?.waiting ?? 0) > 0);
    });
    expect(live.length).toBeGreaterThan(0);
    // Polls 40 ms apart wait in-process: no watcher of this chain asked the platform to wait.
    const chainRuns = new Set(chain.map((r) => r.id));
    expect(
      api.requests.filter((r) => chainRuns.has(r.fromRun ?? "") && r.path.endsWith("/wait/duration")),
    ).toEqual([]);
  });

  it("replays the dashboard's run into the same job, with no second job and no new chunks", async () => {
    const before = service.ledger.length;
    const replay = api.replay(root.id);
    expect(replay.tags).toContain(`job:${jobId}`);
    const { result, error } = await executeRun(replay, runBatchDataInitializer, 20);
    expect(error).toBeUndefined();
    expect(result).toMatchObject({ jobId, resumed: true });
    await drain();
    expect(await store.jobs.countDocuments({ config: "sdk-orders" })).toBe(1);
    expect(service.ledger.length).toBe(before);
  });

  it("replays every run of the chain without sending anything again", async () => {
    const before = { ledger: service.ledger.length, runs: api.runs.size };
    for (const run of chain.slice(1)) {
      const replay = api.replay(run.id);
      const { error } = await executeRun(replay, bodies[run.taskId] as never, 20);
      expect(error, `${run.taskId} ${JSON.stringify(run.payload)}`).toBeUndefined();
    }
    await drain();
    expect(service.ledger.length).toBe(before.ledger);
    // Hand-overs of replays reuse their keys: the platform answers with the earlier runs.
    expect(api.runs.size).toBe(before.runs + chain.length - 1);
  });
});

describe("waits and schedules through the SDK", () => {
  it("a watcher polling every 6 s waits through wait.for, once per poll", async () => {
    // A service that reports 3 s after accepting: the watcher's first poll finds the chunk still
    // sent even on a loaded machine, so it must wait (the shared service's 150 ms could be over
    // before the watcher run starts).
    const slow = await startBatchService({
      mongoUri: uriWithDatabase(t.uri, t.db().databaseName),
      latencyMs: 3_000,
    });
    await saveConfig(
      store,
      {
        name: "sdk-slow-polls",
        source: { collection: "sdk_orders", filter: { total: { $lt: 5 } } },
        target: { url: slow.url },
        // A fixed interval (no adaptive polls): every wait is 6 s.
        watch: { pollIntervalMs: 6000, minPollIntervalMs: 6000 },
      },
      new Date(),
    );
    const before = api.requests.length;
    const root = api.startRun("batch-data-initializer", {
      config: "sdk-slow-polls",
      jobId: "sdk-slow-polls-1",
    });
    const chain = await drain().finally(() => slow.stop());
    expect(await store.jobs.findOne({ _id: "sdk-slow-polls-1" })).toMatchObject({ status: "succeeded" });
    const watchers = new Set(chain.filter((r) => r.taskId === "chunk-process-watcher").map((r) => r.id));
    const waits = api.requests.slice(before).filter((r) => r.path.endsWith("/wait/duration"));
    // The stand-in resumes a wait at once (the platform would checkpoint for 6 s), so the watcher
    // polls again at once: every wait came from a watcher run and asked for about 6 s.
    expect(waits.length).toBeGreaterThan(0);
    for (const w of waits) {
      expect(watchers.has(w.fromRun ?? "")).toBe(true);
      const asked = new Date((w.body as { date: string }).date).getTime() - w.receivedAt;
      expect(asked).toBeGreaterThan(4_000);
      expect(asked).toBeLessThanOrEqual(6_000);
    }
    expect(root.metadata["job:sdk-slow-polls-1"]).toMatchObject({ state: "succeeded" });
    // A dashboard run that named a new job gets its config tag once the job exists.
    expect(root.tags).toEqual(expect.arrayContaining(["job:sdk-slow-polls-1", "config:sdk-slow-polls"]));
  });

  it("waits of 5 s or less stay in-process; longer ones go through wait.for", async () => {
    const run = api.startRun("chunk-process-watcher", {});
    const before = api.requests.length;
    await executeRun(run, async () => {
      await platformSleep(30);
      await platformSleep(61_000);
    });
    const waits = api.requests.slice(before).filter((r) => r.path.endsWith("/wait/duration"));
    expect(waits).toHaveLength(1);
    expect(waits[0]?.path).toBe(`/engine/v1/runs/${run.id}/wait/duration`);
    const until = new Date((waits[0]?.body as { date: string }).date).getTime();
    expect(until - Date.now()).toBeGreaterThan(55_000);
    expect(runtimeWaits.length).toBeGreaterThan(0);
  });

  it("starts the scheduled jobs with one batch trigger keyed by the scheduled time; a replay starts none", async () => {
    await saveConfig(
      store,
      {
        name: "sdk-nightly",
        source: { collection: "sdk_orders", orderBy: "total" },
        target: { url: service.url },
        schedule: { timezone: "Europe/Berlin" },
      },
      new Date(),
    );
    const timestamp = new Date("2026-12-04T01:00:00Z");
    const nightly = api.startRun("nightly-incremental", {});
    const before = api.requests.length;
    const { error } = await executeRun(nightly, () =>
      runNightlyIncremental({ timestamp }, { run: { id: nightly.id } }),
    );
    expect(error).toBeUndefined();
    const items = api.requests.slice(before).filter((r) => r.path.endsWith("/items"));
    expect(items).toHaveLength(1);
    const [item] = items[0]?.body as Array<{ task: string; options: Record<string, unknown> }>;
    const jobId = "sdk-nightly-scheduled-20261204T0100Z";
    expect(item?.task).toBe("batch-data-initializer");
    expect(item?.options).toMatchObject({
      idempotencyKeyOptions: { key: `initialize:${jobId}`, scope: "global" },
      tags: [`job:${jobId}`, "config:sdk-nightly"],
    });
    const runsBefore = api.runs.size;
    const replay = api.replay(nightly.id);
    await executeRun(replay, () => runNightlyIncremental({ timestamp }, { run: { id: replay.id } }));
    expect(api.runs.size).toBe(runsBefore + 1); // the replay itself, no new initializer
  });
});
