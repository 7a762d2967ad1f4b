/**
 * `npm run bench:listing [-- --jobs N --json]`: are the read paths people live in as fast with
 * many jobs in the database as with few? In one run, on one MongoDB (MONGODB_URI, or the embedded
 * engine in a process of its own): one real job is run (so its documents are what chunkrelay
 * writes), then copied into 100 finished jobs, timed, then into N (default 10,000), timed again.
 * Timed: the job list (`chunkrelay jobs`, the status page's /api/jobs and one config's list; filtered by
 * status, config and status, mode; a page halfway down), the status page's filtered and deep pages, a
 * job's timeline, results and exceptions pages, a config's view; one
 * job's report (`chunkrelay status <job>`, /api/jobs/<id>), in-process (median of 15) and through
 * the status page over HTTP, plus the CLI as a subprocess (median of 3, process start included).
 */
import { spawn, execFile } from "node:child_process";
import { randomBytes } from "node:crypto";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { promisify } from "node:util";
import { Command, InvalidArgumentError } from "commander";
import { type Document, MongoClient } from "mongodb";
import { request } from "undici";
import { saveConfig } from "../src/store/configs.js";
import { jobListCursorOf, jobReport, listJobs, parseJobListCursor } from "../src/queries/jobs.js";
import { runJobLocally } from "../src/runtimes/local/local-runner.js";
import { startBatchService } from "../src/service/batch-service.js";
import { startStatusServer } from "../src/status-page/server.js";
import { Store } from "../src/store/store.js";
import { redactUri, uriWithDatabase } from "../src/store/connection.js";

const ROOT = join(import.meta.dirname, "..");
const run = promisify(execFile);

const program = new Command("bench:listing")
  .option(
    "--jobs <n>",
    "jobs in the database for the second measurement",
    (v: string) => {
      const n = Number(v);
      if (!Number.isInteger(n) || n < 200) throw new InvalidArgumentError("expected a whole number ≥ 200");
      return n;
    },
    10_000,
  )
  .option("--json", "print the results as JSON on the last stdout line")
  .parse();
const opts = program.opts<{ jobs: number; json?: boolean }>();
const say = (s: string) => process.stderr.write(`${s}\n`);
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? Number.NaN;
const round = (n: number, d = 2) => Math.round(n * 10 ** d) / 10 ** d;

async function startServer(): Promise<{ uri: string; stop(): Promise<void> }> {
  const dbName = `chunkrelay_listing_${randomBytes(3).toString("hex")}`;
  if (process.env.MONGODB_URI) {
    say(`MongoDB: ${redactUri(process.env.MONGODB_URI)}`);
    return { uri: uriWithDatabase(process.env.MONGODB_URI, dbName), stop: async () => {} };
  }
  const child = spawn(process.execPath, [join(ROOT, "bin/chunkrelay.js"), "mongo", "--port", "0"], {
    stdio: ["ignore", "pipe", "inherit"],
  });
  const uri = await new Promise<string>((resolve, reject) => {
    createInterface({ input: child.stdout }).once("line", resolve);
    child.once("exit", (code) => reject(new Error(`engine exited with ${code}`)));
  });
  return {
    uri: uriWithDatabase(uri, dbName),
    stop: async () => {
      const exited = new Promise((r) => child.once("exit", r));
      child.kill("SIGTERM");
      await exited;
    },
  };
}

/** Copies of the template job (and its chunks, step rows and exceptions) under new ids, in bulk. */
async function copyJobs(store: Store, template: string, from: number, to: number, configs: string[]) {
  const job = await store.jobs.findOne({ _id: template });
  const chunks = await store.chunks.find({ jobId: template }).toArray();
  const stats = await store.taskStats.find({ jobId: template }).toArray();
  if (!job) throw new Error(`template job ${template} not found`);
  const base = job.createdAt.getTime();
  for (let start = from; start < to; start += 500) {
    const jobs: Document[] = [];
    const chunkDocs: Document[] = [];
    const statDocs: Document[] = [];
    for (let i = start; i < Math.min(to, start + 500); i++) {
      const id = `${template}-copy-${i}`;
      const config = configs[i % configs.length] as string;
      // Older than the template, one minute apart: the template stays the newest job.
      const at = new Date(base - (i + 1) * 60_000);
      const { _id, ...rest } = job;
      // Every 7th failed and every 3rd a sample: the filters have something to select.
      const status = i % 7 === 0 ? "failed" : rest.status;
      const mode = i % 3 === 0 ? "sample" : rest.mode;
      jobs.push({
        ...rest,
        _id: id,
        config,
        status,
        mode,
        claimKey: `job:${id}`,
        createdAt: at,
        startedAt: at,
      });
      for (const c of chunks) {
        const { _id: _c, ...r } = c as Document;
        chunkDocs.push({ ...r, jobId: id });
      }
      for (const s of stats) {
        const { _id: _s, ...r } = s as Document;
        statDocs.push({ ...r, jobId: id });
      }
    }
    await store.jobs.insertMany(jobs as never[], { ordered: false });
    if (chunkDocs.length > 0) await store.chunks.insertMany(chunkDocs as never[], { ordered: false });
    if (statDocs.length > 0) await store.taskStats.insertMany(statDocs as never[], { ordered: false });
  }
}

async function timeMedian(n: number, fn: () => Promise<unknown>): Promise<number> {
  const times: number[] = [];
  await fn(); // warm
  for (let i = 0; i < n; i++) {
    const t0 = performance.now();
    await fn();
    times.push(performance.now() - t0);
  }
  return median(times);
}

async function get(url: string): Promise<void> {
  const res = await request(url);
  await res.body.text();
  if (res.statusCode !== 200) throw new Error(`GET ${url}: HTTP ${res.statusCode}`);
}

async function cli(uri: string, args: string[]): Promise<number> {
  const times: number[] = [];
  for (let i = 0; i < 3; i++) {
    const t0 = performance.now();
    await run(process.execPath, [join(ROOT, "bin/chunkrelay.js"), ...args, "--mongo", uri], { cwd: ROOT });
    times.push(performance.now() - t0);
  }
  return median(times);
}

async function measure(store: Store, uri: string, pageUrl: string, jobId: string) {
  // The cursor of the job halfway down the list: a page that deep (50 at 100 jobs, 5,000 at
  // 10,000) must cost what the first page costs.
  const all = await store.jobs.countDocuments({});
  const mid = (
    await store.jobs
      .find({}, { sort: { createdAt: -1, _id: -1 }, skip: Math.floor(all / 2), limit: 1 })
      .toArray()
  )[0];
  if (!mid) throw new Error("no job halfway down the list");
  const before = jobListCursorOf({ jobId: mid._id, createdAt: mid.createdAt });
  const id = encodeURIComponent(jobId);
  return {
    listJobsMs: await timeMedian(15, () => listJobs(store)),
    listConfigJobsMs: await timeMedian(15, () => listJobs(store, { config: "listing-a" })),
    listFailedMs: await timeMedian(15, () => listJobs(store, { status: "failed" })),
    listConfigFailedMs: await timeMedian(15, () =>
      listJobs(store, { config: "listing-b", status: "failed" }),
    ),
    listSamplesMs: await timeMedian(15, () => listJobs(store, { mode: "sample" })),
    listDeepPageMs: await timeMedian(15, () => listJobs(store, { before: parseJobListCursor(before) })),
    pageFilteredMs: await timeMedian(15, () =>
      get(`${pageUrl}api/jobs?config=listing-a&status=failed&limit=50`),
    ),
    pageDeepMs: await timeMedian(15, () => get(`${pageUrl}api/jobs?before=${before}`)),
    pageTimelineMs: await timeMedian(15, () => get(`${pageUrl}api/jobs/${id}/timeline`)),
    pageResultsMs: await timeMedian(15, () => get(`${pageUrl}api/jobs/${id}/results?limit=20`)),
    pageExceptionsMs: await timeMedian(15, () => get(`${pageUrl}api/jobs/${id}/exceptions?limit=20`)),
    pageConfigMs: await timeMedian(15, () => get(`${pageUrl}api/configs/listing-a`)),
    jobReportMs: await timeMedian(15, () => jobReport(store, jobId, {})),
    pageJobsMs: await timeMedian(15, () => get(`${pageUrl}api/jobs`)),
    pageJobMs: await timeMedian(15, () => get(`${pageUrl}api/jobs/${encodeURIComponent(jobId)}`)),
    pageHtmlMs: await timeMedian(15, () => get(pageUrl)),
    cliJobsMs: await cli(uri, ["jobs"]),
    cliStatusMs: await cli(uri, ["status", jobId]),
  };
}

async function main() {
  const server = await startServer();
  const client = new MongoClient(server.uri);
  await client.connect();
  const service = await startBatchService({ mongoUri: server.uri, latencyMs: 0 });
  try {
    const store = new Store(client.db());
    await store.ensureIndexes();
    await store.db
      .collection("listing_src")
      .insertMany(Array.from({ length: 500 }, (_, i) => ({ _id: i as never, v: i })));
    for (const name of ["listing-a", "listing-b"]) {
      await saveConfig(
        store,
        {
          name,
          source: { collection: "listing_src", fields: ["v"] },
          chunking: { maxRecords: 100 },
          target: { url: service.url },
        },
        new Date(),
      );
    }
    say("running the template job (500 records, 5 chunks)…");
    const summary = await runJobLocally({ store, config: "listing-a", jobId: "listing-template" });
    if (summary.status !== "succeeded") throw new Error(`template job ${summary.status}`);
    const page = await startStatusServer({ store });
    try {
      say("100 jobs…");
      await copyJobs(store, "listing-template", 0, 99, ["listing-a", "listing-b"]);
      const few = await measure(store, server.uri, page.url, "listing-template");
      say(`${opts.jobs} jobs…`);
      await copyJobs(store, "listing-template", 99, opts.jobs - 1, ["listing-a", "listing-b"]);
      const many = await measure(store, server.uri, page.url, "listing-template");
      const jobs = await store.jobs.countDocuments({});
      const rows = Object.keys(few).map((k) => {
        const a = few[k as keyof typeof few];
        const b = many[k as keyof typeof many];
        return { measure: k, at100: round(a, 1), atMany: round(b, 1), ratio: round(b / a) };
      });
      const lines = rows.map(
        (r) =>
          `${r.measure.padEnd(18)} ${String(r.at100).padStart(8)} ms at 100 jobs  ${String(r.atMany).padStart(8)} ms at ${jobs} jobs  ratio ${r.ratio} (target ≤ 2)`,
      );
      process.stdout.write(`${lines.join("\n")}\n`);
      if (opts.json) process.stdout.write(`${JSON.stringify({ jobs, rows })}\n`);
    } finally {
      await page.stop();
    }
    await store.db.dropDatabase();
  } finally {
    await service.stop();
    await client.close();
    await server.stop();
  }
}

await main();
