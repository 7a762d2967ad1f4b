/**
 * The pipeline against a real wire connection and real HTTP servers on port 0: the reference
 * batch service for the normal path, fake services for every reply the contract names.
 */
import { ObjectId } from "mongodb";
import { beforeAll, describe, expect, it } from "vitest";
import { saveConfig } from "../../../src/store/configs.js";
import { BadInputError } from "../../../src/common/errors.js";
import { initializeJob } from "../../../src/steps/initialize/initialize.js";
import { runJobLocally } from "../../../src/runtimes/local/local-runner.js";
import { type BatchService, startBatchService } from "../../../src/service/batch-service.js";
import { Store } from "../../../src/store/store.js";
import { uriWithDatabase } from "../../../src/store/connection.js";
import { recordingHandOver, startFakeService, stepDeps, usePipelineStore } from "../../support/pipeline.js";
import { onFerretDB } from "../../support/server-kind.js";

// FerretDB 1.x reads a whole collection for every query not on _id alone, so each record costs
// far more there: a tenth of the records, with chunk limits (and planning groups) a tenth as
// large — the same number of chunks and the same shape of each run.
const SCALE = onFerretDB() ? 10 : 1;
const N = 5000 / SCALE;
const RESUME_N = 2500 / SCALE;
/** Records per planning group: the initializer's default (1,000) on every other server. */
const PLANNING_BATCH = 1000 / SCALE;

const { t, cleanups, store: currentStore } = usePipelineStore("pipeline");
let store: Store;
beforeAll(() => {
  store = currentStore();
});

async function seed(collection: string, n: number, extra: (i: number) => object = () => ({})) {
  const docs = Array.from({ length: n }, (_, i) => ({ _id: new ObjectId(), seq: i, ...extra(i) }));
  await store.db.collection(collection).insertMany(docs);
  return docs;
}

async function referenceService(
  options: { latencyMs?: number; failRate?: number } = {},
): Promise<BatchService> {
  const service = await startBatchService({
    mongoUri: uriWithDatabase(t.uri, t.db().databaseName),
    ...options,
  });
  cleanups.push(() => service.stop());
  return service;
}

describe("a job end to end", () => {
  it("delivers every record exactly once, in order, within the chunk and in-flight limits", async () => {
    const docs = await seed("e2e_src", N, (i) => ({ name: `n${i}`, size: i % 7 }));
    const service = await referenceService({ latencyMs: 5 });
    await saveConfig(
      store,
      {
        name: "e2e",
        source: { collection: "e2e_src", fields: ["name"], weightField: "size" },
        chunking: { maxRecords: 300 / SCALE, maxWeight: 900 / SCALE },
        target: { url: service.url },
        maxInFlight: 3,
        watch: { pollIntervalMs: 20 },
      },
      new Date(),
    );
    const summary = await runJobLocally({ store, config: "e2e", jobId: "e2e-job" });
    expect(summary).toMatchObject({
      jobId: "e2e-job",
      status: "succeeded",
      records: N,
      processed: N,
      exceptions: 0,
    });
    const delivered = service.ledger.flatMap((d) => d.recordIds);
    expect(delivered).toHaveLength(N);
    expect(new Set(delivered).size).toBe(N);
    expect(service.ledger.every((d) => d.recordIds.length <= 300 / SCALE)).toBe(true);
    expect(service.maxConcurrent).toBeLessThanOrEqual(3);
    const byChunk = [...service.ledger].sort((a, b) => a.chunk - b.chunk).flatMap((d) => d.recordIds);
    expect(byChunk).toEqual(docs.map((d) => `{"id":{"$oid":"${d._id.toHexString()}"}}`));
    expect(await store.details.countDocuments({ jobId: "e2e-job", status: "processed" })).toBe(N);
    const chunks = await store.chunks.find({ jobId: "e2e-job" }).sort({ chunk: 1 }).toArray();
    expect(chunks.map((c) => c.chunk)).toEqual(chunks.map((_, i) => i + 1));
    expect(chunks.every((c) => c.status === "processed" && c.weight <= 900 / SCALE)).toBe(true);
  });

  it("finishes a job with nothing to do at once, with zero records", async () => {
    await store.db.collection("empty_src").insertOne({ x: 1 });
    await saveConfig(
      store,
      {
        name: "empty",
        source: { collection: "empty_src", filter: { x: 2 } },
        target: { url: "http://127.0.0.1:9/never" },
      },
      new Date(),
    );
    const handOver = recordingHandOver();
    const res = await initializeJob(stepDeps(store, { handOver }), { config: "empty", jobId: "empty-job" });
    expect(res).toMatchObject({ records: 0, chunks: 0, status: "succeeded" });
    expect(handOver.calls).toEqual([]);
  });
});

describe("initializer", () => {
  it("resumes after a crash mid-planning without duplicating a record", async () => {
    await seed("resume_src", RESUME_N);
    await saveConfig(
      store,
      {
        name: "resume",
        source: { collection: "resume_src" },
        chunking: { maxRecords: 400 / SCALE },
        target: { url: "http://127.0.0.1:9/x" },
      },
      new Date(),
    );
    // The first hand-over (after chunk 1) "crashes" the initializer.
    let calls = 0;
    const crashing = recordingHandOver();
    const crash = stepDeps(store, {
      planningBatch: PLANNING_BATCH,
      handOver: {
        ...crashing,
        serve: () => {
          calls++;
          return Promise.reject(new Error("killed"));
        },
      },
    });
    await expect(initializeJob(crash, { config: "resume", jobId: "resume-job" })).rejects.toThrow("killed");
    expect(calls).toBe(1);
    // A half-written chunk past the checkpoint, left behind by the crash, must not survive.
    const crashed = await store.jobs.findOne({ _id: "resume-job" });
    const next = crashed?.planning.nextChunk ?? 0;
    expect(next).toBeGreaterThan(1);
    expect(await store.details.countDocuments({ jobId: "resume-job", chunk: { $lt: next } })).toBeGreaterThan(
      0,
    );
    await store.details.insertOne({
      jobId: "resume-job",
      recordId: "stray",
      chunk: next,
      status: "pending",
      attempts: 0,
    });
    const handOver = recordingHandOver();
    const res = await initializeJob(stepDeps(store, { handOver, planningBatch: PLANNING_BATCH }), {
      config: "resume",
      jobId: "resume-job",
    });
    expect(res).toMatchObject({ resumed: true, records: RESUME_N, chunks: 7 });
    expect(await store.details.countDocuments({ jobId: "resume-job" })).toBe(RESUME_N);
    expect(await store.details.countDocuments({ jobId: "resume-job", recordId: "stray" })).toBe(0);
    const perChunk = await store.details
      .aggregate<{ _id: number; n: number }>([
        { $match: { jobId: "resume-job" } },
        { $group: { _id: "$chunk", n: { $sum: 1 } } },
        { $sort: { _id: 1 } },
      ])
      .toArray();
    expect(perChunk.map((c) => c.n)).toEqual([400, 400, 400, 400, 400, 400, 100].map((n) => n / SCALE));
    // Running it once more changes nothing.
    const again = await initializeJob(stepDeps(store, { planningBatch: PLANNING_BATCH }), {
      config: "resume",
      jobId: "resume-job",
    });
    expect(again).toMatchObject({ records: RESUME_N, chunks: 7 });
    expect(await store.chunks.countDocuments({ jobId: "resume-job" })).toBe(7);
  });

  it("refuses an unknown config or a bad payload as bad input, writing nothing", async () => {
    await expect(initializeJob(stepDeps(store), { config: "nope" })).rejects.toThrow(BadInputError);
    await expect(initializeJob(stepDeps(store), { config: "nope", chunkSize: 3 })).rejects.toThrow(
      "payload is invalid",
    );
    expect(await store.jobs.countDocuments({ config: "nope" })).toBe(0);
  });
});

describe("the batch-service contract", () => {
  it("retries 503/429/5xx under the same key, and sets a rejected chunk's records aside", async () => {
    await seed("contract_src", 60);
    const fake = await startFakeService(store, (req, n) => {
      if (req.body.chunk === 1 && n === 1) return { status: 503, headers: { "retry-after": "0" } };
      if (req.body.chunk === 1 && n === 2) return { status: 429, headers: { "retry-after": "0" } };
      if (req.body.chunk === 1 && n === 3) return { status: 500, body: '{"error":"flaky"}' };
      if (req.body.chunk === 2) return { status: 400, body: '{"error":"schema mismatch"}' };
      return { status: 202, report: "processed" };
    });
    cleanups.push(() => fake.stop());
    await saveConfig(
      store,
      {
        name: "contract",
        source: { collection: "contract_src" },
        chunking: { maxRecords: 20 },
        target: { url: fake.url },
        retry: { backoffMs: 1, maxBackoffMs: 5 },
        watch: { pollIntervalMs: 10 },
      },
      new Date(),
    );
    const summary = await runJobLocally({ store, config: "contract", jobId: "contract-job" });
    expect(summary).toMatchObject({ status: "failed", records: 60, processed: 40, exceptions: 20 });
    const chunk1 = fake.requests.filter((r) => r.body.chunk === 1);
    expect(chunk1.map((r) => r.key)).toEqual(Array(4).fill("contract-job:1:1"));
    const exceptions = await store.exceptions.find({ jobId: "contract-job" }).toArray();
    expect(exceptions).toHaveLength(20);
    expect(exceptions.every((e) => e.chunk === 2 && e.reason.includes("HTTP 400: schema mismatch"))).toBe(
      true,
    );
    const c2 = await store.chunks.findOne({ jobId: "contract-job", chunk: 2 });
    expect(c2).toMatchObject({ status: "failed", done: true });
  });

  it("re-sends failed records as a new attempt with a new key, then sets them aside", async () => {
    await seed("retry_src", 30);
    const fake = await startFakeService(store, (req) =>
      req.body.attempt === 1
        ? { status: 202, report: "failed" }
        : { status: 202, report: req.body.chunk === 1 ? "processed" : "failed" },
    );
    cleanups.push(() => fake.stop());
    await saveConfig(
      store,
      {
        name: "retry",
        source: { collection: "retry_src" },
        chunking: { maxRecords: 15 },
        target: { url: fake.url },
        retry: { maxAttempts: 2 },
        watch: { pollIntervalMs: 10 },
      },
      new Date(),
    );
    const summary = await runJobLocally({ store, config: "retry", jobId: "retry-job" });
    expect(summary).toMatchObject({ status: "failed", records: 30, processed: 15, exceptions: 15 });
    expect(fake.requests.map((r) => r.key).sort()).toEqual([
      "retry-job:1:1",
      "retry-job:1:2",
      "retry-job:2:1",
      "retry-job:2:2",
    ]);
    expect(fake.requests.every((r) => r.body.records.length === 15)).toBe(true);
    const ex = await store.exceptions.find({ jobId: "retry-job" }).toArray();
    expect(ex.every((e) => e.chunk === 2 && e.attempts === 2 && e.reason.includes("fake failure"))).toBe(
      true,
    );
  });

  it("starts a new attempt when an accepted chunk is never finished, and gives up after the last", async () => {
    await seed("stall_src", 10);
    const fake = await startFakeService(store, () => ({ status: 202, report: "none" }));
    cleanups.push(() => fake.stop());
    await saveConfig(
      store,
      {
        name: "stall",
        source: { collection: "stall_src" },
        target: { url: fake.url },
        retry: { maxAttempts: 2 },
        watch: { pollIntervalMs: 20, chunkTimeoutMs: 150 },
      },
      new Date(),
    );
    const summary = await runJobLocally({ store, config: "stall", jobId: "stall-job" });
    expect(summary).toMatchObject({ status: "failed", exceptions: 10 });
    expect(fake.requests.map((r) => r.key)).toEqual(["stall-job:1:1", "stall-job:1:2"]);
    const ex = await store.exceptions.findOne({ jobId: "stall-job" });
    expect(ex?.reason).toContain("not processed within 150 ms");
  });

  it("sends header secrets from the environment, and refuses to run without them", async () => {
    await seed("secret_src", 5);
    const fake = await startFakeService(store, () => ({ status: 202, report: "processed" }));
    cleanups.push(() => fake.stop());
    await saveConfig(
      store,
      {
        name: "secret",
        source: { collection: "secret_src" },
        target: {
          url: fake.url,
          headers: {
            Authorization: { env: "SVC_TOKEN", prefix: "Bearer " },
            "X-Client": { value: "chunkrelay" },
          },
        },
        watch: { pollIntervalMs: 10 },
      },
      new Date(),
    );
    await expect(runJobLocally({ store, config: "secret", jobId: "secret-none", env: {} })).rejects.toThrow(
      "SVC_TOKEN, which is not set",
    );
    expect(fake.requests).toHaveLength(0);
    const ok = await runJobLocally({
      store,
      config: "secret",
      jobId: "secret-ok",
      env: { SVC_TOKEN: "t0ken" },
    });
    expect(ok.status).toBe("succeeded");
    expect(fake.requests[0]?.headers.authorization).toBe("Bearer t0ken");
    expect(fake.requests[0]?.headers["x-client"]).toBe("chunkrelay");
    const job = await store.jobs.findOne({ _id: "secret-ok" });
    expect(JSON.stringify(job)).not.toContain("t0ken");
  });
});
