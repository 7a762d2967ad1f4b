/**
 * chunkrelay's benchmark (`npm run bench [-- --records N --json]`). In one run, on one MongoDB
 * (MONGODB_URI, or the embedded engine in a process of its own), it measures:
 *  - initializer throughput against a plain driver insertMany of equally sized documents into a
 *    collection with the same indexes as batch_details (the unavoidable work), and their ratio;
 *  - the initializer's peak RSS at N and at 10·N records (each in a child process), and their ratio;
 *  - hop latency: from the service marking a chunk's last record processed to the next chunk's
 *    POST arriving, p50/p99, with the watcher's poll interval;
 *  - end-to-end records/s against the reference service with zero latency, and MongoDB commands
 *    per chunk (driver command monitor) at N/10 and N records.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { Command, InvalidArgumentError } from "commander";
import { type CommandStartedEvent, type Document, MongoClient } from "mongodb";
import { saveConfig } from "../src/store/configs.js";
import { parseConfig } from "../src/config/schema.js";
import type { Workload } from "../src/planning/workload.js";
import { openSource } from "../src/sources/open-source.js";
import { findWindowEnd } from "../src/lanes/claim-window.js";
import { initializeJob } from "../src/steps/initialize/initialize.js";
import { runJobLocally } from "../src/runtimes/local/local-runner.js";
import { startBatchService } from "../src/service/batch-service.js";
import { Store } from "../src/store/store.js";
import { redactUri, uriWithDatabase } from "../src/store/connection.js";
import { benchDeps } from "./deps.js";
import { recordingOnly } from "./handover.js";

const ROOT = join(import.meta.dirname, "..");

function intArg(min: number) {
  return (v: string) => {
    const n = Number(v);
    if (!Number.isInteger(n) || n < min) throw new InvalidArgumentError(`expected a whole number ≥ ${min}`);
    return n;
  };
}

const program = new Command("bench")
  .option("--records <n>", "records N (RSS is also measured at 10·N)", intArg(1000), 20_000)
  .option("--poll-ms <n>", "watcher poll interval for the hop and end-to-end runs", intArg(10), 100)
  .option("--chunk-size <n>", "records per chunk in the hop and end-to-end runs", intArg(1), 100)
  .option(
    "--latency-ms <n>",
    "the service's time per chunk of 100 records in the efficiency and baseline runs",
    intArg(1),
    200,
  )
  .option(
    "--long",
    "instead: a 1,000,000-record and a 100,000-record job end to end, each in a child process, and their peak RSS",
  )
  .option("--json", "print the results as JSON on the last stdout line")
  .parse();
const opts = program.opts<{
  records: number;
  pollMs: number;
  chunkSize: number;
  latencyMs: number;
  long?: boolean;
  json?: boolean;
}>();
type Completion = "status" | "response" | "callback";

const say = (s: string) => process.stderr.write(`${s}\n`);
const percentile = (xs: number[], p: number) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1))] ?? Number.NaN;
};
const median = (xs: number[]) => percentile(xs, 50);
const round = (n: number, d = 2) => Math.round(n * 10 ** d) / 10 ** d;

function lineFrom(child: ChildProcess): Promise<string> {
  return new Promise((resolve, reject) => {
    if (!child.stdout) return reject(new Error("child has no stdout"));
    createInterface({ input: child.stdout }).once("line", resolve);
    child.once("exit", (code) => reject(new Error(`child exited with ${code} before printing`)));
  });
}

async function startServer(): Promise<{ uri: string; kind: string; stop(): Promise<void> }> {
  const fromEnv = process.env.MONGODB_URI;
  const dbName = `chunkrelay_bench_${randomBytes(3).toString("hex")}`;
  if (fromEnv) {
    return {
      uri: uriWithDatabase(fromEnv, dbName),
      kind: `MONGODB_URI (${redactUri(fromEnv)})`,
      stop: async () => {},
    };
  }
  // The engine runs in its own process: its memory and CPU are not the benchmark's.
  const child = spawn(process.execPath, [join(ROOT, "bin/chunkrelay.js"), "mongo", "--port", "0"], {
    stdio: ["ignore", "pipe", "inherit"],
  });
  const uri = await lineFrom(child);
  return {
    uri: uriWithDatabase(uri, dbName),
    kind: "embedded engine (separate process)",
    stop: async () => {
      const exited = new Promise((r) => child.once("exit", r));
      child.kill("SIGTERM");
      await exited;
    },
  };
}

async function seedSource(store: Store, count: number): Promise<void> {
  const coll = store.db.collection("bench_src");
  for (let start = 0; start < count; start += 5000) {
    const docs = [];
    for (let i = start; i < Math.min(count, start + 5000); i++) {
      docs.push({ _id: i, name: `record-${i}`, amount: i % 100, createdAt: new Date(1_700_000_000_000 + i) });
    }
    await coll.insertMany(docs as never[], { ordered: false });
  }
}

/** A plain driver insertMany of documents shaped like batch_details, into a collection with its indexes. */
async function baselineInsert(store: Store, n: number): Promise<number> {
  const name = `bench_baseline_${randomBytes(3).toString("hex")}`;
  const coll = store.db.collection(name);
  // Exactly the indexes batch_details has (the data model's cost, paid by both sides).
  type IndexInfo = { name: string; key: Record<string, 1 | -1>; unique?: boolean };
  const indexes = ((await store.details.listIndexes().toArray()) as IndexInfo[]).filter(
    (ix) => ix.name !== "_id_",
  );
  await coll.createIndexes(
    indexes.map((ix) => ({ key: ix.key, name: ix.name, ...(ix.unique ? { unique: true } : {}) })),
  );

  const jobId = `bench-baseline-${randomBytes(3).toString("hex")}`;
  const started = performance.now();
  for (let start = 0; start < n; start += 1000) {
    const docs = [];
    for (let i = start; i < Math.min(n, start + 1000); i++) {
      docs.push({ jobId, recordId: i, chunk: Math.floor(i / 500) + 1, status: "pending", attempts: 0 });
    }
    await coll.insertMany(docs, { ordered: false });
  }
  const ms = performance.now() - started;
  await coll.drop();
  return ms;
}

/** A plain driver read of the same N source records, as the initializer queries them. */
async function baselineFind(store: Store, n: number): Promise<number> {
  const started = performance.now();
  const cursor = store.db
    .collection("bench_src")
    .find({ _id: { $lt: n } } as never, { projection: { _id: 1 }, batchSize: 1000 })
    .sort({ _id: 1 });
  let count = 0;
  while (await cursor.hasNext()) count += cursor.readBufferedDocuments().length;
  if (count !== n) throw new Error(`read ${count} of ${n} records`);
  return performance.now() - started;
}

/** Full jobs run one at a time per config, so each timed job gets a config of its own. */
async function benchConfig(store: Store, name: string, records?: number): Promise<string> {
  await saveConfig(
    store,
    {
      name,
      source: { collection: "bench_src", ...(records ? { filter: { _id: { $lt: records } } } : {}) },
      chunking: { maxRecords: 500 },
      target: { url: "http://127.0.0.1:9/" },
    },
    new Date(),
  );
  return name;
}

/**
 * Claiming a capped incremental window of 5·N records out of 10·N: capped by count, the database
 * finds the window's end (a skip); capped by weight, the keys and weights are streamed. Both are
 * once per job, never per chunk.
 */
async function timeWindowClaims(store: Store, n: number) {
  const config = parseConfig({
    name: "bench-claim",
    source: { collection: "bench_src", weightField: "amount" },
    target: { url: "http://127.0.0.1:9/" },
  });
  const source = openSource(store, config);
  const time = async (caps: Workload) => {
    const started = performance.now();
    await findWindowEnd(source, undefined, undefined, caps, { maxRecords: 500 });
    return performance.now() - started;
  };
  // amount is i % 100: 5·N records weigh 5·N · 49.5.
  const byCount = median([await time({ maxRecords: 5 * n }), await time({ maxRecords: 5 * n })]);
  const byWeight = median([await time({ maxWeight: 5 * n * 49.5 }), await time({ maxWeight: 5 * n * 49.5 })]);
  return { records: 5 * n, byCountMs: round(byCount, 1), byWeightMs: round(byWeight, 1) };
}

async function timeInitializer(store: Store, n: number): Promise<{ ms: number; records: number }> {
  const jobId = `bench-init-${randomBytes(4).toString("hex")}`;
  const config = await benchConfig(store, jobId, n);
  const started = performance.now();
  const res = await initializeJob(benchDeps(store, recordingOnly()), { config, jobId });
  return { ms: performance.now() - started, records: res.records };
}

function initializerChild(
  uri: string,
  config: string,
): Promise<{ records: number; ms: number; maxRssBytes: number }> {
  const child = spawn(
    process.execPath,
    [
      "--import",
      "tsx",
      join(ROOT, "bench/initializer-child.ts"),
      uri,
      config,
      `bench-rss-${randomBytes(4).toString("hex")}`,
    ],
    { stdio: ["ignore", "pipe", "inherit"], cwd: ROOT },
  );
  return lineFrom(child).then(
    (line) => JSON.parse(line) as { records: number; ms: number; maxRssBytes: number },
  );
}

async function endToEnd(uri: string, store: Store, records: number, completion: Completion = "status") {
  const service = await startBatchService({ mongoUri: uri, latencyMs: 0, completion });
  const name = `bench-e2e-${completion}-${records}`;
  await saveConfig(
    store,
    {
      name,
      source: { collection: "bench_src", filter: { _id: { $lt: records } }, fields: ["name", "amount"] },
      chunking: { maxRecords: opts.chunkSize },
      target: { url: service.url },
      watch: { pollIntervalMs: opts.pollMs },
      completion,
    },
    new Date(),
  );
  // The runner's own client, monitored: every command it sends is counted.
  const client = new MongoClient(uri, { monitorCommands: true });
  const commands: Array<{ at: number; name: string }> = [];
  client.on("commandStarted", (e: CommandStartedEvent) => {
    if (!["hello", "isMaster", "ismaster", "endSessions", "ping"].includes(e.commandName)) {
      commands.push({ at: Date.now(), name: e.commandName });
    }
  });
  await client.connect();
  try {
    const runStore = new Store(client.db(store.db.databaseName));
    const started = performance.now();
    const summary = await runJobLocally({ store: runStore, config: name });
    const ms = performance.now() - started;
    if (summary.status !== "succeeded")
      throw new Error(`benchmark job ${summary.jobId} ended ${summary.status}`);
    const deliveries = service.ledger.filter((d) => !d.duplicate).sort((a, b) => a.chunk - b.chunk);
    const hops: number[] = [];
    for (let k = 1; k < deliveries.length; k++) {
      const prev = deliveries[k - 1];
      const cur = deliveries[k];
      if (prev?.processedAt !== undefined && cur) hops.push(cur.receivedAt - prev.processedAt);
    }
    // Commands per chunk: those sent between one chunk's POST and the next one's.
    const perChunk: number[] = [];
    const pollsPerChunk: number[] = [];
    for (let k = 0; k + 1 < deliveries.length; k++) {
      const from = deliveries[k]?.receivedAt ?? 0;
      const to = deliveries[k + 1]?.receivedAt ?? 0;
      const inWindow = commands.filter((c) => c.at >= from && c.at < to);
      perChunk.push(inWindow.length);
      pollsPerChunk.push(inWindow.filter((c) => c.name === "aggregate").length);
    }
    const withoutPolls = perChunk.map((n, i) => n - (pollsPerChunk[i] ?? 0));
    return {
      records: summary.records,
      chunks: summary.chunks,
      ms,
      recordsPerSecond: Math.round((summary.records * 1000) / ms),
      hops,
      commandsTotal: commands.length,
      commandsPerChunk: commands.length / summary.chunks,
      perChunkMedian: median(perChunk),
      perChunkWithoutPolls: {
        min: Math.min(...withoutPolls),
        max: Math.max(...withoutPolls),
        median: median(withoutPolls),
      },
      pollsPerChunkMedian: median(pollsPerChunk),
      firstHalfMedian: median(withoutPolls.slice(0, Math.floor(withoutPolls.length / 2))),
      secondHalfMedian: median(withoutPolls.slice(Math.floor(withoutPolls.length / 2))),
    };
  } finally {
    await client.close();
    await service.stop();
  }
}

/** A whole job in a child process (chunkrelay's or the baseline loop): records, ms, peak RSS. */
function jobChild(args: string[]): Promise<{ records: number; ms: number; maxRssBytes: number }> {
  const child = spawn(process.execPath, ["--import", "tsx", join(ROOT, "bench/run-child.ts"), ...args], {
    stdio: ["ignore", "pipe", "inherit"],
    cwd: ROOT,
  });
  return lineFrom(child).then(
    (line) => JSON.parse(line) as { records: number; ms: number; maxRssBytes: number },
  );
}

/** A config over the first `records` source records (bench_src), 100 records per chunk. */
async function modeConfig(
  store: Store,
  name: string,
  records: number,
  url: string,
  completion: Completion,
  maxInFlight: number,
): Promise<string> {
  await saveConfig(
    store,
    {
      name,
      source: { collection: "bench_src", filter: { _id: { $lt: records } }, fields: ["name", "amount"] },
      chunking: { maxRecords: 100 },
      target: { url },
      maxInFlight,
      completion,
      watch: { pollIntervalMs: Math.max(opts.pollMs, 10) },
    },
    new Date(),
  );
  return name;
}

/**
 * Efficiency against the ideal: a service taking L ms per chunk of 100 records can take at most
 * maxInFlight × 100 / L records per second. Each job is planned first (planning is measured on its
 * own above), then served; achieved is its records over the time from the first request the
 * service received to the last chunk done.
 */
async function efficiency(uri: string, store: Store) {
  const L = opts.latencyMs;
  const rows: Array<{
    completion: Completion;
    maxInFlight: number;
    records: number;
    recordsPerSecond: number;
    ideal: number;
    efficiency: number;
  }> = [];
  for (const completion of ["status", "response", "callback"] as const) {
    for (const m of [1, 4, 16]) {
      const records = m * 100 * 15;
      const service = await startBatchService({ mongoUri: uri, latencyMs: L, completion });
      try {
        const name = await modeConfig(
          store,
          `bench-eff-${completion}-${m}`,
          records,
          service.url,
          completion,
          m,
        );
        const jobId = `${name}-${randomBytes(3).toString("hex")}`;
        await initializeJob(benchDeps(store, recordingOnly()), { config: name, jobId });
        const summary = await runJobLocally({ store, config: name, jobId });
        if (summary.status !== "succeeded")
          throw new Error(`efficiency job ${jobId} ended ${summary.status}`);
        const first = Math.min(...service.ledger.map((d) => d.receivedAt));
        const chunks = await store.chunks.find({ jobId }, { projection: { finishedAt: 1 } }).toArray();
        const last = Math.max(...chunks.map((c) => c.finishedAt?.getTime() ?? Number.NaN));
        const rate = (records * 1000) / (last - first);
        const ideal = (m * 100 * 1000) / L;
        rows.push({
          completion,
          maxInFlight: m,
          records,
          recordsPerSecond: Math.round(rate),
          ideal,
          efficiency: round(rate / ideal),
        });
        say(
          `  ${completion} maxInFlight ${m}: ${Math.round(rate)} of ${ideal} records/s = ${round(rate / ideal)}`,
        );
      } finally {
        await service.stop();
      }
    }
  }
  return { latencyMs: L, rows };
}

/**
 * chunkrelay against the loop a user would write (bench/baseline.ts), each side in a child
 * process on the same records and the same service: throughput with a service of L ms per chunk
 * (one chunk at a time on both sides; chunkrelay polls no slower than the baseline), and peak RSS
 * at N and 10·N with a zero-latency service answering in the reply.
 */
async function baselineComparison(uri: string, store: Store, n: number) {
  const throughput: Array<{
    completion: Completion;
    records: number;
    chunkrelay: number;
    baseline: number;
    ratio: number;
  }> = [];
  // 50 chunks: a job's start (planning its first chunks) and end weigh little.
  const records = 5_000;
  for (const completion of ["status", "response"] as const) {
    const service = await startBatchService({ mongoUri: uri, latencyMs: opts.latencyMs, completion });
    try {
      const name = await modeConfig(store, `bench-base-${completion}`, records, service.url, completion, 1);
      const mine = await jobChild(["chunkrelay", uri, name, `${name}-${randomBytes(3).toString("hex")}`]);
      const src = await subsetCollection(store, records);
      const theirs = await jobChild([
        "baseline",
        uri,
        src,
        service.url,
        completion,
        String(opts.pollMs),
        `bench-baseline-${randomBytes(3).toString("hex")}`,
      ]);
      const a = (mine.records * 1000) / mine.ms;
      const b = (theirs.records * 1000) / theirs.ms;
      throughput.push({
        completion,
        records,
        chunkrelay: Math.round(a),
        baseline: Math.round(b),
        ratio: round(a / b),
      });
      say(`  ${completion}: chunkrelay ${Math.round(a)} records/s, baseline ${Math.round(b)} records/s`);
    } finally {
      await service.stop();
    }
  }
  const memory: Array<{ records: number; chunkrelayMB: number; baselineMB: number }> = [];
  const service = await startBatchService({ mongoUri: uri, latencyMs: 0, completion: "response" });
  try {
    for (const size of [n, 10 * n]) {
      const name = await modeConfig(store, `bench-mem-${size}`, size, service.url, "response", 16);
      const mine = await jobChild(["chunkrelay", uri, name, `${name}-${randomBytes(3).toString("hex")}`]);
      const src = await subsetCollection(store, size);
      const theirs = await jobChild([
        "baseline",
        uri,
        src,
        service.url,
        "response",
        "0",
        `bench-mem-base-${size}`,
      ]);
      memory.push({
        records: size,
        chunkrelayMB: round(mine.maxRssBytes / 2 ** 20, 1),
        baselineMB: round(theirs.maxRssBytes / 2 ** 20, 1),
      });
      say(
        `  ${size} records: chunkrelay ${round(mine.maxRssBytes / 2 ** 20, 1)} MB, baseline ${round(theirs.maxRssBytes / 2 ** 20, 1)} MB`,
      );
    }
  } finally {
    await service.stop();
  }
  return { latencyMs: opts.latencyMs, throughput, memory };
}

/** The first `n` source records as a collection of their own (the baseline reads a whole collection). */
async function subsetCollection(store: Store, n: number): Promise<string> {
  const name = `bench_src_${n}`;
  if ((await store.db.collection(name).estimatedDocumentCount()) === n) return name;
  await store.db
    .collection(name)
    .drop()
    .catch(() => undefined);
  const cursor = store.db
    .collection("bench_src")
    .find({ _id: { $lt: n } } as never)
    .sort({ _id: 1 });
  let batch: Document[] = [];
  for await (const d of cursor) {
    batch.push(d);
    if (batch.length >= 5000) {
      await store.db.collection(name).insertMany(batch);
      batch = [];
    }
  }
  if (batch.length > 0) await store.db.collection(name).insertMany(batch);
  return name;
}

/**
 * Long mode: a 1,000,000-record job and a 100,000-record job, end to end against the
 * zero-latency reference service (the default completion, 4 chunks in flight), each in a child
 * process; their peak RSS and its ratio (target ≤ 1.3).
 */
async function longRun(uri: string, store: Store) {
  const service = await startBatchService({ mongoUri: uri, latencyMs: 0 });
  try {
    const out: Array<{ records: number; ms: number; recordsPerSecond: number; rssMB: number }> = [];
    for (const size of [100_000, 1_000_000]) {
      const name = await modeConfig(store, `bench-long-${size}`, size, service.url, "status", 4);
      say(`  ${size} records…`);
      const r = await jobChild(["chunkrelay", uri, name, `${name}-${randomBytes(3).toString("hex")}`]);
      if (r.records !== size) throw new Error(`long run took ${r.records} of ${size} records`);
      out.push({
        records: size,
        ms: Math.round(r.ms),
        recordsPerSecond: Math.round((size * 1000) / r.ms),
        rssMB: round(r.maxRssBytes / 2 ** 20, 1),
      });
    }
    return { runs: out, ratio: round((out[1]?.rssMB ?? 0) / (out[0]?.rssMB ?? 1)), target: "<= 1.3" };
  } finally {
    await service.stop();
  }
}

async function main() {
  const n = opts.records;
  const server = await startServer();
  say(`MongoDB: ${server.kind}; N = ${n}, poll ${opts.pollMs} ms, chunk ${opts.chunkSize} records`);
  const client = new MongoClient(server.uri);
  await client.connect();
  try {
    const store = new Store(client.db());
    await store.ensureIndexes();
    if (opts.long) {
      say("long mode: seeding 1,000,000 source records…");
      const seeded = performance.now();
      await seedSource(store, 1_000_000);
      say(`  seeded in ${Math.round(performance.now() - seeded)} ms; a 100,000- and a 1,000,000-record job…`);
      const started = performance.now();
      const long = await longRun(server.uri, store);
      const lines = [
        ...long.runs.map(
          (r) =>
            `long run             ${r.records} records in ${r.ms} ms (${r.recordsPerSecond} records/s), runner peak RSS ${r.rssMB} MB`,
        ),
        `long run RSS         1,000,000 / 100,000 records: ratio ${long.ratio} (target ≤ 1.3); both runs ${Math.round((performance.now() - started) / 1000)} s`,
      ];
      process.stdout.write(`${lines.join("\n")}\n`);
      if (opts.json) process.stdout.write(`${JSON.stringify({ server: server.kind, long })}\n`);
      await store.db.dropDatabase();
      return;
    }
    say(`seeding ${10 * n} source records…`);
    await seedSource(store, 10 * n);
    say("initializer vs plain insertMany (3 rounds each, alternating)…");
    const init: number[] = [];
    const base: number[] = [];
    const reads: number[] = [];
    for (let round = 0; round < 3; round++) {
      base.push(await baselineInsert(store, n));
      reads.push(await baselineFind(store, n));
      init.push((await timeInitializer(store, n)).ms);
    }
    const initRate = (n * 1000) / median(init);
    const baseRate = (n * 1000) / median(base);
    // The initializer must read every record and write one detail: plain find + insertMany is
    // the I/O it cannot avoid; the ratio to that is what chunkrelay itself adds.
    const ioMs = median(base) + median(reads);

    say(`initializer peak RSS at ${n} and ${10 * n} records (child processes)…`);
    const small = await initializerChild(server.uri, await benchConfig(store, "bench-rss-n", n));
    const large = await initializerChild(server.uri, await benchConfig(store, "bench-rss-10n"));

    say(`claiming a capped window of ${5 * n} records…`);
    const claims = await timeWindowClaims(store, n);

    say(`end to end at ${Math.round(n / 10)} and ${n} records (reference service, zero latency)…`);
    const e2eSmall = await endToEnd(server.uri, store, Math.round(n / 10));
    const e2e = await endToEnd(server.uri, store, n);
    say(`the same in completion "response" mode…`);
    const respSmall = await endToEnd(server.uri, store, Math.round(n / 10), "response");
    const resp = await endToEnd(server.uri, store, n, "response");

    say(`efficiency against the ideal, a service of ${opts.latencyMs} ms per chunk of 100…`);
    const eff = await efficiency(server.uri, store);

    say("chunkrelay against the loop a user would write (child processes)…");
    const versus = await baselineComparison(server.uri, store, n);

    const results = {
      server: server.kind,
      records: n,
      initializer: {
        recordsPerSecond: Math.round(initRate),
        insertManyRecordsPerSecond: Math.round(baseRate),
        ratio: round(initRate / baseRate),
        target: ">= 0.7",
        plainFindMs: round(median(reads), 1),
        insertManyMs: round(median(base), 1),
        initializerMs: round(median(init), 1),
        ratioToFindPlusInsertMany: round(ioMs / median(init)),
      },
      memory: {
        rssAtN_MB: round(small.maxRssBytes / 2 ** 20, 1),
        rssAt10N_MB: round(large.maxRssBytes / 2 ** 20, 1),
        ratio: round(large.maxRssBytes / small.maxRssBytes),
        target: "<= 1.3",
      },
      windowClaim: {
        records: claims.records,
        cappedByCountMs: claims.byCountMs,
        cappedByWeightMs: claims.byWeightMs,
        ratio: round(claims.byWeightMs / claims.byCountMs, 1),
      },
      hopLatency: {
        pollIntervalMs: opts.pollMs,
        p50Ms: percentile(e2e.hops, 50),
        p99Ms: percentile(e2e.hops, 99),
        hops: e2e.hops.length,
        target: `p50 <= ${opts.pollMs + 25}`,
      },
      endToEnd: {
        records: e2e.records,
        chunks: e2e.chunks,
        recordsPerSecond: e2e.recordsPerSecond,
        commandsPerChunk: round(e2e.commandsPerChunk, 1),
        commandsPerChunkWithoutPolls: e2e.perChunkWithoutPolls,
        pollsPerChunkMedian: e2e.pollsPerChunkMedian,
        firstVsSecondHalfWithoutPolls: [e2e.firstHalfMedian, e2e.secondHalfMedian],
        atTenthN: {
          records: e2eSmall.records,
          commandsPerChunk: round(e2eSmall.commandsPerChunk, 1),
          commandsPerChunkWithoutPolls: e2eSmall.perChunkWithoutPolls,
        },
      },
      responseMode: {
        recordsPerSecond: resp.recordsPerSecond,
        commandsPerChunk: resp.perChunkWithoutPolls,
        firstVsSecondHalf: [resp.firstHalfMedian, resp.secondHalfMedian],
        atTenthN: respSmall.perChunkWithoutPolls,
        target: "<= 6",
      },
      efficiency: eff,
      baseline: versus,
    };
    const lines = [
      `initializer          ${results.initializer.recordsPerSecond} records/s vs insertMany ${results.initializer.insertManyRecordsPerSecond} records/s  ratio ${results.initializer.ratio} (target ≥ 0.7)`,
      `                     ${results.initializer.initializerMs} ms vs plain find ${results.initializer.plainFindMs} ms + insertMany ${results.initializer.insertManyMs} ms  ratio ${results.initializer.ratioToFindPlusInsertMany}`,
      `initializer RSS      ${results.memory.rssAtN_MB} MB at ${n}, ${results.memory.rssAt10N_MB} MB at ${10 * n}  ratio ${results.memory.ratio} (target ≤ 1.3)`,
      `window claim         ${claims.records} records capped by count ${claims.byCountMs} ms (database skip), by weight ${claims.byWeightMs} ms (streamed): ${results.windowClaim.ratio}×`,
      `hop latency          p50 ${results.hopLatency.p50Ms} ms, p99 ${results.hopLatency.p99Ms} ms over ${results.hopLatency.hops} hops, poll ${opts.pollMs} ms (target p50 ≤ ${opts.pollMs + 25})`,
      `end to end           ${e2e.recordsPerSecond} records/s, ${e2e.records} records in ${e2e.chunks} chunks`,
      `response mode        ${resp.recordsPerSecond} records/s; commands per chunk ${resp.perChunkWithoutPolls.median} at N (min ${resp.perChunkWithoutPolls.min} max ${resp.perChunkWithoutPolls.max}; first/second half ${resp.firstHalfMedian}/${resp.secondHalfMedian}), ${respSmall.perChunkWithoutPolls.median} at N/10 (target ≤ 6)`,
      ...eff.rows.map(
        (r) =>
          `efficiency           ${r.completion.padEnd(8)} maxInFlight ${String(r.maxInFlight).padStart(2)}: ${r.recordsPerSecond} of ${r.ideal} records/s = ${r.efficiency} (target ≥ ${r.completion === "status" ? "0.8" : "0.9"})`,
      ),
      ...versus.throughput.map(
        (t) =>
          `vs baseline          ${t.completion.padEnd(8)} ${t.records} records, ${opts.latencyMs} ms/chunk: chunkrelay ${t.chunkrelay} records/s, baseline ${t.baseline} records/s = ${t.ratio}× (target ≥ 0.95)`,
      ),
      ...versus.memory.map(
        (m) =>
          `vs baseline RSS      ${m.records} records: chunkrelay ${m.chunkrelayMB} MB, baseline ${m.baselineMB} MB`,
      ),
      `vs baseline RSS      10·N / N: chunkrelay ${round((versus.memory[1]?.chunkrelayMB ?? 0) / (versus.memory[0]?.chunkrelayMB ?? 1))}, baseline ${round((versus.memory[1]?.baselineMB ?? 0) / (versus.memory[0]?.baselineMB ?? 1))}`,
      `commands per chunk   ${results.endToEnd.commandsPerChunk} at N (${e2e.perChunkWithoutPolls.median} without polls, min ${e2e.perChunkWithoutPolls.min} max ${e2e.perChunkWithoutPolls.max}; first/second half ${e2e.firstHalfMedian}/${e2e.secondHalfMedian}), ${results.endToEnd.atTenthN.commandsPerChunk} at N/10 (${e2eSmall.perChunkWithoutPolls.median} without polls; target ≤ 8)`,
    ];
    process.stdout.write(`${lines.join("\n")}\n`);
    if (opts.json) process.stdout.write(`${JSON.stringify(results)}\n`);
    await store.db.dropDatabase();
  } finally {
    await client.close();
    await server.stop();
  }
}

await main();
