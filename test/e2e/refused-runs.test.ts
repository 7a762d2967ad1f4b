/**
 * A refused run writes nothing: no lock, no job, no statistics row. Each case runs the real CLI
 * against the test database and compares every chunkrelay collection before and after.
 */
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { EJSON } from "bson";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Store } from "../../src/store/store.js";
import { uriWithDatabase } from "../../src/store/connection.js";
import { storeSnapshot, useTestDatabase } from "../support/db.js";
import { startFakeService } from "../support/pipeline.js";
import { builtCli } from "../support/built-cli.js";

const BIN = builtCli();
const t = useTestDatabase("refused_runs");
let store: Store;
let dbUri: string;
let serviceUrl: string;
let stopService: () => Promise<void>;
const dir = mkdtempSync(join(tmpdir(), "chunkrelay-refused-"));

interface Ran {
  code: number | null;
  out: string;
}

function cli(args: string[], env: Record<string, string | undefined> = {}): Promise<Ran> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [BIN, ...args], {
      env: { ...process.env, MONGODB_URI: dbUri, ...env },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let out = "";
    child.stdout.on("data", (b: Buffer) => (out += b.toString()));
    child.stderr.on("data", (b: Buffer) => (out += b.toString()));
    child.on("exit", (code) => resolve({ code, out }));
  });
}

beforeAll(async () => {
  store = new Store(t.db());
  await store.ensureIndexes();
  dbUri = uriWithDatabase(t.uri, t.db().databaseName);
  const service = await startFakeService(store, () => ({ status: 202, report: "processed" }));
  serviceUrl = service.url;
  stopService = () => service.stop();
  await store.db
    .collection("refused_src")
    .insertMany(Array.from({ length: 20 }, (_, i) => ({ _id: i as never, v: i })));
});

afterAll(async () => {
  await stopService();
  rmSync(dir, { recursive: true, force: true });
});

/** Everything chunkrelay keeps except configs, as comparable text. */
const state = () => storeSnapshot(store, { configs: false });

async function apply(name: string, config: Record<string, unknown>): Promise<Ran> {
  const file = join(dir, `${name}.json`);
  writeFileSync(file, JSON.stringify({ name, target: { url: serviceUrl }, ...config }));
  return cli(["config", "apply", file]);
}

describe("a refused run", () => {
  it("refused at planning leaves no lock behind: the next full run starts at once", async () => {
    expect((await apply("no_key", { source: { collection: "refused_src", orderBy: "missing" } })).code).toBe(
      0,
    );
    const before = await state();
    const refused = await cli(["run", "no_key", "--job-id", "no-key-1", "--mode", "full"]);
    expect(refused.code, refused.out).toBe(2);
    expect(await state()).toBe(before);
    // Fixed config, next run: not "already has an active job".
    expect((await apply("no_key", { source: { collection: "refused_src", orderBy: "v" } })).code).toBe(0);
    const next = await cli(["run", "no_key", "--job-id", "no-key-2", "--mode", "full", "--json"]);
    expect(next.code, next.out).toBe(0);
  }, 60_000);

  it("a filter the server itself refuses: exit 2 naming the query, no lock, no job, in every mode", async () => {
    // Each passes the config's own checks (real operators, well formed) but no server runs it:
    // an unknown $type alias, an unknown operator inside $expr, $text without a text index.
    const filters = [
      { v: { $type: "notatype" } },
      { $expr: { $bogus: ["$v", 1] } },
      { $text: { $search: "x" } },
    ];
    for (const [i, filter] of filters.entries()) {
      const name = `server_refused_${i}`;
      expect((await apply(name, { source: { collection: "refused_src", orderBy: "v", filter } })).code).toBe(
        0,
      );
      for (const mode of ["full", "incremental"]) {
        const before = await state();
        const refused = await cli(["run", name, "--mode", mode, "--json"]);
        expect(refused.code, refused.out).toBe(2);
        expect(refused.out).toContain("the server refused the query of refused_src");
        expect(await state()).toBe(before);
      }
    }
  }, 120_000);

  it("schedule: a stored config that no longer validates is skipped with a warning, the others run, exit 2", async () => {
    expect(
      (
        await apply("sched_ok", {
          source: { collection: "refused_src", orderBy: "v" },
          schedule: { cron: "0 3 * * *" },
        })
      ).code,
    ).toBe(0);
    // Stored by an older version, or edited by hand: a filter operator no server knows. Stored as
    // `saveConfig` stores a filter, as Extended JSON text: FerretDB 1.x refuses `$`-prefixed field
    // names in a document (README, "The FerretDB lane"); every server stores the text.
    await store.configs.insertOne({
      _id: "sched_broken",
      source: { collection: "refused_src", filter: EJSON.stringify({ v: { $foo: 1 } }, { relaxed: false }) },
      target: { url: serviceUrl },
      schedule: { cron: "0 3 * * *" },
    });
    try {
      const ran = await cli(["schedule", "--json"]);
      expect(ran.code, ran.out).toBe(2);
      expect(ran.out).toContain("config 'sched_broken' in batch_config no longer passes validation");
      expect(ran.out).toContain("config sched_ok: scheduled incremental run");
      expect(await store.jobs.countDocuments({ config: "sched_ok", status: "succeeded" })).toBe(1);
      expect(await store.jobs.countDocuments({ config: "sched_broken" })).toBe(0);
    } finally {
      await store.configs.deleteMany({ _id: { $in: ["sched_ok", "sched_broken"] } });
    }
  }, 60_000);

  it("with a bad or oversized job id, or a missing secret, writes nothing", async () => {
    expect(
      (
        await apply("secret", {
          source: { collection: "refused_src" },
          target: {
            url: serviceUrl,
            headers: { authorization: { env: "REFUSED_TOKEN", prefix: "Bearer " } },
          },
        })
      ).code,
    ).toBe(0);
    const before = await state();
    for (const args of [
      ["run", "secret", "--job-id", "x".repeat(100_000)],
      ["run", "secret", "--job-id", "bad id!"],
      ["run", "secret", "--job-id", "no-secret"],
    ]) {
      const ran = await cli(args, { REFUSED_TOKEN: undefined });
      expect(ran.code, ran.out.slice(0, 500)).toBe(2);
      expect(await state()).toBe(before);
    }
  }, 60_000);

  it("never echoes a connection string's password, whatever is wrong with it", async () => {
    for (const uri of [
      "mongdb://user:PASSWORD123@localhost:1/x",
      "mongodb://user:PASSWORD123@localhost:1/x?bogusOption=%zz",
      "mongodb://user:PASSWORD123@[::1/x",
      "mongodb:/user:PASSWORD123@localhost/x",
      "user:PASSWORD123@localhost:27017/db",
      "mongodb://user:my PASSWORD123@localhost:1/x?serverSelectionTimeoutMS=200",
    ]) {
      // Concurrently: a URI the driver accepts waits out its server selection (10 s) first.
      for (const ran of await Promise.all([
        cli(["status", "some-job", "--mongo", uri]),
        cli(["status", "some-job", `--mongo=${uri}`]),
        cli(["status", "some-job"], { MONGODB_URI: uri }),
      ])) {
        expect(ran.code, ran.out).not.toBe(0);
        expect(ran.out).not.toContain("PASSWORD123");
      }
    }
  }, 180_000);

  it("serve: an empty --token is a usage error; a non-loopback address without a token is warned about", async () => {
    const empty = await cli(["serve", "--token=", "--port", "0"]);
    expect(empty.code, empty.out).toBe(2);
    expect(empty.out).toContain("--token is empty");
    // The same through the environment: set but empty (or blank) never means "no auth".
    for (const value of ["", "  ", "tok\nen"]) {
      const fromEnv = await cli(["serve", "--port", "0"], { CHUNKRELAY_STATUS_TOKEN: value });
      expect(fromEnv.code, fromEnv.out).toBe(2);
      expect(fromEnv.out).toContain("CHUNKRELAY_STATUS_TOKEN is invalid");
    }
    const spaced = await cli(["serve", "--token", "a b", "--port", "0"]);
    expect(spaced.code, spaced.out).toBe(2);
    const child = spawn(process.execPath, [BIN, "serve", "--host", "0.0.0.0", "--port", "0"], {
      env: { ...process.env, MONGODB_URI: dbUri, CHUNKRELAY_STATUS_TOKEN: undefined },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let out = "";
    let err = "";
    child.stdout.on("data", (b: Buffer) => (out += b.toString()));
    child.stderr.on("data", (b: Buffer) => (err += b.toString()));
    const exited = new Promise<number | null>((resolve) => child.once("exit", resolve));
    const deadline = Date.now() + 30_000;
    while (!out.includes("http://") && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    child.kill("SIGINT");
    await exited;
    expect(out).toContain("http://");
    expect(err).toContain("warning: serving on 0.0.0.0 without a token");
  }, 60_000);

  it("refuses a header value with CR or LF when the config is applied", async () => {
    const ran = await apply("crlf", {
      source: { collection: "refused_src" },
      target: { url: serviceUrl, headers: { "x-team": { value: "a\r\nx-injected: 1" } } },
    });
    expect(ran.code).toBe(2);
    expect(ran.out).toMatch(/target\.headers\.x-team.*control characters/s);
    expect(await store.configs.countDocuments({ _id: "crlf" })).toBe(0);
  });
});
