/**
 * The local runner as a worker: a run registers one, counts the chunks its watchers finished and
 * their records (processed as succeeded, set aside as failed), and marks it stopped at the end.
 */
import { beforeAll, describe, expect, it } from "vitest";
import { saveConfig } from "../../../src/store/configs.js";
import { runJobLocally } from "../../../src/runtimes/local/local-runner.js";
import { startWorker } from "../../../src/runtimes/worker-registry.js";
import type { Store } from "../../../src/store/store.js";
import { listWorkers, readWorker } from "../../../src/store/workers.js";
import { startFakeService, usePipelineStore } from "../../support/pipeline.js";

const { store: currentStore, cleanups } = usePipelineStore("local_workers");
let store: Store;
beforeAll(async () => {
  store = currentStore();
  await store.db.collection("lw_src").insertMany(Array.from({ length: 25 }, (_, i) => ({ _id: i as never })));
});

async function configWith(name: string, decide: Parameters<typeof startFakeService>[1]) {
  const fake = await startFakeService(store, decide);
  cleanups.push(() => fake.stop());
  await saveConfig(
    store,
    {
      name,
      source: { collection: "lw_src" },
      chunking: { maxRecords: 10 },
      target: { url: fake.url },
      retry: { maxAttempts: 1 },
      watch: { pollIntervalMs: 10 },
    },
    new Date(),
  );
}

describe("the local runner's worker", () => {
  it("shows the chunks and records a run handled, and is stopped afterwards", async () => {
    // Chunk 2 (10 records) fails; chunks 1 and 3 (10 + 5 records) are processed.
    await configWith("lw", (req) => ({ status: 202, report: req.body.chunk === 2 ? "failed" : "processed" }));
    const summary = await runJobLocally({ store, config: "lw", jobId: "lw-job", env: {} });
    expect(summary).toMatchObject({ status: "failed", records: 25, processed: 15, exceptions: 10 });
    const workers = (await listWorkers(store, { now: new Date(), all: true })).filter(
      (w) => w.kind === "local",
    );
    expect(workers).toHaveLength(1);
    expect(workers[0]).toMatchObject({
      kind: "local",
      pid: process.pid,
      state: "stopped",
      chunks: 3,
      records: 25,
      succeeded: 15,
      failed: 10,
    });
    // The worker id is the run's lease owner: the chunks say which worker sent them.
    const job = await store.jobs.findOne({ _id: "lw-job" });
    expect(job?.triggeredBy).toBe(workers[0]?.id);
  });

  it("counts under a worker it is given, and leaves stopping it to the caller", async () => {
    await configWith("lw2", () => ({ status: 202, report: "processed" }));
    const worker = startWorker(store, { kind: "listen", name: "given" });
    try {
      await runJobLocally({ store, config: "lw2", jobId: "lw2-a", env: {}, worker });
      await runJobLocally({
        store,
        config: "lw2",
        jobId: "lw2-b",
        env: {},
        worker,
        request: { mode: "full" },
      });
      await worker.flush();
      expect(await readWorker(store, worker.id, new Date())).toMatchObject({
        name: "given",
        state: "live",
        chunks: 6,
        records: 50,
        succeeded: 50,
        failed: 0,
      });
    } finally {
      await worker.stop();
    }
    expect(await readWorker(store, worker.id, new Date())).toMatchObject({ state: "stopped" });
  });
});
