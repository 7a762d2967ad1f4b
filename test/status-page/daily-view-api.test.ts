/**
 * The status page's views and their API, over real HTTP: one URL per job and per config, jobs
 * filtered and paged (no job skipped or shown twice while new ones arrive), a job's timeline,
 * results and exceptions a page at a time, a config's lanes, windows, backlog and next run; the
 * token on every route; bad query input refused with 400.
 */
import { request } from "undici";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { saveConfig } from "../../src/store/configs.js";
import { runJobLocally } from "../../src/runtimes/local/local-runner.js";
import { type StatusServer, startStatusServer } from "../../src/status-page/server.js";
import type { JobDoc, Store } from "../../src/store/store.js";
import { startFakeService, usePipelineStore } from "../support/pipeline.js";

const { store: currentStore } = usePipelineStore("daily_view");
let store: Store;
let server: StatusServer;
let stopFake: () => Promise<void> = () => Promise.resolve();

beforeAll(async () => {
  store = currentStore();
  await store.db
    .collection("dv_src")
    .insertMany(Array.from({ length: 60 }, (_, i) => ({ _id: i, v: i })) as never[]);
  // Records 25–29 fail; every processed record gets a value.
  const fake = await startFakeService(store, (req) => ({
    status: 200,
    body: JSON.stringify({
      results: req.body.records.map((r) =>
        (r.id as number) >= 25 && (r.id as number) < 30
          ? { id: r.id, status: "failed", error: "<b>bad</b> record" }
          : { id: r.id, status: "processed", result: { doubled: (r.id as number) * 2 } },
      ),
    }),
  }));
  stopFake = () => fake.stop();
  await saveConfig(
    store,
    {
      name: "dv",
      description: "daily view <script>",
      source: { collection: "dv_src", fields: ["v"] },
      chunking: { maxRecords: 10 },
      target: { url: fake.url },
      completion: "response",
      retry: { maxAttempts: 1 },
      schedule: { cron: "30 3 * * *", timezone: "Europe/Berlin" },
    },
    new Date(),
  );
  await runJobLocally({
    store,
    config: "dv",
    jobId: "dv-1",
    request: { mode: "incremental", maxRecords: 40 },
  });
  await runJobLocally({ store, config: "dv", jobId: "dv-2", request: { mode: "incremental" } });
  server = await startStatusServer({ store, token: "t0k" });
});

afterAll(async () => {
  await server.stop();
  await stopFake();
});

const get = async (path: string, token: string | null = "t0k") => {
  const res = await request(new URL(path, server.url), {
    headers: token ? { authorization: `Bearer ${token}` } : {},
  });
  const text = await res.body.text();
  return { status: res.statusCode, text, headers: res.headers, json: <T>() => JSON.parse(text) as T };
};

describe("one URL per view", () => {
  it("serves the page at /, /jobs/<id> and /configs/<name>, with a policy that runs nothing else", async () => {
    for (const path of ["", "jobs/dv-1", "configs/dv", `jobs/${encodeURIComponent("a/b")}`]) {
      const page = await get(`${path}?token=t0k`, null);
      expect(page.status, path).toBe(200);
      expect(page.text).toContain("<title>chunkrelay status</title>");
      expect(String(page.headers["content-security-policy"])).toContain("default-src 'none'");
    }
    expect((await get("jobs/dv-1", null)).status).toBe(401);
    expect((await get("configs/dv", null)).status).toBe(401);
    expect((await get("jobs/dv-1/extra")).status).toBe(404);
  });
});

describe("the job list", () => {
  it("filters by config, status and mode and pages without skipping or repeating while jobs arrive", async () => {
    const { lane: _lane, ...base } = (await store.jobs.findOne({ _id: "dv-1" })) as JobDoc;
    const t0 = Date.UTC(2026, 0, 1);
    // 45 more jobs, five sharing each millisecond (ties broken by id).
    await store.jobs.insertMany(
      Array.from({ length: 45 }, (_, i) => ({
        ...base,
        _id: `dv-x${String(i).padStart(2, "0")}`,
        claimKey: `job:dv-x${i}`,
        status: i % 3 === 0 ? ("failed" as const) : ("succeeded" as const),
        mode: i % 2 === 0 ? ("sample" as const) : ("incremental" as const),
        createdAt: new Date(t0 + Math.floor(i / 5)),
      })),
    );
    const seen: string[] = [];
    let before: string | undefined;
    for (let n = 0; n < 20; n++) {
      const page = await get(`api/jobs?config=dv&limit=7${before ? `&before=${before}` : ""}`);
      expect(page.status).toBe(200);
      const jobs = page.json<Array<{ jobId: string }>>();
      seen.push(...jobs.map((j) => j.jobId));
      // A new job arriving between pages lands on the first page, not in the middle.
      if (n === 1)
        await store.jobs.insertOne({
          ...base,
          _id: "dv-new",
          claimKey: "job:dv-new",
          createdAt: new Date(),
        });
      const link = String(page.headers.link ?? "");
      if (!link) break;
      before = new URL(/<([^>]*)>/.exec(link)?.[1] ?? "", server.url).searchParams.get("before") ?? undefined;
    }
    expect(seen).toHaveLength(47);
    expect(new Set(seen).size).toBe(47);
    expect(seen.slice(0, 2)).toEqual(["dv-2", "dv-1"]);
    expect(seen).not.toContain("dv-new");
    const failedSamples = (await get("api/jobs?config=dv&status=failed&mode=sample&limit=200")).json<
      Array<{ jobId: string; status: string; mode: string }>
    >();
    expect(failedSamples.length).toBe(8); // i ≡ 0 (mod 6) for i < 45
    expect(failedSamples.every((j) => j.status === "failed" && j.mode === "sample")).toBe(true);
  });

  it("refuses bad query input with 400 and says what is wrong", async () => {
    for (const [query, message] of [
      ["status=done", /status: Invalid option/],
      ["mode=weekly", /mode: Invalid option/],
      ["limit=0", /limit: Too small/],
      ["limit=1000", /limit: Too big/],
      ["before=not-a-cursor", /is not a job list cursor/],
      ["colour=red", /Unrecognized key/],
      ["config=a&config=b", /given twice/],
    ] as const) {
      const res = await get(`api/jobs?${query}`);
      expect(res.status, query).toBe(400);
      expect(res.json<{ error: string }>().error).toMatch(message);
    }
    const bad = await get("api/jobs/dv-1/results?after=%7Bnope");
    expect(bad.status).toBe(400);
    expect(bad.json<{ error: string }>().error).toMatch(/is not a results cursor/);
    expect((await get("api/jobs/dv-1/results?limit=500")).status).toBe(400);
  });
});

describe("one job", () => {
  it("has a timeline of records per second and round trips, bounded however many chunks", async () => {
    const tl = (await get("api/jobs/dv-1/timeline")).json<{
      bucketMs: number;
      recordsPerSecond: number[];
      roundTrips: Array<{ chunk: number; ms: number }>;
      roundTripStats: { count: number; p50Ms: number };
    }>();
    expect(tl.recordsPerSecond.length).toBeGreaterThan(0);
    expect(tl.recordsPerSecond.length).toBeLessThanOrEqual(60);
    expect(tl.recordsPerSecond.reduce((a, b) => a + b, 0) * (tl.bucketMs / 1000)).toBeGreaterThanOrEqual(35);
    // Chunk 3 failed at its delivery's answer (response mode): it has no round trip to show.
    expect(tl.roundTrips.map((r) => r.chunk)).toEqual([1, 2, 4]);
    expect(tl.roundTripStats.count).toBe(3);
    expect((await get("api/jobs/nope/timeline")).status).toBe(404);
  });

  it("pages results and exceptions by record id", async () => {
    const first = (await get("api/jobs/dv-1/results?limit=15")).json<{
      rows: Array<{ recordId: number; result?: unknown }>;
      next?: string;
    }>();
    expect(first.rows.map((r) => r.recordId)).toEqual(Array.from({ length: 15 }, (_, i) => i));
    expect(first.rows[3]?.result).toEqual({ doubled: 6 });
    const second = (
      await get(`api/jobs/dv-1/results?limit=15&after=${encodeURIComponent(first.next ?? "")}`)
    ).json<{ rows: Array<{ recordId: number }> }>();
    expect(second.rows[0]?.recordId).toBe(15);
    const ex = (await get("api/jobs/dv-1/exceptions?limit=3")).json<{
      rows: Array<{ recordId: number; reason: string }>;
      next?: string;
    }>();
    expect(ex.rows.map((e) => e.recordId)).toEqual([25, 26, 27]);
    expect(ex.rows[0]?.reason).toContain("<b>bad</b> record");
    const ex2 = (
      await get(`api/jobs/dv-1/exceptions?limit=3&after=${encodeURIComponent(ex.next ?? "")}`)
    ).json<{ rows: Array<{ recordId: number }>; next?: string }>();
    expect(ex2.rows.map((e) => e.recordId)).toEqual([28, 29]);
    expect(ex2.next).toBeUndefined();
  });
});

describe("one config", () => {
  it("shows its lanes and watermark, recent windows, backlog, lock and next run", async () => {
    const v = (await get("api/configs/dv")).json<{
      name: string;
      description: string;
      schedule: { cron: string; timezone: string; nextRunAt: { $date: string } };
      backlog: { records: number; completedUpTo?: { key: unknown } };
      recentJobs: Array<{ jobId: string; from?: string; to?: string; lane?: string; seq?: number }>;
    }>();
    expect(v).toMatchObject({
      name: "dv",
      description: "daily view <script>",
      schedule: { cron: "30 3 * * *", timezone: "Europe/Berlin" },
    });
    const next = new Date(v.schedule.nextRunAt.$date);
    expect(next.getTime()).toBeGreaterThan(Date.now());
    expect(next.getTime() - Date.now()).toBeLessThanOrEqual(25 * 3600_000);
    const lane = v.recentJobs.filter((j) => j.jobId === "dv-1" || j.jobId === "dv-2");
    expect(lane.map((j) => [j.jobId, j.seq, j.from, j.to])).toEqual([
      ["dv-2", 2, "39", "59"],
      ["dv-1", 1, undefined, "39"],
    ]);
    // The lane's watermark stops before dv-1's failed chunk 3 (records 20–29, five set aside):
    // records 20–59 are past it.
    expect(v.backlog.records).toBe(40);
    expect(v.backlog.completedUpTo?.key).toBe(19);
    expect((await get("api/configs/nope")).status).toBe(404);
    expect((await get("api/configs")).json<string[]>()).toContain("dv");
    expect((await get("api/configs/dv", null)).status).toBe(401);
  });
});
