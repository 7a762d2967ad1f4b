/** The reference batch service's side of the contract, spoken to over real HTTP. */
import { request } from "undici";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type BatchService, startBatchService } from "../../src/service/batch-service.js";
import { Store } from "../../src/store/store.js";
import { uriWithDatabase } from "../../src/store/connection.js";
import { parseConfig } from "../../src/config/schema.js";
import { readFileSync } from "node:fs";
import { EJSON } from "bson";
import { useTestDatabase } from "../support/db.js";

const t = useTestDatabase("batch_service");
let store: Store;
let service: BatchService;

beforeAll(async () => {
  store = new Store(t.db());
  await store.ensureIndexes();
  service = await startBatchService({ mongoUri: uriWithDatabase(t.uri, t.db().databaseName), latencyMs: 0 });
});

afterAll(async () => {
  await service.stop();
});

const post = (body: unknown, key?: string) =>
  request(service.url, {
    method: "POST",
    body: typeof body === "string" ? body : JSON.stringify(body),
    headers: { "content-type": "application/json", ...(key ? { "idempotency-key": key } : {}) },
  });

describe("reference batch service", () => {
  it("accepts a chunk once per Idempotency-Key and processes its records once", async () => {
    await store.details.insertMany(
      ["a", "b", "c"].map((id) => ({
        jobId: "svc-job",
        recordId: id,
        chunk: 1,
        status: "sent" as const,
        attempts: 1,
      })),
    );
    const chunk = {
      jobId: "svc-job",
      chunk: 1,
      attempt: 1,
      records: [{ id: "a" }, { id: "b" }, { id: "c" }],
    };
    const first = await post(chunk, "svc-job:1:1");
    expect(first.statusCode).toBe(202);
    await first.body.json();
    const again = await post(chunk, "svc-job:1:1");
    expect(again.statusCode).toBe(409);
    await again.body.text();
    await service.idle();
    expect(await store.details.countDocuments({ jobId: "svc-job", status: "processed" })).toBe(3);
    expect(service.ledger.filter((d) => d.key === "svc-job:1:1").map((d) => d.duplicate)).toEqual([
      false,
      true,
    ]);
  });

  it("refuses requests without a key or with a malformed body (400)", async () => {
    const noKey = await post({ jobId: "x", chunk: 1, attempt: 1, records: [] });
    expect(noKey.statusCode).toBe(400);
    await noKey.body.text();
    const notJson = await post("{nope", "k1");
    expect(notJson.statusCode).toBe(400);
    await notJson.body.text();
    const wrong = await post({ jobId: "x", chunk: "one", records: [] }, "k2");
    expect(wrong.statusCode).toBe(400);
    await wrong.body.text();
  });

  it("ships an example config that validates", () => {
    const raw = EJSON.parse(
      readFileSync(new URL("../../examples/orders.config.json", import.meta.url), "utf8"),
      { relaxed: true },
    );
    const config = parseConfig(raw);
    expect("filter" in config.source && config.source.filter.createdAt).toEqual({
      $gte: new Date("2026-01-01T00:00:00Z"),
    });
  });
});
