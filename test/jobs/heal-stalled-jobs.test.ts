/** The stalled-job healer: kicks broken chains, and leaves moving jobs alone. */
import { beforeAll, describe, expect, it } from "vitest";
import { saveConfig } from "../../src/store/configs.js";
import { dispatchJob } from "../../src/steps/dispatch/dispatch.js";
import { healStalledJobs } from "../../src/jobs/heal-stalled-jobs.js";
import { initializeJob } from "../../src/steps/initialize/initialize.js";
import type { Store } from "../../src/store/store.js";
import { insertJob } from "../../src/store/jobs.js";
import { recordingHandOver, startFakeService, stepDeps, usePipelineStore } from "../support/pipeline.js";

const { cleanups, store: currentStore } = usePipelineStore("healing");
let store: Store;
beforeAll(() => {
  store = currentStore();
});

const MINUTE = 60_000;

describe("healStalledJobs", () => {
  it("kicks a watcher for an old sent chunk, the server for an expired lease, the initializer for dead planning", async () => {
    await store.db
      .collection("heal_src")
      .insertMany(Array.from({ length: 40 }, (_, i) => ({ _id: i as never })));
    const fake = await startFakeService(store, () => ({ status: 202, report: "none" }));
    cleanups.push(() => fake.stop());
    for (const name of ["heal-a", "heal-b"]) {
      await saveConfig(
        store,
        { name, source: { collection: "heal_src" }, chunking: { maxRecords: 10 }, target: { url: fake.url } },
        new Date(),
      );
    }
    // Job A: chunk 1 sent (its watcher never ran).
    const deps = stepDeps(store, { leaseMs: 1000 });
    await initializeJob(deps, { config: "heal-a", jobId: "heal-a-job" });
    await dispatchJob(deps, { jobId: "heal-a-job" });
    // Job B: its server died mid-POST, leaving chunk 1 dispatching under a lease.
    await initializeJob(deps, { config: "heal-b", jobId: "heal-b-job" });
    const dying = stepDeps(store, {
      owner: "dead",
      leaseMs: 1000,
      post: () => Promise.reject(new Error("killed")),
    });
    await expect(dispatchJob(dying, { jobId: "heal-b-job" })).rejects.toThrow("killed");
    // Job C: planning whose owner died.
    await insertJob(store, {
      _id: "heal-c-job",
      config: "heal-a",
      configHash: "x",
      mode: "full",
      description: "",
      window: { to: { key: 39, id: 39 } },
      partitioning: { orderBy: "_id", chunking: { maxRecords: 10 } },
      status: "planning",
      planning: { done: false, nextChunk: 1, records: 0, weight: 0 },
      planningLease: { owner: "dead", expiresAt: new Date(Date.now() - 30 * MINUTE) },
      triggeredBy: "test",
      createdAt: new Date(),
      startedAt: new Date(),
      updatedAt: new Date(),
    });

    // Right now nothing is stalled except the dead planning.
    const calm = recordingHandOver();
    const now = await healStalledJobs(
      { store, now: () => new Date(), handOver: calm },
      { staleAfterMs: 15 * MINUTE },
    );
    expect(now.map((a) => `${a.jobId}:${a.action}`)).toEqual(["heal-c-job:plan"]);
    expect(calm.calls.map((c) => [c.kind, c.payload])).toEqual([
      ["initialize", { config: "heal-a", jobId: "heal-c-job" }],
    ]);
    expect(calm.calls[0]?.key).toMatch(/^heal:heal-c-job:plan:\d+$/);

    // Twenty minutes later: job A's chunk is stale, job B's lease long expired.
    const later = recordingHandOver();
    const actions = await healStalledJobs(
      { store, now: () => new Date(Date.now() + 20 * MINUTE), handOver: later },
      { staleAfterMs: 15 * MINUTE },
    );
    expect(actions.map((a) => `${a.jobId}:${a.action}`).sort()).toEqual([
      "heal-a-job:watch",
      "heal-b-job:serve",
      "heal-c-job:plan",
    ]);
    expect(later.calls.map((c) => c.kind).sort()).toEqual(["initialize", "serve", "watch"]);
    // Healing the dead server's job redelivers its chunk under the same key.
    await dispatchJob(stepDeps(store, { now: () => new Date(Date.now() + 20 * MINUTE) }), {
      jobId: "heal-b-job",
    });
    const keysB = fake.requests.filter((r) => r.body.jobId === "heal-b-job").map((r) => r.key);
    expect(new Set(keysB)).toEqual(new Set(["heal-b-job:1:1"]));
  });

  it("hands a finished iteration over again when its next job never appeared", async () => {
    const finishedAt = new Date(Date.now() - 20 * MINUTE);
    await insertJob(store, {
      _id: "heal-it",
      config: "heal-a",
      configHash: "x",
      mode: "incremental",
      description: "",
      window: { to: { key: 9, id: 9 } },
      lane: { id: "heal-it-lane", seq: 1, end: { key: 9, id: 9 } },
      partitioning: { orderBy: "_id", chunking: { maxRecords: 10 }, workload: { maxRecords: 10 } },
      iteration: { index: 1, of: 3, firstJob: "heal-it" },
      status: "succeeded",
      planning: { done: true, nextChunk: 2, records: 10, weight: 0 },
      totals: { records: 10, chunks: 1, processed: 10, failed: 0, exceptions: 0 },
      triggeredBy: "test",
      createdAt: finishedAt,
      startedAt: finishedAt,
      finishedAt,
      updatedAt: finishedAt,
    });
    const kicks = recordingHandOver();
    const actions = await healStalledJobs(
      { store, now: () => new Date(), handOver: kicks },
      { staleAfterMs: 15 * MINUTE },
    );
    expect(actions).toContainEqual({ jobId: "heal-it", action: "serve" });
    // The server of a finished job hands over to the next iteration, keyed by its id.
    const next = recordingHandOver();
    await dispatchJob(stepDeps(store, { handOver: next }), { jobId: "heal-it" });
    expect(next.calls).toEqual([
      {
        kind: "initialize",
        key: "initialize:heal-it.2",
        payload: {
          config: "heal-a",
          jobId: "heal-it.2",
          mode: "incremental",
          maxRecords: 10,
          description: "",
          iteration: { index: 2, of: 3, firstJob: "heal-it" },
        },
      },
    ]);
  });
});
