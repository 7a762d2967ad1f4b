/**
 * The daily view's API at its edges, over real HTTP: the token on every new route (page URLs and
 * API paths, with and without it), 400 for bad paging input, a timeline that stays bounded for a
 * job of thousands of chunks, exceptions paged across record ids of mixed types, and filtered job
 * pages that neither skip nor repeat while new jobs arrive.
 */
import { ObjectId } from "bson";
import { request } from "undici";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { MAX_BUCKETS, MAX_POINTS } from "../../src/queries/job-timeline.js";
import { saveConfig } from "../../src/store/configs.js";
import { runJobLocally } from "../../src/runtimes/local/local-runner.js";
import { type StatusServer, startStatusServer } from "../../src/status-page/server.js";
import type { ChunkDoc, ExceptionDoc, JobDoc, Store } from "../../src/store/store.js";
import { startFakeService, usePipelineStore } from "../support/pipeline.js";

const { store: currentStore } = usePipelineStore("daily_limits");
let store: Store;
let server: StatusServer;
let base: Omit<JobDoc, "lane">;
let stopFake: () => Promise<void> = () => Promise.resolve();

beforeAll(async () => {
  store = currentStore();
  await store.db
    .collection("lim_src")
    .insertMany(Array.from({ length: 20 }, (_, i) => ({ _id: i, v: i })) as never[]);
  const fake = await startFakeService(store, () => ({ status: 202, report: "processed" }));
  stopFake = () => fake.stop();
  await saveConfig(
    store,
    {
      name: "lim",
      source: { collection: "lim_src", fields: ["v"] },
      chunking: { maxRecords: 10 },
      target: { url: fake.url },
      watch: { pollIntervalMs: 10 },
    },
    new Date(),
  );
  await runJobLocally({ store, config: "lim", jobId: "lim-1" });
  // Copies of lim-1 outside any lane, for synthetic jobs.
  const { lane: _lane, ...job } = (await store.jobs.findOne({ _id: "lim-1" })) as JobDoc;
  base = job;
  server = await startStatusServer({ store, token: "s3cret" });
});

afterAll(async () => {
  await server.stop();
  await stopFake();
});

const get = async (path: string, token: string | null = "s3cret") => {
  const res = await request(new URL(path, server.url), {
    headers: token ? { authorization: `Bearer ${token}` } : {},
  });
  const text = await res.body.text();
  return { status: res.statusCode, text, headers: res.headers, json: <T>() => JSON.parse(text) as T };
};

const insertJob = (id: string, fields: Partial<JobDoc>) =>
  store.jobs.insertOne({ ...base, _id: id, claimKey: `job:${id}`, ...fields });

describe("the token on every new route", () => {
  const paths = [
    "",
    "jobs/lim-1",
    "configs/lim",
    "api/jobs?status=succeeded&mode=full",
    "api/jobs/lim-1/timeline",
    "api/jobs/lim-1/results",
    "api/jobs/lim-1/exceptions",
    "api/configs",
    "api/configs/lim",
  ];
  it("refuses each without it or with a wrong one", async () => {
    for (const path of paths) {
      expect((await get(path, null)).status, path).toBe(401);
      expect((await get(path, "s3cre7")).status, path).toBe(401);
    }
  });
  it("serves each with the bearer header or ?token=", async () => {
    for (const path of paths) {
      expect((await get(path)).status, path).toBe(200);
      const withQuery = `${path}${path.includes("?") ? "&" : "?"}token=s3cret`;
      expect((await get(withQuery, null)).status, withQuery).toBe(200);
    }
  });
  it("serves the views without a token when none is set", async () => {
    const open = await startStatusServer({ store });
    try {
      for (const path of ["jobs/lim-1", "api/jobs/lim-1/timeline", "api/configs/lim"]) {
        const res = await request(new URL(path, open.url));
        await res.body.text();
        expect(res.statusCode, path).toBe(200);
      }
    } finally {
      await open.stop();
    }
  });
});

describe("a config without a schedule", () => {
  it("has no next run, and its lane and recent window are shown", async () => {
    const v = (await get("api/configs/lim")).json<{
      schedule?: unknown;
      backlog: { completedUpTo?: { key: unknown }; records: number };
      recentJobs: Array<{ jobId: string; span?: { from: number; to: number } }>;
    }>();
    expect(v.schedule).toBeUndefined();
    expect(v.backlog).toMatchObject({ completedUpTo: { key: 19 }, records: 0 });
    expect(v.recentJobs.find((j) => j.jobId === "lim-1")?.span).toEqual({ from: 0, to: 1 });
  });
});

describe("bad paging input", () => {
  it("is a 400 naming the parameter, for results and exceptions alike", async () => {
    for (const kind of ["results", "exceptions"]) {
      for (const [query, message] of [
        ["limit=0", /limit: Too small/],
        ["limit=101", /limit: Too big/],
        ["limit=ten", /limit: Invalid input/],
        ["after=%7Bnope", /is not a results cursor/],
        ["page=2", /Unrecognized key/],
      ] as const) {
        const res = await get(`api/jobs/lim-1/${kind}?${query}`);
        expect(res.status, `${kind}?${query}`).toBe(400);
        expect(res.json<{ error: string }>().error, `${kind}?${query}`).toMatch(message);
      }
    }
    expect((await get("api/jobs/lim-1/results?withResult=maybe")).status).toBe(400);
    expect((await get("api/jobs?limit=201")).status).toBe(400);
    expect((await get("api/jobs?limit=200")).status).toBe(200);
  });
});

describe("a job of many chunks", () => {
  it("has a timeline of at most 60 buckets and 200 round trips, counting every chunk", async () => {
    const start = new Date(Date.UTC(2026, 0, 1));
    const n = 3000;
    await insertJob("lim-big", {
      startedAt: start,
      createdAt: start,
      finishedAt: new Date(start.getTime() + n * 200),
      status: "succeeded",
    });
    const chunk = (await store.chunks.findOne({ jobId: "lim-1" }, { projection: { _id: 0 } })) as ChunkDoc;
    await store.chunks.insertMany(
      Array.from({ length: n }, (_, i) => ({
        ...chunk,
        jobId: "lim-big",
        chunk: i + 1,
        status: "processed" as const,
        done: true,
        sentAt: new Date(start.getTime() + i * 200),
        finishedAt: new Date(start.getTime() + i * 200 + 50 + (i % 10)),
        recordCount: 10,
        processedCount: 10,
        failedCount: 0,
      })),
    );
    const tl = (await get("api/jobs/lim-big/timeline")).json<{
      bucketMs: number;
      recordsPerSecond: number[];
      roundTrips: Array<{ chunk: number; ms: number }>;
      roundTripStats: { count: number; p50Ms: number; maxMs: number };
    }>();
    expect(tl.recordsPerSecond.length).toBeLessThanOrEqual(MAX_BUCKETS);
    expect(tl.roundTrips.length).toBeLessThanOrEqual(MAX_POINTS);
    expect(tl.roundTrips.length).toBeGreaterThan(MAX_POINTS / 2);
    expect(tl.roundTripStats).toMatchObject({ count: n, maxMs: 59 });
    // 10 records every 200 ms: 50 records/s in every bucket.
    const total = tl.recordsPerSecond.reduce((a, b) => a + b, 0) * (tl.bucketMs / 1000);
    expect(Math.abs(total - n * 10)).toBeLessThanOrEqual(tl.recordsPerSecond.length * 1);
    expect(tl.recordsPerSecond.every((r) => Math.abs(r - 50) <= 1)).toBe(true);
  });
});

describe("exceptions a page at a time", () => {
  it("pages record ids of mixed types in BSON order, each once", async () => {
    await insertJob("lim-mixed", { createdAt: new Date() });
    const ids: unknown[] = [
      ...Array.from({ length: 11 }, (_, i) => i * 3),
      ...Array.from({ length: 9 }, (_, i) => `r-${i}`),
      ...Array.from({ length: 5 }, (_, i) => new ObjectId(`${"0".repeat(23)}${i}`)),
    ];
    const docs: ExceptionDoc[] = ids.map((recordId) => ({
      jobId: "lim-mixed",
      config: "lim",
      recordId,
      chunk: 1,
      attempts: 1,
      reason: "why",
      createdAt: new Date(),
    }));
    await store.exceptions.insertMany(docs);
    const seen: string[] = [];
    let after: string | undefined;
    for (let pages = 0; pages < 10; pages++) {
      const page = (
        await get(
          `api/jobs/lim-mixed/exceptions?limit=4${after ? `&after=${encodeURIComponent(after)}` : ""}`,
        )
      ).json<{ rows: Array<{ recordId: unknown }>; next?: string }>();
      seen.push(...page.rows.map((r) => JSON.stringify(r.recordId)));
      if (!page.next) break;
      after = page.next;
    }
    expect(seen).toEqual(
      ids.map((id) => JSON.stringify(id instanceof ObjectId ? { $oid: id.toHexString() } : id)),
    );
  });
});

describe("filtered job pages while jobs arrive", () => {
  it("show each matching job once, new ones only on a fresh first page", async () => {
    const t0 = Date.UTC(2025, 5, 1);
    // Three to a millisecond, so page boundaries fall inside ties.
    for (let i = 0; i < 30; i++)
      await insertJob(`lim-f${String(i).padStart(2, "0")}`, {
        status: i % 2 === 0 ? "failed" : "succeeded",
        mode: i % 3 === 0 ? "backfill" : "incremental",
        createdAt: new Date(t0 + Math.floor(i / 3)),
      });
    const expected = Array.from({ length: 30 }, (_, i) => i)
      .filter((i) => i % 2 === 0 && i % 3 !== 0)
      .map((i) => `lim-f${String(i).padStart(2, "0")}`);
    const seen: string[] = [];
    let url = "api/jobs?status=failed&mode=incremental&limit=2";
    for (let n = 0; n < 20; n++) {
      const page = await get(url);
      expect(page.status).toBe(200);
      seen.push(...page.json<Array<{ jobId: string }>>().map((j) => j.jobId));
      // A matching job arrives mid-way: newer than every page already shown.
      if (n === 1)
        await insertJob(`lim-late`, { status: "failed", mode: "incremental", createdAt: new Date() });
      const link = /<([^>]*)>/.exec(String(page.headers.link ?? ""))?.[1];
      if (!link) break;
      url = link.slice(1);
    }
    expect(seen).toEqual([...expected].reverse());
    const fresh = (await get("api/jobs?status=failed&mode=incremental&limit=1")).json<
      Array<{ jobId: string }>
    >();
    expect(fresh.map((j) => j.jobId)).toEqual(["lim-late"]);
  });
});
