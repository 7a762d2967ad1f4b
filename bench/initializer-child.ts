/**
 * Benchmark child: runs only the initializer of one job against an existing MongoDB and source,
 * then prints its own peak RSS. Run in a process of its own so the figure is the initializer's
 * memory, not the benchmark's or the database's.
 */
import { MongoClient } from "mongodb";
import { initializeJob } from "../src/steps/initialize/initialize.js";
import { Store } from "../src/store/store.js";
import { databaseNameOf } from "../src/store/connection.js";
import { recordingOnly } from "./handover.js";
import { benchDeps } from "./deps.js";

const [uri, config, jobId] = process.argv.slice(2);
if (!uri || !config || !jobId) {
  process.stderr.write("usage: initializer-child <uri> <config> <jobId>\n");
  process.exit(2);
}
const client = new MongoClient(uri);
await client.connect();
try {
  const store = new Store(client.db(databaseNameOf(uri)));
  const started = performance.now();
  const res = await initializeJob(benchDeps(store, recordingOnly()), { config, jobId });
  const ms = performance.now() - started;
  process.stdout.write(
    `${JSON.stringify({ records: res.records, chunks: res.chunks, ms, maxRssBytes: process.resourceUsage().maxRSS * 1024 })}\n`,
  );
} finally {
  await client.close();
}
