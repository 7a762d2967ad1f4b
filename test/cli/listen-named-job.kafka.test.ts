/**
 * A jobs message that names its own jobId: its job is put under the topic's prefix, so when the
 * listener dies after committing the message (the job opened), the next listener finds the job
 * among its topic's unfinished ones and finishes it — every record sent, nothing left running.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { beforeAll, describe, expect, it } from "vitest";
import { saveConfig } from "../../src/store/configs.js";
import { KafkaTopic } from "../../src/sources/kafka-client.js";
import { Store } from "../../src/store/store.js";
import { uriWithDatabase } from "../../src/store/connection.js";
import { useKafka } from "../support/kafka.js";
import { builtCli } from "../support/built-cli.js";
import { waitUntil } from "../support/wait.js";
import { startFakeService, usePipelineStore } from "../support/pipeline.js";

const BIN = builtCli();
const { t, cleanups, store: currentStore } = usePipelineStore("review_named");
const kafka = useKafka("rnamed");
let store: Store;
let dbUri: string;
beforeAll(() => {
  store = currentStore();
  dbUri = uriWithDatabase(t.uri, t.db().databaseName);
});

function listen(args: string[]): {
  child: ChildProcess;
  done: Promise<{ code: number | null; stderr: string }>;
} {
  const child = spawn(process.execPath, [BIN, "listen", "--brokers", kafka.brokers.join(","), ...args], {
    env: { ...process.env, MONGODB_URI: dbUri },
    stdio: ["ignore", "ignore", "pipe"],
  });
  let stderr = "";
  child.stderr?.on("data", (b: Buffer) => (stderr += b.toString()));
  return { child, done: new Promise((resolve) => child.once("exit", (code) => resolve({ code, stderr }))) };
}

describe("chunkrelay listen and a payload-named jobId", () => {
  it("finishes a named job whose listener died after committing its message", async () => {
    const source = await kafka.createTopic(1);
    const jobs = await kafka.createTopic(1);
    await kafka.produce(
      source,
      Array.from({ length: 20 }, (_, n) => ({ partition: 0, value: { n } })),
    );
    let hold = true;
    let requests = 0;
    const s = await startFakeService(store, async () => {
      requests++;
      while (hold) await new Promise((r) => setTimeout(r, 50));
      return { status: 202, report: "processed" };
    });
    cleanups.push(() => s.stop());
    await saveConfig(
      store,
      {
        name: "ln",
        source: { type: "kafka", brokers: kafka.brokers, topic: source },
        chunking: { maxRecords: 5 },
        maxInFlight: 1,
        target: { url: s.url },
        watch: { pollIntervalMs: 10 },
      },
      new Date(),
    );
    const group = `g-${jobs}`;
    await kafka.produce(jobs, [
      { partition: 0, value: { config: "ln", mode: "incremental", jobId: "nightly-1" } },
    ]);
    const first = listen(["--topic", jobs, "--group", group, "--max-messages", "1"]);
    const check = new KafkaTopic(
      { brokers: kafka.brokers, clientId: kafka.clientId("c"), timeoutMs: 5000 },
      jobs,
      group,
    );
    try {
      await waitUntil(async () => requests > 0 && (await check.committedOffsets()).get(0) === 1n, {
        what: "the job opened and its message committed",
        deadlineMs: 30_000,
        everyMs: 100,
      });
    } finally {
      await check.close();
    }
    first.child.kill("SIGKILL");
    await first.done;
    hold = false;

    await kafka.produce(jobs, [{ partition: 0, value: { config: "ln", mode: "incremental" } }]);
    const second = listen(["--topic", jobs, "--group", group, "--max-messages", "1"]);
    const out = await second.done;
    const named = await store.jobs.findOne({ _id: `${jobs}:nightly-1` }, { projection: { status: 1 } });
    const sent = new Set(s.requests.flatMap((r) => r.body.records.map((x) => x.id)));
    expect({ exit: out.code, named: named?.status, distinctSent: sent.size }).toEqual({
      exit: 0,
      named: "succeeded",
      distinctSent: 20,
    });
  }, 120_000);
});
