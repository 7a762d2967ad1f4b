/**
 * Chaos on the Kafka path: `chunkrelay listen` reads one job message (a chain of capped
 * incremental jobs of a Kafka-source config, 6,000 messages on 3 partitions) and is killed with
 * SIGKILL again and again — once the job exists, then after a seeded number of accepted chunks —
 * and started again, against a batch service that injects faults. Started again, the listener
 * reads the same job message (its offset was not committed, or was committed once the job was
 * opened) and resumes the same job. From the service's own ledger: every Kafka message delivered,
 * none under two idempotency keys; from Kafka: the jobs message committed, and the source group's
 * offsets at the end of every partition. Figures go to test-output/chaos-kafka.json.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { saveConfig } from "../../src/store/configs.js";
import { type BatchService, startBatchService } from "../../src/service/batch-service.js";
import { KafkaTopic } from "../../src/sources/kafka-client.js";
import { Store } from "../../src/store/store.js";
import { uriWithDatabase } from "../../src/store/connection.js";
import { useTestDatabase } from "../support/db.js";
import { useKafka } from "../support/kafka.js";
import { seededRandom } from "../support/random.js";
import { builtCli } from "../support/built-cli.js";

const BIN = builtCli();
const RECORDS = 6000;
const PARTITIONS = 3;
const t = useTestDatabase("chaos_kafka");
const kafka = useKafka("chaos");
let store: Store;
let service: BatchService;
let dbUri: string;
let topic: string;
let jobsTopic: string;

beforeAll(async () => {
  store = new Store(t.db());
  await store.ensureIndexes();
  dbUri = uriWithDatabase(t.uri, t.db().databaseName);
  service = await startBatchService({
    mongoUri: dbUri,
    latencyMs: 40,
    random: seededRandom(5),
    faults: { error: 0.1, throttle: 0.1, slow: 0.05, slowMs: 600, drop: 0.05, retryAfterS: 0 },
  });
  topic = await kafka.createTopic(PARTITIONS);
  jobsTopic = await kafka.createTopic(1);
  for (let from = 0; from < RECORDS; from += 1000) {
    await kafka.produce(
      topic,
      Array.from({ length: 1000 }, (_, k) => ({
        partition: (from + k) % PARTITIONS,
        value: { n: from + k, payload: `p${from + k}` },
      })),
    );
  }
  await saveConfig(
    store,
    {
      name: "kchaos",
      source: { type: "kafka", brokers: kafka.brokers, topic, fields: ["payload"] },
      chunking: { maxRecords: 100 },
      target: { url: service.url, timeoutMs: 300 },
      maxInFlight: 2,
      retry: { maxDeliveryTries: 200, backoffMs: 5, maxBackoffMs: 100 },
      watch: { pollIntervalMs: 20, chunkTimeoutMs: 120_000 },
    },
    new Date(),
  );
  await kafka.produce(jobsTopic, [
    { partition: 0, value: { config: "kchaos", mode: "incremental", maxRecords: 2000, iterations: 5 } },
  ]);
});

afterAll(async () => {
  await service.stop();
});

const listenArgs = () => [
  "listen",
  "--topic",
  jobsTopic,
  "--brokers",
  kafka.brokers.join(","),
  "--group",
  `listen-${jobsTopic}`,
  "--max-messages",
  "1",
  // Static membership: a restarted listener takes the partition back at once, instead of after
  // the killed one's session times out.
  "--instance-id",
  "chaos-listener",
];

function start(): { child: ChildProcess; exited: Promise<number | null> } {
  const child = spawn(process.execPath, [BIN, ...listenArgs()], {
    env: { ...process.env, MONGODB_URI: dbUri, CHUNKRELAY_LEASE_MS: "500" },
    stdio: ["ignore", "ignore", process.env.CHAOS_DEBUG ? "inherit" : "ignore"],
  });
  return { child, exited: new Promise((resolve) => child.once("exit", (code) => resolve(code))) };
}

async function when(event: () => Promise<boolean>, exited: Promise<unknown>, deadlineMs = 60_000) {
  let gone = false;
  void exited.then(() => (gone = true));
  const deadline = Date.now() + deadlineMs;
  while (!gone && Date.now() < deadline) {
    if (await event()) return true;
    await new Promise((r) => setTimeout(r, 10));
  }
  return false;
}

const jobOf = (id: string) => id.startsWith(`${jobsTopic}:0:0`);
const acceptedChunks = () => service.ledger.filter((d) => !d.duplicate && jobOf(d.jobId)).length;

describe("chaos on the Kafka path", () => {
  it("survives SIGKILLs of the listener mid-job with every Kafka message delivered exactly once", async () => {
    const rand = seededRandom(31);
    const firstJob = `${jobsTopic}:0:0`;
    let kills = 0;
    const killedAt: string[] = [];
    let finalCode: number | null = null;
    for (let round = 0; ; round++) {
      const { child, exited } = start();
      if (kills >= 5) {
        finalCode = await exited;
        break;
      }
      let event: () => Promise<boolean>;
      let what: string;
      if (round === 0) {
        what = "after the job exists";
        event = async () => (await store.jobs.countDocuments({ _id: firstJob })) > 0;
      } else {
        const target = acceptedChunks() + 1 + Math.floor(rand() * 4);
        what = `after accepted chunk ${target}`;
        event = () => Promise.resolve(acceptedChunks() >= target);
      }
      if (!(await when(event, exited))) {
        finalCode = await exited.catch(() => null);
        break;
      }
      if (process.env.CHAOS_DEBUG)
        process.stderr.write(`[${new Date().toISOString()}] kill ${what} (accepted ${acceptedChunks()})\n`);
      child.kill("SIGKILL");
      await exited;
      kills++;
      killedAt.push(what);
    }
    await service.idle();
    const jobs = await store.jobs.find({ config: "kchaos" }).sort({ "lane.seq": 1 }).toArray();
    const keys = new Map<string, Set<string>>();
    for (const d of service.ledger) {
      if (!jobOf(d.jobId) || d.duplicate) continue;
      for (const id of d.recordIds) keys.set(id, (keys.get(id) ?? new Set<string>()).add(d.key));
    }
    const check = (t: string, group: string) =>
      new KafkaTopic(
        { brokers: kafka.brokers, clientId: kafka.clientId("check"), timeoutMs: 5000 },
        t,
        group,
      );
    const sourceGroup = check(topic, "chunkrelay.kchaos");
    const listenGroup = check(jobsTopic, `listen-${jobsTopic}`);
    const committed = Object.fromEntries(
      [...(await sourceGroup.committedOffsets())].map(([p, o]) => [p, Number(o)]),
    );
    const listened = Object.fromEntries(
      [...(await listenGroup.committedOffsets())].map(([p, o]) => [p, Number(o)]),
    );
    await sourceGroup.close();
    await listenGroup.close();
    const figures = {
      kills,
      killedAt,
      faultsInjected: Object.values(service.faultCounts).reduce((a, b) => a + b, 0),
      jobs: jobs.map((j) => [j._id, j.status, j.totals?.records ?? j.planning.records]),
      messagesDelivered: keys.size,
      messagesSentTwice: [...keys.values()].filter((k) => k.size > 1).length,
      repeatedKeyDeliveries: service.ledger.filter((d) => jobOf(d.jobId) && d.duplicate).length,
      sourceGroupOffsets: committed,
      jobsTopicCommitted: listened,
      finalExitCode: finalCode,
    };
    mkdirSync(join(import.meta.dirname, "../../test-output"), { recursive: true });
    writeFileSync(
      join(import.meta.dirname, "../../test-output/chaos-kafka.json"),
      `${JSON.stringify(figures, null, 2)}\n`,
    );
    process.stderr.write(`[chaos-kafka] ${JSON.stringify(figures)}\n`);
    expect(kills).toBeGreaterThanOrEqual(2);
    expect(figures.faultsInjected).toBeGreaterThan(0);
    expect(finalCode).toBe(0);
    expect(jobs.map((j) => [j._id, j.status, j.totals?.records])).toEqual([
      [firstJob, "succeeded", 2000],
      [`${firstJob}.2`, "succeeded", 2000],
      [`${firstJob}.3`, "succeeded", 2000],
      [`${firstJob}.4`, "succeeded", 0],
    ]);
    expect(keys.size).toBe(RECORDS);
    expect(figures.messagesSentTwice).toBe(0);
    expect(committed).toEqual({ 0: RECORDS / PARTITIONS, 1: RECORDS / PARTITIONS, 2: RECORDS / PARTITIONS });
    expect(listened).toEqual({ 0: 1 });
  }, 240_000);
});
