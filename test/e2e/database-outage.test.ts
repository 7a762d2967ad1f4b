/**
 * The database goes away for longer than a run waits: the CLI stops with exit 1, the resume hint
 * and (with --json) a last line saying so; with the database back, `resume` finishes the job with
 * exact counts.
 */
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { MongoClient } from "mongodb";
import { afterAll, describe, expect, it } from "vitest";
import { waitUntil } from "../support/wait.js";
import { type EmbeddedMongo, startEmbeddedMongo } from "@chunkrelay/embedded-mongo";
import { type BatchService, startBatchService } from "../../src/service/batch-service.js";
import { Store } from "../../src/store/store.js";
import { builtCli } from "../support/built-cli.js";

const BIN = builtCli();
const dir = mkdtempSync(join(tmpdir(), "chunkrelay-outage-"));
const cleanups: Array<() => Promise<unknown>> = [];

afterAll(async () => {
  for (const c of cleanups.reverse()) await c();
  rmSync(dir, { recursive: true, force: true });
});

function cli(args: string[], uri: string, onOutput?: (text: string) => void) {
  const child = spawn(process.execPath, [BIN, ...args], {
    env: {
      ...process.env,
      MONGODB_URI: uri,
      CHUNKRELAY_STEP_TRIES: "3",
      CHUNKRELAY_STEP_RETRY_MS: "100",
    },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let stdout = "";
  let stderr = "";
  child.stdout.on("data", (b: Buffer) => {
    stdout += b.toString();
    onOutput?.(stdout);
  });
  child.stderr.on("data", (b: Buffer) => (stderr += b.toString()));
  const exited = new Promise<number | null>((resolve) => child.once("exit", resolve));
  return { exited, out: () => ({ stdout, stderr }) };
}

describe("a database outage longer than the run waits", () => {
  it("stops the run with the resume hint and the --json line; resume then finishes the job", async () => {
    let mongo: EmbeddedMongo = await startEmbeddedMongo({ dir: join(dir, "db") });
    const port = mongo.port;
    cleanups.push(() => mongo.stop());
    // Short server selection, so each try against the missing server fails fast.
    const uri = `${mongo.uri}outage?serverSelectionTimeoutMS=300`;
    const client = new MongoClient(uri);
    await client.connect();
    cleanups.push(() => client.close());
    const store = new Store(client.db());
    await store.ensureIndexes();
    await store.db
      .collection("src")
      .insertMany(Array.from({ length: 3000 }, (_, i) => ({ _id: i as never })));
    let service: BatchService = await startBatchService({ mongoUri: uri, latencyMs: 20 });
    cleanups.push(() => service.stop());
    const file = join(dir, "outage.json");
    writeFileSync(
      file,
      JSON.stringify({
        name: "outage",
        source: { collection: "src" },
        chunking: { maxRecords: 100 },
        target: { url: service.url },
        watch: { pollIntervalMs: 20 },
      }),
    );
    expect(await cli(["config", "apply", file], uri).exited).toBe(0);

    const run = cli(["run", "outage", "--job-id", "outage-job", "--json"], uri);
    await waitUntil(
      async () => (await store.chunks.countDocuments({ jobId: "outage-job", status: "processed" })) >= 3,
      { what: "three chunks processed", deadlineMs: 60_000, context: () => JSON.stringify(run.out()) },
    );
    await service.stop();
    await mongo.stop();
    expect(await run.exited, JSON.stringify(run.out())).toBe(1);
    const { stdout, stderr } = run.out();
    expect(stderr).toContain("resume with: npx chunkrelay resume outage-job");
    const last = JSON.parse(stdout.trim().split("\n").pop() ?? "{}") as Record<string, unknown>;
    expect(last).toMatchObject({ jobId: "outage-job", config: "outage", status: "stopped" });

    // The database is back, with the same data.
    mongo = await startEmbeddedMongo({ dir: join(dir, "db"), port });
    service = await startBatchService({
      mongoUri: uri,
      latencyMs: 5,
      port: Number(new URL(service.url).port),
    });
    const resumed = cli(["resume", "outage-job", "--json"], uri);
    expect(await resumed.exited, JSON.stringify(resumed.out())).toBe(0);
    expect(await store.jobs.findOne({ _id: "outage-job" })).toMatchObject({
      status: "succeeded",
      totals: { records: 3000, processed: 3000 },
    });
  }, 120_000);
});
