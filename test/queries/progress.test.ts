/**
 * The progress a runtime publishes (Trigger.dev run metadata): exact at the end, and counted over
 * the job's chunks at most once per period across all reporters, not once per step or poll.
 */
import { describe, expect, it } from "vitest";
import { saveConfig } from "../../src/store/configs.js";
import { initializeJob } from "../../src/steps/initialize/initialize.js";
import {
  type ProgressReport,
  createProgressReporter,
  readRecentJobProgress,
} from "../../src/queries/progress.js";
import { stepDeps, usePipelineStore } from "../support/pipeline.js";

const { store } = usePipelineStore("progress");

describe("readRecentJobProgress", () => {
  it("counts once per period, shares the count through the job document, and counts a finished job again", async () => {
    const s = store();
    await s.db
      .collection("progress_src")
      .insertMany(Array.from({ length: 30 }, (_, i) => ({ _id: i as never })));
    await saveConfig(
      s,
      {
        name: "progress",
        source: { collection: "progress_src" },
        chunking: { maxRecords: 10 },
        target: { url: "http://127.0.0.1:9/" },
      },
      new Date(),
    );
    await initializeJob(stepDeps(s), { config: "progress", jobId: "progress-job" });
    const t0 = new Date("2026-12-04T12:00:00Z");
    const first = await readRecentJobProgress(s, "progress-job", t0, 5000);
    expect(first).toMatchObject({ totalRecords: 30, totalChunks: 3, processedRecords: 0, doneChunks: 0 });
    // The service finishes chunk 1 meanwhile.
    await s.chunks.updateOne(
      { jobId: "progress-job", chunk: 1 },
      { $set: { status: "processed", done: true, processedCount: 10, failedCount: 0 } },
    );
    // Within the period every reporter (any process) gets the shared snapshot: no recount.
    const soon = await readRecentJobProgress(s, "progress-job", new Date(t0.getTime() + 4000), 5000);
    expect(soon.processedRecords).toBe(0);
    // After it, the first to ask counts again and shares the new count.
    const later = await readRecentJobProgress(s, "progress-job", new Date(t0.getTime() + 5000), 5000);
    expect(later).toMatchObject({ processedRecords: 10, doneChunks: 1 });
    expect((await s.jobs.findOne({ _id: "progress-job" }))?.progressSnapshot).toMatchObject({
      processedRecords: 10,
    });
    // A finished job is counted on every ask: its last report is exact.
    await s.chunks.updateMany(
      { jobId: "progress-job" },
      { $set: { status: "processed", done: true, processedCount: 10 } },
    );
    await s.jobs.updateOne({ _id: "progress-job" }, { $set: { status: "succeeded" } });
    const done = await readRecentJobProgress(s, "progress-job", new Date(t0.getTime() + 5001), 5000);
    expect(done).toMatchObject({ status: "succeeded", processedRecords: 30, doneChunks: 3 });
  });

  it("reports never fail a step: an unknown job or a failing publisher is logged", async () => {
    const warnings: string[] = [];
    const published: ProgressReport[] = [];
    const report = createProgressReporter({
      store: store(),
      now: () => new Date(),
      publish: (r) => {
        published.push(r);
        throw new Error("dashboard away");
      },
      warn: (message, fields) => warnings.push(`${message}: ${String(fields.error)}`),
    });
    await report({ jobId: "no-such-job" });
    await report({
      jobId: "progress-job",
      chunk: 2,
      counts: { pending: 0, sent: 4, processed: 6, failed: 0 },
    });
    expect(warnings).toEqual([
      "could not report progress: job no-such-job not found",
      "could not report progress: dashboard away",
    ]);
    expect(published[0]).toMatchObject({
      jobId: "progress-job",
      chunk: { number: 2, processed: 6, waiting: 4 },
    });
  });
});
