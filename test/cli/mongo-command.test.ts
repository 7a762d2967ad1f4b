/**
 * `npx chunkrelay mongo`: the product's way to serve the embedded engine (the engine's own
 * `embedded-mongo` command is tested in packages/embedded-mongo). Prints its URI first, serves
 * the driver, stops cleanly on SIGTERM; a bad port is a usage error naming the flag.
 */
import { spawn } from "node:child_process";
import { createInterface } from "node:readline";
import { MongoClient } from "mongodb";
import { describe, expect, it } from "vitest";
import { builtCli } from "../support/built-cli.js";

const BIN = builtCli();

describe("chunkrelay mongo", () => {
  it("prints its URI first, serves the driver and stops with exit 0 on SIGTERM", async () => {
    const child = spawn(process.execPath, [BIN, "mongo", "--port", "0"], {
      stdio: ["ignore", "pipe", "pipe"],
    });
    const exited = new Promise<number | null>((resolve) => child.once("exit", resolve));
    const uri = await new Promise<string>((resolve, reject) => {
      createInterface({ input: child.stdout }).once("line", resolve);
      child.once("exit", (code) => reject(new Error(`chunkrelay mongo exited early with ${code}`)));
    });
    try {
      expect(uri).toMatch(/^mongodb:\/\/127\.0\.0\.1:\d+\/$/);
      const client = new MongoClient(uri, { serverSelectionTimeoutMS: 5000 });
      try {
        await client.db("d").collection("c").insertOne({ x: 1 });
        expect(await client.db("d").collection("c").countDocuments({ x: 1 })).toBe(1);
      } finally {
        await client.close();
      }
    } finally {
      child.kill("SIGTERM");
    }
    expect(await exited).toBe(0);
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
