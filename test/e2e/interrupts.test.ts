/**
 * Ctrl-C always works, whatever the run is waiting for — here the database itself: a server that
 * stops answering (SIGSTOP, as a hung host or a network black hole looks) must not hold a run
 * that was told to stop. Also: a new job interrupted while it plans is named for the resume; a
 * second Ctrl-C exits at once; an interrupted run releases its leases, so the resume does not
 * wait a lease period out. The MongoDB server is the embedded engine in a process of its own, so
 * the test can freeze it.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { MongoClient } from "mongodb";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { waitUntil } from "../support/wait.js";
import { Store } from "../../src/store/store.js";
import { insertJob } from "../../src/store/jobs.js";
import { type FakeReply, startFakeService } from "../support/pipeline.js";
import { builtCli } from "../support/built-cli.js";

const BIN = builtCli();
const dir = mkdtempSync(join(tmpdir(), "chunkrelay-interrupts-"));
const cleanups: Array<() => Promise<unknown>> = [];
let mongo: ChildProcess;
let uri: string;
let client: MongoClient;
let store: Store;

interface Running {
  child: ChildProcess;
  exited: Promise<number | null>;
  stdout: () => string;
  stderr: () => string;
}

function start(args: string[], env: Record<string, string> = {}): Running {
  const child = spawn(process.execPath, [BIN, ...args], {
    env: { ...process.env, MONGODB_URI: uri, ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let stdout = "";
  let stderr = "";
  child.stdout?.on("data", (b: Buffer) => (stdout += b.toString()));
  child.stderr?.on("data", (b: Buffer) => (stderr += b.toString()));
  return {
    child,
    exited: new Promise((resolve) => child.once("exit", resolve)),
    stdout: () => stdout,
    stderr: () => stderr,
  };
}

const show = (run: Running) => `stdout:\n${run.stdout()}\nstderr:\n${run.stderr()}`;

/** Resolves when `event()` holds; fails past the deadline or when the run exits first. */
async function until(
  event: () => boolean | Promise<boolean>,
  run: Running,
  what: string,
  deadlineMs = 60_000,
) {
  await waitUntil(event, { what, deadlineMs, exited: run.exited, context: () => show(run) });
}

/** The exit code, or "hung" past the deadline (the process is then killed). */
async function exitWithin(run: Running, ms: number): Promise<number | null | "hung"> {
  let timer: NodeJS.Timeout | undefined;
  const code = await Promise.race([
    run.exited,
    new Promise<"hung">((r) => {
      timer = setTimeout(() => r("hung"), ms);
    }),
  ]);
  clearTimeout(timer);
  if (code === "hung") run.child.kill("SIGKILL");
  return code;
}

const lastJsonLine = (run: Running) =>
  JSON.parse(run.stdout().trim().split("\n").pop() ?? "{}") as Record<string, unknown>;

async function apply(name: string, config: Record<string, unknown>) {
  const file = join(dir, `${name}.json`);
  writeFileSync(file, JSON.stringify({ name, watch: { pollIntervalMs: 20 }, ...config }));
  const applied = start(["config", "apply", file]);
  expect(await applied.exited, show(applied)).toBe(0);
}

const freeze = () => mongo.kill("SIGSTOP");
const thaw = () => mongo.kill("SIGCONT");

beforeAll(async () => {
  mongo = spawn(process.execPath, [BIN, "mongo", "--port", "0"], { stdio: ["ignore", "pipe", "pipe"] });
  const exited = new Promise((resolve) => mongo.once("exit", resolve));
  cleanups.push(async () => {
    thaw();
    mongo.kill("SIGINT");
    await exited;
  });
  const base = await new Promise<string>((resolve, reject) => {
    let out = "";
    mongo.stdout?.on("data", (b: Buffer) => {
      out += b.toString();
      if (out.includes("\n")) resolve(out.split("\n")[0] as string);
    });
    mongo.once("exit", () => reject(new Error(`the embedded MongoDB did not start: ${out}`)));
  });
  uri = `${base.replace(/\/$/, "")}/interrupts`;
  client = new MongoClient(uri);
  await client.connect();
  cleanups.push(() => client.close());
  store = new Store(client.db());
  await store.ensureIndexes();
}, 60_000);

afterAll(async () => {
  for (const c of cleanups.reverse()) await c();
  rmSync(dir, { recursive: true, force: true });
});

const accept = (): FakeReply => ({ status: 202, report: "processed" });

describe("Ctrl-C", () => {
  it("stops a run within seconds when the database stops answering; resume then finishes it", async () => {
    await store.db
      .collection("hang_src")
      .insertMany(Array.from({ length: 2000 }, (_, i) => ({ _id: i as never })));
    const service = await startFakeService(store, accept);
    cleanups.push(() => service.stop());
    await apply("hang", {
      source: { collection: "hang_src" },
      chunking: { maxRecords: 50 },
      target: { url: service.url },
    });
    const run = start(["run", "hang", "--job-id", "hang-job", "--json"]);
    await until(
      async () => (await store.chunks.countDocuments({ jobId: "hang-job", status: "processed" })) >= 3,
      run,
      "three processed chunks",
    );
    freeze();
    const signalled = Date.now();
    run.child.kill("SIGINT");
    const code = await exitWithin(run, 20_000);
    const tookMs = Date.now() - signalled;
    thaw();
    expect(code, show(run)).toBe(3);
    expect(tookMs, show(run)).toBeLessThan(10_000);
    expect(run.stderr()).toContain("resume with: npx chunkrelay resume hang-job");
    expect(lastJsonLine(run)).toMatchObject({ jobId: "hang-job", status: "interrupted" });
    const resumed = start(["resume", "hang-job", "--json"]);
    expect(await resumed.exited, show(resumed)).toBe(0);
    expect(await store.jobs.findOne({ _id: "hang-job" })).toMatchObject({
      status: "succeeded",
      totals: { records: 2000, processed: 2000 },
    });
  }, 120_000);

  it("names a new job interrupted while it plans (no --job-id given), and a second Ctrl-C exits at once", async () => {
    const big = store.db.collection("plan_src");
    for (let i = 0; i < 60_000; i += 20_000) {
      await big.insertMany(Array.from({ length: 20_000 }, (_, k) => ({ _id: (i + k) as never })));
    }
    const service = await startFakeService(store, accept);
    cleanups.push(() => service.stop());
    await apply("plan", {
      source: { collection: "plan_src" },
      chunking: { maxRecords: 10_000 },
      maxInFlight: 2,
      target: { url: service.url },
    });
    const run = start(["run", "plan", "--json"]);
    let jobId = "";
    await until(
      async () => {
        const job = await store.jobs.findOne({ config: "plan" });
        jobId = job?._id ?? "";
        return job !== null && !job.planning.done;
      },
      run,
      "planning under way",
    );
    freeze();
    run.child.kill("SIGINT");
    // The first Ctrl-C waits up to two seconds for the running steps; the second does not.
    await until(() => run.stderr().includes("stopping"), run, "the first signal's notice", 10_000);
    const second = Date.now();
    run.child.kill("SIGINT");
    const code = await exitWithin(run, 20_000);
    const tookMs = Date.now() - second;
    thaw();
    expect(code, show(run)).toBe(3);
    expect(tookMs, show(run)).toBeLessThan(1_500);
    expect(run.stderr()).toContain(`resume with: npx chunkrelay resume ${jobId}`);
    expect(run.stderr()).not.toContain("<jobId>");
    expect(lastJsonLine(run)).toMatchObject({ jobId, config: "plan", status: "interrupted" });
    const resumed = start(["resume", jobId, "--json"]);
    expect(await resumed.exited, show(resumed)).toBe(0);
    expect(await store.jobs.findOne({ _id: jobId })).toMatchObject({
      status: "succeeded",
      totals: { records: 60_000, processed: 60_000 },
    });
  }, 180_000);

  it("never cuts off output a slow reader has not taken yet (a pipe into `less`)", async () => {
    // A job with 600 chunks, copied from the finished one above: its status is ~200 KB of JSON.
    const job = await store.jobs.findOne({ _id: "hang-job" });
    const chunks = await store.chunks.find({ jobId: "hang-job" }).toArray();
    expect(job).not.toBeNull();
    const { lane: _lane, claimKey: _claim, ...copy } = job as NonNullable<typeof job>;
    await insertJob(store, { ...copy, _id: "big-status-job" });
    await store.chunks.insertMany(
      Array.from({ length: 15 }, (_, copy) =>
        chunks.map(({ _id: _drop, ...c }) => ({
          ...c,
          jobId: "big-status-job",
          chunk: copy * 1000 + c.chunk,
        })),
      ).flat(),
    );
    const child = spawn(process.execPath, [BIN, "status", "big-status-job", "--json"], {
      env: { ...process.env, MONGODB_URI: uri },
      stdio: ["ignore", "pipe", "ignore"],
    });
    const exited = new Promise<number | null>((resolve) => child.once("exit", resolve));
    const closed = new Promise((resolve) => child.stdout.once("close", resolve));
    // Nobody reads for longer than the CLI's 3 s exit fallback: the pipe fills up and stays full.
    await new Promise((r) => setTimeout(r, 5_000));
    let out = "";
    child.stdout.on("data", (b: Buffer) => (out += b.toString()));
    expect(await exited).toBe(0);
    await closed;
    expect(out.length).toBeGreaterThan(100_000);
    const report = JSON.parse(out.trim().split("\n").pop() ?? "{}") as { chunks?: unknown[] };
    expect(report.chunks).toHaveLength(600);
  }, 60_000);

  it("releases the leases it holds: the resume takes the chunks over at once, not after the lease", async () => {
    await store.db
      .collection("lease_src")
      .insertMany(Array.from({ length: 200 }, (_, i) => ({ _id: i as never })));
    // The first posts never get an answer: their chunks stay leased by the interrupted run.
    let answering = false;
    const held: Array<() => void> = [];
    const service = await startFakeService(store, () =>
      answering
        ? accept()
        : new Promise<FakeReply>((resolve) => {
            held.push(() => resolve({ status: 503 }));
          }),
    );
    cleanups.push(async () => {
      for (const release of held) release();
      await service.stop();
    });
    await apply("lease", {
      source: { collection: "lease_src" },
      chunking: { maxRecords: 50 },
      maxInFlight: 2,
      target: { url: service.url, timeoutMs: 600_000 },
    });
    // A lease of ten minutes: a resume that had to wait for it would miss the test's deadline.
    const leaseMs = "600000";
    const run = start(["run", "lease", "--job-id", "lease-job"], { CHUNKRELAY_LEASE_MS: leaseMs });
    await until(
      async () => (await store.chunks.countDocuments({ jobId: "lease-job", status: "dispatching" })) >= 2,
      run,
      "two chunks in flight",
    );
    run.child.kill("SIGINT");
    expect(await exitWithin(run, 20_000), show(run)).toBe(3);
    const now = Date.now();
    const leased = await store.chunks
      .find({ jobId: "lease-job", "lease.expiresAt": { $gt: new Date(now) } })
      .toArray();
    expect(leased.map((c) => c.chunk)).toEqual([]);
    answering = true;
    const resumed = start(["resume", "lease-job", "--json"], { CHUNKRELAY_LEASE_MS: leaseMs });
    expect(await exitWithin(resumed, 60_000), show(resumed)).toBe(0);
    expect(await store.jobs.findOne({ _id: "lease-job" })).toMatchObject({
      status: "succeeded",
      totals: { records: 200, processed: 200 },
    });
  }, 120_000);
});
