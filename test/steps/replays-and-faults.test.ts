/**
 * Replays, concurrent runners, a database that goes away, and secrets. Steps are called the way
 * Trigger.dev replays them (same payload, any number of times, any order); runners are real
 * processes; the database is an embedded engine stopped and restarted mid-run.
 */
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { MongoClient } from "mongodb";
import { beforeAll, describe, expect, it } from "vitest";
import { saveConfig } from "../../src/store/configs.js";
import { dispatchJob } from "../../src/steps/dispatch/dispatch.js";
import { startEmbeddedMongo } from "@chunkrelay/embedded-mongo";
import { initializeJob } from "../../src/steps/initialize/initialize.js";
import { runJobLocally } from "../../src/runtimes/local/local-runner.js";
import { startBatchService } from "../../src/service/batch-service.js";
import { Store } from "../../src/store/store.js";
import { uriWithDatabase } from "../../src/store/connection.js";
import { watchChunk } from "../../src/steps/watch/watch.js";
import { recordingHandOver, startFakeService, stepDeps, usePipelineStore } from "../support/pipeline.js";
import { builtCli } from "../support/built-cli.js";
import { waitUntil } from "../support/wait.js";
import { onFerretDB, skipOnFerretDB } from "../support/server-kind.js";

const BIN = builtCli();
// FerretDB 1.x reads a whole collection for every query not on _id alone, so each record costs
// far more there: the two runners share a tenth of the records, in chunks a tenth as large (still
// 30 chunks to share).
const TWIN_SCALE = onFerretDB() ? 10 : 1;
const TWIN_RECORDS = 3000 / TWIN_SCALE;
const { t, cleanups, store: currentStore } = usePipelineStore("replays");
let store: Store;
beforeAll(() => {
  store = currentStore();
});

const watchOnce = { maxPolls: 1, maxRunMs: 60_000 };

describe("replaying task runs", () => {
  it("changes nothing already done and never sends an attempt twice, whatever the replay order", async () => {
    await store.db
      .collection("replay_src")
      .insertMany(Array.from({ length: 30 }, (_, i) => ({ _id: i as never })));
    const fake = await startFakeService(store, () => ({ status: 202, report: "processed" }));
    cleanups.push(() => fake.stop());
    await saveConfig(
      store,
      {
        name: "replay",
        source: { collection: "replay_src" },
        chunking: { maxRecords: 10 },
        target: { url: fake.url },
      },
      new Date(),
    );
    const handOver = recordingHandOver();
    const deps = stepDeps(store, { handOver });
    const payload = { config: "replay", jobId: "replay-job" };
    // The initializer, replayed three times.
    for (let i = 0; i < 3; i++) await initializeJob(deps, payload);
    expect(await store.details.countDocuments({ jobId: "replay-job" })).toBe(30);
    // The server, replayed: chunk 1 goes out once; the window (maxInFlight 1) holds the rest.
    for (let i = 0; i < 4; i++) await dispatchJob(deps, { jobId: "replay-job" });
    expect(fake.requests.map((r) => r.key)).toEqual(["replay-job:1:1"]);
    // Watchers replayed before, during and after the chunk closes, plus a stale one.
    await fake.reportsWritten();
    for (let i = 0; i < 3; i++)
      await watchChunk(deps, { jobId: "replay-job", chunk: 1, attempt: 1 }, watchOnce);
    const stale = await watchChunk(deps, { jobId: "replay-job", chunk: 2, attempt: 1 }, watchOnce);
    expect(stale.outcome).toBe("stale");
    for (let round = 0; round < 4; round++) {
      for (let i = 0; i < 2; i++) await dispatchJob(deps, { jobId: "replay-job" });
      await fake.reportsWritten();
      for (let c = 1; c <= 3; c++)
        await watchChunk(deps, { jobId: "replay-job", chunk: c, attempt: 1 }, watchOnce);
    }
    await initializeJob(deps, payload);
    expect(fake.requests.map((r) => r.key)).toEqual(["replay-job:1:1", "replay-job:2:1", "replay-job:3:1"]);
    expect(await store.jobs.findOne({ _id: "replay-job" })).toMatchObject({ status: "succeeded" });
    // Hand-overs asked for by replays use the same keys, so Trigger.dev dedupes them.
    const watchKeys = handOver.calls.filter((c) => c.kind === "watch").map((c) => c.key);
    expect(new Set(watchKeys)).toEqual(
      new Set(["watch:replay-job:1:1", "watch:replay-job:2:1", "watch:replay-job:3:1"]),
    );
  });

  it("continues a server run that died mid-POST: the chunk is redelivered under the same key", async () => {
    await store.db
      .collection("crash_src")
      .insertMany(Array.from({ length: 5 }, (_, i) => ({ _id: i as never })));
    // The service accepts the first delivery but has not finished it when the run dies.
    const fake = await startFakeService(store, (_req, n) => ({
      status: 202,
      report: n === 1 ? "none" : "processed",
    }));
    cleanups.push(() => fake.stop());
    await saveConfig(
      store,
      { name: "crash", source: { collection: "crash_src" }, target: { url: fake.url } },
      new Date(),
    );
    const deps = stepDeps(store, { leaseMs: 200 });
    await initializeJob(deps, { config: "crash", jobId: "crash-job" });
    // The first run's POST reaches the service, then the run dies before recording it.
    const dying = stepDeps(store, {
      owner: "dying-run",
      leaseMs: 200,
      post: async (req) => {
        await fetch(req.url, { method: "POST", body: req.body, headers: req.headers });
        throw new Error("worker killed");
      },
    });
    await expect(dispatchJob(dying, { jobId: "crash-job" })).rejects.toThrow("worker killed");
    // A replay right away finds the chunk leased; after the lease it takes over.
    expect(await dispatchJob(deps, { jobId: "crash-job" })).toMatchObject({ outcome: "idle" });
    await new Promise((r) => setTimeout(r, 250));
    expect(await dispatchJob(deps, { jobId: "crash-job" })).toMatchObject({
      outcome: "dispatched",
      chunks: [1],
    });
    expect(fake.requests.map((r) => r.key)).toEqual(["crash-job:1:1", "crash-job:1:1"]);
  });
});

describe("concurrent runners", () => {
  it("two runner processes on one job share it: every record is accepted exactly once", async () => {
    await store.db
      .collection("twin_src")
      .insertMany(Array.from({ length: TWIN_RECORDS }, (_, i) => ({ _id: i as never })));
    const dbUri = uriWithDatabase(t.uri, t.db().databaseName);
    const service = await startBatchService({ mongoUri: dbUri, latencyMs: 10 });
    cleanups.push(() => service.stop());
    await saveConfig(
      store,
      {
        name: "twin",
        source: { collection: "twin_src" },
        chunking: { maxRecords: 100 / TWIN_SCALE },
        target: { url: service.url },
        maxInFlight: 2,
        watch: { pollIntervalMs: 20 },
      },
      new Date(),
    );
    const run = () =>
      new Promise<number | null>((resolve) => {
        const child = spawn(process.execPath, [BIN, "run", "twin", "--job-id", "twin-job"], {
          env: { ...process.env, MONGODB_URI: dbUri, CHUNKRELAY_LEASE_MS: "1000" },
          stdio: "ignore",
        });
        child.once("exit", resolve);
      });
    const codes = await Promise.all([run(), run()]);
    expect(codes).toEqual([0, 0]);
    await service.idle();
    const accepted = service.ledger.filter((d) => d.jobId === "twin-job" && !d.duplicate);
    const ids = accepted.flatMap((d) => d.recordIds);
    expect(ids).toHaveLength(TWIN_RECORDS);
    expect(new Set(ids).size).toBe(TWIN_RECORDS);
    expect(service.maxConcurrent).toBeLessThanOrEqual(2);
    expect(await store.details.countDocuments({ jobId: "twin-job", status: "processed" })).toBe(TWIN_RECORDS);
  }, 90_000);
});

describe("database faults", () => {
  it("waits while MongoDB is away and finishes the job when it is back", async (ctx) => {
    skipOnFerretDB(
      ctx,
      "this test stops and restarts an embedded engine of its own (FerretDB plays no part in it)",
    );
    const dir = mkdtempSync(join(tmpdir(), "chunkrelay-dbfault-"));
    cleanups.push(() => Promise.resolve(rmSync(dir, { recursive: true, force: true })));
    let mongo = await startEmbeddedMongo({ dir });
    const port = mongo.port;
    cleanups.push(() => mongo.stop());
    const uri = `${mongo.uri}dbfault`;
    const client = new MongoClient(uri, { serverSelectionTimeoutMS: 2000 });
    await client.connect();
    cleanups.push(() => client.close());
    const own = new Store(client.db());
    await own.ensureIndexes();
    await own.db.collection("src").insertMany(Array.from({ length: 2000 }, (_, i) => ({ _id: i as never })));
    const service = await startBatchService({ mongoUri: uri, latencyMs: 40 });
    cleanups.push(() => service.stop());
    await saveConfig(
      own,
      {
        name: "fault",
        source: { collection: "src" },
        chunking: { maxRecords: 100 },
        target: { url: service.url },
        watch: { pollIntervalMs: 20 },
      },
      new Date(),
    );
    const warnings: string[] = [];
    const running = runJobLocally({
      store: own,
      config: "fault",
      jobId: "fault-job",
      stepRetryMs: 200,
      log: { info: () => undefined, warn: (m) => warnings.push(m) },
    });
    // Take the database away mid-run (once a few chunks are done) for a while, then bring it
    // back with the same data.
    await waitUntil(
      async () => (await own.chunks.countDocuments({ jobId: "fault-job", status: "processed" })) >= 3,
      { what: "three chunks processed", deadlineMs: 60_000, exited: running },
    );
    expect(await own.chunks.countDocuments({ jobId: "fault-job", done: false })).toBeGreaterThan(5);
    await mongo.stop();
    await new Promise((r) => setTimeout(r, 3000));
    mongo = await startEmbeddedMongo({ dir, port });
    const summary = await running;
    expect(summary).toMatchObject({ status: "succeeded", records: 2000, processed: 2000 });
    expect(warnings.some((w) => w.includes("retrying"))).toBe(true);
    await service.idle();
    const ids = service.ledger.filter((d) => !d.duplicate).flatMap((d) => d.recordIds);
    expect(new Set(ids).size).toBe(2000);
  }, 120_000);
});

describe("secrets", () => {
  it("keeps header secrets out of documents, errors and --json, even when the service echoes them", async () => {
    await store.db
      .collection("leak_src")
      .insertMany(Array.from({ length: 20 }, (_, i) => ({ _id: i as never })));
    const fake = await startFakeService(store, (req) => ({
      status: 400,
      body: JSON.stringify({ error: `refused credentials ${String(req.headers.authorization)}` }),
    }));
    cleanups.push(() => fake.stop());
    await saveConfig(
      store,
      {
        name: "leak",
        source: { collection: "leak_src" },
        target: { url: fake.url, headers: { Authorization: { env: "LEAK_TOKEN", prefix: "Bearer " } } },
      },
      new Date(),
    );
    const summary = await runJobLocally({
      store,
      config: "leak",
      jobId: "leak-job",
      env: { LEAK_TOKEN: "sup3r-s3cret-t0ken" },
    });
    expect(summary.status).toBe("failed");
    expect(fake.requests[0]?.headers.authorization).toBe("Bearer sup3r-s3cret-t0ken");
    const everything = JSON.stringify([
      summary,
      await store.jobs.find({ _id: "leak-job" }).toArray(),
      await store.chunks.find({ jobId: "leak-job" }).toArray(),
      await store.exceptions.find({ jobId: "leak-job" }).toArray(),
      await store.configs.find({ _id: "leak" }).toArray(),
    ]);
    expect(everything).toContain("refused credentials Bearer ***");
    expect(everything).not.toContain("sup3r-s3cret-t0ken");
  });

  it("never prints the password of MONGODB_URI", async () => {
    const res = await new Promise<{ code: number | null; out: string }>((resolve) => {
      const child = spawn(process.execPath, [BIN, "run", "anything", "--json"], {
        env: {
          ...process.env,
          MONGODB_URI: "mongodb://admin:hunter2-pw@127.0.0.1:1/db?serverSelectionTimeoutMS=500",
        },
        stdio: ["ignore", "pipe", "pipe"],
      });
      let out = "";
      child.stdout.on("data", (b: Buffer) => (out += b.toString()));
      child.stderr.on("data", (b: Buffer) => (out += b.toString()));
      child.once("exit", (code) => resolve({ code, out }));
    });
    expect(res.code).not.toBe(0);
    expect(res.out.length).toBeGreaterThan(0);
    expect(res.out).not.toContain("hunter2-pw");
  }, 30_000);
});

describe("two initializers of one config at the same moment", () => {
  it("lets exactly one start a full job; the config is free again when it finishes", async () => {
    await store.db
      .collection("race_src")
      .insertMany(Array.from({ length: 50 }, (_, i) => ({ _id: i as never })));
    await saveConfig(
      store,
      { name: "race", source: { collection: "race_src" }, target: { url: "http://127.0.0.1:9/x" } },
      new Date(),
    );
    const results = await Promise.allSettled(
      ["race-a", "race-b", "race-c"].map((jobId) =>
        initializeJob(stepDeps(store, { owner: jobId }), { config: "race", jobId }),
      ),
    );
    const won = results.filter((r) => r.status === "fulfilled");
    const lost = results.filter((r): r is PromiseRejectedResult => r.status === "rejected");
    expect(won).toHaveLength(1);
    expect(lost).toHaveLength(2);
    // The winner's job may or may not exist yet when a loser looks: both refusals name it.
    for (const l of lost) expect(String(l.reason)).toMatch(/already has an active job|is claimed by job/);
    expect(await store.details.countDocuments({ jobId: { $in: ["race-a", "race-b", "race-c"] } })).toBe(50);
  });
});
