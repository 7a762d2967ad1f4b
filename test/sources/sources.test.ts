/**
 * Sources other than a MongoDB collection, on 5,000 records each (500 on FerretDB): NDJSON and
 * CSV files (full, incremental over an appended file, backfill by record number, bad lines), and
 * the exceptions of an earlier file job sent again with the fields stored for them.
 */
import { appendFileSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { saveConfig } from "../../src/store/configs.js";
import { readBacklog } from "../../src/queries/backlog.js";
import { runJobLocally } from "../../src/runtimes/local/local-runner.js";
import { openSource } from "../../src/sources/open-source.js";
import type { Store } from "../../src/store/store.js";
import { parseConfig } from "../../src/config/schema.js";
import { type FakeReply, type FakeRequest, startFakeService, usePipelineStore } from "../support/pipeline.js";
import { onFerretDB } from "../support/server-kind.js";

// FerretDB 1.x reads a whole collection for every query not on _id alone, so each record costs
// far more there: a tenth of the records, with chunks a tenth as large — the same number of
// chunks, the same rejected chunk, the same proportions.
const SCALE = onFerretDB() ? 10 : 1;
const N = 5000 / SCALE;
const APPENDED = 600 / SCALE;

const { cleanups, store: currentStore } = usePipelineStore("sources");
let store: Store;
const dir = mkdtempSync(join(tmpdir(), "chunkrelay-sources-"));
beforeAll(() => {
  store = currentStore();
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const processed: FakeReply = { status: 202, report: "processed" };

async function service(decide: (req: FakeRequest) => FakeReply = () => processed) {
  const s = await startFakeService(store, decide);
  cleanups.push(() => s.stop());
  return s;
}

const ndjsonLines = (from: number, to: number) =>
  Array.from({ length: to - from }, (_, k) => {
    const i = from + k;
    return JSON.stringify({
      sku: `sku-${i}`,
      qty: i % 9,
      at: { $date: new Date(Date.UTC(2026, 0, 1) + i * 1000).toISOString() },
    });
  }).join("\n") + "\n";

describe("NDJSON file source", () => {
  it("sends every record with its fields, then only appended records to incremental jobs", async () => {
    const file = join(dir, "orders.ndjson");
    // A blank line does not count as a record.
    writeFileSync(file, ndjsonLines(0, N / 2) + "\n" + ndjsonLines(N / 2, N));
    const s = await service();
    await saveConfig(
      store,
      {
        name: "nd",
        source: { type: "ndjson", path: file, fields: ["sku", "at"], weightField: "qty" },
        chunking: { maxRecords: 400 / SCALE },
        target: { url: s.url },
        maxInFlight: 3,
        watch: { pollIntervalMs: 10 },
      },
      new Date(),
    );
    const first = await runJobLocally({
      store,
      config: "nd",
      jobId: "nd-1",
      request: { mode: "incremental" },
    });
    expect(first).toMatchObject({ status: "succeeded", records: N, processed: N, chunks: 13 });
    const sent = s.requests.flatMap((r) => r.body.records);
    expect(sent).toHaveLength(N);
    // A record late in the file (4321 of 5,000): its id is its record number, from 1.
    const probe = Math.round(4321 / SCALE);
    expect(sent.find((r) => r.id === probe)).toEqual({
      id: probe,
      sku: `sku-${probe - 1}`,
      at: new Date(Date.UTC(2026, 0, 1) + (probe - 1) * 1000),
    });
    // Weights came from the file.
    expect((await store.jobs.findOne({ _id: "nd-1" }))?.planning.weight).toBe(
      Array.from({ length: N }, (_, i) => i % 9).reduce((a, b) => a + b, 0),
    );
    appendFileSync(file, ndjsonLines(N, N + APPENDED));
    expect((await readBacklog(store, "nd")).records).toBe(APPENDED);
    const second = await runJobLocally({
      store,
      config: "nd",
      jobId: "nd-2",
      request: { mode: "incremental" },
    });
    expect(second).toMatchObject({ status: "succeeded", records: APPENDED });
    const appended = s.requests
      .filter((r) => r.body.jobId === "nd-2")
      .flatMap((r) => r.body.records.map((x) => x.sku));
    expect(appended.sort()).toEqual(Array.from({ length: APPENDED }, (_, i) => `sku-${N + i}`).sort());
    // A backfill by record number.
    const back = await runJobLocally({
      store,
      config: "nd",
      jobId: "nd-b",
      request: { mode: "backfill", from: 101, to: 200 },
    });
    expect(back).toMatchObject({ records: 100 });
  });

  it("refuses a bad line with its line number, and a missing file with the path", async () => {
    const file = join(dir, "bad.ndjson");
    writeFileSync(file, '{"a":1}\n{"a":2\n');
    const config = parseConfig({
      name: "bad",
      source: { type: "ndjson", path: file },
      target: { url: "http://x/" },
    });
    const reading = openSource(store, config).read({}, 10);
    await expect(
      (async () => {
        for await (const _ of reading.batches) void _;
      })(),
    ).rejects.toThrow(`${file} line 2: not JSON`);
    const missing = parseConfig({
      name: "m",
      source: { type: "ndjson", path: join(dir, "nope.ndjson") },
      target: { url: "http://x/" },
    });
    await expect(openSource(store, missing).lastRecord({})).rejects.toThrow(
      "cannot be read; check source.path",
    );
  });
});

describe("CSV file source", () => {
  it("sends rows as records with typed values; a rejected chunk's rows go out again from the stored fields", async () => {
    const file = join(dir, "items.csv");
    const rows = Array.from({ length: N }, (_, i) => `${i};item ${i};${(i % 4) + 0.5}`);
    writeFileSync(file, `code;name;price\n${rows.join("\n")}\n`);
    const s = await service((req) =>
      req.body.jobId === "csv-1" && req.body.chunk === 2
        ? { status: 422, body: '{"error":"bad rows"}' }
        : processed,
    );
    await saveConfig(
      store,
      {
        name: "csv",
        source: { type: "csv", path: file, delimiter: ";" },
        chunking: { maxRecords: N / 5 },
        target: { url: s.url },
        watch: { pollIntervalMs: 10 },
      },
      new Date(),
    );
    const first = await runJobLocally({ store, config: "csv", jobId: "csv-1" });
    expect(first).toMatchObject({ status: "failed", records: N, processed: (N * 4) / 5, exceptions: N / 5 });
    expect(s.requests[0]?.body.records[0]).toEqual({ id: 1, code: 0, name: "item 0", price: 0.5 });
    // The file may be gone by the time the exceptions are sent again: their fields were stored.
    rmSync(file);
    const requeue = await runJobLocally({ store, config: "csv", jobId: "csv-requeue", fromJob: "csv-1" });
    expect(requeue).toMatchObject({ status: "succeeded", records: N / 5, processed: N / 5 });
    const again = s.requests.filter((r) => r.body.jobId === "csv-requeue").flatMap((r) => r.body.records);
    expect(again).toHaveLength(N / 5);
    // A row of the rejected chunk (the second fifth of the file), with the fields stored for it.
    const row = (N * 3) / 10;
    expect(again.find((r) => r.id === row)).toEqual({
      id: row,
      code: row - 1,
      name: `item ${row - 1}`,
      price: ((row - 1) % 4) + 0.5,
    });
  });
});
