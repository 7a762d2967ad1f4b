/** The status page's worker routes: lists, one worker, unknown and bad ids, the token. */
import { request } from "undici";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type StatusServer, startStatusServer } from "../../src/status-page/server.js";
import type { Store } from "../../src/store/store.js";
import { markWorkerStopped, registerWorker, recordWorkerActivity } from "../../src/store/workers.js";
import { usePipelineStore } from "../support/pipeline.js";

const { store: currentStore } = usePipelineStore("workers_api");
let store: Store;
let server: StatusServer;

const ID = "host-a:123:abcdef";

beforeAll(async () => {
  store = currentStore();
  const now = new Date();
  const base = { kind: "local" as const, host: "host-a", pid: 123, startedAt: now, heartbeatMs: 15_000 };
  const live = { ...base, id: ID, name: "<b>bold</b>" };
  await registerWorker(store, live, now);
  await recordWorkerActivity(store, live, { chunks: 4, records: 40, succeeded: 39, failed: 1 }, now);
  await registerWorker(store, { ...base, id: "host-a:124:000000", name: "done" }, now);
  await markWorkerStopped(store, "host-a:124:000000", now);
  server = await startStatusServer({ store, token: "t0k" });
});

afterAll(async () => {
  await server.stop();
});

const get = async (path: string, token: string | null = "t0k") => {
  const res = await request(new URL(path, server.url), {
    headers: token ? { authorization: `Bearer ${token}` } : {},
  });
  const text = await res.body.text();
  return { status: res.statusCode, text, json: () => JSON.parse(text) as unknown };
};

describe("status API: workers", () => {
  it("lists live workers, and with all=true the stopped ones too", async () => {
    const live = (await get("api/workers")).json() as Array<{ id: string; state: string }>;
    expect(live.map((w) => [w.id, w.state])).toEqual([[ID, "live"]]);
    const all = (await get("api/workers?all=true")).json() as Array<{ id: string; state: string }>;
    expect(all.map((w) => w.state).sort()).toEqual(["live", "stopped"]);
    expect((await get("api/workers?all=maybe")).status).toBe(400);
  });

  it("serves one worker by its URL-encoded id", async () => {
    const res = await get(`api/workers/${encodeURIComponent(ID)}`);
    expect(res.status).toBe(200);
    expect(res.json()).toMatchObject({
      id: ID,
      name: "<b>bold</b>",
      kind: "local",
      host: "host-a",
      pid: 123,
      state: "live",
      chunks: 4,
      records: 40,
      succeeded: 39,
      failed: 1,
    });
  });

  it("answers 404 with a JSON error for an unknown id, 400 for a bad one", async () => {
    const unknown = await get("api/workers/nobody%3A1%3Aff");
    expect(unknown.status).toBe(404);
    expect(unknown.json()).toMatchObject({ error: expect.stringMatching(/no such worker/) as unknown });
    const control = await get("api/workers/a%1Bb");
    expect(control.status).toBe(400);
    expect(control.json()).toMatchObject({ error: expect.stringMatching(/control character/) as unknown });
    expect((await get(`api/workers/${"x".repeat(301)}`)).status).toBe(400);
    expect((await get("api/workers/%E0%A4%A")).status).toBe(400);
    expect((await get(`api/workers/${encodeURIComponent(ID)}/more`)).status).toBe(404);
  });

  it("asks for the token like every other route", async () => {
    expect((await get("api/workers", null)).status).toBe(401);
    expect((await get(`api/workers/${encodeURIComponent(ID)}`, "wrong")).status).toBe(401);
  });

  it("has a workers section on the page whose cells are escaped", async () => {
    const page = await get("");
    expect(page.text).toContain('<table id="workers">');
    expect(page.text).toContain("api/workers?all=true");
    // Each worker's text goes through esc() on the page.
    expect(page.text).toMatch(/esc\(w\.name\)/);
  });
});
