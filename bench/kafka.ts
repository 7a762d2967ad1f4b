/**
 * Topic → service against collection → service (`npm run bench:kafka [-- --records N --json]`): the
 * same N records, once in a MongoDB collection and once as JSON messages on a 3-partition Kafka
 * topic, each sent by a full chunkrelay job (chunks of --chunk-size) to the reference batch service
 * with zero latency, in one run. Reports both throughputs and their ratio (the topic's records are
 * read from Kafka and copied into batch_details when planned; the collection's are read by id when
 * each chunk goes out).
 *
 * Kafka: KAFKA_BROKERS, else the repo's broker (scripts/kafka/start-broker.sh, stopped at the end).
 * MongoDB: MONGODB_URI, else the embedded engine in a process of its own.
 */
import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { Admin, Producer, stringSerializers } from "@platformatic/kafka";
import { Command, InvalidArgumentError } from "commander";
import { saveConfig } from "../src/store/configs.js";
import { runJobLocally } from "../src/runtimes/local/local-runner.js";
import { startBatchService } from "../src/service/batch-service.js";
import { Store } from "../src/store/store.js";
import { uriWithDatabase, withMongo } from "../src/store/connection.js";

const ROOT = join(import.meta.dirname, "..");
const intArg = (min: number) => (v: string) => {
  const n = Number(v);
  if (!Number.isInteger(n) || n < min) throw new InvalidArgumentError(`expected a whole number ≥ ${min}`);
  return n;
};
const opts = new Command("bench:kafka")
  .option("--records <n>", "records N", intArg(100), 20_000)
  .option("--chunk-size <n>", "records per chunk", intArg(1), 100)
  .option("--poll-ms <n>", "watcher poll interval", intArg(5), 20)
  .option("--json", "print the results as JSON on the last stdout line")
  .parse()
  .opts<{ records: number; chunkSize: number; pollMs: number; json?: boolean }>();
const say = (s: string) => process.stderr.write(`${s}\n`);

function firstLine(child: ChildProcess): Promise<string> {
  return new Promise((resolve, reject) => {
    if (!child.stdout) return reject(new Error("no stdout"));
    createInterface({ input: child.stdout }).once("line", resolve);
    child.once("exit", (code) => reject(new Error(`exited with ${code} before printing`)));
  });
}

async function startMongo(): Promise<{ uri: string; stop(): Promise<void> }> {
  const db = `chunkrelay_bench_kafka_${randomBytes(3).toString("hex")}`;
  if (process.env.MONGODB_URI)
    return { uri: uriWithDatabase(process.env.MONGODB_URI, db), stop: async () => {} };
  const child = spawn(process.execPath, [join(ROOT, "bin/chunkrelay.js"), "mongo", "--port", "0"], {
    stdio: ["ignore", "pipe", "inherit"],
  });
  const uri = await firstLine(child);
  return {
    uri: uriWithDatabase(uri, db),
    stop: async () => {
      const exited = new Promise((r) => child.once("exit", r));
      child.kill("SIGTERM");
      await exited;
    },
  };
}

function startKafka(): { brokers: string[]; startMs: number; stop(): void } {
  if (process.env.KAFKA_BROKERS)
    return { brokers: process.env.KAFKA_BROKERS.split(","), startMs: 0, stop: () => {} };
  const stateDir = mkdtempSync(join(tmpdir(), "chunkrelay-bench-kafka-"));
  const env = { ...process.env, KAFKA_STATE_DIR: stateDir };
  const t0 = performance.now();
  execFileSync("bash", [join(ROOT, "scripts/kafka/start-broker.sh")], {
    env,
    stdio: ["ignore", "ignore", "inherit"],
  });
  const startMs = performance.now() - t0;
  const state = readFileSync(join(stateDir, "broker.env"), "utf8");
  const brokers = /KAFKA_BROKERS=(\S+)/.exec(state)?.[1];
  if (!brokers) throw new Error(`no KAFKA_BROKERS in ${stateDir}/broker.env`);
  return {
    brokers: brokers.split(","),
    startMs,
    stop: () => {
      execFileSync("bash", [join(ROOT, "scripts/kafka/stop-broker.sh")], { env, stdio: "ignore" });
      rmSync(stateDir, { recursive: true, force: true });
    },
  };
}

const recordOf = (i: number) => ({ name: `record-${i}`, amount: i % 100 });

async function main() {
  const n = opts.records;
  const kafka = startKafka();
  const mongo = await startMongo();
  const topic = `bench-${randomBytes(3).toString("hex")}`;
  try {
    if (kafka.startMs > 0) say(`Kafka broker started in ${(kafka.startMs / 1000).toFixed(1)} s`);
    const admin = new Admin({ clientId: "bench", bootstrapBrokers: kafka.brokers });
    await admin.createTopics({ topics: [topic], partitions: 3, replicas: 1 });
    await admin.close();
    const producer = new Producer({
      clientId: "bench",
      bootstrapBrokers: kafka.brokers,
      serializers: stringSerializers,
      acks: -1,
      idempotent: true,
    });
    for (let from = 0; from < n; from += 2000) {
      const messages = [];
      for (let i = from; i < Math.min(n, from + 2000); i++) {
        messages.push({ topic, partition: i % 3, value: JSON.stringify(recordOf(i)) });
      }
      await producer.send({ messages });
    }
    await producer.close();
    say(`${n} messages on ${topic} (3 partitions), ${n} documents in bench_src`);
    const results = await withMongo(mongo.uri, async (store: Store) => {
      await store.ensureIndexes();
      const coll = store.db.collection("bench_src");
      for (let from = 0; from < n; from += 5000) {
        const docs = [];
        for (let i = from; i < Math.min(n, from + 5000); i++) docs.push({ _id: i, ...recordOf(i) });
        await coll.insertMany(docs as never[]);
      }
      const service = await startBatchService({ mongoUri: mongo.uri, latencyMs: 0 });
      const common = {
        chunking: { maxRecords: opts.chunkSize },
        target: { url: service.url },
        watch: { pollIntervalMs: opts.pollMs },
      };
      await saveConfig(
        store,
        { name: "bench-mongo", source: { collection: "bench_src", fields: ["name", "amount"] }, ...common },
        new Date(),
      );
      await saveConfig(
        store,
        {
          name: "bench-kafka",
          source: { type: "kafka", brokers: kafka.brokers, topic, fields: ["name", "amount"] },
          ...common,
        },
        new Date(),
      );
      const run = async (config: string) => {
        const started = performance.now();
        const summary = await runJobLocally({ store, config });
        const ms = performance.now() - started;
        if (summary.status !== "succeeded" || summary.processed !== n) {
          throw new Error(
            `${config}: job ${summary.jobId} ended ${summary.status} with ${summary.processed} of ${n}`,
          );
        }
        return { ms: Math.round(ms), recordsPerSecond: Math.round((n * 1000) / ms) };
      };
      // Alternated, twice each; the better of each pair counts (the first run warms the JIT).
      const mongoRuns = [await run("bench-mongo")];
      const kafkaRuns = [await run("bench-kafka")];
      mongoRuns.push(await run("bench-mongo"));
      kafkaRuns.push(await run("bench-kafka"));
      await service.stop();
      const best = (rs: Array<{ ms: number; recordsPerSecond: number }>) =>
        rs.reduce((a, b) => (b.recordsPerSecond > a.recordsPerSecond ? b : a));
      return { mongo: best(mongoRuns), kafka: best(kafkaRuns), runs: { mongo: mongoRuns, kafka: kafkaRuns } };
    });
    const ratio = Math.round((results.kafka.recordsPerSecond / results.mongo.recordsPerSecond) * 100) / 100;
    const out = {
      records: n,
      chunkSize: opts.chunkSize,
      pollMs: opts.pollMs,
      brokerStartMs: Math.round(kafka.startMs),
      collection: results.mongo,
      topic: results.kafka,
      topicVsCollection: ratio,
    };
    say(`collection → service  ${results.mongo.recordsPerSecond} records/s`);
    say(`topic → service       ${results.kafka.recordsPerSecond} records/s`);
    say(`topic / collection    ${ratio}×`);
    if (opts.json) process.stdout.write(`${JSON.stringify(out)}\n`);
  } finally {
    await mongo.stop();
    kafka.stop();
  }
}

await main();
