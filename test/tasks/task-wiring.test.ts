/**
 * The Trigger.dev adapters without the platform: payload schemas (what the dashboard shows and
 * validates), hand-over keys built from business ids (so replays dedupe), and error mapping (bad
 * input fails without retry). The task bodies run inside `runInMockTaskContext` against the test
 * database, the way a worker (or a replay from the dashboard) runs them.
 */
import { runInMockTaskContext } from "@trigger.dev/core/v3/test";
import { AbortTaskRunError, metadata } from "@trigger.dev/sdk";
import { beforeAll, describe, expect, it } from "vitest";
import { z } from "zod";
import { saveConfig } from "../../src/store/configs.js";
import { dispatchPayloadSchema } from "../../src/steps/dispatch/dispatch.js";
import { keys } from "../../src/steps/handover.js";
import { type TriggerOptions, createTriggerHandOver } from "../../src/runtimes/trigger/trigger-handover.js";
import { dashboardPayloadSchema, initializePayloadSchema } from "../../src/steps/initialize/payload.js";
import { Store } from "../../src/store/store.js";
import { watchPayloadSchema } from "../../src/steps/watch/watch.js";
import { batchDataInitializer, runBatchDataInitializer } from "../../src/tasks/batch-data-initializer.js";
import { batchDataServer, runBatchDataServer } from "../../src/tasks/batch-data-server.js";
import { chunkProcessWatcher, runChunkProcessWatcher } from "../../src/tasks/chunk-process-watcher.js";
import { nightlyIncremental } from "../../src/tasks/nightly-incremental.js";
import { stalledJobHealer } from "../../src/tasks/stalled-job-healer.js";
import { useTestDatabase, useWorkerDatabase } from "../support/db.js";

const t = useTestDatabase("task_wiring");
useWorkerDatabase(t);
let store: Store;

beforeAll(async () => {
  store = new Store(t.db());
  await store.ensureIndexes();
});

describe("task declarations", () => {
  it("declares the three tasks and the scheduled ones with stable ids", () => {
    expect([
      batchDataInitializer.id,
      batchDataServer.id,
      chunkProcessWatcher.id,
      nightlyIncremental.id,
      stalledJobHealer.id,
    ]).toEqual([
      "batch-data-initializer",
      "batch-data-server",
      "chunk-process-watcher",
      "nightly-incremental",
      "stalled-job-healer",
    ]);
  });

  it("publishes payload schemas the dashboard can show, and refuses bad payloads", () => {
    // The output side, as Trigger.dev converts a task's schema (@trigger.dev/schema-to-json).
    const init = z.toJSONSchema(dashboardPayloadSchema, { io: "output" }) as {
      properties: Record<string, unknown>;
      required?: string[];
    };
    expect(Object.keys(init.properties)).toEqual([
      "config",
      "jobId",
      "mode",
      "from",
      "to",
      "again",
      "maxRecords",
      "maxWeight",
      "maxChunks",
      "iterations",
      "sampleEvery",
      "sampleOffset",
      "sampleFirst",
      "fromJob",
      "description",
      "acceptConfigChange",
      "iteration",
    ]);
    expect(init.required).toEqual(["config"]);
    expect(initializePayloadSchema.safeParse({ config: "a", extra: 1 }).success).toBe(false);
    expect(dispatchPayloadSchema.safeParse({ jobId: "" }).success).toBe(false);
    expect(watchPayloadSchema.safeParse({ jobId: "j", chunk: 0, attempt: 1 }).success).toBe(false);
    expect(watchPayloadSchema.parse({ jobId: "j", chunk: 1, attempt: 1 })).toEqual({
      jobId: "j",
      chunk: 1,
      attempt: 1,
    });
  });
});

describe("Trigger.dev hand-over", () => {
  it("triggers with global idempotency keys built from business ids, and delays without a slot", async () => {
    const triggered: Array<{ task: string; payload: unknown; options: TriggerOptions }> = [];
    const handOver = createTriggerHandOver({
      globalKey: (k) => Promise.resolve(`global(${k})`),
      triggerInitializer: (payload, options) =>
        Promise.resolve(triggered.push({ task: "initializer", payload, options })),
      triggerServer: (payload, options) =>
        Promise.resolve(triggered.push({ task: "server", payload, options })),
      triggerWatcher: (payload, options) =>
        Promise.resolve(triggered.push({ task: "watcher", payload, options })),
      configOf: (jobId) => Promise.resolve(jobId === "j1" ? "orders" : undefined),
      now: () => new Date("2026-01-01T00:00:00Z"),
    });
    await handOver.watch({ jobId: "j1", chunk: 3, attempt: 2 }, keys.watch("j1", 3, 2));
    await handOver.serve({ jobId: "j1" }, keys.serveRetry("j1", 3, 2, 4), 1500);
    // The next job of an iteration: the initializer, keyed by the next job's id.
    await handOver.initialize({ config: "c", jobId: "j1.2", mode: "incremental" }, "initialize:j1.2");
    expect(triggered).toEqual([
      {
        task: "watcher",
        payload: { jobId: "j1", chunk: 3, attempt: 2 },
        options: {
          idempotencyKey: "global(watch:j1:3:2)",
          idempotencyKeyTTL: "30d",
          tags: ["job:j1", "config:orders", "chunk:3"],
        },
      },
      {
        task: "server",
        payload: { jobId: "j1" },
        options: {
          idempotencyKey: "global(serve:j1:3:2:try4)",
          idempotencyKeyTTL: "30d",
          delay: new Date("2026-01-01T00:00:01.500Z"),
          tags: ["job:j1", "config:orders"],
          concurrencyKey: "j1",
        },
      },
      {
        task: "initializer",
        payload: { config: "c", jobId: "j1.2", mode: "incremental" },
        options: {
          idempotencyKey: "global(initialize:j1.2)",
          idempotencyKeyTTL: "30d",
          tags: ["job:j1.2", "config:c"],
        },
      },
    ]);
    // A replay of the same step asks for the same key, so Trigger.dev runs the next step once.
    expect(keys.watch("j1", 3, 2)).toBe(keys.watch("j1", 3, 2));
    expect(keys.delivery("j1", 3, 2)).toBe("j1:3:2");
  });
});

describe("task bodies in a mock task context", () => {
  it("initializes a job with nothing to do and finishes it, replay after replay", async () => {
    await store.db.collection("wiring_src").insertOne({ kind: "other" });
    await saveConfig(
      store,
      {
        name: "wiring",
        source: { collection: "wiring_src", filter: { kind: "wanted" } },
        target: { url: "http://127.0.0.1:9/x" },
      },
      new Date(),
    );
    for (const runId of ["run_first", "run_replay_1", "run_replay_2"]) {
      const result = await runInMockTaskContext(
        ({ ctx }) => runBatchDataInitializer({ config: "wiring", jobId: "wiring-job" }, ctx),
        { ctx: { run: { id: runId, isReplay: runId !== "run_first" } } },
      );
      expect(result).toMatchObject({ jobId: "wiring-job", records: 0, status: "succeeded" });
    }
    expect(await store.jobs.countDocuments({ _id: "wiring-job" })).toBe(1);
    const { served, shown } = await runInMockTaskContext(async ({ ctx }) => ({
      served: await runBatchDataServer({ jobId: "wiring-job" }, ctx),
      shown: metadata.current(),
    }));
    expect(served).toEqual({ outcome: "finished", status: "succeeded" });
    // The dashboard shows the job's progress as run metadata.
    expect(shown?.["job:wiring-job"]).toMatchObject({
      jobId: "wiring-job",
      config: "wiring",
      state: "succeeded",
    });
    // Every invocation is recorded for `chunkrelay stats`.
    expect(await store.taskStats.countDocuments({ jobId: "wiring-job", task: "batchDataServer" })).toBe(1);
  });

  it("maps bad input to AbortTaskRunError (no retries)", async () => {
    const unknownConfig = await runInMockTaskContext(({ ctx }) =>
      runBatchDataInitializer({ config: "does-not-exist" }, ctx).catch((e: unknown) => e),
    );
    expect(unknownConfig).toBeInstanceOf(AbortTaskRunError);
    expect((unknownConfig as Error).message).toContain("config 'does-not-exist' not found");
    const badPayload = await runInMockTaskContext(({ ctx }) =>
      runBatchDataServer({ job: "x" }, ctx).catch((e: unknown) => e),
    );
    expect(badPayload).toBeInstanceOf(AbortTaskRunError);
    const unknownJob = await runInMockTaskContext(({ ctx }) =>
      runChunkProcessWatcher({ jobId: "nope", chunk: 1, attempt: 1 }, ctx).catch((e: unknown) => e),
    );
    expect(unknownJob).toBeInstanceOf(AbortTaskRunError);
  });
});
