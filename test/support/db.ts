/** Per-file database access for tests: one client, one database of its own, dropped at the end. */
import { randomBytes } from "node:crypto";
import { type Db, MongoClient } from "mongodb";
import { afterAll, beforeAll, inject } from "vitest";
import { type Store } from "../../src/store/store.js";
import { uriWithDatabase } from "../../src/store/connection.js";

export function useTestDatabase(label: string): { client: () => MongoClient; db: () => Db; uri: string } {
  const uri = inject("mongoUri");
  const name = `t_${label.replace(/[^a-zA-Z0-9_]/g, "_").slice(0, 30)}_${randomBytes(3).toString("hex")}`;
  let client: MongoClient | undefined;
  beforeAll(async () => {
    client = new MongoClient(uri);
    await client.connect();
  });
  afterAll(async () => {
    if (!client) return;
    await client.db(name).dropDatabase();
    await client.close();
  });
  return {
    uri,
    client: () =>
      client ??
      (() => {
        throw new Error("client used before beforeAll");
      })(),
    db: () =>
      (
        client ??
        (() => {
          throw new Error("client used before beforeAll");
        })()
      ).db(name),
  };
}

/**
 * Points the Trigger.dev worker's store at a test file's database — the worker reads MONGODB_URI
 * once, like a deployed worker reads its environment — and afterwards closes it and restores the
 * variable. Call it after `useTestDatabase`.
 */
export function useWorkerDatabase(t: ReturnType<typeof useTestDatabase>): void {
  const saved = process.env.MONGODB_URI;
  beforeAll(() => {
    process.env.MONGODB_URI = uriWithDatabase(t.uri, t.db().databaseName);
  });
  afterAll(async () => {
    if (saved === undefined) delete process.env.MONGODB_URI;
    else process.env.MONGODB_URI = saved;
    const { closeWorkerStore } = await import("../../src/runtimes/trigger/worker.js");
    await closeWorkerStore();
  });
}

/**
 * Every chunkrelay collection of a store as comparable text ("the database is unchanged" checks).
 * `updatedAt` is left out: reading a config may refresh nothing, but writers stamp it.
 */
export async function storeSnapshot(store: Store, options: { configs?: boolean } = {}): Promise<string> {
  const collections = [
    ...(options.configs === false ? [] : [store.configs]),
    store.jobs,
    store.chunks,
    store.details,
    store.watermarks,
    store.exceptions,
    store.taskStats,
  ];
  const out: unknown[] = [];
  for (const c of collections) out.push(await c.find({}, { projection: { updatedAt: 0 } }).toArray());
  return JSON.stringify(out);
}
