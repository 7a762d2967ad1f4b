/**
 * `npx chunkrelay mongo` as a user runs it: a subprocess that prints its URI first, serves the
 * official driver, stops cleanly on SIGTERM/SIGINT and, with --dir, keeps data and indexes across
 * a restart. Also covers the in-process start/stop with a data directory.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { Int32, MongoClient } from "mongodb";
import { afterAll, describe, expect, it } from "vitest";
import { startEmbeddedMongo } from "../src/index.js";
import { builtCli } from "../../../test/support/built-cli.js";

const BIN = builtCli();
const dirs: string[] = [];
const tempDir = () => {
  const d = mkdtempSync(join(tmpdir(), "chunkrelay-mongo-"));
  dirs.push(d);
  return d;
};
afterAll(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));

function startCli(
  args: string[],
): Promise<{ child: ChildProcess; uri: string; exited: Promise<number | null> }> {
  const child = spawn(process.execPath, [BIN, "mongo", ...args], { stdio: ["ignore", "pipe", "pipe"] });
  const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));
  return new Promise((resolve, reject) => {
    const lines = createInterface({ input: child.stdout });
    lines.once("line", (uri) => resolve({ child, uri, exited }));
    child.once("exit", (code) => reject(new Error(`chunkrelay mongo exited early with ${code}`)));
  });
}

async function withClient<T>(uri: string, fn: (c: MongoClient) => Promise<T>): Promise<T> {
  const client = new MongoClient(uri, { serverSelectionTimeoutMS: 5000 });
  try {
    await client.connect();
    return await fn(client);
  } finally {
    await client.close();
  }
}

describe("chunkrelay mongo", () => {
  it("prints its URI first, serves the driver, and keeps data across a restart with --dir", async () => {
    const dir = tempDir();
    const first = await startCli(["--port", "0", "--dir", dir]);
    expect(first.uri).toMatch(/^mongodb:\/\/127\.0\.0\.1:\d+\/$/);
    await withClient(first.uri, async (c) => {
      const coll = c.db("keep").collection("things");
      await coll.insertMany([
        { _id: 1 as never, n: new Int32(1) },
        { _id: 2 as never, n: 2.5 },
      ]);
      await coll.createIndex({ n: 1 }, { unique: true });
    });
    first.child.kill("SIGTERM");
    expect(await first.exited).toBe(0);

    const second = await startCli(["--port", "0", "--dir", dir]);
    await withClient(second.uri, async (c) => {
      const coll = c.db("keep").collection("things");
      expect(await coll.find({}, { promoteValues: false }).sort({ _id: 1 }).toArray()).toEqual([
        { _id: new Int32(1), n: new Int32(1) },
        { _id: new Int32(2), n: expect.objectContaining({ value: 2.5 }) },
      ]);
      expect((await coll.listIndexes().toArray()).map((i) => i.name)).toEqual(["_id_", "n_1"]);
      const dup = await coll.insertOne({ n: 1 }).catch((e: unknown) => e);
      expect((dup as { code?: number }).code).toBe(11000);
    });
    second.child.kill("SIGINT");
    expect(await second.exited).toBe(0);
  }, 60_000);

  it("rejects a bad port with exit code 2 and a message naming the flag", async () => {
    const child = spawn(process.execPath, [BIN, "mongo", "--port", "99999"], {
      stdio: ["ignore", "pipe", "pipe"],
    });
    let stderr = "";
    child.stderr.on("data", (b: Buffer) => (stderr += b.toString()));
    const code = await new Promise<number | null>((resolve) => child.once("exit", resolve));
    expect(code).toBe(2);
    expect(stderr).toContain("--port");
  }, 30_000);
});

describe("startEmbeddedMongo", () => {
  it("starts on a free port, loads from and saves to a data directory", async () => {
    const dir = tempDir();
    const a = await startEmbeddedMongo({ dir });
    expect(a.loadedDocuments).toBe(0);
    await withClient(a.uri, (c) =>
      c
        .db("d")
        .collection("c")
        .insertMany([{ x: 1 }, { x: 2 }, { x: 3 }]),
    );
    await a.stop();
    const b = await startEmbeddedMongo({ dir });
    try {
      expect(b.loadedDocuments).toBe(3);
      expect(
        await withClient(b.uri, (c) =>
          c
            .db("d")
            .collection("c")
            .countDocuments({ x: { $gt: 1 } }),
        ),
      ).toBe(2);
    } finally {
      await b.stop();
    }
  });
});
