/**
 * A jobs message whose job fails with bad input during planning (a Kafka source with an invalid
 * message and invalidMessages "fail") is refused and committed past; the job stays `planning` for
 * a human. A later `chunkrelay listen` tries to resume it, reports it, and goes on with the next
 * jobs message instead of stopping there (which would wedge every listener for good).
 */
import { spawn } from "node:child_process";
import { beforeAll, describe, expect, it } from "vitest";
import { saveConfig } from "../../src/store/configs.js";
import { Store } from "../../src/store/store.js";
import { uriWithDatabase } from "../../src/store/connection.js";
import { useKafka } from "../support/kafka.js";
import { builtCli } from "../support/built-cli.js";
import { startFakeService, usePipelineStore } from "../support/pipeline.js";

const BIN = builtCli();
const { t, cleanups, store: currentStore } = usePipelineStore("review_listen");
const kafka = useKafka("rlisten");
let store: Store;
let dbUri: string;
beforeAll(() => {
  store = currentStore();
  dbUri = uriWithDatabase(t.uri, t.db().databaseName);
});

function listen(args: string[]): Promise<{ code: number | null; stderr: string }> {
  const child = spawn(process.execPath, [BIN, "listen", "--brokers", kafka.brokers.join(","), ...args], {
    env: { ...process.env, MONGODB_URI: dbUri },
    stdio: ["ignore", "ignore", "pipe"],
  });
  let stderr = "";
  child.stderr.on("data", (b: Buffer) => (stderr += b.toString()));
  return new Promise((resolve) => child.once("exit", (code) => resolve({ code, stderr })));
}

describe("chunkrelay listen after a job that failed planning with bad input", () => {
  it("still runs the next jobs message", async () => {
    const poisoned = await kafka.createTopic(1);
    const healthy = await kafka.createTopic(1);
    const jobs = await kafka.createTopic(1);
    await kafka.produce(poisoned, [
      { partition: 0, value: { n: 1 } },
      { partition: 0, value: "not an object" },
    ]);
    await kafka.produce(healthy, [{ partition: 0, value: { n: 2 } }]);
    const s = await startFakeService(store, () => ({ status: 202, report: "processed" }));
    cleanups.push(() => s.stop());
    for (const [name, topic] of [
      ["lp-bad", poisoned],
      ["lp-good", healthy],
    ] as const) {
      await saveConfig(
        store,
        {
          name,
          source: { type: "kafka", brokers: kafka.brokers, topic },
          chunking: { maxRecords: 10 },
          target: { url: s.url },
          watch: { pollIntervalMs: 10 },
        },
        new Date(),
      );
    }
    const group = `g-${jobs}`;
    await kafka.produce(jobs, [{ partition: 0, value: { config: "lp-bad", mode: "incremental" } }]);
    const first = await listen(["--topic", jobs, "--group", group, "--max-messages", "1"]);
    console.log("FIRST exit", first.code, "\n", first.stderr);
    expect(first.stderr).toContain(`${jobs}/0/0: refused`);
    console.log(
      "job doc",
      JSON.stringify(await store.jobs.findOne({ _id: `${jobs}:0:0` }, { projection: { status: 1 } })),
    );

    await kafka.produce(jobs, [{ partition: 0, value: { config: "lp-good", mode: "incremental" } }]);
    const second = await listen(["--topic", jobs, "--group", group, "--max-messages", "1"]);
    console.log("SECOND exit", second.code, "\n", second.stderr);
    expect(second.stderr).toContain(`${jobs}/0/1: job ${jobs}:0:1 succeeded`);
    expect(second.code).toBe(0);
    expect(s.requests.flatMap((r) => r.body.records).map((r) => r.id)).toEqual([`${healthy}/0/0`]);
  }, 120_000);
});
