/**
 * `npx chunkrelay workers` as a user runs it: after a `chunkrelay run` subprocess against a fake
 * batch service, the run's worker is listed (with --all: it stopped) with the chunks and records it
 * handled; live, stale and stopped workers are told apart; text from the database is made inert.
 */
import { spawn } from "node:child_process";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { saveConfig } from "../../src/store/configs.js";
import { uriWithDatabase } from "../../src/store/connection.js";
import { Store } from "../../src/store/store.js";
import { registerWorker } from "../../src/store/workers.js";
import { builtCli } from "../support/built-cli.js";
import { useTestDatabase } from "../support/db.js";
import { startFakeService } from "../support/pipeline.js";

const BIN = builtCli();
const t = useTestDatabase("workers_cli");
let store: Store;
let dbUri: string;
let stopFake: () => Promise<void> = () => Promise.resolve();

interface Ran {
  code: number | null;
  stdout: string;
  stderr: string;
}

function cli(args: string[], env: Record<string, string | undefined> = {}): Promise<Ran> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [BIN, ...args], {
      env: { ...process.env, MONGODB_URI: dbUri, CHUNKRELAY_WORKER_NAME: undefined, ...env },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (b: Buffer) => (stdout += b.toString()));
    child.stderr.on("data", (b: Buffer) => (stderr += b.toString()));
    child.on("exit", (code) => resolve({ code, stdout, stderr }));
  });
}

const lastJson = (out: string): unknown => {
  const lines = out.trim().split("\n");
  return JSON.parse(lines[lines.length - 1] ?? "null") as unknown;
};

beforeAll(async () => {
  store = new Store(t.db());
  await store.ensureIndexes();
  dbUri = uriWithDatabase(t.uri, t.db().databaseName);
  await store.db.collection("wc_src").insertMany(Array.from({ length: 30 }, (_, i) => ({ _id: i as never })));
  const fake = await startFakeService(store, () => ({ status: 202, report: "processed" }));
  stopFake = () => fake.stop();
  await saveConfig(
    store,
    {
      name: "wc",
      source: { collection: "wc_src" },
      chunking: { maxRecords: 10 },
      target: { url: fake.url },
      watch: { pollIntervalMs: 10 },
    },
    new Date(),
  );
});

afterAll(async () => {
  await stopFake();
});

describe("chunkrelay workers", () => {
  it("shows the worker of a finished run with the chunks and records it handled", async () => {
    // A bidirectional override in the name: printed escaped, never raw.
    const run = await cli(["run", "wc", "--json"], { CHUNKRELAY_WORKER_NAME: "night\u202eshift" });
    expect(run.code, run.stderr).toBe(0);

    const live = await cli(["workers"]);
    expect(live.code, live.stderr).toBe(0);
    expect(live.stdout).toContain("no live workers");

    const json = await cli(["workers", "--all", "--json"]);
    expect(json.code, json.stderr).toBe(0);
    const workers = lastJson(json.stdout) as Array<Record<string, unknown>>;
    expect(workers).toHaveLength(1);
    expect(workers[0]).toMatchObject({
      name: "night\u202eshift",
      kind: "local",
      state: "stopped",
      chunks: 3,
      records: 30,
      succeeded: 30,
      failed: 0,
    });
    expect(json.stdout).not.toContain("\u202e");

    const table = await cli(["workers", "--all"]);
    expect(table.code, table.stderr).toBe(0);
    expect(table.stdout).not.toContain("\u202e");
    const lines = table.stdout.trim().split("\n");
    expect(lines[0]).toMatch(
      /^NAME\s+KIND\s+HOST\s+PID\s+STARTED\s+HEARTBEAT\s+CHUNKS\s+RECORDS\s+SUCCEEDED\s+FAILED\s+STATE$/,
    );
    expect(lines[1]).toMatch(/^night\\u202eshift\s+local\s+.*\s+3\s+30\s+30\s+0\s+stopped$/);
  }, 60_000);

  it("lists live workers by default and stale ones only with --all", async () => {
    const now = new Date();
    const base = { kind: "trigger" as const, host: "elsewhere", pid: 7, startedAt: now, heartbeatMs: 15_000 };
    await registerWorker(store, { ...base, id: "w-live", name: "alive" }, now);
    await registerWorker(store, { ...base, id: "w-stale", name: "quiet" }, new Date(now.getTime() - 60_000));
    const live = lastJson((await cli(["workers", "--json"])).stdout) as Array<{
      name: string;
      state: string;
    }>;
    expect(live.map((w) => [w.name, w.state])).toEqual([["alive", "live"]]);
    const all = lastJson((await cli(["workers", "--json", "--all"])).stdout) as Array<{
      name: string;
      state: string;
    }>;
    expect(all.map((w) => w.state).sort()).toEqual(["live", "stale", "stopped"]);
    const table = await cli(["workers"]);
    expect(table.stdout).toMatch(/alive\s+trigger\s+elsewhere\s+7\s.*\s+live$/m);
    expect(table.stdout).not.toContain("quiet");
  }, 60_000);
});
