/**
 * Operating a job by hand, as a user types it: `status --chunks`, `run-chunk` (with and without
 * `--only-failed`, and refused), `results` (page, JSON, NDJSON export) and `where` with the value
 * the service returned — subprocesses of `bin/chunkrelay.js` against the test database and a
 * service on port 0 whose failures the test decides.
 */
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { EJSON } from "bson";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Store } from "../../src/store/store.js";
import { uriWithDatabase } from "../../src/store/connection.js";
import { useTestDatabase } from "../support/db.js";
import { startFakeService } from "../support/pipeline.js";
import { builtCli } from "../support/built-cli.js";

const BIN = builtCli();
const t = useTestDatabase("by_hand_e2e");
let store: Store;
let dbUri: string;
let failing = new Set([12, 13, 17]);
let fake: Awaited<ReturnType<typeof startFakeService>>;
const dir = mkdtempSync(join(tmpdir(), "chunkrelay-by-hand-"));

function cli(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [BIN, ...args], {
      env: { ...process.env, MONGODB_URI: dbUri },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (b: Buffer) => (stdout += b.toString()));
    child.stderr.on("data", (b: Buffer) => (stderr += b.toString()));
    child.on("exit", (code) => resolve({ code, stdout, stderr }));
  });
}

const lastLine = (out: string) => out.trim().split("\n").pop() ?? "";

beforeAll(async () => {
  store = new Store(t.db());
  dbUri = uriWithDatabase(t.uri, t.db().databaseName);
  await store.db
    .collection("hand_src")
    .insertMany(Array.from({ length: 30 }, (_, i) => ({ _id: i, v: `r${i}` })) as never[]);
  // A service answering with the outcome ("response"), a value for each processed record.
  fake = await startFakeService(store, (req) => ({
    status: 200,
    body: JSON.stringify({
      results: req.body.records.map((r) =>
        failing.has(r.id as number)
          ? { id: r.id, status: "failed", error: "no such customer" }
          : { id: r.id, status: "processed", result: { echo: r.v, attempt: req.body.attempt } },
      ),
    }),
  }));
  const file = join(dir, "hand.json");
  writeFileSync(
    file,
    JSON.stringify({
      name: "hand",
      source: { collection: "hand_src", fields: ["v"] },
      chunking: { maxRecords: 10 },
      target: { url: fake.url },
      completion: "response",
      retry: { maxAttempts: 1, backoffMs: 10, maxBackoffMs: 20 },
    }),
  );
  const applied = await cli(["config", "apply", file]);
  expect(applied.code, applied.stderr).toBe(0);
  const run = await cli(["run", "hand", "--job-id", "hand-job", "--json"]);
  expect(run.code, run.stderr).toBe(1);
  expect(JSON.parse(lastLine(run.stdout))).toMatchObject({ status: "failed", processed: 27, exceptions: 3 });
});

afterAll(async () => {
  await fake.stop();
  rmSync(dir, { recursive: true, force: true });
});

describe("operating a job by hand", () => {
  it("status --chunks lists each chunk; run-chunk refuses what cannot be run, changing nothing", async () => {
    const listed = await cli(["status", "hand-job", "--chunks", "--json"]);
    expect(listed.code, listed.stderr).toBe(0);
    const rows = JSON.parse(lastLine(listed.stdout)) as Array<Record<string, unknown>>;
    expect(rows.map((r) => [r.chunk, r.status, r.attempts, r.processed, r.failed])).toEqual([
      [1, "processed", 1, 10, 0],
      [2, "failed", 1, 7, 3],
      [3, "processed", 1, 10, 0],
    ]);
    expect(rows.every((r) => typeof r.configHash === "string" && typeof r.finishedAt === "object")).toBe(
      true,
    );
    const table = await cli(["status", "hand-job", "--chunks"]);
    expect(table.stdout).toMatch(/^\s+2 {2}failed\s+1\s+10\s+7\s+3\s/m);

    const before = EJSON.stringify(await store.chunks.find({ jobId: "hand-job" }).toArray());
    for (const [args, message] of [
      [["run-chunk", "hand-job", "4"], /has chunks 1 to 3; there is no chunk 4/],
      [["run-chunk", "hand-job", "two"], /<chunk> must be a chunk number/],
      [["run-chunk", "nope-job", "1"], /job 'nope-job' not found/],
      [["run-chunk", "hand-job", "1", "--only-failed"], /no failed or set-aside records/],
    ] as const) {
      const r = await cli([...args]);
      expect(r.code, r.stderr).toBe(2);
      expect(r.stderr).toMatch(message);
    }
    expect(EJSON.stringify(await store.chunks.find({ jobId: "hand-job" }).toArray())).toBe(before);
  });

  it("run-chunk --only-failed sends the three again and the job succeeds; results and where show the values", async () => {
    failing = new Set();
    const before = fake.requests.length;
    const rerun = await cli(["run-chunk", "hand-job", "2", "--only-failed", "--json"]);
    expect(rerun.code, rerun.stderr).toBe(0);
    expect(rerun.stderr).toContain("chunk 2 runs again as attempt 2 (3 record(s), those not processed)");
    expect(rerun.stderr).toContain("chunk 2: processed at attempt 2 (10 processed, 0 failed)");
    expect(JSON.parse(lastLine(rerun.stdout))).toMatchObject({
      status: "succeeded",
      processed: 30,
      exceptions: 0,
    });
    expect(fake.requests.slice(before).map((r) => r.body.records.map((x) => x.id))).toEqual([[12, 13, 17]]);

    const ndjson = await cli(["results", "hand-job", "--ndjson"]);
    expect(ndjson.code, ndjson.stderr).toBe(0);
    const lines = ndjson.stdout
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(lines).toHaveLength(30);
    expect(lines[12]).toMatchObject({
      recordId: 12,
      chunk: 2,
      status: "processed",
      attempts: 2,
      result: { echo: "r12", attempt: 2 },
    });
    expect(lines[11]).toMatchObject({ recordId: 11, attempts: 1, result: { echo: "r11", attempt: 1 } });

    const page = await cli(["results", "hand-job", "--limit", "10", "--json"]);
    const parsed = JSON.parse(lastLine(page.stdout)) as { rows: unknown[]; next?: string };
    expect(parsed.rows).toHaveLength(10);
    const next = await cli(["results", "hand-job", "--limit", "10", "--after", parsed.next ?? "", "--json"]);
    expect(
      (JSON.parse(lastLine(next.stdout)) as { rows: Array<{ recordId: number }> }).rows[0]?.recordId,
    ).toBe(10);
    const bad = await cli(["results", "hand-job", "--after", "{oops"]);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/is not a results cursor/);

    const where = await cli(["where", "13"]);
    expect(where.code, where.stderr).toBe(0);
    expect(where.stdout).toMatch(/hand-job .* processed .* result: \{"echo":"r13","attempt":2\}/);

    // Without --only-failed, every record of the chunk goes again under a new key.
    const all = await cli(["run-chunk", "hand-job", "1"]);
    expect(all.code, all.stderr).toBe(0);
    const last = fake.requests[fake.requests.length - 1];
    expect(last?.key).toBe("hand-job:1:2");
    expect(last?.body.records).toHaveLength(10);
  });
});
