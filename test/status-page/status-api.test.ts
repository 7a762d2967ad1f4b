/** The status page's JSON API and its token, over real HTTP. */
import { request } from "undici";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { saveConfig } from "../../src/store/configs.js";
import { runJobLocally } from "../../src/runtimes/local/local-runner.js";
import { type StatusServer, startStatusServer } from "../../src/status-page/server.js";
import type { Store } from "../../src/store/store.js";
import { startFakeService, usePipelineStore } from "../support/pipeline.js";

const { store: currentStore } = usePipelineStore("status_api");
let store: Store;
let server: StatusServer;
let stopFake: () => Promise<void> = () => Promise.resolve();

beforeAll(async () => {
  store = currentStore();
  await store.db
    .collection("api_src")
    .insertMany(Array.from({ length: 30 }, (_, i) => ({ _id: i as never })));
  const fake = await startFakeService(store, (req) =>
    req.body.chunk === 3 ? { status: 400, body: '{"error":"bad"}' } : { status: 202, report: "processed" },
  );
  stopFake = () => fake.stop();
  await saveConfig(
    store,
    {
      name: "api",
      source: { collection: "api_src" },
      chunking: { maxRecords: 10 },
      target: { url: fake.url },
      watch: { pollIntervalMs: 10 },
    },
    new Date(),
  );
  await runJobLocally({ store, config: "api", jobId: "api-job" });
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
  return { status: res.statusCode, text, json: () => JSON.parse(text) as unknown };
};

describe("status API", () => {
  it("serves jobs, a job with its chunks, stats, backlog and exceptions", async () => {
    const jobs = (await get("api/jobs")).json() as Array<{ jobId: string; status: string }>;
    expect(jobs.find((j) => j.jobId === "api-job")).toMatchObject({ status: "failed" });
    const job = (await get("api/jobs/api-job")).json() as {
      progress: { totalRecords: number };
      chunks: unknown[];
      steps: unknown[];
    };
    expect(job.progress.totalRecords).toBe(30);
    expect(job.chunks).toHaveLength(3);
    expect(job.steps.length).toBeGreaterThan(0);
    expect(((await get("api/jobs/api-job/chunks")).json() as unknown[]).length).toBe(3);
    expect(((await get("api/stats?job=api-job")).json() as unknown[]).length).toBe(3);
    expect((await get("api/backlog/api")).json()).toMatchObject({
      config: "api",
      records: 10,
      completedUpTo: { key: 19, id: 19 },
    });
    expect(((await get("api/exceptions?job=api-job")).json() as unknown[]).length).toBe(10);
    expect((await get("api/jobs/nope")).status).toBe(404);
    const page = await get("");
    expect(page.status).toBe(200);
    expect(page.text).toContain("<title>chunkrelay status</title>");
  });

  it("refuses requests without the token, accepts ?token=, and is read-only", async () => {
    expect((await get("api/jobs", null)).status).toBe(401);
    expect((await get("api/jobs", "wrong")).status).toBe(401);
    expect((await get("api/jobs?token=t0k", null)).status).toBe(200);
    const post = await request(new URL("api/jobs", server.url), {
      method: "POST",
      headers: { authorization: "Bearer t0k" },
    });
    expect(post.statusCode).toBe(405);
    await post.body.text();
    // The auth scheme is case-insensitive.
    for (const scheme of ["bearer", "BEARER", "Bearer"]) {
      const res = await request(new URL("api/jobs", server.url), {
        headers: { authorization: `${scheme} t0k` },
      });
      expect(res.statusCode, scheme).toBe(200);
      await res.body.text();
    }
  });
});
