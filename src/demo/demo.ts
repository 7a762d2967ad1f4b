/**
 * The demo: the whole pipeline on embedded defaults. It picks MongoDB as README describes, seeds a
 * sample collection, starts the reference batch service, applies a sample config and runs the
 * job through the local runner — the same code the Trigger.dev tasks run.
 */
import { failOpenJobsOfConfig, removeJobsFromLanes } from "../store/jobs.js";
import { deleteLane } from "../store/lanes.js";
import { dropSourceCollection, insertSourceRecords } from "../store/source-collection.js";
import { ObjectId } from "bson";
import { saveConfig } from "../store/configs.js";
import { type BatchService, startBatchService } from "../service/batch-service.js";
import { type PickedServer, pickMongoServer } from "../store/mongo-server.js";
import { Store } from "../store/store.js";
import { withMongo } from "../store/connection.js";
import { type JobSummary, runJobLocally } from "../runtimes/local/local-runner.js";
import { type WorkerHandle, startWorker } from "../runtimes/worker-registry.js";
import type { JobProgress } from "../queries/progress.js";

export interface DemoOptions {
  records: number;
  chunkSize: number;
  maxInFlight: number;
  latencyMs: number;
  env: Record<string, string | undefined>;
  signal?: AbortSignal;
  say: (line: string) => void;
  onProgress?: (p: JobProgress) => void;
}

export const DEMO_COLLECTION = "demo_records";
export const DEMO_CONFIG = "demo";

/** Sample records: customers with an amount (used as weight) and a creation time. */
export async function seedDemoRecords(store: Store, count: number, from = 0): Promise<void> {
  if (from === 0) await dropSourceCollection(store, DEMO_COLLECTION);
  const base = Date.UTC(2026, 0, 1);
  for (let start = from; start < from + count; start += 5000) {
    const docs = [];
    for (let i = start; i < Math.min(from + count, start + 5000); i++) {
      docs.push({
        _id: ObjectId.createFromTime(Math.floor(base / 1000) + i),
        customer: `customer-${i % 997}`,
        email: `user${i}@example.com`,
        amount: 1 + ((i * 7919) % 100),
        createdAt: new Date(base + i * 1000),
      });
    }
    await insertSourceRecords(store, DEMO_COLLECTION, docs);
  }
}

export async function runDemo(
  options: DemoOptions,
): Promise<JobSummary & { mongo: string; incremental?: JobSummary }> {
  let server: PickedServer | undefined;
  let service: BatchService | undefined;
  try {
    options.say("choosing MongoDB (MONGODB_URI, then mongodb-memory-server, then the embedded engine)…");
    server = await pickMongoServer({ CHUNKRELAY_MONGOMS_TIMEOUT_MS: "15000", ...options.env });
    options.say(`MongoDB: ${server.kind} — ${server.detail}`);
    const uri = server.uri;
    const mongoKind = server.kind;
    return await withMongo(uri, async (store) => {
      // The demo owns its config: an earlier demo run left unfinished (Ctrl-C) is closed, so
      // it does not hold the config's one active full job.
      await failOpenJobsOfConfig(store, DEMO_CONFIG, "superseded by a new demo run", new Date());
      // The records are seeded afresh, so earlier demo jobs no longer describe them: take them
      // out of the config's lane, and start its watermark over.
      await removeJobsFromLanes(store, DEMO_CONFIG);
      await deleteLane(store, DEMO_CONFIG);
      options.say(`seeding ${options.records} records into ${DEMO_COLLECTION}…`);
      await seedDemoRecords(store, options.records);
      service = await startBatchService({ mongoUri: uri, latencyMs: options.latencyMs });
      options.say(`reference batch service at ${service.url}`);
      await saveConfig(
        store,
        {
          name: DEMO_CONFIG,
          description: "chunkrelay demo: sample customer records to the reference batch service",
          source: {
            collection: DEMO_COLLECTION,
            orderBy: "createdAt",
            fields: ["customer", "email", "amount"],
          },
          chunking: { maxRecords: options.chunkSize },
          target: { url: service.url, timeoutMs: 10_000 },
          maxInFlight: options.maxInFlight,
          watch: { pollIntervalMs: 50 },
        },
        new Date(),
      );
      // One worker for both jobs: the demo is one process (`npx chunkrelay workers --all` shows it).
      const worker = startWorker(store, { kind: "local", env: options.env });
      try {
        return await runDemoJobs(store, worker, mongoKind);
      } finally {
        await worker.stop();
      }
    });
  } finally {
    await service?.stop();
    await server?.stop();
  }

  async function runDemoJobs(
    store: Store,
    worker: WorkerHandle,
    mongoKind: PickedServer["kind"],
  ): Promise<JobSummary & { mongo: string; incremental?: JobSummary }> {
    const summary = await runJobLocally({
      store,
      worker,
      config: DEMO_CONFIG,
      description: "demo run",
      ...(options.signal ? { signal: options.signal } : {}),
      ...(options.onProgress ? { onProgress: options.onProgress } : {}),
      env: options.env,
    });
    if (summary.status !== "succeeded" || options.signal?.aborted) return { ...summary, mongo: mongoKind };
    // Then the incremental way: records added since are taken by an incremental job, which
    // starts after the watermark the full job left — nothing is sent twice.
    const added = Math.max(1, Math.floor(options.records / 10));
    options.say(`adding ${added} new records, then an incremental job takes only those…`);
    await seedDemoRecords(store, added, options.records);
    const incremental = await runJobLocally({
      store,
      config: DEMO_CONFIG,
      description: "demo incremental run",
      request: { mode: "incremental" },
      worker,
      ...(options.signal ? { signal: options.signal } : {}),
      ...(options.onProgress ? { onProgress: options.onProgress } : {}),
      env: options.env,
    });
    options.say(
      `incremental job ${incremental.jobId} ${incremental.status}: ${incremental.records} records (of ${options.records + added} in the collection)`,
    );
    return { ...summary, mongo: mongoKind, incremental };
  }
}
