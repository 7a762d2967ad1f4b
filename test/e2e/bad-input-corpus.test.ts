/**
 * Bad input is refused, never repaired: a generated corpus of bad config files and bad flag sets
 * runs through the CLI's own entry point (in-process, for speed: the same `main` the binary
 * calls). Each must exit 2, name what is wrong, and leave the database exactly as it was.
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { main } from "../../src/lib/cli/main.js";
import { applyConfig } from "../../src/lib/config/load.js";
import { Store, uriWithDatabase } from "../../src/lib/store/store.js";
import { storeSnapshot, useTestDatabase } from "../support/db.js";

const t = useTestDatabase("bad_input_corpus");
let store: Store;
let dbUri: string;
const dir = mkdtempSync(join(tmpdir(), "chunkrelay-corpus-"));

const VALID = {
  name: "corpus",
  source: { collection: "corpus_src", fields: ["v"], orderBy: "n" },
  chunking: { maxRecords: 10 },
  target: { url: "http://127.0.0.1:9/chunks" },
};

beforeAll(async () => {
  store = new Store(t.db());
  await store.ensureIndexes();
  dbUri = uriWithDatabase(t.uri, t.db().databaseName);
  await store.db
    .collection("corpus_src")
    .insertMany(Array.from({ length: 5 }, (_, i) => ({ _id: i as never, n: i, v: `r${i}` })));
  await applyConfig(store, VALID, new Date());
});

afterAll(() => rmSync(dir, { recursive: true, force: true }));

const snapshot = () => storeSnapshot(store);

/** Runs the CLI in-process; returns its exit code and what it wrote to stderr and stdout. */
async function cli(args: string[]): Promise<{ code: number; out: string }> {
  let out = "";
  const capture = (chunk: unknown) => {
    out += typeof chunk === "string" ? chunk : Buffer.from(chunk as Uint8Array).toString();
    return true;
  };
  const err = vi.spyOn(process.stderr, "write").mockImplementation(capture);
  const std = vi.spyOn(process.stdout, "write").mockImplementation(capture);
  try {
    const code = await main(args, { ...process.env, MONGODB_URI: dbUri });
    return { code, out };
  } finally {
    err.mockRestore();
    std.mockRestore();
  }
}

type Json = Record<string, unknown>;
const withField = (path: string, value: unknown): Json => {
  const copy = structuredClone(VALID) as Json;
  const keys = path.split(".");
  let at = copy;
  for (const k of keys.slice(0, -1)) {
    if (typeof at[k] !== "object" || at[k] === null) at[k] = {};
    at = at[k] as Json;
  }
  at[keys[keys.length - 1] as string] = value;
  return copy;
};

interface BadFile {
  what: string;
  text: string | Buffer;
  /** A fragment the message must contain (the field, or what is wrong). */
  expect: RegExp;
}

/** The corpus of bad config files, generated field by field. */
function badConfigs(): BadFile[] {
  const cases: BadFile[] = [];
  const add = (what: string, config: Json, expected: RegExp) =>
    cases.push({ what, text: JSON.stringify(config), expect: expected });
  const notNumbers = ["10", null, true, [], {}, "x", "1e3"];
  const ints: Array<[string, unknown[]]> = [
    ["chunking.maxRecords", [0, -1, 1.5, 100_001, 1e12, ...notNumbers]],
    ["target.timeoutMs", [0, 99, 600_001, 2.5, ...notNumbers]],
    ["maxInFlight", [0, -3, 65, 1.1, ...notNumbers]],
    ["retry.maxAttempts", [0, 101, 2.5, ...notNumbers]],
    ["retry.maxDeliveryTries", [0, 1001, 0.5, ...notNumbers]],
    ["retry.backoffMs", [0, -1, 3_600_001, ...notNumbers]],
    ["retry.maxBackoffMs", [0, 86_400_001, 1.5, ...notNumbers]],
    ["watch.pollIntervalMs", [0, 9, 3_600_001, ...notNumbers]],
    ["watch.chunkTimeoutMs", [0, 99, 7 * 86_400_001, ...notNumbers]],
    ["chunking.maxWeight", [0, -5, ...notNumbers]],
    ["schedule.iterations", [0, 1001, 1.5, ...notNumbers]],
    ["workload.maxRecords", [0, -1, 1.5, ...notNumbers]],
    ["workload.maxChunks", [0, -1, 1.5, ...notNumbers]],
    ["workload.maxWeight", [0, -1, ...notNumbers]],
  ];
  for (const [path, values] of ints) {
    for (const v of values)
      add(`${path} = ${JSON.stringify(v)}`, withField(path, v), new RegExp(path.replace(".", "\\.")));
  }
  const strings: Array<[string, unknown[]]> = [
    [
      "name",
      [
        "",
        "-lead",
        "has space",
        "a/b",
        "x".repeat(121),
        "a\tb",
        "a,b",
        "a@b",
        "#x",
        "(x)",
        5,
        null,
        ["a"],
        "$x",
        "é",
      ],
    ],
    ["description", ["x".repeat(2001), 5, [], {}]],
    ["source.collection", ["", 5, null, [], {}]],
    ["source.orderBy", ["", "$n", ".n", "a..b", 5, []]],
    ["source.fields", ["v", 5, [""], ["$v"], [".v"], [5], {}]],
    ["source.weightField", ["", "$w", 5, []]],
    [
      "target.url",
      [
        "",
        "ftp://x/y",
        "not a url",
        "javascript:alert(1)",
        "file:///etc/passwd",
        "http://u:p@h/x",
        "http://",
        "mailto:a@b",
        "ws://h/x",
        "http://u@h/x",
        "https://user:@h/x",
        5,
        null,
      ],
    ],
    ["schedule.timezone", ["Mars/Olympus", "Europe/Nowhere", "UTC+25", "", 5]],
  ];
  for (const [path, values] of strings) {
    for (const v of values)
      add(`${path} = ${JSON.stringify(v)}`, withField(path, v), new RegExp(path.replace(".", "\\.")));
  }
  const crons = [
    "foo bar baz qux quux",
    "* * * *",
    "* * * * * *",
    "60 * * * *",
    "* 24 * * *",
    "* * 0 * *",
    "* * 32 * *",
    "* * * 13 *",
    "* * * * 8",
    "*/0 * * * *",
    "1-x * * * *",
    "* * * FOO *",
    "* * * * FUNDAY",
    "",
    "@daily",
    "1,2,x * * * *",
    "0-60 * * * *",
    "5-1/0 * * * *",
    "* * * 0 *",
    "* * 00-32 * *",
    "MON * * * *",
    "* MON * * *",
    "*/x * * * *",
    "0 2 * * 7/0",
    "? * * * *",
  ];
  for (const c of crons) add(`cron ${c}`, withField("schedule", { cron: c }), /schedule\.cron/);
  const headers: Array<[unknown, RegExp]> = [
    [{ "bad name": { value: "x" } }, /target\.headers/],
    [{ "x-a": { value: "a\r\nx-injected: 1" } }, /control characters/],
    [{ "x-a": { value: "a\nb" } }, /control characters/],
    [{ "x-a": { value: "a\u0000b" } }, /control characters/],
    [{ "x-a": { value: "\u001b[2J" } }, /control characters/],
    [{ "x-a": { env: "lower_case" } }, /target\.headers/],
    [{ "x-a": { env: "TOKEN", prefix: "Bearer\r\n" } }, /control characters/],
    [{ "x-a": { env: "TOKEN", value: "both" } }, /target\.headers/],
    [{ "x-a": { value: 5 } }, /target\.headers/],
    [{ "x-a": "plain" }, /target\.headers/],
    [{ "x-a": { other: 1 } }, /target\.headers/],
  ];
  for (const [h, e] of headers) add(`headers ${JSON.stringify(h)}`, withField("target.headers", h), e);
  const filters: Array<[string, RegExp]> = [
    ['{"a": {"$foo": 1}}', /unknown query operator \$foo/],
    ['{"$foo": 1}', /unknown query operator \$foo/],
    ['{"a": {"$gt": 1, "b": 2}}', /mixes operators/],
    ['{"$gt": 1}', /applies to a field/],
    ['{"a": {"$or": [{"b": 1}]}}', /put it at the top level/],
    ['{"$or": []}', /non-empty array/],
    ['{"$or": {"a": 1}}', /non-empty array/],
    ['{"$and": [1]}', /must be a filter object/],
    ['{"a": {"$in": 5}}', /needs an array/],
    ['{"a": {"$elemMatch": 5}}', /needs an object/],
    ['{"a": {"$date": "not-a-date"}}', /not a valid date/],
    ['{"a": {"$gt": {"$date": "yesterday"}}}', /not a valid date/],
    ['{"$where": "sleep(1000)"}', /runs JavaScript/],
    ['{"$expr": {"$function": {"body": "x", "args": [], "lang": "js"}}}', /runs JavaScript/],
    ['{"a": {"$not": {"$foo": 1}}}', /unknown query operator \$foo/],
    ['{"$or": [{"a": {"$bar": 1}}]}', /unknown query operator \$bar/],
    ['{"__proto__": {"a": 1}}', /__proto__/],
    ['{"a": {"__proto__": {"b": 1}}}', /__proto__/],
    ['{"a": {"$oid": "xyz"}}', /not valid \(Extended\) JSON/],
    ['{"a": {"$numberLong": "abc"}}', /not valid \(Extended\) JSON/],
    ['{"a": {"$numberDecimal": "zz"}}', /not valid \(Extended\) JSON/],
  ];
  for (const [f, e] of filters) {
    const text = JSON.stringify(VALID).replace('"orderBy":"n"', () => `"orderBy":"n","filter":${f}`);
    cases.push({ what: `filter ${f}`, text, expect: e });
  }
  for (const op of [
    "$gtx",
    "$regexx",
    "$search",
    "$near2",
    "$inn",
    "$lookup",
    "$match",
    "$set",
    "$exist",
    "$typeof",
    "$equals",
    "$contains",
    "$like",
    "$between",
    "$startsWith",
    "$isNull",
    "$length",
    "$any",
    "$none",
    "$ilike",
    "$GT",
    "$Eq",
    "$$x",
  ]) {
    const text = JSON.stringify(withField("source.filter", { a: { [op]: 1 } }));
    const escaped = op.replace(/\$/g, "\\$");
    cases.push({ what: `operator ${op}`, text, expect: new RegExp(`unknown query operator ${escaped}`) });
  }
  const unknown = [
    "colour",
    "source.colour",
    "chunking.colour",
    "target.colour",
    "retry.colour",
    "watch.colour",
    "schedule.colour",
    "workload.colour",
    "maxinflight",
    "Retry",
    "target.timeout",
    "chunking.size",
  ];
  for (const path of unknown) {
    const key = path.split(".").pop() as string;
    add(`unknown key ${path}`, withField(path, 1), new RegExp(`${key}|nrecognized`));
  }
  // Files that are not a config at all.
  const files: Array<[string, string | Buffer, RegExp]> = [
    ["empty file", "", /not valid \(Extended\) JSON/],
    ["not JSON", "name: corpus", /not valid \(Extended\) JSON/],
    ["truncated", JSON.stringify(VALID).slice(0, 40), /not valid \(Extended\) JSON/],
    ["array", "[]", /config/],
    ["number", "5", /config/],
    [
      "invalid UTF-8",
      Buffer.concat([
        Buffer.from('{"name":"corpus","description":"'),
        Buffer.from([0xc3, 0x28]),
        Buffer.from('"}'),
      ]),
      /not valid UTF-8/,
    ],
    [
      "lone continuation byte",
      Buffer.concat([Buffer.from('{"name":"'), Buffer.from([0x80]), Buffer.from('"}')]),
      /not valid UTF-8/,
    ],
    ["too large", `{"name":"corpus","description":"${"x".repeat(1_100_000)}"}`, /MB; the most is 1 MB/],
    [
      "too deep",
      `{"name":"corpus","source":{"collection":"c","filter":${'{"a":'.repeat(1_500)}1${"}".repeat(1_500)}}}`,
      /levels deep/,
    ],
    [
      "deep but small",
      `{"name":"corpus","source":{"collection":"c","filter":${'{"$and":[{"a":'.repeat(60)}1${"}]}".repeat(60)}}}`,
      /levels deep/,
    ],
  ];
  for (const [what, text, e] of files) cases.push({ what, text, expect: e });
  return cases;
}

/** Bad flag sets for the commands that write. */
function badFlagSets(): Array<{ args: string[]; expect: RegExp }> {
  const sets: Array<{ args: string[]; expect: RegExp }> = [];
  const run = (extra: string[], e: RegExp) => sets.push({ args: ["run", "corpus", ...extra], expect: e });
  for (const id of [
    "",
    " ",
    "-x",
    "a b",
    "a/b",
    "x".repeat(201),
    "x".repeat(100_000),
    "$id",
    "é",
    "a\nb",
    "a\u001b[2Jb",
  ]) {
    run(["--job-id", id], /job-id|jobId|job id/i);
  }
  for (const mode of ["bogus", "FULL", "", "5", "exceptions"])
    run(["--mode", mode], /mode|fromJob|from-job/i);
  for (const flag of [
    "--max-records",
    "--max-weight",
    "--iterations",
    "--sample-every",
    "--sample-first",
    "--max-chunks",
  ]) {
    for (const v of ["0", "-1", "abc", "1.5e400", "", "NaN"]) run([flag, v], new RegExp(flag.slice(2)));
  }
  for (const v of ["bogus", "2026-13-45", ""])
    run(["--mode", "backfill", "--from", v, "--to", "3"], /from|to|backfill/i);
  run(["--mode", "backfill", "--from", "5", "--to", "1"], /from|to|backfill/i);
  run(["--mode", "incremental", "--from", "1"], /from|backfill/i);
  run(["--from-job", "no-such-job"], /no-such-job|from-job|fromJob/i);
  for (const flag of ["--bogus", "--max-recordz", "-z", "--json=1"])
    run([flag], /unknown option|too many|error/i);
  for (const uri of [
    "mongdb://user:pw@h/x",
    "mongodb://u:p@[::1/x",
    "mongodb://u:p@h:99999/x",
    "mongodb://u:p@h/x?bogusOption=1",
    "http://h/x",
    "",
  ]) {
    run(["--mongo", uri], /mongo|connection string/i);
  }
  sets.push({ args: ["run"], expect: /missing required argument/ });
  sets.push({ args: ["run", "no_such_config"], expect: /no_such_config/ });
  sets.push({ args: ["run", "bad name!"], expect: /bad name!|config/ });
  for (const id of ["", "a b", "x".repeat(300), "$x"]) {
    sets.push({ args: ["resume", id], expect: /job|id/i });
    sets.push({ args: ["delete", id], expect: /job|id|option|argument/i });
    sets.push({ args: ["exceptions", "requeue", id], expect: /job|id/i });
  }
  sets.push({ args: ["resume", "no-such-job"], expect: /no-such-job/ });
  sets.push({ args: ["exceptions", "requeue", "no-such-job"], expect: /no-such-job/ });
  for (const port of ["70000", "-1", "abc", "1.5"]) {
    sets.push({ args: ["serve", "--port", port], expect: /port/ });
    sets.push({ args: ["batch-service", "--port", port], expect: /port/ });
  }
  for (const rate of ["2", "-0.1", "abc"])
    sets.push({ args: ["batch-service", "--error-rate", rate], expect: /error-rate/ });
  sets.push({ args: ["serve", "--token="], expect: /--token is empty/ });
  sets.push({ args: ["config", "apply"], expect: /missing required argument/ });
  sets.push({
    args: ["config", "apply", join(dir, "does-not-exist.json")],
    expect: /cannot read config file/,
  });
  sets.push({ args: ["bogus-command"], expect: /unknown command/ });
  return sets;
}

describe("bad input", () => {
  it("every bad config file exits 2, names the problem and changes nothing", async () => {
    const corpus = badConfigs();
    expect(corpus.length).toBeGreaterThanOrEqual(300);
    const before = await snapshot();
    const failures: string[] = [];
    for (const [i, c] of corpus.entries()) {
      const file = join(dir, `bad-${i}.json`);
      writeFileSync(file, c.text);
      const { code, out } = await cli(["config", "apply", file]);
      if (code !== 2 || !c.expect.test(out))
        failures.push(`${c.what}: exit ${code}, ${out.trim().slice(0, 300)}`);
    }
    expect(failures).toEqual([]);
    expect(await snapshot()).toBe(before);
  }, 300_000);

  it("accepts a config file that starts with a UTF-8 byte-order mark", async () => {
    const file = join(dir, "bom.json");
    writeFileSync(file, `\uFEFF${JSON.stringify({ ...VALID, description: "with a BOM" })}`);
    const { code, out } = await cli(["config", "apply", file]);
    expect(code, out).toBe(0);
    expect(await store.configs.findOne({ _id: "corpus" })).toMatchObject({ description: "with a BOM" });
    await applyConfig(store, VALID, new Date());
  });

  it("every bad flag set exits 2, names the problem and changes nothing", async () => {
    const sets = badFlagSets();
    expect(sets.length).toBeGreaterThanOrEqual(100);
    const before = await snapshot();
    const failures: string[] = [];
    for (const s of sets) {
      const { code, out } = await cli(s.args);
      if (code !== 2 || !s.expect.test(out) || out.includes("pw@"))
        failures.push(`${JSON.stringify(s.args).slice(0, 120)}: exit ${code}, ${out.trim().slice(0, 300)}`);
    }
    expect(failures).toEqual([]);
    expect(await snapshot()).toBe(before);
  }, 300_000);
});
