/**
 * Results per record (issue: "results per record, kept, capped, shown"): values the service
 * returns are kept beside each record in every completion mode, a value over `results.maxBytes`
 * is not kept and the record says why, a malformed value refuses the whole reply and changes
 * nothing, and the results page in record-id order across id types. Real HTTP servers on port 0,
 * a real wire connection.
 */
import { Decimal128, Double, EJSON, Int32, ObjectId } from "bson";
import { beforeAll, describe, expect, it } from "vitest";
import { saveConfig } from "../../../src/store/configs.js";
import { runJobLocally } from "../../../src/runtimes/local/local-runner.js";
import { describeRecord, startBatchService } from "../../../src/service/batch-service.js";
import type { Store } from "../../../src/store/store.js";
import { uriWithDatabase } from "../../../src/store/connection.js";
import { listJobResults, streamJobResults } from "../../../src/queries/results.js";
import { whereIsRecord } from "../../../src/queries/lineage.js";
import { deleteJob } from "../../../src/admin/delete-job.js";
import { startFakeService, usePipelineStore } from "../../support/pipeline.js";
import { onFerretDB, skipOnFerretDB } from "../../support/server-kind.js";

const N = onFerretDB() ? 60 : 300;
const { t, cleanups, store: currentStore } = usePipelineStore("record_results");
let store: Store;
beforeAll(() => {
  store = currentStore();
});

async function seed(collection: string, n: number) {
  const docs = Array.from({ length: n }, (_, i) => ({ _id: i, name: `n${i}` }));
  await store.db.collection(collection).insertMany(docs as never[]);
  return docs;
}

async function config(name: string, url: string, extra: Record<string, unknown> = {}) {
  await saveConfig(
    store,
    {
      name,
      source: { collection: `${name}_src`, fields: ["name"] },
      chunking: { maxRecords: 20 },
      target: { url, timeoutMs: 5_000 },
      maxInFlight: 3,
      watch: { pollIntervalMs: 20 },
      retry: { maxAttempts: 1, backoffMs: 10, maxBackoffMs: 20 },
      ...extra,
    },
    new Date(),
  );
}

describe("the reference service's values are kept per job and record", () => {
  for (const completion of ["status", "response", "callback"] as const) {
    it(`${completion}: every processed record carries its value; where and results show it`, async () => {
      const name = `rr_${completion}`;
      const docs = await seed(`${name}_src`, N);
      const service = await startBatchService({
        mongoUri: uriWithDatabase(t.uri, t.db().databaseName),
        latencyMs: 2,
        completion,
        results: true,
      });
      cleanups.push(() => service.stop());
      await config(name, service.url, { completion });
      const jobId = `${name}-job`;
      const summary = await runJobLocally({ store, config: name, jobId });
      expect(summary).toMatchObject({ status: "succeeded", processed: N });
      const rows = [];
      for await (const r of streamJobResults(store, jobId)) rows.push(r);
      expect(rows).toHaveLength(N);
      expect(rows.map((r) => r.recordId)).toEqual(docs.map((d) => d._id));
      for (const [i, r] of rows.entries()) {
        expect(r.status).toBe("processed");
        // The service saw {id, name}: its value describes exactly that.
        expect(r.result).toEqual(describeRecord({ id: i, name: `n${i}` }));
      }
      const lineage = await whereIsRecord(store, 7);
      expect(lineage.find((l) => l.jobId === jobId)?.result).toEqual(describeRecord({ id: 7, name: "n7" }));
      // Deleted with the job.
      await deleteJob(store, jobId, true);
      expect(await store.details.countDocuments({ jobId })).toBe(0);
    });
  }
});

describe("the cap and malformed values", () => {
  it("response: a value over results.maxBytes is not kept, the record keeps its status and says why", async () => {
    const name = "rr_cap";
    await seed(`${name}_src`, 40);
    const fake = await startFakeService(store, (req) => ({
      status: 200,
      body: EJSON.stringify(
        {
          results: req.body.records.map((r) => ({
            id: r.id,
            status: "processed",
            result: (r.id as number) % 2 === 0 ? { small: r.id } : { big: "x".repeat(300) },
          })),
        },
        { relaxed: false },
      ),
    }));
    cleanups.push(() => fake.stop());
    await config(name, fake.url, { completion: "response", results: { maxBytes: 100 } });
    const summary = await runJobLocally({ store, config: name, jobId: `${name}-job` });
    expect(summary).toMatchObject({ status: "succeeded", processed: 40, exceptions: 0 });
    const page = await listJobResults(store, `${name}-job`, { limit: 40 });
    expect(page.rows).toHaveLength(40);
    for (const r of page.rows) {
      expect(r.status).toBe("processed");
      if ((r.recordId as number) % 2 === 0) {
        expect(r.result).toEqual({ small: r.recordId });
        expect(r.resultError).toBeUndefined();
      } else {
        expect(r.result).toBeUndefined();
        expect(r.resultError).toMatch(/over the cap of 100 \(config results\.maxBytes\)/);
      }
    }
  });

  it("status: a value the service wrote over the cap is replaced by the reason when the attempt ends", async () => {
    const name = "rr_status_cap";
    await seed(`${name}_src`, 20);
    const fake = await startFakeService(store, (req) => {
      // Reports after replying, with a value each (one of them too big), as a service would.
      void (async () => {
        await store.details.bulkWrite(
          req.body.records.map((r) => ({
            updateOne: {
              filter: { jobId: req.body.jobId, recordId: r.id, status: "sent" },
              update: {
                $set: {
                  status: "processed",
                  processedAt: new Date(),
                  result: r.id === 3 ? "y".repeat(500) : { n: r.id },
                },
              },
            },
          })),
        );
      })();
      return { status: 202 };
    });
    cleanups.push(() => fake.stop());
    await config(name, fake.url, { results: { maxBytes: 200 } });
    const summary = await runJobLocally({ store, config: name, jobId: `${name}-job` });
    expect(summary.status).toBe("succeeded");
    const three = await store.details.findOne({ jobId: `${name}-job`, recordId: 3 });
    expect(three?.status).toBe("processed");
    expect(three?.result).toBeUndefined();
    expect(three?.resultError).toMatch(/over the cap of 200 bytes/);
    const four = await store.details.findOne({ jobId: `${name}-job`, recordId: 4 });
    expect(four?.result).toEqual({ n: 4 });
  });

  it("response: a malformed value refuses the whole reply; nothing of it is written", async () => {
    const name = "rr_malformed";
    await seed(`${name}_src`, 20);
    const fake = await startFakeService(store, (req) => ({
      status: 200,
      body: JSON.stringify({
        results: req.body.records.map((r) => ({
          id: r.id,
          status: "processed",
          result: r.id === 5 ? { $where: "boom" } : { ok: true },
        })),
      }),
    }));
    cleanups.push(() => fake.stop());
    await config(name, fake.url, { completion: "response", chunking: { maxRecords: 20 } });
    const summary = await runJobLocally({ store, config: name, jobId: `${name}-job` });
    expect(summary).toMatchObject({ status: "failed", processed: 0, exceptions: 20 });
    const chunk = await store.chunks.findOne({ jobId: `${name}-job`, chunk: 1 });
    expect(chunk?.history?.map((h) => h.outcome)).toEqual(["badReply"]);
    expect(chunk?.lastError).toMatch(
      /result of record 5 is malformed: field name '\$where' starts with '\$'/,
    );
    expect(await store.details.countDocuments({ jobId: `${name}-job`, result: { $exists: true } })).toBe(0);
    expect(await store.details.countDocuments({ jobId: `${name}-job`, status: "processed" })).toBe(0);
  });
});

describe("values and attempts", () => {
  it("a value from a failed attempt does not stay beside a later success", async () => {
    const name = "rr_stale";
    await seed(`${name}_src`, 10);
    const fake = await startFakeService(store, (req) => ({
      status: 200,
      body: JSON.stringify({
        results: req.body.records.map((r) =>
          req.body.attempt === 1
            ? { id: r.id, status: "failed", error: "try again", result: { from: "attempt 1" } }
            : { id: r.id, status: "processed" },
        ),
      }),
    }));
    cleanups.push(() => fake.stop());
    await config(name, fake.url, {
      completion: "response",
      retry: { maxAttempts: 2, backoffMs: 10, maxBackoffMs: 20 },
    });
    expect(await runJobLocally({ store, config: name, jobId: `${name}-job` })).toMatchObject({
      status: "succeeded",
    });
    expect(await store.details.countDocuments({ jobId: `${name}-job`, result: { $exists: true } })).toBe(0);
  });

  it("status: a value over the cap is not kept when the attempt times out either", async () => {
    const name = "rr_status_timeout";
    await seed(`${name}_src`, 6);
    const fake = await startFakeService(store, (req) => {
      // Reports half the records, with values over the cap; the rest never come.
      void store.details.updateMany(
        { jobId: req.body.jobId, recordId: { $in: [0, 1, 2] }, status: "sent" },
        { $set: { status: "processed", processedAt: new Date(), result: "z".repeat(400) } },
      );
      return { status: 202 };
    });
    cleanups.push(() => fake.stop());
    await config(name, fake.url, {
      results: { maxBytes: 100 },
      watch: { pollIntervalMs: 20, chunkTimeoutMs: 300 },
    });
    await runJobLocally({ store, config: name, jobId: `${name}-job` });
    const kept = await store.details.find({ jobId: `${name}-job`, result: { $exists: true } }).toArray();
    expect(kept).toHaveLength(0);
    expect(await store.details.countDocuments({ jobId: `${name}-job`, resultError: /over the cap/ })).toBe(3);
  });
});

describe("listJobResults", () => {
  it("pages in record-id order across id types, none skipped or repeated", async () => {
    const jobId = "rr-paging";
    const ids: unknown[] = [
      ...Array.from({ length: 7 }, (_, i) => i * 2),
      new Int32(5),
      ...Array.from({ length: 6 }, (_, i) => `s${i}`),
      ...Array.from({ length: 5 }, () => new ObjectId()),
      new Date(Date.UTC(2026, 0, 1)),
    ];
    await store.details.insertMany(
      ids.map((recordId, i) => ({
        jobId,
        recordId,
        chunk: 1 + Math.floor(i / 5),
        status: "processed" as const,
        attempts: 1,
        result: { i },
      })),
    );
    const seen: unknown[] = [];
    let after: string | undefined;
    for (let pages = 0; pages < 20; pages++) {
      const page = await listJobResults(store, jobId, { limit: 4, ...(after ? { after } : {}) });
      seen.push(...page.rows.map((r) => r.recordId));
      if (!page.next) break;
      after = page.next;
    }
    const key = (v: unknown) => EJSON.stringify({ v }, { relaxed: false });
    expect(seen.map(key)).toHaveLength(ids.length);
    expect(new Set(seen.map(key)).size).toBe(ids.length);
    // Numbers (5 among them), then strings, then ObjectIds, then the date: MongoDB's order.
    expect(seen.slice(0, 8).map(Number)).toEqual([0, 2, 4, 5, 6, 8, 10, 12]);
    expect(seen.slice(8, 14)).toEqual(["s0", "s1", "s2", "s3", "s4", "s5"]);
    expect(seen[seen.length - 1]).toBeInstanceOf(Date);
  });

  it("pages on after a NaN id (NaN sorts first, and $gt: NaN matches nothing)", async (ctx) => {
    skipOnFerretDB(ctx, "FerretDB 1.x does not store NaN (it closes the connection on one)");
    const jobId = "rr-nan";
    const ids: unknown[] = [
      new Double(Number.NaN),
      Number.NEGATIVE_INFINITY,
      -1,
      Decimal128.fromString("0.5"),
      7,
      "a",
    ];
    await store.details.insertMany(
      ids.map((recordId) => ({ jobId, recordId, chunk: 1, status: "processed" as const, attempts: 1 })),
    );
    const seen: unknown[] = [];
    let after: string | undefined;
    for (let pages = 0; pages < 20; pages++) {
      const page = await listJobResults(store, jobId, { limit: 1, ...(after ? { after } : {}) });
      seen.push(...page.rows.map((r) => r.recordId));
      if (!page.next) break;
      after = page.next;
    }
    expect(seen).toHaveLength(6);
    expect(seen[5]).toBe("a");
  });

  it("refuses a malformed cursor and a limit out of range", async () => {
    for (const bad of [
      '{"id":{"$maxKey":1}}',
      '{"id":[1,2]}',
      '{"id":{"$code":"x"}}',
      '{"id":1,"x":2}',
      "[1]",
    ])
      await expect(listJobResults(store, "rr-paging", { after: bad })).rejects.toThrow(
        /is not a results cursor/,
      );
    await expect(listJobResults(store, "rr-paging", { after: "{nope" })).rejects.toThrow(
      /is not a results cursor/,
    );
    await expect(listJobResults(store, "rr-paging", { limit: 0 })).rejects.toThrow(/from 1 to 1000/);
  });
});
