/**
 * Chaos: a real CLI run of 12,000 records is killed with SIGKILL again and again — once its job
 * exists, then after a seeded number of accepted chunks — and resumed, against a batch service that injects faults (500s, 429s, slow replies
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
import { saveConfig } from "../../src/store/configs.js";
import { type BatchService, startBatchService } from "../../src/service/batch-service.js";
import { Store } from "../../src/store/store.js";
import { uriWithDatabase } from "../../src/store/connection.js";
import { useTestDatabase } from "../support/db.js";
import { seededRandom } from "../support/random.js";
import { builtCli } from "../support/built-cli.js";
import { onFerretDB } from "../support/server-kind.js";

const BIN = builtCli();
// Enough work (about 5 s of it) that at least three kills land before the job could finish.
// FerretDB 1.x reads a whole collection for every query not on _id alone, so each record costs
// far more there: a tenth of the records is as much work, and finishes within the deadlines.
const SCALE = onFerretDB() ? 10 : 1;
const RECORDS = 12000 / SCALE;
const INC_RECORDS = 6000 / SCALE;
const INC_CAP = 2000 / SCALE;
// Figures of a FerretDB run go beside those of the default run, not over them.
const FIGURES_SUFFIX = onFerretDB() ? "-ferretdb" : "";
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
  // Both configs: the same faulty service, short timeouts, many delivery tries, fast polls.
  for (const [name, collection] of [
    ["chaos", "chaos_src"],
    ["chaos-inc", "chaos_inc_src"],
  ]) {
    await saveConfig(
      store,
      {
        name,
        source: { collection, fields: ["payload"] },
        chunking: { maxRecords: 100 },
        target: { url: service.url, timeoutMs: 300 },
        maxInFlight: 2,
        retry: { maxDeliveryTries: 200, backoffMs: 5, maxBackoffMs: 100 },
        watch: { pollIntervalMs: 20, chunkTimeoutMs: 120_000 },
      },
      new Date(),
    );
  }
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

/** Resolves once `event()` holds, or with false when `exited` settles first or the deadline passes. */
async function when(
  event: () => Promise<boolean>,
  exited: Promise<unknown>,
  deadlineMs = 60_000,
): Promise<boolean> {
  let gone = false;
  void exited.then(() => (gone = true));
  const deadline = Date.now() + deadlineMs;
  while (!gone && Date.now() < deadline) {
    if (await event()) return true;
    await new Promise((r) => setTimeout(r, 10));
  }
  return false;
}

/** Chunks the service accepted (first deliveries of a key) for these jobs. */
const acceptedChunks = (jobIds: (id: string) => boolean) =>
  service.ledger.filter((d) => !d.duplicate && jobIds(d.jobId)).length;

/**
 * Runs `first`, then `resume` after each kill. Kills land on events, not on time, so they mean
 * the same on a fast and on a loaded machine: the first as soon as the job exists (mostly
 * mid-planning), each later one after `step` (seeded, 1 to 4) more
 * chunks were accepted by the service. Up to `maxKills`, then the last run finishes.
 */
async function killAndResume(
  first: string[],
  resume: string[],
  options: { maxKills: number; jobs: (id: string) => boolean; firstJob: string; seed: number },
): Promise<{ kills: number; finalCode: number | null; killedAt: string[] }> {
  const rand = seededRandom(options.seed);
  let kills = 0;
  const killedAt: string[] = [];
  for (let round = 0; ; round++) {
    const { child, exited } = start(round === 0 ? first : resume);
    if (kills >= options.maxKills) return { kills, finalCode: await exited, killedAt };
    let event: () => Promise<boolean>;
    let what: string;
    if (round === 0) {
      // As soon as the job exists: usually while it is still being planned.
      what = "after the job exists";
      event = async () => (await store.jobs.countDocuments({ _id: options.firstJob })) > 0;
    } else {
      const target = acceptedChunks(options.jobs) + 1 + Math.floor(rand() * 4);
      what = `after accepted chunk ${target}`;
      event = () => Promise.resolve(acceptedChunks(options.jobs) >= target);
    }
    if (!(await when(event, exited))) {
      const code = await exited.catch(() => null);
      return { kills, finalCode: code, killedAt };
    }
    child.kill("SIGKILL");
    await exited;
    kills++;
    killedAt.push(what);
  }
}

/** Per record (as the service's ledger names it), the idempotency keys it was accepted under. */
function keysPerRecord(jobIds: Set<string>): Map<string, Set<string>> {
  const keys = new Map<string, Set<string>>();
  for (const d of service.ledger) {
    if (!jobIds.has(d.jobId) || d.duplicate) continue;
    for (const id of d.recordIds) keys.set(id, (keys.get(id) ?? new Set<string>()).add(d.key));
  }
  return keys;
}

describe("chaos", () => {
  it("survives repeated SIGKILLs against a faulty service with every record delivered exactly once", async () => {
    const { kills, finalCode, killedAt } = await killAndResume(
      ["run", "chaos", "--job-id", "chaos-job"],
      ["resume", "chaos-job"],
      { maxKills: 6, jobs: (id) => id === "chaos-job", firstJob: "chaos-job", seed: 11 },
    );
    await service.idle();
    const job = await store.jobs.findOne({ _id: "chaos-job" });
    const processed = await store.details.countDocuments({ jobId: "chaos-job", status: "processed" });
    const delivered = keysPerRecord(new Set(["chaos-job"]));
    const duplicateDeliveries = [...delivered.values()].filter((k) => k.size > 1).length;
    const figures = {
      kills,
      killedAt,
      faultsInjected: Object.values(service.faultCounts).reduce((a, b) => a + b, 0),
      faults: service.faultCounts,
      repeatedKeyDeliveries: service.ledger.filter((d) => d.jobId === "chaos-job" && d.duplicate).length,
      recordsDelivered: delivered.size,
      recordsProcessed: processed,
      recordsLost: RECORDS - processed,
      duplicateDeliveries,
      finalExitCode: finalCode,
      jobStatus: job?.status,
    };
    mkdirSync(join(import.meta.dirname, "../../test-output"), { recursive: true });
    writeFileSync(
      join(import.meta.dirname, `../../test-output/chaos${FIGURES_SUFFIX}.json`),
      `${JSON.stringify(figures, null, 2)}\n`,
    );
    process.stderr.write(`[chaos] ${JSON.stringify(figures)}\n`);
    expect(kills).toBeGreaterThanOrEqual(3);
    expect(figures.faultsInjected).toBeGreaterThan(0);
    expect(finalCode).toBe(0);
    expect(job?.status).toBe("succeeded");
    expect(figures.recordsLost).toBe(0);
    expect(delivered.size).toBe(RECORDS);
    expect(duplicateDeliveries).toBe(0);
    expect(await store.exceptions.countDocuments({ jobId: "chaos-job" })).toBe(0);
  }, 240_000);

  it("continues a chain of capped incremental jobs killed at random, each record once", async () => {
    // Three jobs of 2,000; the fourth iteration finds nothing and ends the chain. After a kill,
    // resuming the chain's first job walks the chain: finished jobs hand over to the next
    // iteration again, an interrupted one continues.
    const { kills, finalCode, killedAt } = await killAndResume(
      [
        "run",
        "chaos-inc",
        "--mode",
        "incremental",
        "--max-records",
        String(INC_CAP),
        "--iterations",
        "5",
        "--job-id",
        "ci",
      ],
      ["resume", "ci"],
      { maxKills: 5, jobs: (id) => id === "ci" || id.startsWith("ci."), firstJob: "ci", seed: 23 },
    );
    await service.idle();
    const jobs = await store.jobs.find({ config: "chaos-inc" }).sort({ "lane.seq": 1 }).toArray();
    const ids = new Set(jobs.map((j) => j._id));
    const delivered = keysPerRecord(ids);
    const figures = {
      kills,
      killedAt,
      jobs: jobs.map((j) => [j._id, j.status, j.totals?.records ?? j.planning.records]),
      recordsDelivered: delivered.size,
      recordsSentTwice: [...delivered.values()].filter((k) => k.size > 1).length,
      finalExitCode: finalCode,
    };
    mkdirSync(join(import.meta.dirname, "../../test-output"), { recursive: true });
    writeFileSync(
      join(import.meta.dirname, `../../test-output/chaos-incremental${FIGURES_SUFFIX}.json`),
      `${JSON.stringify(figures, null, 2)}\n`,
    );
    process.stderr.write(`[chaos-inc] ${JSON.stringify(figures)}\n`);
    expect(kills).toBeGreaterThanOrEqual(2);
    expect(finalCode).toBe(0);
    expect(jobs.map((j) => j._id)).toEqual(["ci", "ci.2", "ci.3", "ci.4"]);
    expect(jobs.map((j) => [j.status, j.totals?.records])).toEqual([
      ["succeeded", INC_CAP],
      ["succeeded", INC_CAP],
      ["succeeded", INC_CAP],
      ["succeeded", 0],
    ]);
    expect(delivered.size).toBe(INC_RECORDS);
    expect(figures.recordsSentTwice).toBe(0);
    expect((await store.watermarks.findOne({ _id: "chaos-inc" }))?.completedUpTo).toEqual({
      key: INC_RECORDS - 1,
      id: INC_RECORDS - 1,
    });
  }, 240_000);
});
