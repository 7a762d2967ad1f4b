/**
 * The CLI as a user runs it: subprocesses of `bin/chunkrelay.js` against the test database and a
 * reference batch service, on 10,000 records (500 on FerretDB). Checked from the database and from the service's
 * own ledger: every record sent exactly once, in order, in chunks within the limits, never more
 * than maxInFlight chunks in flight.
 */
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { waitUntil } from "../support/wait.js";
import { type BatchService, startBatchService } from "../../src/service/batch-service.js";
import { Store } from "../../src/store/store.js";
import { uriWithDatabase } from "../../src/store/connection.js";
import { useTestDatabase } from "../support/db.js";
import { startFakeService } from "../support/pipeline.js";
import { builtCli } from "../support/built-cli.js";
import { onFerretDB } from "../support/server-kind.js";

const BIN = builtCli();
// FerretDB 1.x reads a whole collection for every query not on _id alone, so each record costs
// far more there: a twentieth of the records (a tenth took minutes), with chunk limits and caps a
// twentieth as large — the same chunks per job and jobs per run.
const SCALE = onFerretDB() ? 20 : 1;
const n = (records: number) => records / SCALE;
const N = n(10_000);
const t = useTestDatabase("cli_e2e");
let store: Store;
let service: BatchService;
let dbUri: string;
const dir = mkdtempSync(join(tmpdir(), "chunkrelay-cli-"));

interface Ran {
  code: number | null;
  stdout: string;
  stderr: string;
}

function cli(args: string[], env: Record<string, string | undefined> = {}): Promise<Ran> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [BIN, ...args], {
      env: { ...process.env, MONGODB_URI: undefined, ...env },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (b: Buffer) => (stdout += b.toString()));
    child.stderr.on("data", (b: Buffer) => (stderr += b.toString()));
    child.on("exit", (code) => resolve({ code, stdout, stderr }));
  });
}

const lastJson = (out: string): Record<string, unknown> => {
  const lines = out.trim().split("\n");
  return JSON.parse(lines[lines.length - 1] ?? "{}") as Record<string, unknown>;
};

beforeAll(async () => {
  store = new Store(t.db());
  dbUri = uriWithDatabase(t.uri, t.db().databaseName);
  service = await startBatchService({ mongoUri: dbUri, latencyMs: 2 });
  const docs = Array.from({ length: N }, (_, i) => ({
    _id: i as never,
    seq: i,
    label: `r${i}`,
    weight: 1 + (i % 5),
  }));
  // Insert out of order: the pipeline must still send records by the order key.
  await store.db.collection("cli_src").insertMany(docs.reverse());
});

afterAll(async () => {
  await service.stop();
  rmSync(dir, { recursive: true, force: true });
});

describe("chunkrelay CLI", () => {
  it("applies a config and runs a 10,000-record job (500 on FerretDB) exactly once, in order, within the limits", async () => {
    const file = join(dir, "cli.json");
    writeFileSync(
      file,
      JSON.stringify({
        name: "cli",
        source: { collection: "cli_src", orderBy: "seq", fields: ["label"], weightField: "weight" },
        chunking: { maxRecords: n(400), maxWeight: n(1000) },
        target: { url: service.url },
        maxInFlight: 2,
        watch: { pollIntervalMs: 20 },
      }),
    );
    const applied = await cli(["config", "apply", file, "--mongo", dbUri]);
    expect(applied.code, applied.stderr).toBe(0);
    expect(applied.stderr).toContain("config 'cli' applied");

    const run = await cli(["run", "cli", "--job-id", "cli-job", "--json"], { MONGODB_URI: dbUri });
    expect(run.code, run.stderr).toBe(0);
    const summary = lastJson(run.stdout);
    expect(summary).toMatchObject({
      jobId: "cli-job",
      status: "succeeded",
      records: N,
      processed: N,
      exceptions: 0,
    });
    // Progress lines went to stderr (not a terminal here: plain lines).
    expect(run.stderr).toMatch(new RegExp(`job cli-job: \\d+/${N} records`));

    const deliveries = service.ledger.filter((d) => d.jobId === "cli-job");
    expect(deliveries.every((d) => !d.duplicate)).toBe(true);
    const sent = [...deliveries].sort((a, b) => a.chunk - b.chunk).flatMap((d) => d.recordIds);
    expect(sent).toEqual(
      Array.from({ length: N }, (_, i) => JSON.stringify({ id: { $numberInt: String(i) } })),
    );
    expect(deliveries.every((d) => d.recordIds.length <= n(400))).toBe(true);
    expect(service.maxConcurrent).toBeLessThanOrEqual(2);
    const chunks = await store.chunks.find({ jobId: "cli-job" }).toArray();
    expect(chunks.every((c) => c.weight <= n(1000) && c.status === "processed")).toBe(true);
    expect(await store.details.countDocuments({ jobId: "cli-job", status: "processed" })).toBe(N);

    const status = await cli(["status", "cli-job", "--json", "--mongo", dbUri]);
    expect(status.code).toBe(0);
    const shown = lastJson(status.stdout) as { job: { status: string }; chunks: unknown[] };
    expect(shown.job.status).toBe("succeeded");
    expect(shown.chunks).toHaveLength(chunks.length);

    // Running the finished job again changes nothing and sends nothing.
    const before = service.ledger.length;
    const again = await cli(["run", "cli", "--job-id", "cli-job", "--json"], { MONGODB_URI: dbUri });
    expect(again.code).toBe(0);
    expect(service.ledger.length).toBe(before);
  }, 120_000);

  it("exits 2 with a precise message for a bad config, and writes nothing", async () => {
    const file = join(dir, "bad.json");
    writeFileSync(
      file,
      JSON.stringify({
        name: "bad",
        source: { collection: "x", filter: { $where: "1" } },
        target: { url: "mailto:x" },
      }),
    );
    const res = await cli(["config", "apply", file, "--mongo", dbUri]);
    expect(res.code).toBe(2);
    expect(res.stderr).toContain("'$where' runs JavaScript on the server");
    expect(res.stderr).toContain("target.url");
    expect(await store.configs.countDocuments({ _id: "bad" })).toBe(0);
  }, 30_000);

  it("exits 2 when no MongoDB or no such config is given, and 1 when the job fails", async () => {
    const noMongo = await cli(["run", "cli"]);
    expect(noMongo.code).toBe(2);
    expect(noMongo.stderr).toContain("set MONGODB_URI or pass --mongo");
    const unknown = await cli(["run", "no-such-config"], { MONGODB_URI: dbUri });
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toContain("config 'no-such-config' not found");
    const file = join(dir, "dead.json");
    // Port 9 (discard) refuses connections here: one delivery try, then the chunk fails.
    writeFileSync(
      file,
      JSON.stringify({
        name: "dead",
        source: { collection: "cli_src", filter: { seq: { $lt: 10 } } },
        target: { url: "http://127.0.0.1:9/chunks", timeoutMs: 2000 },
        retry: { maxDeliveryTries: 1 },
      }),
    );
    expect((await cli(["config", "apply", file, "--mongo", dbUri])).code).toBe(0);
    const failed = await cli(["run", "dead", "--json"], { MONGODB_URI: dbUri });
    expect(failed.code).toBe(1);
    expect(lastJson(failed.stdout)).toMatchObject({ status: "failed", records: 10, exceptions: 10 });
  }, 60_000);

  it("stops cleanly on SIGINT with a resume hint, and `resume` finishes the job", async () => {
    const slow = n(3000);
    const file = join(dir, "slow.json");
    writeFileSync(
      file,
      JSON.stringify({
        name: "slow",
        source: { collection: "cli_src", filter: { seq: { $lt: slow } } },
        chunking: { maxRecords: n(100) },
        target: { url: service.url },
        watch: { pollIntervalMs: 200 },
      }),
    );
    expect((await cli(["config", "apply", file, "--mongo", dbUri])).code).toBe(0);
    const child = spawn(process.execPath, [BIN, "run", "slow", "--job-id", "slow-job"], {
      env: { ...process.env, MONGODB_URI: dbUri },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let stderr = "";
    child.stderr.on("data", (b: Buffer) => (stderr += b.toString()));
    const exited = new Promise<number | null>((resolve) => child.once("exit", resolve));
    // Interrupt once the first chunk is done.
    await waitUntil(() => new RegExp(`job slow-job: [1-9]\\d*/${slow} records`).test(stderr), {
      what: "the first chunk's progress",
      exited,
      context: () => stderr,
    });
    child.kill("SIGINT");
    expect(await exited).toBe(3);
    expect(stderr).toContain("resume with: npx chunkrelay resume slow-job");
    const job = await store.jobs.findOne({ _id: "slow-job" });
    expect(job?.status).toBe("running");
    const resumed = await cli(["resume", "slow-job", "--json"], { MONGODB_URI: dbUri });
    expect(resumed.code, resumed.stderr).toBe(0);
    expect(lastJson(resumed.stdout)).toMatchObject({ status: "succeeded", records: slow, processed: slow });
    const ids = service.ledger
      .filter((d) => d.jobId === "slow-job" && !d.duplicate)
      .flatMap((d) => d.recordIds);
    expect(new Set(ids).size).toBe(slow);
    expect(ids).toHaveLength(slow);
  }, 90_000);

  it("runs backfills with typed --from/--to, capped incremental iterations and the scheduled run", async () => {
    const base = Date.UTC(2026, 0, 1);
    await store.db
      .collection("cli_dates")
      .insertMany(Array.from({ length: n(6000) }, (_, i) => ({ at: new Date(base + i * 60_000), i })));
    const file = join(dir, "dates.json");
    writeFileSync(
      file,
      JSON.stringify({
        name: "dates",
        source: { collection: "cli_dates", orderBy: "at", fields: ["i"] },
        chunking: { maxRecords: n(500) },
        target: { url: service.url },
        maxInFlight: 4,
        watch: { pollIntervalMs: 20 },
        schedule: { iterations: 5 },
      }),
    );
    expect((await cli(["config", "apply", file, "--mongo", dbUri])).code).toBe(0);
    const env = { MONGODB_URI: dbUri };

    // Dates in, dates compared: minutes 600 to 2999 inclusive (30 to 149 on FerretDB), the start
    // without a zone ("2026-01-01T10:00"), the end with one ("2026-01-03T01:59:00Z").
    const fromMinute = n(600);
    const toMinute = n(3000) - 1;
    const minute = (m: number) => new Date(base + m * 60_000).toISOString();
    const back = await cli(
      [
        "run",
        "dates",
        "--mode",
        "backfill",
        "--from",
        minute(fromMinute).slice(0, 16),
        "--to",
        `${minute(toMinute).slice(0, 19)}Z`,
        "--json",
      ],
      env,
    );
    expect(back.code, back.stderr).toBe(0);
    expect(lastJson(back.stdout)).toMatchObject({ status: "succeeded", records: n(2400) });
    const window = await store.jobs.findOne({ mode: "backfill", config: "dates" });
    expect(window?.backfill).toEqual({
      from: new Date(base + fromMinute * 60_000),
      to: new Date(base + toMinute * 60_000),
    });

    const badKey = await cli(["run", "dates", "--mode", "backfill", "--from", "yesterday"], env);
    expect(badKey.code).toBe(2);
    expect(badKey.stderr).toContain("--from 'yesterday' is not a date; the order key holds dates");
    const badMode = await cli(["run", "dates", "--mode", "sideways"], env);
    expect(badMode.code).toBe(2);
    expect(badMode.stderr).toContain("--mode must be full, incremental, backfill or sample");
    const capOnFull = await cli(["run", "dates", "--max-records", "5"], env);
    expect(capOnFull.code).toBe(2);
    expect(capOnFull.stderr).toContain(
      "--max-records: workload caps and iterations belong to modes incremental and backfill",
    );

    const inc = await cli(
      [
        "run",
        "dates",
        "--mode",
        "incremental",
        "--max-records",
        String(n(2000)),
        "--iterations",
        "2",
        "--json",
        "--job-id",
        "dates-inc",
      ],
      env,
    );
    expect(inc.code, inc.stderr).toBe(0);
    const chain = lastJson(inc.stdout) as {
      records: number;
      jobs: Array<{ jobId: string; records: number }>;
    };
    expect(chain.jobs.map((j) => [j.jobId, j.records])).toEqual([
      ["dates-inc", n(2000)],
      ["dates-inc.2", n(2000)],
    ]);
    expect(inc.stderr).toContain(`2 jobs from dates-inc succeeded: ${n(4000)} records`);
    // Flags for an existing job: it resumes as planned, and says the flags were ignored.
    const again = await cli(
      ["run", "dates", "--job-id", "dates-inc", "--mode", "sample", "--sample-first", "5"],
      env,
    );
    expect(again.code, again.stderr).toBe(0);
    expect(again.stderr).toContain(
      "job dates-inc exists (mode incremental): resuming it as planned; --mode, --sample-first ignored",
    );

    // The scheduled run takes the rest; its second iteration finds nothing and stops there.
    const scheduled = await cli(["schedule", "dates", "--json"], env);
    expect(scheduled.code, scheduled.stderr).toBe(0);
    const [night] = JSON.parse(scheduled.stdout.trim().split("\n").pop() ?? "[]") as Array<{
      records: number;
      jobs: Array<{ records: number }>;
    }>;
    expect(night?.jobs.map((j) => j.records)).toEqual([n(2000), 0]);
    // The incremental jobs (by hand and scheduled) sent all 6,000 records, each once.
    const incremental = new Set(
      (await store.jobs.find({ config: "dates", mode: "incremental" }).toArray()).map((j) => j._id),
    );
    const sentIds = service.ledger
      .filter((d) => incremental.has(d.jobId) && !d.duplicate)
      .flatMap((d) => d.recordIds);
    expect(sentIds).toHaveLength(n(6000));
    expect(new Set(sentIds).size).toBe(n(6000));
    const backlog = await cli(["backlog", "dates", "--json"], env);
    expect(lastJson(backlog.stdout)).toMatchObject({ records: 0 });
  }, 120_000);

  it("shows hostile record ids and keys escaped in every human-readable output", async () => {
    // Ids a hostile writer could plant: a C1 CSI (clears the screen on many terminals), a
    // right-to-left override, a line separator, an ANSI escape.
    const ids = ["c1-\u009b2J", "rtl-\u202eexe.txt", "sep-\u2028x", "esc-\u001b[31m"];
    await store.db.collection("cli_hostile").insertMany(ids.map((id, i) => ({ _id: id as never, seq: i })));
    const failing = await startFakeService(store, () => ({ status: 202, report: "failed" }));
    try {
      const file = join(dir, "hostile.json");
      writeFileSync(
        file,
        JSON.stringify({
          name: "hostile_ids",
          description: "ids \u202e and \u009b",
          source: { collection: "cli_hostile", orderBy: "seq" },
          chunking: { maxRecords: 2 },
          target: { url: failing.url },
          retry: { maxAttempts: 1 },
          watch: { pollIntervalMs: 20 },
        }),
      );
      const env = { MONGODB_URI: dbUri };
      expect((await cli(["config", "apply", file], env)).code).toBe(0);
      const run = await cli(["run", "hostile_ids", "--job-id", "hostile-ids-job", "--json"], env);
      expect(run.code, run.stderr).toBe(1);
      const outputs = [
        run,
        await cli(["status", "hostile-ids-job"], env),
        await cli(["status", "hostile-ids-job", "--json"], env),
        await cli(["exceptions", "list", "--job", "hostile-ids-job"], env),
        await cli(["exceptions", "list", "--job", "hostile-ids-job", "--json"], env),
        await cli(["exceptions", "show", "hostile-ids-job", "rtl-\u202eexe.txt", "--type", "string"], env),
        await cli(["where", "c1-\u009b2J", "--type", "string"], env),
        await cli(["where", "sep-\u2028x", "--type", "string", "--json"], env),
        await cli(["jobs", "--config", "hostile_ids"], env),
      ];
      for (const o of outputs) {
        const text = o.stdout + o.stderr;
        const active = [...text].filter((ch) => {
          const c = ch.codePointAt(0) ?? 0;
          return (
            (c < 0x20 && ch !== "\n") ||
            (c >= 0x7f && c <= 0x9f) ||
            (c >= 0x202a && c <= 0x202e) ||
            (c >= 0x2066 && c <= 0x2069) ||
            c === 0x2028 ||
            c === 0x2029
          );
        });
        expect(active, JSON.stringify(text)).toEqual([]);
      }
      // Escaped, not dropped: the ids are still there for a person to read.
      const listed = outputs[3]?.stdout ?? "";
      expect(listed).toContain("rtl-\\u202eexe.txt");
      expect(listed).toContain("c1-\\x9b2J");
      // And the --json output is the same value for a program.
      const json = JSON.parse(outputs[4]?.stdout.trim().split("\n").pop() ?? "[]") as Array<{
        recordId: string;
      }>;
      expect(json.map((e) => e.recordId).sort()).toEqual([...ids].sort());
    } finally {
      await failing.stop();
    }
  }, 120_000);

  it("runs the demo end to end with --json", async () => {
    // Eight chunks of 250 (of 13 on FerretDB).
    const chunkSize = Math.round(250 / SCALE);
    const res = await cli(
      ["demo", "--records", String(8 * chunkSize), "--chunk-size", String(chunkSize), "--json"],
      {
        MONGODB_URI: dbUri,
      },
    );
    expect(res.code, res.stderr).toBe(0);
    expect(lastJson(res.stdout)).toMatchObject({
      status: "succeeded",
      records: 8 * chunkSize,
      chunks: 8,
      processed: 8 * chunkSize,
    });
    expect(res.stderr).toContain("MongoDB: MONGODB_URI");
  }, 60_000);
});
