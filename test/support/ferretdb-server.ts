/**
 * Global setup of the FerretDB lane (vitest.ferretdb.config.ts): a MongoDB implementation nobody
 * on this project wrote — FerretDB on its embedded SQLite backend, built from the Go module proxy
 * by scripts/ferretdb/build.sh — started on a free port for the run and stopped at the end. Tests
 * get it as `inject("mongoUri")`, and `inject("mongoKind") === "FerretDB"` lets a test skip exactly
 * what FerretDB lacks, with the reason (test/support/server-kind.ts).
 */
import { spawn } from "node:child_process";
import { createWriteStream } from "node:fs";
import { mkdir, mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { MongoClient } from "mongodb";
import type { TestProject } from "vitest/node";

const root = resolve(fileURLToPath(new URL("../../", import.meta.url)));
const START_DEADLINE_MS = 30_000;

/** Runs scripts/ferretdb/build.sh; its progress (stderr) goes to the terminal; stdout is the binary's path. */
function buildFerretDB(): Promise<string> {
  return new Promise((done, fail) => {
    const child = spawn("bash", [join(root, "scripts/ferretdb/build.sh")], {
      stdio: ["ignore", "pipe", "inherit"],
    });
    let stdout = "";
    child.stdout.setEncoding("utf8").on("data", (c: string) => (stdout += c));
    child.on("error", fail);
    child.on("close", (code) => {
      const path = stdout.trim().split("\n").pop();
      if (code === 0 && path) done(path);
      else fail(new Error(`scripts/ferretdb/build.sh exited with ${code} (its output is above)`));
    });
  });
}

const ROUNDS = 20;

/**
 * In how many of 20 rounds more than one of 10 concurrent `updateOne({_id, owner: null}, {$set:
 * {owner}})` reported a modification. The manual: a write to one document is atomic, so exactly one
 * wins — the claim chunkrelay's exactness rests on.
 */
async function measureLostClaims(uri: string): Promise<number> {
  const client = new MongoClient(uri, { maxPoolSize: 10 });
  const db = client.db(`ferretdb_probe_${process.pid}_${Date.now()}`);
  try {
    const claims = db.collection<{ _id: number; owner: number | null }>("claims");
    let doubled = 0;
    for (let round = 0; round < ROUNDS; round++) {
      await claims.insertOne({ _id: round, owner: null });
      const results = await Promise.all(
        Array.from({ length: 10 }, (_, i) =>
          claims.updateOne({ _id: round, owner: null }, { $set: { owner: i } }),
        ),
      );
      if (results.filter((r) => r.modifiedCount === 1).length > 1) doubled++;
    }
    return doubled;
  } finally {
    await db.dropDatabase().catch(() => undefined);
    await client.close();
  }
}

export default async function setup(project: TestProject) {
  const buildStarted = Date.now();
  const binary = await buildFerretDB();
  const buildMs = Date.now() - buildStarted;

  const dataDir = await mkdtemp(join(tmpdir(), "chunkrelay-ferretdb-lane-"));
  const started = Date.now();
  // FerretDB logs every error reply at "warn"; the lane provokes many on purpose.
  // Tests talk to FerretDB through its one-command-at-a-time proxy (scripts/ferretdb/main.go says
  // why); the direct port is only for measuring what the proxy hides (`measureLostClaims`).
  const args = [
    "-listen",
    "127.0.0.1:0",
    "-direct-listen",
    "127.0.0.1:0",
    "-data",
    dataDir,
    "-log-level",
    "error",
  ];
  const child = spawn(binary, args, {
    stdio: ["ignore", "pipe", "pipe"],
  });
  // Its log, whole, for when a test fails on something FerretDB said.
  await mkdir(join(root, "test-output"), { recursive: true });
  const logPath = join(root, "test-output", "ferretdb.log");
  const log = createWriteStream(logPath);
  let stderr = "";
  child.stderr.setEncoding("utf8").on("data", (c: string) => {
    stderr = (stderr + c).slice(-4000);
    log.write(c);
  });
  let stopping = false;
  const exited = new Promise<number | null>((done) =>
    child.once("exit", (code, signal) => {
      // Dying during the run fails every later test with "connection refused": say why, once.
      if (!stopping) {
        process.stderr.write(
          `\n[chunkrelay tests] FerretDB exited during the run (code ${code}, signal ${signal}); its log: ${logPath}\n${stderr.slice(-1500)}\n`,
        );
      }
      log.end();
      done(code);
    }),
  );

  let direct: string | undefined;
  const uri = await new Promise<string>((done, fail) => {
    const timer = setTimeout(
      () => fail(new Error(`FerretDB did not print its address within ${START_DEADLINE_MS} ms:\n${stderr}`)),
      START_DEADLINE_MS,
    );
    const lines = createInterface({ input: child.stdout });
    lines.on("line", (line) => {
      if (line.startsWith("DIRECT_URI=")) direct = line.slice("DIRECT_URI=".length);
      if (!line.startsWith("MONGODB_URI=")) return;
      clearTimeout(timer);
      done(line.slice("MONGODB_URI=".length));
    });
    void exited.then((code) => {
      clearTimeout(timer);
      fail(new Error(`FerretDB exited with ${code} before listening:\n${stderr}`));
    });
  }).catch(async (err: unknown) => {
    child.kill("SIGKILL");
    await rm(dataDir, { recursive: true, force: true });
    throw err;
  });

  process.stderr.write(
    `\n[chunkrelay tests] MongoDB server: FerretDB (SQLite backend) at ${uri} — built/checked in ${(buildMs / 1000).toFixed(1)} s, listening after ${Date.now() - started} ms\n\n`,
  );
  if (direct) {
    const [viaProxy, unproxied] = [await measureLostClaims(uri), await measureLostClaims(direct)];
    process.stderr.write(
      `[chunkrelay tests] FerretDB: rounds of 10 concurrent conditional updates of one document won by more than one writer — ${unproxied} of ${ROUNDS} unproxied, ${viaProxy} of ${ROUNDS} through the one-at-a-time proxy the tests use (MongoDB: 0)\n\n`,
    );
  }
  project.provide("mongoUri", uri);
  project.provide("mongoKind", "FerretDB");

  // An interrupted run (Ctrl-C) may skip teardown: FerretDB must not outlive it.
  const killOnExit = () => child.kill("SIGKILL");
  process.once("exit", killOnExit);

  return async () => {
    process.off("exit", killOnExit);
    stopping = true;
    child.kill("SIGTERM");
    const deadline = setTimeout(() => child.kill("SIGKILL"), 10_000);
    await exited;
    clearTimeout(deadline);
    await rm(dataDir, { recursive: true, force: true });
  };
}
