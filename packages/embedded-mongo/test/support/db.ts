/** Per-file database access for tests: one client, one database of its own, dropped at the end. */
import { randomBytes } from "node:crypto";
import { type Db, MongoClient } from "mongodb";
import { type TestContext, afterAll, beforeAll, inject } from "vitest";

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
  const connected = (): MongoClient => {
    if (!client) throw new Error("client used before beforeAll");
    return client;
  };
  return { uri, client: connected, db: () => connected().db(name) };
}

/**
 * Skips the running test when the suite runs against FerretDB (the repository's FerretDB lane),
 * saying why: for exactly the tests of features FerretDB lacks or answers differently from the
 * MongoDB manual. The expectations themselves stay the manual's.
 */
export function skipOnFerretDB(ctx: TestContext, why: string): void {
  ctx.skip(inject("mongoKind") === "FerretDB", `FerretDB: ${why}`);
}
