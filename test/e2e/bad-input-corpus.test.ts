/**
 * Bad input is refused, never repaired: a generated corpus of bad config files and bad flag sets
 * runs through the CLI's own entry point (in-process, for speed: the same `main` the binary
 * calls). Each must exit 2, name what is wrong, and leave the database exactly as it was.
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { main } from "../../src/cli/main.js";
import { readConfig, saveConfig } from "../../src/store/configs.js";
import { Store } from "../../src/store/store.js";
import { uriWithDatabase } from "../../src/store/connection.js";
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
  await saveConfig(store, VALID, new Date());
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
    // Beyond the five plain fields: what Trigger.dev's cron-parser 4 refuses or would misread.
    "@annually",
    "@reboot",
    "0 0 15W * *",
    "0 0 LW * *",
    "0 0 * * L",
    "0 0 * * 15L",
    "0 0 15L * *",
    "0 0 L/2 * *",
    "0 0 * * 5L/2",
    "0 0 * * fril",
    "0 0 * * 1#6",
    "0 0 * * 1#2,3",
    "0 0 * * *#2",
    "0 0 30 2 *",
    "0 0 31 APR *",
    "0 0 * * SAT-SUN",
    "0  2 * * *",
    "0 2 * * * ",
    "0 0 *,? * *",
    "0 0 * * 07",
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
    ['{"a": {"$oid": "xyz"}}', /source\.filter\.a\.\$oid: "xyz" is not an ObjectId/],
    ['{"a": {"$numberLong": "abc"}}', /source\.filter\.a\.\$numberLong: "abc" is not a 64-bit integer/],
    ['{"a": {"$numberDecimal": "zz"}}', /source\.filter\.a\.\$numberDecimal: "zz" is not a 128-bit decimal/],
    // Operators the server refuses where they stand.
    ['{"$sampleRate": 1.5}', /\$sampleRate takes a number from 0 to 1/],
    ['{"a": {"$sampleRate": 0.5}}', /\$sampleRate combines whole filters/],
    ['{"t": {"$elemMatch": {"$sampleRate": 0.5}}}', /applies to whole documents only/],
    ['{"a": {"$options": "i"}}', /\$options needs a \$regex/],
    ['{"loc": {"$maxDistance": 5}}', /read only beside \$near/],
    ['{"loc": {"$box": [[0, 0], [1, 1]]}}', /unknown query operator \$box/],
    ['{"$alwaysTrue": 0}', /\$alwaysTrue is written/],
  ];
  for (const [f, e] of [...filters, ...badExtendedJson()]) {
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

/**
 * Filters with Extended JSON that bson's EJSON.parse would repair, misread or drop part of: every
 * wrapper kind with bad values, `$regex` beside other operators, impossible dates, numbers with
 * junk. Each message names the path (under source.filter) and says what to write instead.
 */
function badExtendedJson(): Array<[string, RegExp]> {
  const cases: Array<[string, RegExp]> = [];
  const at = (path: string) => path.replace(/[.$]/g, (c) => `\\${c}`);
  const values: Array<[string, string[], RegExp]> = [
    [
      "$date",
      [
        '"2026-02-30"',
        '"2026-02-29"',
        '"2026-04-31"',
        '"2026-00-10"',
        '"2026-01-01T25:00:00Z"',
        '"2026-01-01T10:00:00"',
        '"2026-01-01T10:00:00.12345Z"',
        '"01/02/2026"',
        '"2026-1-2"',
        "1.5",
        "1e17",
        "true",
        "null",
        '{"$numberLong": "1x"}',
        '{"$numberInt": "5"}',
      ],
      /not a valid date/,
    ],
    [
      "$numberInt",
      ['"12abc"', '"1.0"', '"0x10"', '" 1"', '"2147483648"', '"-2147483649"', '""', "12", "null"],
      /not a 32-bit integer/,
    ],
    ["$numberLong", ['"12abc"', '"1e3"', '"9223372036854775808"', '""', "12"], /not a 64-bit integer/],
    ["$numberLong", ['"9007199254740993"', '"-9007199254740993"'], /would round it/],
    ["$numberDouble", ['"1.5x"', '"0x10"', '"1,5"', '"inf"', '""', "1.5"], /is not a number/],
    ["$numberDouble", ['"1e999"', '"-1e400"'], /too large for a double/],
    ["$numberDecimal", ['"12abc"', '" 1"', '"1.2345678901234567890123456789012345"', "12"], /decimal/],
    [
      "$oid",
      ['"65a1f0c2e4b0a1b2c3d4e5f"', '"65a1f0c2e4b0a1b2c3d4e5f6a"', '"zza1f0c2e4b0a1b2c3d4e5f6"', "5"],
      /not an ObjectId/,
    ],
    ["$uuid", ['"c8edabc3-f738-4ca3-b68d"', '"not-a-uuid"', "5"], /not a UUID/],
    [
      "$binary",
      [
        '"AAAA"',
        '{"base64": "AAAA"}',
        '{"base64": "A!AA", "subType": "00"}',
        '{"base64": "AAAA", "subType": "0x"}',
        '{"base64": "AAAA", "subType": "04"}',
      ],
      /binary|base64|subType|subtype/,
    ],
    [
      "$timestamp",
      ['{"t": -1, "i": 0}', '{"t": 1.5, "i": 0}', '{"t": 1}', '{"t": 1, "i": 1, "x": 1}', "5"],
      /from 0 to 4294967295/,
    ],
    [
      "$regularExpression",
      ['{"pattern": "a"}', '{"pattern": "a", "options": "g"}', '{"pattern": 5, "options": ""}', '"a"'],
      /regular expression|options|pattern/,
    ],
    ["$minKey", ["0", "true", '"1"'], /\{"\$minKey": 1\}/],
    ["$maxKey", ["0"], /\{"\$maxKey": 1\}/],
    ["$symbol", ["5", "null"], /not a string/],
    ["$code", ["5"], /not a string of code/],
    ["$undefined", ["true", "false"], /would be read as null; write null/],
    ["$dbPointer", ['{"$ref": "db.c", "$id": {"$oid": "65a1f0c2e4b0a1b2c3d4e5f6"}}'], /read as a DBRef/],
  ];
  for (const [kind, bad, message] of values) {
    for (const v of bad)
      cases.push([
        `{"a": {"${kind}": ${v}}}`,
        new RegExp(`${at(`source.filter.a.${kind}`)}.*${message.source}`),
      ]);
  }
  // One condition beside a type wrapper's key: EJSON keeps the wrapper's value and drops the rest.
  for (const op of ["$nin", "$not", "$ne", "$in", "$exists", "$elemMatch", "$size", "$type", "$all"]) {
    const arg =
      op === "$not" || op === "$elemMatch"
        ? '{"$eq": "b"}'
        : op === "$exists"
          ? "true"
          : op === "$size"
            ? "1"
            : op === "$type"
              ? '"string"'
              : '["ab"]';
    cases.push([
      `{"status": {"$regex": "^a", "${op}": ${arg}}}`,
      new RegExp(`${at(`source.filter.status.${op}`)}: would be dropped.*\\$regularExpression.*\\$and`),
    ]);
    cases.push([
      `{"status": {"${op}": ${arg}, "$regex": "^a", "$options": "i"}}`,
      new RegExp(`${at(`source.filter.status.${op}`)}: would be dropped`),
    ]);
  }
  for (const kind of [
    '"$date": "2026-01-01"',
    '"$numberInt": "5"',
    '"$oid": "65a1f0c2e4b0a1b2c3d4e5f6"',
    '"$regularExpression": {"pattern": "a", "options": ""}',
  ]) {
    cases.push([`{"a": {"$gt": 1, ${kind}}}`, new RegExp(`${at("source.filter.a.$gt")}: would be dropped`)]);
  }
  cases.push([
    '{"a": {"$regex": "a", "$options": "gi"}}',
    /source\.filter\.a\.\$options: "gi": regular expression options/,
  ]);
  cases.push(['{"a": {"$regex": {"$regex": "a"}, "$options": "q"}}', /source\.filter\.a\.\$options/]);
  cases.push(['{"a": {"$regex": 5}}', /source\.filter\.a\.\$regex: takes a pattern string/]);
  cases.push(['{"a": {"$id": 1, "$ref": "users"}}', /source\.filter\.a: a DBRef's keys come in the order/]);
  cases.push(['{"a": {"$scope": {}}}', /source\.filter\.a\.\$scope: belongs with \$code/]);
  cases.push(['{"a": {"$in": [1e400]}}', /source\.filter\.a\.\$in\.0: the number is too large/]);
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

  it("accepts configs with every valid Extended JSON wrapper, MongoDB's operators and Trigger.dev's cron forms", async () => {
    const before = await snapshot();
    const good: Array<[string, Json]> = [];
    const filters = [
      '{"$sampleRate": 0.5, "v": {"$exists": true}}',
      '{"$and": [{"$sampleRate": 0.1}, {"n": {"$gte": 0}}]}',
      '{"loc": {"$within": {"$box": [[0, 0], [10, 10]]}}}',
      '{"loc": {"$geoWithin": {"$centerSphere": [[0, 0], 0.1]}}}',
      '{"loc": {"$near": {"$geometry": {"type": "Point", "coordinates": [0, 0]}}, "$maxDistance": 5}}',
      '{"$text": {"$search": "coffee", "$language": "en", "$caseSensitive": false, "$diacriticSensitive": false}}',
      '{"at": {"$gte": {"$date": "2024-02-29"}, "$lt": {"$date": "2026-01-31T23:59:59.999+01:00"}}}',
      '{"at": {"$gte": {"$date": 1767225600000}, "$lt": {"$date": {"$numberLong": "1767225600000"}}}}',
      '{"n": {"$in": [{"$numberInt": "-2147483648"}, {"$numberLong": "9007199254740991"}, {"$numberDouble": "1.5e3"}, {"$numberDouble": "-Infinity"}, {"$numberDecimal": "12.50"}]}}',
      '{"_id": {"$in": [{"$oid": "65a1f0c2e4b0a1b2c3d4e5f6"}, {"$uuid": "c8edabc3-f738-4ca3-b68d-ab92a91478a3"}, {"$binary": {"base64": "AAECAw==", "subType": "00"}}]}}',
      '{"ts": {"$gt": {"$timestamp": {"t": 1767225600, "i": 1}}}, "k": {"$gt": {"$minKey": 1}, "$lt": {"$maxKey": 1}}}',
      '{"status": {"$regex": "^re", "$options": "i"}}',
      '{"status": {"$regex": {"$regularExpression": {"pattern": "^re", "options": "i"}}, "$nin": ["rejected"]}}',
      '{"$and": [{"status": {"$regex": "^re"}}, {"status": {"$nin": ["rejected"]}}]}',
      '{"status": {"$not": {"$regex": "^x", "$options": "i"}}, "s": {"$regularExpression": {"pattern": "a", "options": "mx"}}}',
      '{"owner": {"$ref": "users", "$id": {"$oid": "65a1f0c2e4b0a1b2c3d4e5f6"}, "$db": "app"}}',
    ];
    for (const f of filters)
      good.push([`filter ${f}`, { ...VALID, source: { ...VALID.source, filter: JSON.parse(f) } }]);
    for (const cron of [
      "0 0 L * *",
      "0 0 1,15,L * *",
      "0 3 * * 5L",
      "0 3 * * FRIL",
      "0 3 * * MON#2",
      "0 3 ? * MON-FRI",
      "0 3 1 * ?",
      "0 0 29 2 *",
      "@daily",
      "@weekly",
    ]) {
      good.push([`cron ${cron}`, withField("schedule", { cron })]);
    }
    const failures: string[] = [];
    for (const [i, [what, config]] of good.entries()) {
      const file = join(dir, `good-${i}.json`);
      writeFileSync(file, JSON.stringify(config));
      const { code, out } = await cli(["config", "apply", file]);
      if (code !== 0) failures.push(`${what}: exit ${code}, ${out.trim().slice(0, 300)}`);
    }
    expect(failures).toEqual([]);
    // Stored exactly: typed values kept, nothing dropped beside the nested $regex.
    const scheduled = await store.configs.findOne({ _id: "corpus" });
    expect(scheduled?.schedule).toMatchObject({ cron: "@weekly" });
    writeFileSync(
      join(dir, "typed.json"),
      JSON.stringify({ ...VALID, source: { ...VALID.source, filter: JSON.parse(filters[12] as string) } }),
    );
    expect((await cli(["config", "apply", join(dir, "typed.json")])).code).toBe(0);
    // The filter is stored as Extended JSON text (not every server stores `$`-prefixed keys).
    const typed = (await readConfig(store, "corpus")).source as unknown as {
      filter: { status: Record<string, unknown> };
    };
    expect(Object.keys(typed.filter.status)).toEqual(["$regex", "$nin"]);
    expect(typed.filter.status.$nin).toEqual(["rejected"]);
    const stored = ((await store.configs.findOne({ _id: "corpus" }))?.source as { filter: unknown }).filter;
    expect(typeof stored).toBe("string");
    await saveConfig(store, VALID, new Date());
    expect(await snapshot()).toBe(before);
  }, 120_000);

  it("accepts a config file that starts with a UTF-8 byte-order mark", async () => {
    const file = join(dir, "bom.json");
    writeFileSync(file, `\uFEFF${JSON.stringify({ ...VALID, description: "with a BOM" })}`);
    const { code, out } = await cli(["config", "apply", file]);
    expect(code, out).toBe(0);
    expect(await store.configs.findOne({ _id: "corpus" })).toMatchObject({ description: "with a BOM" });
    await saveConfig(store, VALID, new Date());
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
