/**
 * Chaos: a real CLI run of 12,000 records is killed with SIGKILL again and again at random
 * moments and resumed, against a batch service that injects faults (500s, 429s, slow replies
 * past the client timeout, connections cut after accepting). From the service's own ledger and
 * from the database: every record processed, none lost, and none accepted under two different
 * idempotency keys. Then the same for a chain of capped incremental jobs (`--iterations`), killed
 * and resumed by its first job's id. Figures go to test-output/chaos.json and
 * chaos-incremental.json.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { applyConfig } from "../../src/lib/config/load.js";
import { type BatchService, startBatchService } from "../../src/lib/service/batch-service.js";
import { Store, uriWithDatabase } from "../../src/lib/store/store.js";
import { useTestDatabase } from "../support/db.js";
import { seededRandom } from "../support/random.js";

const BIN = join(import.meta.dirname, "../../bin/chunkrelay.js");
// Enough work (about 5 s of it) that at least three kills land before the job could finish.
const RECORDS = 12000;
const INC_RECORDS = 6000;
const t = useTestDatabase("chaos");
let store: Store;
let service: BatchService;
let dbUri: string;

beforeAll(async () => {
  store = new Store(t.db());
  await store.ensureIndexes();
  dbUri = uriWithDatabase(t.uri, t.db().databaseName);
  service = await startBatchService({
    mongoUri: dbUri,
    latencyMs: 60,
    random: seededRandom(7),
    faults: { error: 0.1, throttle: 0.1, slow: 0.08, slowMs: 600, drop: 0.05, retryAfterS: 0 },
  });
  await store.db
    .collection("chaos_src")
    .insertMany(Array.from({ length: RECORDS }, (_, i) => ({ _id: i as never, n: i, payload: `p${i}` })));
  await store.db
    .collection("chaos_inc_src")
    .insertMany(Array.from({ length: INC_RECORDS }, (_, i) => ({ _id: i as never, payload: `q${i}` })));
  await applyConfig(
    store,
    {
      name: "chaos-inc",
      source: { collection: "chaos_inc_src", fields: ["payload"] },
      chunking: { maxRecords: 100 },
      target: { url: service.url, timeoutMs: 300 },
      maxInFlight: 2,
      retry: { maxDeliveryTries: 200, backoffMs: 5, maxBackoffMs: 100 },
      watch: { pollIntervalMs: 20, chunkTimeoutMs: 120_000 },
    },
    new Date(),
  );
  await applyConfig(
    store,
    {
      name: "chaos",
      source: { collection: "chaos_src", fields: ["payload"] },
      chunking: { maxRecords: 100 },
      target: { url: service.url, timeoutMs: 300 },
      maxInFlight: 2,
      retry: { maxDeliveryTries: 200, backoffMs: 5, maxBackoffMs: 100 },
      watch: { pollIntervalMs: 20, chunkTimeoutMs: 120_000 },
    },
    new Date(),
  );
});

afterAll(async () => {
  await service.stop();
});

function start(args: string[]): { child: ChildProcess; exited: Promise<number | null> } {
  const child = spawn(process.execPath, [BIN, ...args], {
    env: { ...process.env, MONGODB_URI: dbUri, CHUNKRELAY_LEASE_MS: "500" },
    stdio: ["ignore", "ignore", "ignore"],
  });
  return { child, exited: new Promise((resolve) => child.once("exit", (code) => resolve(code))) };
}

describe("chaos", () => {
  it("survives repeated SIGKILLs against a faulty service with every record delivered exactly once", async () => {
    const rand = seededRandom(11);
    let kills = 0;
    let finalCode: number | null = null;
    for (let round = 0; round < 12; round++) {
      const { child, exited } = start(
        round === 0 ? ["run", "chaos", "--job-id", "chaos-job"] : ["resume", "chaos-job"],
      );
      if (kills < 6) {
        const killAfter = 900 + Math.floor(rand() * 1400);
        const outcome = await Promise.race([
          exited,
          new Promise<"kill">((r) => setTimeout(() => r("kill"), killAfter)),
        ]);
        if (outcome === "kill") {
          child.kill("SIGKILL");
          await exited;
          kills++;
          continue;
        }
        finalCode = outcome;
        break;
      }
      finalCode = await exited;
      break;
    }
    await service.idle();
    const job = await store.jobs.findOne({ _id: "chaos-job" });
    const processed = await store.details.countDocuments({ jobId: "chaos-job", status: "processed" });
    const accepted = service.ledger.filter((d) => d.jobId === "chaos-job" && !d.duplicate);
    const keysPerRecord = new Map<string, Set<string>>();
    for (const d of accepted) {
      for (const id of d.recordIds) {
        const keys = keysPerRecord.get(id) ?? new Set<string>();
        keys.add(d.key);
        keysPerRecord.set(id, keys);
      }
    }
    const duplicateDeliveries = [...keysPerRecord.values()].filter((k) => k.size > 1).length;
    const figures = {
      kills,
      faultsInjected: Object.values(service.faultCounts).reduce((a, b) => a + b, 0),
      faults: service.faultCounts,
      repeatedKeyDeliveries: service.ledger.filter((d) => d.jobId === "chaos-job" && d.duplicate).length,
      recordsDelivered: keysPerRecord.size,
      recordsProcessed: processed,
      recordsLost: RECORDS - processed,
      duplicateDeliveries,
      finalExitCode: finalCode,
      jobStatus: job?.status,
    };
    mkdirSync(join(import.meta.dirname, "../../test-output"), { recursive: true });
    writeFileSync(
      join(import.meta.dirname, "../../test-output/chaos.json"),
      `${JSON.stringify(figures, null, 2)}\n`,
    );
    process.stderr.write(`[chaos] ${JSON.stringify(figures)}\n`);
    expect(kills).toBeGreaterThanOrEqual(3);
    expect(figures.faultsInjected).toBeGreaterThan(0);
    expect(finalCode).toBe(0);
    expect(job?.status).toBe("succeeded");
    expect(figures.recordsLost).toBe(0);
    expect(keysPerRecord.size).toBe(RECORDS);
    expect(duplicateDeliveries).toBe(0);
    expect(await store.exceptions.countDocuments({ jobId: "chaos-job" })).toBe(0);
  }, 240_000);

  it("continues a chain of capped incremental jobs killed at random, each record once", async () => {
    const rand = seededRandom(23);
    let kills = 0;
    let finalCode: number | null = null;
    // Three jobs of 2,000; the fourth iteration finds nothing and ends the chain.
    const first = ["run", "chaos-inc", "--mode", "incremental", "--max-records", "2000", "--iterations", "5"];
    for (let round = 0; round < 12; round++) {
      // After a kill, resuming the chain's first job walks the chain: finished jobs hand over
      // to the next iteration again, an interrupted one continues.
      const { child, exited } = start(round === 0 ? [...first, "--job-id", "ci"] : ["resume", "ci"]);
      if (kills < 5) {
        const outcome = await Promise.race([
          exited,
          new Promise<"kill">((r) => setTimeout(() => r("kill"), 700 + Math.floor(rand() * 1500))),
        ]);
        if (outcome === "kill") {
          child.kill("SIGKILL");
          await exited;
          kills++;
          continue;
        }
        finalCode = outcome;
        break;
      }
      finalCode = await exited;
      break;
    }
    await service.idle();
    const jobs = await store.jobs.find({ config: "chaos-inc" }).sort({ "lane.seq": 1 }).toArray();
    const ids = new Set(jobs.map((j) => j._id));
    const accepted = service.ledger.filter((d) => ids.has(d.jobId) && !d.duplicate);
    const keysPerRecord = new Map<string, Set<string>>();
    for (const d of accepted) {
      for (const id of d.recordIds) keysPerRecord.set(id, (keysPerRecord.get(id) ?? new Set()).add(d.key));
    }
    const figures = {
      kills,
      jobs: jobs.map((j) => [j._id, j.status, j.totals?.records ?? j.planning.records]),
      recordsDelivered: keysPerRecord.size,
      recordsSentTwice: [...keysPerRecord.values()].filter((k) => k.size > 1).length,
      finalExitCode: finalCode,
    };
    mkdirSync(join(import.meta.dirname, "../../test-output"), { recursive: true });
    writeFileSync(
      join(import.meta.dirname, "../../test-output/chaos-incremental.json"),
      `${JSON.stringify(figures, null, 2)}\n`,
    );
    process.stderr.write(`[chaos-inc] ${JSON.stringify(figures)}\n`);
    expect(kills).toBeGreaterThanOrEqual(2);
    expect(finalCode).toBe(0);
    expect(jobs.map((j) => j._id)).toEqual(["ci", "ci.2", "ci.3", "ci.4"]);
    expect(jobs.map((j) => [j.status, j.totals?.records])).toEqual([
      ["succeeded", 2000],
      ["succeeded", 2000],
      ["succeeded", 2000],
      ["succeeded", 0],
    ]);
    expect(keysPerRecord.size).toBe(INC_RECORDS);
    expect(figures.recordsSentTwice).toBe(0);
    expect((await store.watermarks.findOne({ _id: "chaos-inc" }))?.completedUpTo).toEqual({
      key: INC_RECORDS - 1,
      id: INC_RECORDS - 1,
    });
  }, 240_000);
});
