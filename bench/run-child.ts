/**
 * Benchmark child: runs one whole job — chunkrelay's (`runJobLocally`) or the baseline loop
 * (bench/baseline.ts) — against an existing MongoDB, source, config and service, then prints its
 * records, time and peak RSS. A process of its own, so the figure is that side's memory only.
 *
 * usage: run-child chunkrelay <uri> <config> <jobId>
 *        run-child baseline <uri> <collection> <url> <completion> <pollMs> <jobId>
 */
import { MongoClient } from "mongodb";
import { runJobLocally } from "../src/runtimes/local/local-runner.js";
import { Store } from "../src/store/store.js";
import { databaseNameOf } from "../src/store/connection.js";
import { runBaseline } from "./baseline.js";

const [side, uri, ...rest] = process.argv.slice(2);
if ((side !== "chunkrelay" && side !== "baseline") || !uri) {
  process.stderr.write("usage: run-child chunkrelay|baseline <uri> …\n");
  process.exit(2);
}
const client = new MongoClient(uri);
await client.connect();
try {
  const db = client.db(databaseNameOf(uri));
  const started = performance.now();
  let records: number;
  if (side === "chunkrelay") {
    const [config, jobId] = rest as [string, string];
    const summary = await runJobLocally({ store: new Store(db), config, jobId });
    if (summary.status !== "succeeded") throw new Error(`job ${jobId} ended ${summary.status}`);
    records = summary.records;
  } else {
    const [collection, url, completion, pollMs, jobId] = rest as [string, string, string, string, string];
    const r = await runBaseline({
      db,
      collection,
      fields: ["name", "amount"],
      url,
      chunkSize: 100,
      completion: completion as "status" | "response",
      pollMs: Number(pollMs),
      jobId,
    });
    records = r.records;
  }
  const ms = performance.now() - started;
  process.stdout.write(
    `${JSON.stringify({ records, ms, maxRssBytes: process.resourceUsage().maxRSS * 1024 })}\n`,
  );
} finally {
  await client.close();
}
