/** Seeing what jobs did: listings, reports, step statistics, lineage, exceptions, drift, delete. */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { saveConfig } from "../../src/store/configs.js";
import { BadInputError } from "../../src/common/errors.js";
import { readBacklog } from "../../src/queries/backlog.js";
import { listExceptions, showException } from "../../src/queries/set-aside-records.js";
import { resolveException, resolveExceptions } from "../../src/admin/set-aside-records.js";
import { deleteJob } from "../../src/admin/delete-job.js";
import { jobReport, listJobs } from "../../src/queries/jobs.js";
import { parseRecordId, whereIsRecord } from "../../src/queries/lineage.js";
import { stepStats } from "../../src/queries/step-stats.js";
import { runJobLocally } from "../../src/runtimes/local/local-runner.js";
import type { Store } from "../../src/store/store.js";
import { startFakeService, usePipelineStore } from "../support/pipeline.js";

const { store: currentStore } = usePipelineStore("inspect");
let store: Store;
let url = "";
let stopFake: () => Promise<void> = () => Promise.resolve();
afterAll(() => stopFake());

beforeAll(async () => {
  store = currentStore();
  await store.db
    .collection("insp_src")
    .insertMany(Array.from({ length: 40 }, (_, i) => ({ _id: i as never, n: i })));
  // Chunk 2 of every job is rejected; everything else is processed.
  const fake = await startFakeService(store, (req) =>
    req.body.chunk === 2 ? { status: 400, body: '{"error":"no"}' } : { status: 202, report: "processed" },
  );
  url = fake.url;
  stopFake = () => fake.stop();
  for (const name of ["insp-a", "insp-b"]) {
    await saveConfig(
      store,
      {
        name,
        source: { collection: "insp_src" },
        chunking: { maxRecords: 10 },
        target: { url },
        watch: { pollIntervalMs: 10 },
      },
      new Date(),
    );
  }
});

describe("inspecting jobs", () => {
  it("lists jobs, reports one with step statistics, traces a record and resolves its exception", async () => {
    const a = await runJobLocally({ store, config: "insp-a", jobId: "insp-a-job" });
    const b = await runJobLocally({ store, config: "insp-b", jobId: "insp-b-job" });
    expect([a.status, b.status]).toEqual(["failed", "failed"]);

    const all = await listJobs(store);
    expect(all.map((j) => j.jobId)).toEqual(expect.arrayContaining(["insp-a-job", "insp-b-job"]));
    const onlyA = await listJobs(store, { config: "insp-a" });
    expect(onlyA.map((j) => j.jobId)).toEqual(["insp-a-job"]);
    expect(onlyA[0]).toMatchObject({ records: 40, processed: 30, exceptions: 10, status: "failed" });

    const report = await jobReport(store, "insp-a-job");
    expect(report.exceptions).toBe(10);
    expect(report.chunks.map((c) => c.status)).toEqual(["processed", "failed", "processed", "processed"]);
    const byTask = Object.fromEntries(report.steps.map((s) => [s.task, s]));
    expect(byTask.batchDataInitializer?.invocations).toBe(1);
    expect(byTask.chunkProcessWatcher?.invocations).toBe(3);
    expect(byTask.batchDataServer?.invocations).toBeGreaterThanOrEqual(4);
    expect(byTask.batchDataServer?.failed).toBe(0);
    expect(report.driftedChunks).toEqual([]);

    const overall = await stepStats(store);
    expect(overall.find((s) => s.task === "chunkProcessWatcher")?.invocations).toBe(6);

    const lineage = await whereIsRecord(store, parseRecordId("15"));
    expect(lineage.map((l) => [l.jobId, l.chunk, l.status])).toEqual(
      expect.arrayContaining([
        // Set aside: the record is failed, so a late report of the attempt cannot land.
        ["insp-a-job", 2, "failed"],
        ["insp-b-job", 2, "failed"],
      ]),
    );
    expect(lineage.every((l) => l.exception?.includes("HTTP 400: no"))).toBe(true);
    expect(await whereIsRecord(store, 15, "insp-b")).toHaveLength(1);
    expect((await whereIsRecord(store, 3))[0]).toMatchObject({ status: "processed", attempts: 1 });

    const open = await listExceptions(store, { jobId: "insp-a-job", unresolved: true });
    expect(open).toHaveLength(10);
    await resolveException(store, "insp-a-job", 15, "re-sent by hand", new Date());
    expect(await showException(store, "insp-a-job", 15)).toMatchObject({
      chunk: 2,
      resolution: { note: "re-sent by hand" },
    });
    expect(await listExceptions(store, { jobId: "insp-a-job", unresolved: true })).toHaveLength(9);
    await expect(resolveException(store, "insp-a-job", 999, "x", new Date())).rejects.toThrow(BadInputError);
  });

  it("keeps the watermark at the end of the completed prefix; the backlog counts what is past it", async () => {
    // insp-a-job: chunk 1 (records 0-9) processed, chunk 2 rejected: the watermark stops at 9.
    const backlog = await readBacklog(store, "insp-a");
    expect(backlog).toMatchObject({
      config: "insp-a",
      completedUpTo: { key: 9, id: 9 },
      completedBy: "insp-a-job",
      records: 30,
    });
    await store.db.collection("insp_src").insertOne({ _id: 40 as never, n: 40 });
    expect((await readBacklog(store, "insp-a")).records).toBe(31);
    await store.db.collection("insp_src").deleteOne({ _id: 40 as never });
    await saveConfig(
      store,
      { name: "insp-fresh", source: { collection: "insp_src" }, target: { url } },
      new Date(),
    );
    expect(await readBacklog(store, "insp-fresh")).toEqual({
      config: "insp-fresh",
      records: 40,
      backfills: [],
    });
  });

  it("requeues a job's unresolved exceptions into a new job of the same config", async () => {
    // insp-a-job set records 10-19 aside; 15 was resolved by hand above, so 9 go out again.
    const requeued = await runJobLocally({
      store,
      config: "insp-a",
      jobId: "insp-a-requeue",
      fromJob: "insp-a-job",
    });
    expect(requeued).toMatchObject({ status: "succeeded", records: 9, processed: 9 });
    const job = await store.jobs.findOne({ _id: "insp-a-requeue" });
    expect(job).toMatchObject({ mode: "exceptions", fromJob: "insp-a-job" });
    const lineage = await whereIsRecord(store, 12);
    expect(lineage.map((l) => [l.jobId, l.status])).toEqual(
      expect.arrayContaining([
        ["insp-a-job", "failed"],
        ["insp-a-requeue", "processed"],
      ]),
    );
    expect(await whereIsRecord(store, 15, "insp-a")).toHaveLength(1);
    // The requeue processed every record the first job had set aside (15 was resolved by hand):
    // their exceptions are resolved, the first job is complete, and the watermark moves over it.
    expect(await showException(store, "insp-a-job", 12)).toMatchObject({
      resolution: { byJob: "insp-a-requeue" },
    });
    expect(await store.jobs.findOne({ _id: "insp-a-job" })).toMatchObject({
      status: "failed",
      complete: true,
    });
    expect(await readBacklog(store, "insp-a")).toMatchObject({
      completedUpTo: { key: 39, id: 39 },
      records: 0,
    });
    await expect(
      runJobLocally({ store, config: "insp-b", jobId: "wrong-config", fromJob: "insp-a-job" }),
    ).rejects.toThrow("belongs to config 'insp-a'");
  });

  it("deletes one job's documents everywhere, leaving other jobs untouched", async () => {
    const dry = await deleteJob(store, "insp-b-job", false);
    expect(dry).toMatchObject({ deleted: false, details: 40, chunks: 4, exceptions: 10 });
    expect(dry.taskStats).toBeGreaterThan(0);
    expect(await store.details.countDocuments({ jobId: "insp-b-job" })).toBe(40);
    // Its set-aside records still hold its config's watermark: resolve them before deleting it.
    await expect(deleteJob(store, "insp-b-job", true)).rejects.toThrow("the watermark has not passed it yet");
    expect(await resolveExceptions(store, "insp-b-job", "test data, not needed", new Date())).toBe(10);
    expect((await readBacklog(store, "insp-b")).completedUpTo).toEqual({ key: 39, id: 39 });
    const done = await deleteJob(store, "insp-b-job", true);
    expect(done.deleted).toBe(true);
    for (const coll of [store.details, store.chunks, store.exceptions, store.taskStats]) {
      expect(await coll.countDocuments({ jobId: "insp-b-job" })).toBe(0);
    }
    expect(await store.jobs.countDocuments({ _id: "insp-b-job" })).toBe(0);
    expect(await store.details.countDocuments({ jobId: "insp-a-job" })).toBe(40);
    expect(await store.taskStats.countDocuments({ jobId: "insp-a-job" })).toBeGreaterThan(0);
  });

  it("refuses to delete a running job, and resumes after a config change only when told to", async () => {
    await saveConfig(
      store,
      {
        name: "insp-c",
        source: { collection: "insp_src" },
        chunking: { maxRecords: 10 },
        target: { url },
        watch: { pollIntervalMs: 10 },
      },
      new Date(),
    );
    const controller = new AbortController();
    // Stop the run right after planning: the job stays running.
    const stopped = await runJobLocally({
      store,
      config: "insp-c",
      jobId: "insp-c-job",
      signal: controller.signal,
      onProgress: () => controller.abort(),
      progressEveryMs: 1,
      leaseMs: 300,
    });
    expect(stopped.status).toBe("interrupted");
    await expect(deleteJob(store, "insp-c-job", true)).rejects.toThrow("cannot be deleted while it runs");

    await saveConfig(
      store,
      {
        name: "insp-c",
        source: { collection: "insp_src" },
        chunking: { maxRecords: 10 },
        target: { url, timeoutMs: 5000 },
        watch: { pollIntervalMs: 10 },
      },
      new Date(),
    );
    await expect(runJobLocally({ store, config: "insp-c", jobId: "insp-c-job" })).rejects.toThrow(
      "--accept-config-change",
    );
    const before = await jobReport(store, "insp-c-job");
    expect(before.currentConfigHash).not.toBe(before.job.configHash);
    const resumed = await runJobLocally({
      store,
      config: "insp-c",
      jobId: "insp-c-job",
      acceptConfigChange: true,
      leaseMs: 300,
    });
    expect(resumed.status).toBe("failed"); // chunk 2 is rejected, as for every job here
    const after = await jobReport(store, "insp-c-job");
    expect(after.job.configChanges).toHaveLength(1);
    expect(after.job.configHash).toBe(after.currentConfigHash);
    // Chunks sent before the change, if any, are flagged; those after carry the new hash.
    for (const c of after.chunks) {
      if (after.driftedChunks.includes(c.chunk))
        expect(c.configHash).toBe(after.job.configChanges?.[0]?.from);
      else if (c.sentAt) expect(c.configHash).toBe(after.job.configHash);
    }
  });
});
