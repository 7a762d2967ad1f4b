/**
 * The three completion modes end to end, through the local runner, against real HTTP servers on
 * port 0 and a real wire connection: the reference service in each mode, and fake services for
 * outcomes that do not match the request, forged and replayed callbacks, and callbacks that never
 * come.
 */
import { EJSON } from "bson";
import { ObjectId } from "mongodb";
import { request } from "undici";
import { beforeAll, describe, expect, it } from "vitest";
import { saveConfig } from "../../../src/store/configs.js";
import { runJobLocally } from "../../../src/runtimes/local/local-runner.js";
import { CallbackListener } from "../../../src/runtimes/local/callback-listener.js";
import { startBatchService } from "../../../src/service/batch-service.js";
import type { Store } from "../../../src/store/store.js";
import { uriWithDatabase } from "../../../src/store/connection.js";
import {
  type FakeRequest,
  recordingHandOver,
  startFakeService,
  stepDeps,
  usePipelineStore,
} from "../../support/pipeline.js";
import { initializeJob } from "../../../src/steps/initialize/initialize.js";
import { dispatchJob } from "../../../src/steps/dispatch/dispatch.js";
import { onFerretDB } from "../../support/server-kind.js";

const SCALE = onFerretDB() ? 10 : 1;
const N = 2000 / SCALE;

const { t, cleanups, store: currentStore } = usePipelineStore("completion_modes");
let store: Store;
beforeAll(() => {
  store = currentStore();
});

async function seed(collection: string, n: number) {
  const docs = Array.from({ length: n }, (_, i) => ({ _id: new ObjectId(), seq: i, name: `n${i}` }));
  await store.db.collection(collection).insertMany(docs);
  return docs;
}

async function config(name: string, url: string, extra: Record<string, unknown> = {}) {
  await saveConfig(
    store,
    {
      name,
      source: { collection: `${name}_src`, fields: ["name"] },
      chunking: { maxRecords: 100 / SCALE },
      target: { url, timeoutMs: 5_000 },
      maxInFlight: 4,
      watch: { pollIntervalMs: 20 },
      ...extra,
    },
    new Date(),
  );
}

describe("each completion mode delivers every record exactly once", () => {
  for (const completion of ["status", "response", "callback"] as const) {
    it(`${completion}: the reference service in that mode`, async () => {
      const name = `cm_${completion}`;
      const docs = await seed(`${name}_src`, N);
      const service = await startBatchService({
        mongoUri: uriWithDatabase(t.uri, t.db().databaseName),
        latencyMs: 2,
        completion,
      });
      cleanups.push(() => service.stop());
      await config(name, service.url, { completion });
      const summary = await runJobLocally({ store, config: name, jobId: `${name}-job` });
      expect(summary).toMatchObject({ status: "succeeded", records: N, processed: N, exceptions: 0 });
      const delivered = service.ledger.filter((d) => !d.duplicate).flatMap((d) => d.recordIds);
      expect(delivered).toHaveLength(N);
      expect(new Set(delivered).size).toBe(N);
      expect(service.maxConcurrent).toBeLessThanOrEqual(4);
      expect(await store.details.countDocuments({ jobId: `${name}-job`, status: "processed" })).toBe(N);
      const ids = new Set(docs.map((d) => d._id.toHexString()));
      const stored = await store.details.find({ jobId: `${name}-job` }).toArray();
      expect(stored.every((d) => ids.has((d.recordId as ObjectId).toHexString()))).toBe(true);
      const chunks = await store.chunks.find({ jobId: `${name}-job` }).toArray();
      expect(
        chunks.every((c) => c.status === "processed" && c.done && c.processedCount === c.recordCount),
      ).toBe(true);
      // Every attempt went out under the config that sent it, also when it never was `sent`.
      expect(chunks.every((c) => typeof c.configHash === "string" && c.sentAt instanceof Date)).toBe(true);
    });
  }

  it("response: failed records go again as new attempts, the rest stay processed", async () => {
    const name = "cm_resp_fail";
    await seed(`${name}_src`, N);
    const service = await startBatchService({
      mongoUri: uriWithDatabase(t.uri, t.db().databaseName),
      latencyMs: 1,
      completion: "response",
      failRate: 0.3,
      random: mulberry(7),
    });
    cleanups.push(() => service.stop());
    await config(name, service.url, { completion: "response", retry: { maxAttempts: 3 } });
    const summary = await runJobLocally({ store, config: name, jobId: `${name}-job` });
    const processed = await store.details.countDocuments({ jobId: `${name}-job`, status: "processed" });
    const exceptions = await store.exceptions.countDocuments({ jobId: `${name}-job` });
    expect(processed + exceptions).toBe(N);
    expect(summary.processed).toBe(processed);
    expect(summary.exceptions).toBe(exceptions);
    expect(exceptions).toBeGreaterThan(0); // 0.3³ of N records fail three times
    // A processed record was sent by exactly one accepted key, never again after.
    const byRecord = new Map<string, number>();
    for (const d of service.ledger.filter((x) => !x.duplicate)) {
      for (const r of d.recordIds) byRecord.set(r, (byRecord.get(r) ?? 0) + 1);
    }
    expect(Math.max(...byRecord.values())).toBeLessThanOrEqual(3);
    const failedChunks = await store.chunks.find({ jobId: `${name}-job`, status: "failed" }).toArray();
    for (const c of failedChunks) {
      expect(c.history?.map((h) => h.outcome)).toEqual(["recordsFailed", "recordsFailed", "recordsFailed"]);
    }
  });
});

describe("response: an outcome that does not match the request is an error on that chunk", () => {
  const cases: Array<[string, (req: FakeRequest) => string, RegExp]> = [
    ["an id missing", (req) => results(req.body.records.slice(1)), /1 of the \d+ id\(s\) sent missing/],
    [
      "an id not sent",
      (req) => results([...req.body.records, { id: "not-sent" }]),
      /1 id\(s\) not in the request \("not-sent"\)/,
    ],
    ["an id twice", (req) => results([...req.body.records, req.body.records[0]!]), /1 id\(s\) given twice/],
    ["no body", () => "", /the reply has no body/],
    ["not JSON", () => "<html>ok</html>", /the body is not JSON/],
    ["another shape", () => JSON.stringify({ accepted: 3 }), /the body is not an outcome/],
    [
      "both forms at once",
      (req) =>
        JSON.stringify({ status: "processed", results: [{ id: req.body.records[0]?.id, status: "failed" }] }),
      /both "status" and "results"/,
    ],
  ];
  for (const [label, body, reason] of cases) {
    it(label, async () => {
      const name = `cm_bad_${label.replace(/\W+/g, "_")}`;
      await seed(`${name}_src`, 5);
      const fake = await startFakeService(store, (req) => ({ status: 200, body: body(req) }));
      cleanups.push(() => fake.stop());
      await config(name, fake.url, { completion: "response", retry: { maxAttempts: 2 } });
      const summary = await runJobLocally({ store, config: name, jobId: `${name}-job` });
      expect(summary).toMatchObject({ status: "failed", processed: 0, exceptions: 5 });
      // Two attempts, two keys, the same records each time; nothing recorded as processed.
      expect(fake.requests.map((r) => r.key)).toEqual([`${name}-job:1:1`, `${name}-job:1:2`]);
      expect(await store.details.countDocuments({ jobId: `${name}-job`, status: "processed" })).toBe(0);
      const chunk = await store.chunks.findOne({ jobId: `${name}-job`, chunk: 1 });
      expect(chunk?.history?.map((h) => h.outcome)).toEqual(["badReply", "badReply"]);
      expect(chunk?.lastError).toMatch(reason);
      const exception = await store.exceptions.findOne({ jobId: `${name}-job` });
      expect(exception?.reason).toMatch(reason);
    });
  }

  it("a service that also wrote a status: the chunk is closed by its records, not by the reply", async () => {
    // Found by review: the reply said all processed, but one record was `failed` already (written
    // by the service itself); the fenced write skips it, so the chunk must not count it processed.
    const name = "cm_mixed";
    await seed(`${name}_src`, 5);
    const fake = await startFakeService(store, async (req) => {
      await store.details.updateOne(
        {
          jobId: req.body.jobId,
          recordId: req.body.records[0]?.id,
          status: "sent",
          attempts: req.body.attempt,
        },
        { $set: { status: "failed", attempt: req.body.attempt, error: "written by the service" } },
      );
      return { status: 200, body: JSON.stringify({ status: "processed" }) };
    });
    cleanups.push(() => fake.stop());
    await config(name, fake.url, { completion: "response", retry: { maxAttempts: 2 } });
    const summary = await runJobLocally({ store, config: name, jobId: `${name}-job` });
    const processed = await store.details.countDocuments({ jobId: `${name}-job`, status: "processed" });
    const exceptions = await store.exceptions.countDocuments({ jobId: `${name}-job` });
    expect(processed + exceptions).toBe(5);
    expect(summary.processed).toBe(processed);
    const chunk = await store.chunks.findOne({ jobId: `${name}-job`, chunk: 1 });
    expect(chunk?.processedCount ?? 0).toBe(processed);
    // The first attempt ended with one record failed; the second sent only that one again.
    expect(chunk?.history?.[0]?.outcome).toBe("recordsFailed");
    expect(fake.requests[1]?.body.records).toHaveLength(1);
  });

  it("ids match across numeric types, as MongoDB compares them", async () => {
    const name = "cm_numeric";
    await store.db
      .collection(`${name}_src`)
      .insertMany([1, 2, 3].map((i) => ({ _id: i as never, name: `n${i}` })));
    // The service echoes ids as doubles in canonical Extended JSON.
    const fake = await startFakeService(store, (req) => ({
      status: 200,
      body: JSON.stringify({
        results: req.body.records.map((r) => ({
          id: { $numberDouble: `${Number(r.id)}.0` },
          status: "processed",
        })),
      }),
    }));
    cleanups.push(() => fake.stop());
    await config(name, fake.url, { completion: "response" });
    const summary = await runJobLocally({ store, config: name, jobId: `${name}-job` });
    expect(summary).toMatchObject({ status: "succeeded", processed: 3 });
  });
});

describe("response: one server step", () => {
  it("serves the job until done, counting what it finished; past its time limit it hands over to a fresh run", async () => {
    const name = "cm_limit";
    await seed(`${name}_src`, 5 * (100 / SCALE));
    let clock = Date.UTC(2026, 0, 1);
    const fake = await startFakeService(store, (req) => {
      clock += 2_000; // each request takes two (fake) seconds
      return { status: 200, body: results(req.body.records) };
    });
    cleanups.push(() => fake.stop());
    await config(name, fake.url, { completion: "response", maxInFlight: 1 });
    const handOver = recordingHandOver();
    const deps = stepDeps(store, { handOver, now: () => new Date(clock) });
    await initializeJob(deps, { config: name, jobId: `${name}-job` });
    // 3 s: the first chunk goes (0 s elapsed), so does the second (2 s); then the run hands over.
    const first = await dispatchJob(deps, { jobId: `${name}-job` }, { maxRunMs: 3_000 });
    expect(first).toMatchObject({ outcome: "dispatched", chunks: [1, 2] });
    expect(first.finished).toEqual({
      chunks: 2,
      records: 2 * (100 / SCALE),
      succeeded: 2 * (100 / SCALE),
      failed: 0,
    });
    const serves = handOver.calls.filter((c) => c.kind === "serve").map((c) => c.key);
    expect(serves).toContain(`serve:${name}-job:after:2:1`);
    // The fresh run finishes the job.
    const rest = await dispatchJob(deps, { jobId: `${name}-job` });
    expect(rest).toMatchObject({ outcome: "finished", status: "succeeded" });
    expect(fake.requests.map((r) => r.key)).toEqual([1, 2, 3, 4, 5].map((c) => `${name}-job:${c}:1`));
  });
});

describe("callback", () => {
  it("refuses forged and replayed callbacks and ones for attempts it never sent", async () => {
    const name = "cm_cb_refuse";
    await seed(`${name}_src`, 3);
    let captured: FakeRequest | undefined;
    const seen: Array<{ status: number; body: string }> = [];
    const post = async (url: string, body: unknown) => {
      const res = await request(url, { method: "POST", body: JSON.stringify(body) });
      const r = { status: res.statusCode, body: await res.body.text() };
      seen.push(r);
      return r;
    };
    const fake = await startFakeService(store, async (req) => {
      captured = req;
      const cb = req.body as unknown as { callback: { url: string; token: string } };
      const outcome = { results: req.body.records.map((r) => ({ id: r.id, status: "processed" })) };
      // The URL carries this attempt's token.
      expect(cb.callback.url).toContain(`?token=${cb.callback.token}`);
      const bare = cb.callback.url.split("?")[0] as string;
      // Forged: no token, a wrong one, this attempt's token on another attempt's URL — refused
      // before the body is read (a token in the body does not count).
      expect((await post(bare, { ...outcome, token: cb.callback.token })).status).toBe(401);
      expect((await post(`${bare}?token=${"x".repeat(43)}`, outcome)).status).toBe(401);
      const otherUrl = cb.callback.url.replace(/\/1\/1\?/, "/1/2?");
      expect((await post(otherUrl, outcome)).status).toBe(401);
      // Ids go back as the request sent them (relaxed Extended JSON: {"$oid": …}).
      setTimeout(() => {
        void post(cb.callback.url, JSON.parse(EJSON.stringify(outcome, { relaxed: true })));
      }, 5);
      return { status: 202 };
    });
    cleanups.push(() => fake.stop());
    await config(name, fake.url, { completion: "callback" });
    const summary = await runJobLocally({ store, config: name, jobId: `${name}-job` });
    expect(summary).toMatchObject({ status: "succeeded", processed: 3 });
    expect(seen.at(-1)?.status).toBe(200);
    expect(captured?.body).toHaveProperty("callback.url");
  });

  it("a callback that never comes falls back to the chunk timeout; the next attempt's callback closes it", async () => {
    const name = "cm_cb_timeout";
    await seed(`${name}_src`, 4);
    const fake = await startFakeService(store, (req) => {
      const { callback } = req.body as unknown as { callback: { url: string; token: string } };
      if (req.body.attempt >= 2) {
        setTimeout(() => {
          void request(callback.url, {
            method: "POST",
            body: EJSON.stringify({ token: callback.token, status: "processed" }, { relaxed: true }),
          }).then((r) => r.body.text());
        }, 1);
      }
      return { status: 202 };
    });
    cleanups.push(() => fake.stop());
    await config(name, fake.url, {
      completion: "callback",
      watch: { pollIntervalMs: 20, chunkTimeoutMs: 300 },
    });
    const summary = await runJobLocally({ store, config: name, jobId: `${name}-job` });
    expect(summary).toMatchObject({ status: "succeeded", processed: 4 });
    const chunk = await store.chunks.findOne({ jobId: `${name}-job`, chunk: 1 });
    expect(chunk?.history?.map((h) => h.outcome)).toEqual(["timedOut", "processed"]);
    expect(fake.requests.map((r) => r.key)).toEqual([`${name}-job:1:1`, `${name}-job:1:2`]);
  });

  it("the listener: held early callbacks, one taker, replays and closed attempts refused", async () => {
    const listener = new CallbackListener(store, () => ({}));
    cleanups.push(() => listener.close());
    const ref = { jobId: "cb-unit", chunk: 1, attempt: 1 };
    const { url, token } = await listener.open(ref, 10_000);
    expect(url).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/callbacks\/cb-unit\/1\/1\?token=[\w-]{43}$/);
    // Early: no watcher yet. The reply waits for the watcher's verdict.
    const early = request(url, { method: "POST", body: JSON.stringify({ token, status: "processed" }) });
    const arrival = await listener.wait(ref, 10_000);
    expect(arrival).toMatchObject({ kind: "called", body: { token, status: "processed" } });
    if (arrival.kind === "called") arrival.settle?.({ ok: false, status: 422, error: "does not match" });
    const res = await early;
    expect(res.statusCode).toBe(422);
    expect(await res.body.json()).toEqual({ error: "does not match" });
    // The same callback again: the attempt is closed.
    const again = await request(url, {
      method: "POST",
      body: JSON.stringify({ token, status: "processed" }),
    });
    expect(again.statusCode).toBe(409);
    await again.body.text();
    // Not JSON, wrong path.
    const bad = await request(url.replace("/callbacks/", "/other/"), { method: "POST", body: "{}" });
    expect(bad.statusCode).toBe(404);
    await bad.body.text();
    // Without the token, the route refuses before it reads the body (however large).
    const huge = await request(url.split("?")[0] as string, {
      method: "POST",
      body: "x".repeat(8 * 1024 * 1024),
    });
    expect(huge.statusCode).toBe(401);
    await huge.body.text();
    // A wait with no callback times out.
    const ref2 = { jobId: "cb-unit", chunk: 2, attempt: 1 };
    await listener.open(ref2, 10_000);
    expect(await listener.wait(ref2, 30)).toEqual({ kind: "timedOut" });
  });
});

function results(records: Array<{ id: unknown }>) {
  return EJSON.stringify(
    { results: records.map((r) => ({ id: r.id, status: "processed" })) },
    { relaxed: true },
  );
}

/** A seeded random source: the fail rate's draws are the same every run. */
function mulberry(seed: number): () => number {
  let a = seed;
  return () => {
    a = (a + 0x6d2b79f5) | 0;
    let x = Math.imul(a ^ (a >>> 15), 1 | a);
    x = (x + Math.imul(x ^ (x >>> 7), 61 | x)) ^ x;
    return ((x ^ (x >>> 14)) >>> 0) / 4294967296;
  };
}
