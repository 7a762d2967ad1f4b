/**
 * One chunk on demand (`run-chunk`): a finished job reopened to send one chunk again, all of it
 * or only its records not processed, through the real steps against a fake service on port 0 and
 * a real wire connection. The job finishes again with exact totals; bad requests change nothing.
 */
import { EJSON } from "bson";
import { beforeAll, describe, expect, it } from "vitest";
import { saveConfig } from "../../../src/store/configs.js";
import { runJobLocally } from "../../../src/runtimes/local/local-runner.js";
import type { Store } from "../../../src/store/store.js";
import { runChunkAgain } from "../../../src/steps/rerun/rerun-chunk.js";
import { dispatchJob } from "../../../src/steps/dispatch/dispatch.js";
import { reopenJobForRerun } from "../../../src/store/jobs.js";
import { resolveException } from "../../../src/admin/set-aside-records.js";
import {
  type FakeRequest,
  recordingHandOver,
  startFakeService,
  stepDeps,
  usePipelineStore,
} from "../../support/pipeline.js";

const { cleanups, store: currentStore } = usePipelineStore("run_chunk");
let store: Store;
beforeAll(() => {
  store = currentStore();
});

/**
 * A job of 30 records in 3 chunks of 10, run once with records 12, 13 and 17 failing (one
 * attempt): chunk 2 fails with 3 records set aside. `healthy()` makes the service process all.
 */
async function failedJob(name: string, completion: "status" | "response" = "status") {
  await store.db
    .collection(`${name}_src`)
    .insertMany(Array.from({ length: 30 }, (_, i) => ({ _id: i, v: i })) as never[]);
  let failing = new Set([12, 13, 17]);
  const requests: FakeRequest[] = [];
  const fake = await startFakeService(store, (req) => {
    requests.push(req);
    const bad = req.body.records.filter((r) => failing.has(r.id as number)).map((r) => r.id);
    if (completion === "response") {
      return {
        status: 200,
        body: JSON.stringify({
          results: req.body.records.map((r) =>
            bad.includes(r.id)
              ? { id: r.id, status: "failed", error: "bad record" }
              : { id: r.id, status: "processed", result: { attempt: req.body.attempt } },
          ),
        }),
      };
    }
    void (async () => {
      const set = (ids: unknown[], status: string) =>
        store.details.updateMany(
          { jobId: req.body.jobId, recordId: { $in: ids }, status: "sent", attempts: req.body.attempt },
          {
            $set: {
              status,
              attempt: req.body.attempt,
              processedAt: new Date(),
              result: { attempt: req.body.attempt },
            },
          } as never,
        );
      await set(
        req.body.records.map((r) => r.id).filter((id) => !bad.includes(id)),
        "processed",
      );
      if (bad.length > 0) await set(bad, "failed");
    })();
    return { status: 202 };
  });
  cleanups.push(() => fake.stop());
  await saveConfig(
    store,
    {
      name,
      source: { collection: `${name}_src`, fields: ["v"] },
      chunking: { maxRecords: 10 },
      target: { url: fake.url, timeoutMs: 5_000 },
      completion,
      watch: { pollIntervalMs: 20 },
      retry: { maxAttempts: 1, backoffMs: 10, maxBackoffMs: 20 },
    },
    new Date(),
  );
  const jobId = `${name}-job`;
  const first = await runJobLocally({ store, config: name, jobId });
  expect(first).toMatchObject({ status: "failed", records: 30, processed: 27, exceptions: 3 });
  return {
    jobId,
    requests,
    healthy: () => {
      failing = new Set();
    },
    failOnly: (ids: number[]) => {
      failing = new Set(ids);
    },
  };
}

/** Everything chunkrelay keeps of a job, to prove a refusal changed nothing. */
async function snapshot(jobId: string): Promise<string> {
  const [job, chunks, details, exceptions] = await Promise.all([
    store.jobs.findOne({ _id: jobId }),
    store.chunks.find({ jobId }, { sort: { chunk: 1 } }).toArray(),
    store.details.find({ jobId }, { sort: { recordId: 1 } }).toArray(),
    store.exceptions.find({ jobId }, { sort: { recordId: 1 } }).toArray(),
  ]);
  return EJSON.stringify({ job, chunks, details, exceptions }, { relaxed: false });
}

describe("run-chunk", () => {
  for (const completion of ["status", "response"] as const) {
    it(`${completion}: --only-failed sends the set-aside records again; the job succeeds with exact totals`, async () => {
      const job = await failedJob(`rc_only_${completion}`, completion);
      job.healthy();
      const before = job.requests.length;
      const result = await runChunkAgain(stepDeps(store), job.jobId, { chunk: 2, onlyFailed: true });
      expect(result).toMatchObject({
        kind: "reopened",
        records: 3,
        rerun: { attempt: 2, scope: "failed", seq: 1 },
      });
      const again = await runJobLocally({ store, config: `rc_only_${completion}`, jobId: job.jobId });
      expect(again).toMatchObject({ status: "succeeded", records: 30, processed: 30, exceptions: 0 });
      const sent = job.requests.slice(before);
      expect(sent).toHaveLength(1);
      expect(sent[0]?.body).toMatchObject({ chunk: 2, attempt: 2 });
      expect(sent[0]?.body.records.map((r) => r.id).sort()).toEqual([12, 13, 17]);
      expect(sent[0]?.key).toBe(`${job.jobId}:2:2`);
      const chunk = await store.chunks.findOne({ jobId: job.jobId, chunk: 2 });
      expect(chunk).toMatchObject({
        status: "processed",
        done: true,
        attempt: 2,
        processedCount: 10,
        failedCount: 0,
      });
      expect(chunk?.history?.map((h) => h.outcome)).toEqual(["recordsFailed", "processed"]);
      expect(chunk?.reruns).toHaveLength(1);
      expect(await store.exceptions.countDocuments({ jobId: job.jobId })).toBe(0);
      // The records processed the first time kept their attempt and value.
      const eleven = await store.details.findOne({ jobId: job.jobId, recordId: 11 });
      expect(eleven).toMatchObject({ status: "processed", attempts: 1, result: { attempt: 1 } });
      const twelve = await store.details.findOne({ jobId: job.jobId, recordId: 12 });
      expect(twelve).toMatchObject({ status: "processed", attempts: 2, attempt: 2, result: { attempt: 2 } });
      const stored = await store.jobs.findOne({ _id: job.jobId });
      expect(stored).toMatchObject({
        status: "succeeded",
        complete: true,
        totals: { processed: 30, exceptions: 0 },
      });
      expect(stored?.unsettled).toBeUndefined();
    });
  }

  it("without --only-failed every record goes again, under a new key; a failure sets records aside again", async () => {
    const job = await failedJob("rc_all");
    job.failOnly([21]);
    const before = job.requests.length;
    await runChunkAgain(stepDeps(store), job.jobId, { chunk: 3 });
    const again = await runJobLocally({ store, config: "rc_all", jobId: job.jobId });
    const sent = job.requests.slice(before);
    expect(sent.map((r) => r.body.records.length)).toEqual([10]);
    expect(sent[0]?.key).toBe(`${job.jobId}:3:2`);
    // Chunk 2's three and chunk 3's record 21 are exceptions now; 26 processed.
    expect(again).toMatchObject({ status: "failed", processed: 26, exceptions: 4 });
    const twenty = await store.details.findOne({ jobId: job.jobId, recordId: 20 });
    expect(twenty).toMatchObject({ status: "processed", attempts: 2, result: { attempt: 2 } });
    const ex = await store.exceptions.findOne({ jobId: job.jobId, recordId: 21 });
    expect(ex?.chunk).toBe(3);
  });

  it("--only-failed leaves out records whose exception was resolved", async () => {
    const job = await failedJob("rc_resolved");
    job.healthy();
    await resolveException(store, job.jobId, 13, "fixed by hand", new Date());
    const before = job.requests.length;
    const r = await runChunkAgain(stepDeps(store), job.jobId, { chunk: 2, onlyFailed: true });
    expect(r).toMatchObject({ kind: "reopened", records: 2, rerun: { skip: [13] } });
    const again = await runJobLocally({ store, config: "rc_resolved", jobId: job.jobId });
    expect(
      job.requests
        .slice(before)[0]
        ?.body.records.map((x) => x.id)
        .sort(),
    ).toEqual([12, 17]);
    // Record 13 stays failed in this job, its exception resolved: the chunk failed, the job is complete.
    expect(again).toMatchObject({ status: "failed", processed: 29, exceptions: 1 });
    expect(await store.jobs.findOne({ _id: job.jobId })).toMatchObject({ complete: true });
  });

  it("through a server payload: a replay of the same request does nothing more", async () => {
    const job = await failedJob("rc_payload");
    job.healthy();
    const before = job.requests.length;
    const handOver = recordingHandOver();
    const deps = stepDeps(store, { handOver });
    const payload = { jobId: job.jobId, runChunk: { chunk: 2, attempt: 1, onlyFailed: true } };
    await dispatchJob(deps, payload);
    const resumed = await runJobLocally({ store, config: "rc_payload", jobId: job.jobId });
    expect(resumed.status).toBe("succeeded");
    const afterFirst = await snapshot(job.jobId);
    const replay = await dispatchJob(stepDeps(store), payload);
    expect(replay).toMatchObject({ outcome: "finished", status: "succeeded" });
    expect(await snapshot(job.jobId)).toBe(afterFirst);
    expect(job.requests.length - before).toBe(1);
  });

  it("a rerun whose requester stopped after reopening the job is finished by the server", async () => {
    const job = await failedJob("rc_cut");
    job.healthy();
    const stored = await store.jobs.findOne({ _id: job.jobId });
    const rerun = { chunk: 2, seq: 1, attempt: 2, scope: "failed" as const, at: new Date(), by: "gone" };
    expect(await reopenJobForRerun(store, job.jobId, rerun, stored?.rerun?.seq, new Date())).toBe(true);
    const again = await runJobLocally({ store, config: "rc_cut", jobId: job.jobId });
    expect(again).toMatchObject({ status: "succeeded", processed: 30, exceptions: 0 });
    expect(await store.chunks.findOne({ jobId: job.jobId, chunk: 2 })).toMatchObject({
      attempt: 2,
      status: "processed",
    });
  });
});

describe("run-chunk beside locks, requeues and retries", () => {
  it("a server run retried after it stopped between the job and the chunk carries the rerun on", async () => {
    const job = await failedJob("rc_retry");
    job.healthy();
    const payload = { jobId: job.jobId, runChunk: { chunk: 2, attempt: 1, onlyFailed: true } };
    const stored = await store.jobs.findOne({ _id: job.jobId });
    const rerun = { chunk: 2, seq: 1, attempt: 2, scope: "failed" as const, at: new Date(), by: "run-1" };
    // The first run reopened the job and stopped; the platform retries it with the same payload.
    expect(await reopenJobForRerun(store, job.jobId, rerun, stored?.rerun?.seq, new Date())).toBe(true);
    const before = job.requests.length;
    const retried = await dispatchJob(stepDeps(store), payload);
    expect(retried).toMatchObject({ outcome: "dispatched", chunks: [2] });
    expect(job.requests.slice(before).map((r) => r.key)).toEqual([`${job.jobId}:2:2`]);
    expect(await runJobLocally({ store, config: "rc_retry", jobId: job.jobId })).toMatchObject({
      status: "succeeded",
    });
    expect(await store.chunks.findOne({ jobId: job.jobId, chunk: 2 })).toMatchObject({
      attempt: 2,
      status: "processed",
    });
  });

  it("a full job's rerun holds the config's lock: a second full job is refused meanwhile", async () => {
    const job = await failedJob("rc_lock");
    job.healthy();
    await runChunkAgain(stepDeps(store), job.jobId, { chunk: 2, onlyFailed: true });
    expect(await store.watermarks.findOne({ _id: "rc_lock" })).toMatchObject({ activeJob: job.jobId });
    await expect(runJobLocally({ store, config: "rc_lock", jobId: "rc_lock-second" })).rejects.toThrow(
      /already has an active job 'rc_lock-job'/,
    );
    await runJobLocally({ store, config: "rc_lock", jobId: job.jobId });
    expect((await store.watermarks.findOne({ _id: "rc_lock" }))?.activeJob ?? null).toBeNull();
  });

  it("an exceptions job's claim holds a rerun of its source off, and the other way round", async () => {
    const job = await failedJob("rc_claims");
    const requeue = await runJobLocally({
      store,
      config: "rc_claims",
      jobId: "rc_claims-requeue",
      fromJob: job.jobId,
    });
    expect(requeue.status).toBe("failed"); // the service still fails 12, 13, 17
    // The requeue is settled: its claim is gone, a rerun of the source may go.
    expect((await store.jobs.findOne({ _id: job.jobId }))?.requeues ?? []).toEqual([]);
    // A rerun of the requeue claims the source first: the source's own rerun is refused.
    await runChunkAgain(stepDeps(store), "rc_claims-requeue", { chunk: 1, onlyFailed: true });
    await expect(runChunkAgain(stepDeps(store), job.jobId, { chunk: 2, onlyFailed: true })).rejects.toThrow(
      /'rc_claims-requeue' is sending the exceptions of job 'rc_claims-job' again/,
    );
    await runJobLocally({ store, config: "rc_claims", jobId: "rc_claims-requeue" });
    // And a new requeue is refused while the source runs a chunk again.
    job.healthy();
    await runChunkAgain(stepDeps(store), job.jobId, { chunk: 2, onlyFailed: true });
    await expect(
      runJobLocally({ store, config: "rc_claims", jobId: "rc_claims-requeue2", fromJob: job.jobId }),
    ).rejects.toThrow(/is running chunk 2 again \(run-chunk\); requeue its exceptions once it has finished/);
    await runJobLocally({ store, config: "rc_claims", jobId: job.jobId });
    // The rerun processed 12, 13 and 17: their exceptions in the requeue are resolved too, so a
    // requeue of the requeue has nothing to send.
    const open = await store.exceptions.countDocuments({
      jobId: "rc_claims-requeue",
      resolution: { $exists: false },
    });
    expect(open).toBe(0);
    expect(await store.jobs.findOne({ _id: "rc_claims-requeue" })).toMatchObject({ complete: true });
  });
});

describe("run-chunk refuses bad requests and changes nothing", () => {
  it("unknown job, chunks that do not exist, a running job, a chunk in flight, nothing to send, a malformed request", async () => {
    const job = await failedJob("rc_refused");
    const deps = stepDeps(store);
    const same = await snapshot(job.jobId);
    const refuse = async (jobId: string, request: unknown, message: RegExp) => {
      await expect(runChunkAgain(deps, jobId, request)).rejects.toThrow(message);
      expect(await snapshot(job.jobId)).toBe(same);
    };
    await refuse("rc-nope", { chunk: 1 }, /job 'rc-nope' not found/);
    await refuse(job.jobId, { chunk: 4 }, /has chunks 1 to 3; there is no chunk 4/);
    await refuse(job.jobId, { chunk: 0 }, /chunk: Too small/i);
    await refuse(job.jobId, { chunk: "2" }, /chunk: Invalid input/i);
    await refuse(job.jobId, { chunk: 2, extra: 1 }, /Unrecognized key/i);
    await refuse(
      job.jobId,
      { chunk: 1, onlyFailed: true },
      /no failed or set-aside records \(all 10 processed\)/,
    );
    await refuse(job.jobId, { chunk: 2, attempt: 3 }, /is at attempt 1, not 3/);
    // A chunk in flight (a finished job's chunk left undone, as a config deleted mid-run leaves it).
    await store.chunks.updateOne({ jobId: job.jobId, chunk: 3 }, { $set: { done: false, status: "sent" } });
    const inFlight = await snapshot(job.jobId);
    await expect(runChunkAgain(deps, job.jobId, { chunk: 3 })).rejects.toThrow(
      /chunk 3 .* is in flight \(sent, attempt 1\)/,
    );
    expect(await snapshot(job.jobId)).toBe(inFlight);
    await store.chunks.updateOne(
      { jobId: job.jobId, chunk: 3 },
      { $set: { done: true, status: "processed" } },
    );
    // A running job: the first rerun reopened it; a second request is refused.
    await runChunkAgain(deps, job.jobId, { chunk: 2, onlyFailed: true });
    const running = await snapshot(job.jobId);
    await expect(runChunkAgain(deps, job.jobId, { chunk: 1 })).rejects.toThrow(
      /is running \(a rerun of chunk 2, attempt 2\): a chunk is run again only once its job has finished/,
    );
    expect(await snapshot(job.jobId)).toBe(running);
  });
});
