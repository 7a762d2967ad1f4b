/**
 * Callbacks on Trigger.dev through the real SDK against the stand-in platform
 * (test/support/trigger-platform.ts): one wait token per attempt, what `wait.createToken` sends,
 * a POST to the token's URL completing it (also before anyone waits), a token that times out,
 * and a callback-mode job run as the platform runs it, its watchers suspended on tokens.
 */
import { request } from "undici";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  type FakeTriggerApi,
  type RunBody,
  drainRuns,
  executeRun,
  startFakeTriggerApi,
} from "../../support/trigger-platform.js";
import { saveConfig } from "../../../src/store/configs.js";
import { startBatchService } from "../../../src/service/batch-service.js";
import { Store } from "../../../src/store/store.js";
import { uriWithDatabase } from "../../../src/store/connection.js";
import { callbackTokenKey, triggerCallbacks } from "../../../src/runtimes/trigger/callback-tokens.js";
import { runBatchDataInitializer } from "../../../src/tasks/batch-data-initializer.js";
import { runBatchDataServer } from "../../../src/tasks/batch-data-server.js";
import { runChunkProcessWatcher } from "../../../src/tasks/chunk-process-watcher.js";
import { useTestDatabase, useWorkerDatabase } from "../../support/db.js";

const t = useTestDatabase("callback_tokens");
useWorkerDatabase(t);
let store: Store;
let api: FakeTriggerApi;

beforeAll(async () => {
  store = new Store(t.db());
  await store.ensureIndexes();
  api = await startFakeTriggerApi();
});
afterAll(async () => {
  await api.close();
});

/** Runs `body` inside a run's task context (the SDK's token calls need one). */
async function inRun<T>(body: () => Promise<T>): Promise<T> {
  const run = api.startRun("chunk-process-watcher", {});
  const { result, error } = await executeRun(run, body, 20);
  if (error) throw error instanceof Error ? error : new Error(JSON.stringify(error));
  return result as T;
}

const post = async (url: string, body: unknown) => {
  const res = await request(url, {
    method: "POST",
    body: JSON.stringify(body),
    headers: { "content-type": "application/json" },
  });
  await res.body.text();
  return res.statusCode;
};

describe("wait tokens as callbacks", () => {
  it("one token per attempt: the same for every open and wait of it, another for the next attempt", async () => {
    const channel = triggerCallbacks();
    const ref = { jobId: "tok-1", chunk: 3, attempt: 1 };
    const before = api.requests.length;
    const a = await inRun(() => channel.open(ref, 60_000));
    const b = await inRun(() => channel.open(ref, 60_000));
    const c = await inRun(() => channel.open({ ...ref, attempt: 2 }, 60_000));
    expect(a.url).toBe(b.url);
    expect(c.url).not.toBe(a.url);
    expect(a.url.startsWith(api.url)).toBe(true);
    const creates = api.requests.slice(before).filter((r) => r.path === "/api/v1/waitpoints/tokens");
    expect(creates).toHaveLength(3);
    const sent = creates[0]?.body as Record<string, unknown>;
    expect(sent).toMatchObject({
      idempotencyKey: callbackTokenKey(ref),
      idempotencyKeyTTL: `${60 + 24 * 3600}s`,
      tags: ["job:tok-1"],
    });
    const timeoutAt = Date.parse(String(sent.timeout));
    expect(timeoutAt - (creates[0]?.receivedAt ?? 0)).toBeGreaterThan(55_000);
    expect(timeoutAt - (creates[0]?.receivedAt ?? 0)).toBeLessThanOrEqual(60_000);
  });

  it("a POST to the token's URL completes it with its body, also when it comes before the wait", async () => {
    const channel = triggerCallbacks();
    const ref = { jobId: "tok-2", chunk: 1, attempt: 1 };
    const { url } = await inRun(() => channel.open(ref, 60_000));
    const outcome = { results: [{ id: { $oid: "6560a1b2c3d4e5f601234567" }, status: "processed" }] };
    expect(await post(url, outcome)).toBe(200);
    // A second callback is ignored: the first completed the token.
    expect(await post(url, { status: "processed" })).toBe(200);
    const arrival = await inRun(() => channel.wait(ref, 60_000));
    expect(arrival).toEqual({ kind: "called", body: outcome });
    const waits = api.requests.filter((r) => /\/waitpoints\/tokens\/[^/]+\/wait$/.test(r.path));
    expect(waits.length).toBeGreaterThan(0);
  });

  it("a callback while the run waits resumes it; a token nobody completes times out", async () => {
    const channel = triggerCallbacks();
    const ref = { jobId: "tok-3", chunk: 1, attempt: 1 };
    const { url } = await inRun(() => channel.open(ref, 60_000));
    const waiting = inRun(() => channel.wait(ref, 60_000));
    // Deliver once the wait reached the platform (the run is suspended there).
    for (
      let i = 0;
      i < 500 &&
      !api.requests.some(
        (r) =>
          r.path.includes("/wait") &&
          r.path.includes([...api.tokens.values()].find((tk) => tk.url === url)?.id ?? "?"),
      );
      i++
    )
      await new Promise((r) => setTimeout(r, 10));
    expect(await post(url, { status: "processed" })).toBe(200);
    expect(await waiting).toEqual({ kind: "called", body: { status: "processed" } });

    const late = { jobId: "tok-3", chunk: 2, attempt: 1 };
    await inRun(() => channel.open(late, 50));
    expect(await inRun(() => channel.wait(late, 50))).toEqual({ kind: "timedOut" });
  });
});

describe("a callback-mode job on the platform", () => {
  it("watchers wait on tokens the reference service completes; every record is processed once", async () => {
    await store.db
      .collection("cb_src")
      .insertMany(Array.from({ length: 30 }, (_, i) => ({ _id: i as never, v: i })));
    const service = await startBatchService({
      mongoUri: uriWithDatabase(t.uri, t.db().databaseName),
      latencyMs: 20,
      completion: "callback",
    });
    try {
      await saveConfig(
        store,
        {
          name: "cb-platform",
          source: { collection: "cb_src", fields: ["v"] },
          chunking: { maxRecords: 10 },
          target: { url: service.url },
          completion: "callback",
        },
        new Date(),
      );
      const bodies: Record<string, RunBody> = {
        "batch-data-initializer": runBatchDataInitializer,
        "batch-data-server": runBatchDataServer,
        "chunk-process-watcher": runChunkProcessWatcher,
      };
      const before = api.requests.length;
      api.startRun("batch-data-initializer", { config: "cb-platform", jobId: "cb-platform-1" });
      await drainRuns(api, bodies, 100);
      expect(await store.jobs.findOne({ _id: "cb-platform-1" })).toMatchObject({
        status: "succeeded",
        totals: { records: 30, processed: 30 },
      });
      const ledger = service.ledger.filter((d) => !d.duplicate);
      expect(ledger.map((d) => d.chunk).sort()).toEqual([1, 2, 3]);
      const sent = api.requests.slice(before);
      const created = sent.filter((r) => r.path === "/api/v1/waitpoints/tokens");
      const waited = sent.filter((r) => /\/waitpoints\/tokens\/[^/]+\/wait$/.test(r.path));
      // The server created each attempt's token; each watcher got the same one back and waited on it.
      expect(new Set(created.map((r) => (r.body as { idempotencyKey: string }).idempotencyKey))).toEqual(
        new Set([1, 2, 3].map((c) => `callback:cb-platform-1:${c}:1`)),
      );
      expect(waited).toHaveLength(3);
      // No watcher polled: no status counts between the callbacks (no wait.for, no duration waits).
      expect(sent.some((r) => r.path.endsWith("/wait/duration"))).toBe(false);
    } finally {
      await service.stop();
    }
  });
});
