/**
 * The loop a user would write without chunkrelay (the Airflow DAG loop of the user's plan): find
 * every record, cut the list into chunks in memory, and for each chunk POST it and wait for its
 * outcome — in "status" mode by inserting its tracking rows first and polling them every `pollMs`,
 * in "response" mode by reading the reply. One chunk at a time, no retries, no resume: the
 * benchmark's yardstick for throughput and memory, run on the same records and service.
 */
import { EJSON } from "bson";
import type { Db } from "mongodb";
import { request } from "undici";

export interface BaselineRun {
  db: Db;
  collection: string;
  fields: string[];
  url: string;
  chunkSize: number;
  completion: "status" | "response";
  pollMs: number;
  jobId: string;
  /** The collection the service reports into in "status" mode. Default: batch_details. */
  details?: string;
}

export async function runBaseline(b: BaselineRun): Promise<{ records: number; chunks: number }> {
  const projection: Record<string, 1> = {};
  for (const f of b.fields) projection[f] = 1;
  // Everything at once, as `find().toArray()` in a DAG task does.
  const docs = await b.db.collection(b.collection).find({}, { projection }).sort({ _id: 1 }).toArray();
  const details = b.db.collection(b.details ?? "batch_details");
  let chunks = 0;
  for (let start = 0; start < docs.length; start += b.chunkSize) {
    const chunk = ++chunks;
    const part = docs.slice(start, start + b.chunkSize);
    const ids = part.map((d) => d._id as unknown);
    if (b.completion === "status") {
      await details.insertMany(
        ids.map((id) => ({ jobId: b.jobId, recordId: id, chunk, status: "sent", attempts: 1 })),
      );
    }
    const body = EJSON.stringify(
      {
        jobId: b.jobId,
        chunk,
        attempt: 1,
        records: part.map(({ _id, ...rest }) => ({ id: _id, ...rest })),
      },
      { relaxed: true },
    );
    const res = await request(b.url, {
      method: "POST",
      body,
      headers: { "content-type": "application/json", "idempotency-key": `${b.jobId}:${chunk}:1` },
    });
    const text = await res.body.text();
    if (res.statusCode >= 300)
      throw new Error(`chunk ${chunk}: HTTP ${res.statusCode} ${text.slice(0, 200)}`);
    if (b.completion === "response") {
      const reply = EJSON.parse(text, { relaxed: true }) as { results?: Array<{ status: string }> };
      if (reply.results?.length !== ids.length || reply.results.some((r) => r.status !== "processed"))
        throw new Error(`chunk ${chunk}: not every record processed`);
      continue;
    }
    while ((await details.countDocuments({ jobId: b.jobId, chunk, status: "processed" })) < ids.length) {
      await new Promise((r) => setTimeout(r, b.pollMs));
    }
  }
  return { records: docs.length, chunks };
}
