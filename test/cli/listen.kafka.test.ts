/**
 * `chunkrelay listen` as a subprocess against the broker: a job per message, keyed by
 * topic/partition/offset; messages that can never start a job (not JSON, not a payload, an unknown
 * config) refused, dead-lettered and committed past; a message read again (the same payload with
 * its job id) resumes that job instead of starting another; the listener shows as a worker.
 */
import { spawn } from "node:child_process";
import { beforeAll, describe, expect, it } from "vitest";
import { saveConfig } from "../../src/store/configs.js";
import { KafkaTopic } from "../../src/sources/kafka-client.js";
import { Store } from "../../src/store/store.js";
import { uriWithDatabase } from "../../src/store/connection.js";
import { useKafka } from "../support/kafka.js";
import { builtCli } from "../support/built-cli.js";
import { startFakeService, usePipelineStore } from "../support/pipeline.js";

const BIN = builtCli();
const { t, cleanups, store: currentStore } = usePipelineStore("listen");
const kafka = useKafka("listen");
let store: Store;
let dbUri: string;
beforeAll(() => {
  store = currentStore();
  dbUri = uriWithDatabase(t.uri, t.db().databaseName);
});

function listen(args: string[]): Promise<{ code: number | null; stderr: string }> {
  const child = spawn(process.execPath, [BIN, "listen", "--brokers", kafka.brokers.join(","), ...args], {
    env: { ...process.env, MONGODB_URI: dbUri, CHUNKRELAY_WORKER_NAME: "listener-one" },
    stdio: ["ignore", "ignore", "pipe"],
  });
  let stderr = "";
  child.stderr.on("data", (b: Buffer) => (stderr += b.toString()));
  return new Promise((resolve) => child.once("exit", (code) => resolve({ code, stderr })));
}

describe("chunkrelay listen", () => {
  it("runs a job per message once, refuses what can never run, and commits after each", async () => {
    const source = await kafka.createTopic(2);
    const jobs = await kafka.createTopic(1);
    const dead = await kafka.createTopic(1);
    await kafka.produce(
      source,
      Array.from({ length: 40 }, (_, n) => ({ partition: n % 2, value: { n } })),
    );
    const s = await startFakeService(store, () => ({ status: 202, report: "processed" }));
    cleanups.push(() => s.stop());
    await saveConfig(
      store,
      {
        name: "lc",
        source: { type: "kafka", brokers: kafka.brokers, topic: source },
        chunking: { maxRecords: 10 },
        target: { url: s.url },
        watch: { pollIntervalMs: 10 },
      },
      new Date(),
    );
    await kafka.produce(jobs, [
      { partition: 0, value: { config: "lc", mode: "incremental" } },
      { partition: 0, value: "not an object" },
      { partition: 0, value: { config: "no-such-config", mode: "incremental" } },
      { partition: 0, value: { config: "lc", mode: "sideways" } },
    ]);
    const group = `g-${jobs}`;
    const first = await listen([
      "--topic",
      jobs,
      "--group",
      group,
      "--dead-letter-topic",
      dead,
      "--max-messages",
      "4",
    ]);
    expect(first.stderr).toContain(`${jobs}/0/0: job ${jobs}:0:0 succeeded`);
    expect(first.stderr).toContain(`${jobs}/0/1: refused (not a JSON object`);
    expect(first.stderr).toMatch(new RegExp(`${jobs}/0/2: refused \\(.*no-such-config`));
    expect(first.stderr).toContain(`${jobs}/0/3: refused (not a job payload: mode`);
    expect(first.code).toBe(0);
    expect(s.requests.flatMap((r) => r.body.records)).toHaveLength(40);
    expect(await store.jobs.countDocuments({ config: "lc" })).toBe(1);
    expect((await kafka.endOffsets(dead, 1))[0]).toBe(3n);
    const check = new KafkaTopic(
      { brokers: kafka.brokers, clientId: kafka.clientId("c"), timeoutMs: 5000 },
      jobs,
      group,
    );
    expect(Object.fromEntries(await check.committedOffsets())).toEqual({ 0: 4n });

    // The first message again, with its job id: the job exists and is finished — nothing is sent.
    await kafka.produce(jobs, [
      { partition: 0, value: { config: "lc", mode: "incremental", jobId: `${jobs}:0:0` } },
    ]);
    const again = await listen(["--topic", jobs, "--group", group, "--max-messages", "1"]);
    expect(again.code).toBe(0);
    expect(again.stderr).toContain(`${jobs}/0/4: job ${jobs}:0:0 succeeded`);
    expect(s.requests.flatMap((r) => r.body.records)).toHaveLength(40);
    expect(Object.fromEntries(await check.committedOffsets())).toEqual({ 0: 5n });
    await check.close();
    // The listener registered as a worker of kind listen and counted the job's records.
    const worker = await store.db
      .collection("batch_workers")
      .findOne({ name: "listener-one", kind: "listen" });
    expect(worker).toMatchObject({ records: 40 });
  }, 120_000);

  it("names a missing --brokers and a bad topic name as usage errors", async () => {
    const child = spawn(process.execPath, [BIN, "listen", "--topic", "bad topic!"], {
      env: { ...process.env, MONGODB_URI: dbUri, KAFKA_BROKERS: "" },
      stdio: ["ignore", "ignore", "pipe"],
    });
    let stderr = "";
    child.stderr.on("data", (b: Buffer) => (stderr += b.toString()));
    const code = await new Promise((resolve) => child.once("exit", resolve));
    expect(code).toBe(2);
    expect(stderr).toContain("--topic: a Kafka topic name");
  });
});
