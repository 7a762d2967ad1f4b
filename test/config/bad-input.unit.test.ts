/**
 * Bad input, generated: hundreds of malformed configs and task payloads must each be refused
 * with a precise message (a ConfigError naming fields, or a BadInputError), never a crash, a
 * silent acceptance or a retryable error.
 */
import { BSONRegExp, ObjectId } from "bson";
import { describe, expect, it } from "vitest";
import { parseConfigText } from "../../src/config/config-file.js";
import { ConfigError, parseConfig } from "../../src/config/schema.js";
import { BadInputError } from "../../src/common/errors.js";
import { dispatchPayloadSchema } from "../../src/steps/dispatch/dispatch.js";
import { initializePayloadSchema } from "../../src/steps/initialize/payload.js";
import { watchPayloadSchema } from "../../src/steps/watch/watch.js";
import { seededRandom } from "../support/random.js";

const valid = () => ({
  name: "fuzz",
  description: "d",
  source: { collection: "c", filter: { a: 1 }, orderBy: "_id", fields: ["x"], weightField: "w" },
  chunking: { maxRecords: 10, maxWeight: 100 },
  target: { url: "http://svc.example/chunks", timeoutMs: 1000, headers: { A: { env: "TOKEN" } } },
  maxInFlight: 1,
  retry: { maxAttempts: 2, maxDeliveryTries: 3, backoffMs: 10, maxBackoffMs: 100 },
  watch: { pollIntervalMs: 100, chunkTimeoutMs: 1000 },
});

type Obj = Record<string, unknown>;
const paths: string[][] = [
  ["name"],
  ["description"],
  ["source"],
  ["source", "collection"],
  ["source", "filter"],
  ["source", "orderBy"],
  ["source", "fields"],
  ["source", "weightField"],
  ["chunking"],
  ["chunking", "maxRecords"],
  ["chunking", "maxWeight"],
  ["target"],
  ["target", "url"],
  ["target", "timeoutMs"],
  ["target", "headers"],
  ["maxInFlight"],
  ["retry", "maxAttempts"],
  ["retry", "maxDeliveryTries"],
  ["retry", "backoffMs"],
  ["watch", "pollIntervalMs"],
  ["watch", "chunkTimeoutMs"],
];

// Values that are wrong for every field above (each path gets the ones that do not fit it).
const badValues: unknown[] = [
  -1,
  0,
  -0.5,
  1e12,
  Number.NaN,
  "",
  "x y",
  "$bad",
  null,
  [],
  [1],
  {},
  { $where: "1" },
  true,
  3.5,
];

function setPath(obj: Obj, path: string[], value: unknown) {
  let cur = obj;
  for (const p of path.slice(0, -1)) cur = cur[p] as Obj;
  cur[path[path.length - 1] as string] = value;
}

const mutations: Array<(c: Obj, r: () => number) => string> = [
  (c, r) => {
    const path = paths[Math.floor(r() * paths.length)] as string[];
    const value = badValues[Math.floor(r() * badValues.length)];
    setPath(c, path, value);
    return `${path.join(".")} = ${JSON.stringify(value)}`;
  },
  (c, r) => {
    const level = [c, c.source, c.target, c.chunking, c.retry, c.watch][Math.floor(r() * 6)] as Obj;
    level[`unknown${Math.floor(r() * 100)}`] = 1;
    return "unknown field";
  },
  (c, r) => {
    const op = ["$where", "$function", "$accumulator"][Math.floor(r() * 3)] as string;
    const nests = [
      { [op]: "x" },
      { $and: [{ a: { [op]: 1 } }] },
      { $expr: { $gt: [{ [op]: {} }, 1] } },
      { b: { $elemMatch: { [op]: 1 } } },
    ];
    (c.source as Obj).filter = nests[Math.floor(r() * nests.length)];
    return `filter with ${op}`;
  },
  (c, r) => {
    const scheme = ["ftp", "file", "javascript", "mailto", "ws", ""][Math.floor(r() * 6)] as string;
    (c.target as Obj).url = scheme ? `${scheme}://svc.example/x` : "not a url";
    return `url ${scheme}`;
  },
  (c) => {
    (c.target as Obj).headers = { Authorization: "Bearer secret-in-document" };
    return "literal secret header";
  },
  (c) => {
    delete (c.source as Obj).weightField;
    return "maxWeight without weightField";
  },
  (c, r) => {
    const required = [["name"], ["source"], ["source", "collection"], ["target"], ["target", "url"]][
      Math.floor(r() * 5)
    ] as string[];
    let cur = c;
    for (const p of required.slice(0, -1)) cur = cur[p] as Obj;
    delete cur[required[required.length - 1] as string];
    return `missing ${required.join(".")}`;
  },
  (c) => {
    (c.retry as Obj).maxBackoffMs = 1;
    return "maxBackoffMs below backoffMs";
  },
];

describe("bad configs", () => {
  it("refuses 300 generated bad configs, each with a message naming what is wrong", () => {
    expect(() => parseConfig(valid())).not.toThrow();
    const r = seededRandom(2026);
    let refused = 0;
    for (let i = 0; i < 300; i++) {
      const c = valid() as Obj;
      const what = (mutations[Math.floor(r() * mutations.length)] as (c: Obj, r: () => number) => string)(
        c,
        r,
      );
      let error: unknown;
      try {
        parseConfig(c);
      } catch (err) {
        error = err;
      }
      // A mutation can land on a value that happens to be valid (e.g. description = "x y").
      if (error === undefined) {
        expect(what, "only harmless mutations may pass").toMatch(
          /^description|^name = "x y"|^source\.fields = \[\]/,
        );
        continue;
      }
      expect(error, what).toBeInstanceOf(ConfigError);
      const issues = (error as ConfigError).issues;
      expect(issues.length, what).toBeGreaterThan(0);
      for (const issue of issues) expect(issue, what).toMatch(/^[\w.()]+: |unknown field/);
      refused++;
    }
    expect(refused).toBeGreaterThanOrEqual(250);
  });
});

describe("bad task payloads", () => {
  it("refuses 300 generated bad payloads for the three tasks", () => {
    const r = seededRandom(7);
    const junk: unknown[] = [
      null,
      undefined,
      1,
      "s",
      [],
      {},
      { jobId: 1 },
      { jobId: "" },
      { config: "" },
      { config: 3 },
    ];
    const schemas = [
      { schema: initializePayloadSchema, good: { config: "c", jobId: "j-1" } },
      { schema: dispatchPayloadSchema, good: { jobId: "j" } },
      { schema: watchPayloadSchema, good: { jobId: "j", chunk: 1, attempt: 1 } },
    ];
    let refused = 0;
    for (let i = 0; i < 300; i++) {
      const { schema, good } = schemas[i % 3] as (typeof schemas)[number];
      let payload: unknown;
      switch (Math.floor(r() * 4)) {
        case 0:
          payload = junk[Math.floor(r() * junk.length)];
          break;
        case 1:
          payload = { ...good, extra: r() };
          break;
        case 2: {
          const key = Object.keys(good)[Math.floor(r() * Object.keys(good).length)] as string;
          payload = { ...good, [key]: [-1, 0, "", null, 1.5, "a b/c"][Math.floor(r() * 6)] };
          break;
        }
        default:
          payload = { ...good, mode: "incremental-ish" };
      }
      const parsed = schema.safeParse(payload);
      expect(parsed.success, JSON.stringify(payload)).toBe(false);
      if (!parsed.success) expect(parsed.error.issues.length).toBeGreaterThan(0);
      refused++;
    }
    expect(refused).toBe(300);
  });
});

describe("Extended JSON is checked before bson converts (and would repair) it", () => {
  const fileWith = (value: string) => `{"name":"ej","source":{"collection":"c","filter":{"f":${value}}}}`;
  const refusal = (text: string): string => {
    try {
      parseConfigText(text, "config file x.json");
    } catch (err) {
      expect(err).toBeInstanceOf(BadInputError);
      return (err as Error).message;
    }
    throw new Error(`expected ${text} to be refused`);
  };

  // Every wrapper kind, with values bson would repair, misread or choke on: [value, path, fix].
  const bad: Array<[string, string, RegExp]> = [
    ['{"$regex": "a", "$nin": ["ab"]}', "f.$nin", /would be dropped.*\$regularExpression.*\$and/],
    ['{"$nin": ["ab"], "$regex": "a", "$options": "i"}', "f.$nin", /would be dropped/],
    ['{"$regex": "a", "$not": {"$eq": "b"}}', "f.$not", /would be dropped/],
    ['{"$regex": "a", "$options": "g"}', "f.$options", /among i, m, s, u and x/],
    ['{"$regex": "a", "$options": 1}', "f.$options", /among i, m, s, u and x/],
    ['{"$regex": 5}', "f.$regex", /takes a pattern string/],
    [
      '{"$regex": {"$regularExpression": {"pattern": "a", "options": ""}}, "$numberInt": "1"}',
      "f.$numberInt",
      /cannot stand beside \$regex/,
    ],
    ['{"$date": "2026-02-30"}', "f.$date", /2026-02 has no day 30/],
    ['{"$date": "2025-02-29T00:00:00Z"}', "f.$date", /2025-02 has no day 29/],
    ['{"$date": "2026-04-31"}', "f.$date", /no day 31/],
    ['{"$date": "2026-13-01"}', "f.$date", /no month 13/],
    ['{"$date": "2026-01-01T24:00:00Z"}', "f.$date", /not a time of day/],
    ['{"$date": "2026-01-01T10:60:00Z"}', "f.$date", /not a time of day/],
    ['{"$date": "2026-01-01T10:00:00+25:00"}', "f.$date", /not a UTC offset/],
    ['{"$date": "2026-01-01T10:00:00"}', "f.$date", /no offset/],
    ['{"$date": "2026-01-01T10:00:00.1234Z"}', "f.$date", /more precise than a millisecond/],
    ['{"$date": "2026-01-01 10:00:00Z"}', "f.$date", /not an ISO-8601 date/],
    ['{"$date": "January 5, 2026"}', "f.$date", /not an ISO-8601 date/],
    ['{"$date": "yesterday"}', "f.$date", /not a valid date/],
    ['{"$date": 1.5}', "f.$date", /whole milliseconds/],
    ['{"$date": 1e17}', "f.$date", /whole milliseconds/],
    ['{"$date": {"$numberLong": "12x"}}', "f.$date", /whole milliseconds/],
    ['{"$date": null}', "f.$date", /not a valid date/],
    ['{"$date": "2026-01-01", "$lt": 5}', "f.$lt", /would be dropped/],
    ['{"$numberInt": "12abc"}', "f.$numberInt", /not a 32-bit integer/],
    ['{"$numberInt": "2147483648"}', "f.$numberInt", /not a 32-bit integer/],
    ['{"$numberInt": " 12"}', "f.$numberInt", /not a 32-bit integer/],
    ['{"$numberInt": 12}', "f.$numberInt", /not a 32-bit integer/],
    ['{"$numberInt": "1.5"}', "f.$numberInt", /not a 32-bit integer/],
    ['{"$numberLong": "abc"}', "f.$numberLong", /not a 64-bit integer/],
    ['{"$numberLong": "9223372036854775808"}', "f.$numberLong", /not a 64-bit integer/],
    ['{"$numberLong": "9007199254740993"}', "f.$numberLong", /would round it to 9007199254740992/],
    ['{"$numberDouble": "1.5x"}', "f.$numberDouble", /not a number/],
    ['{"$numberDouble": "0x10"}', "f.$numberDouble", /not a number/],
    ['{"$numberDouble": "1e999"}', "f.$numberDouble", /too large for a double/],
    ['{"$numberDouble": "1e-999"}', "f.$numberDouble", /too small for a double/],
    ['{"$numberDouble": "inf"}', "f.$numberDouble", /not a number/],
    ['{"$numberDecimal": "12abc"}', "f.$numberDecimal", /not a 128-bit decimal/],
    ['{"$numberDecimal": "1.2345678901234567890123456789012345"}', "f.$numberDecimal", /inexact rounding/],
    ['{"$numberDecimal": 12}', "f.$numberDecimal", /not a decimal written as a string/],
    ['{"$oid": "xyz"}', "f.$oid", /not an ObjectId/],
    ['{"$oid": "65a1f0c2e4b0a1b2c3d4e5f"}', "f.$oid", /not an ObjectId/],
    ['{"$binary": "AAAA", "$type": "00"}', "f.$binary", /legacy/],
    ['{"$binary": {"base64": "!!!!", "subType": "00"}}', "f.$binary.base64", /not base64/],
    ['{"$binary": {"base64": "AAA", "subType": "00"}}', "f.$binary.base64", /not base64/],
    ['{"$binary": {"base64": "AAAA", "subType": "zz"}}', "f.$binary.subType", /not a subtype/],
    ['{"$binary": {"base64": "AAAA", "subType": "04"}}', "f.$binary", /UUID, 16 bytes/],
    ['{"$binary": {"base64": "AAAA"}}', "f.$binary", /exactly "base64" and "subType"/],
    ['{"$uuid": "c8edabc3-f738-4ca3-b68d-ab92a91478a3x"}', "f.$uuid", /not a UUID/],
    [
      '{"$regularExpression": {"pattern": "a", "options": "g"}}',
      "f.$regularExpression.options",
      /among i, m, s, u and x/,
    ],
    ['{"$regularExpression": {"pattern": "a"}}', "f.$regularExpression", /"pattern": "…", "options": ""/],
    ['{"$regularExpression": {"pattern": "a", "options": ""}, "$nin": []}', "f.$nin", /would be dropped/],
    ['{"$timestamp": {"t": -1, "i": 1}}', "f.$timestamp", /from 0 to 4294967295/],
    ['{"$timestamp": {"t": 1, "i": 1.5}}', "f.$timestamp", /from 0 to 4294967295/],
    ['{"$timestamp": {"t": 4294967296, "i": 1}}', "f.$timestamp", /from 0 to 4294967295/],
    ['{"$symbol": 5}', "f.$symbol", /not a string/],
    ['{"$code": 5}', "f.$code", /not a string of code/],
    ['{"$code": "x", "$scope": 5}', "f.$scope", /not an object/],
    [
      '{"$code": "x", "$scope": {"y": {"$numberInt": "1x"}}}',
      "f.$scope.y.$numberInt",
      /not a 32-bit integer/,
    ],
    ['{"$scope": {}}', "f.$scope", /belongs with \$code/],
    ['{"$minKey": 0}', "f.$minKey", /\{"\$minKey": 1\}/],
    ['{"$maxKey": true}', "f.$maxKey", /\{"\$maxKey": 1\}/],
    ['{"$undefined": true}', "f.$undefined", /would be read as null/],
    [
      '{"$dbPointer": {"$ref": "db.c", "$id": {"$oid": "65a1f0c2e4b0a1b2c3d4e5f6"}}}',
      "f.$dbPointer",
      /read as a DBRef/,
    ],
    ['{"$id": 1, "$ref": "users"}', "f", /in the order \$ref, \$id/],
    ['{"$ref": 5, "$id": 1}', "f.$ref", /not a collection name/],
    ['{"$ref": "users", "$id": 1, "$db": 5}', "f.$db", /not a database name/],
    ['{"$ref": "users", "$id": 1, "$gt": 5}', "f.$gt", /a DBRef holds/],
    ['{"$oid": "65a1f0c2e4b0a1b2c3d4e5f6", "$numberInt": "1"}', "f", /mixes the Extended JSON keys/],
    ['{"$numberInt": "5", "$gt": 1}', "f.$gt", /would be dropped/],
    ['{"$oid": "65a1f0c2e4b0a1b2c3d4e5f6", "x": 1}', "f.x", /holds nothing else/],
    ['{"$in": [1, {"$numberInt": "x"}]}', "f.$in.1.$numberInt", /not a 32-bit integer/],
    ['{"$in": [1e400]}', "f.$in.0", /too large for a double/],
  ];

  it("refuses each wrapper with a value it would repair, naming the path and the fix", () => {
    for (const [value, path, fix] of bad) {
      const message = refusal(fileWith(value));
      expect(message, value).toContain(`config file x.json holds invalid Extended JSON`);
      expect(message, value).toContain(`source.filter.${path}: `);
      expect(message, value).toMatch(fix);
    }
  });

  it("checks every part of the config, not only the filter", () => {
    expect(refusal('{"name":"ej","maxInFlight":{"$numberInt":"12abc"}}')).toMatch(
      /maxInFlight\.\$numberInt: "12abc" is not a 32-bit integer/,
    );
    expect(refusal('{"name":"ej","description":{"$date":"2026-02-30"}}')).toMatch(/description\.\$date/);
  });

  it("takes valid wrappers of every kind, converted exactly", () => {
    const parsed = (value: string) =>
      (parseConfigText(fileWith(value)) as { source: { filter: { f: unknown } } }).source.filter.f;
    expect(parsed('{"$date": "2024-02-29"}')).toEqual(new Date("2024-02-29T00:00:00Z"));
    expect(parsed('{"$date": "2026-01-31T23:59:59.999Z"}')).toEqual(new Date("2026-01-31T23:59:59.999Z"));
    expect(parsed('{"$date": "2026-01-01T01:30+01:30"}')).toEqual(new Date("2026-01-01T00:00:00Z"));
    expect(parsed('{"$date": 1767225600000}')).toEqual(new Date("2026-01-01T00:00:00Z"));
    expect(parsed('{"$date": {"$numberLong": "1767225600000"}}')).toEqual(new Date("2026-01-01T00:00:00Z"));
    expect(parsed('{"$numberInt": "-2147483648"}')).toBe(-2147483648);
    expect(parsed('{"$numberLong": "9007199254740991"}')).toBe(9007199254740991);
    expect(parsed('{"$numberDouble": "-1.5e3"}')).toBe(-1500);
    expect(parsed('{"$numberDouble": "-Infinity"}')).toBe(-Infinity);
    expect(String(parsed('{"$numberDecimal": "12.50"}'))).toBe("12.50");
    expect(parsed('{"$oid": "65A1F0C2E4B0A1B2C3D4E5F6"}')).toEqual(new ObjectId("65a1f0c2e4b0a1b2c3d4e5f6"));
    expect(parsed('{"$uuid": "c8edabc3-f738-4ca3-b68d-ab92a91478a3"}')).toMatchObject({ sub_type: 4 });
    expect(parsed('{"$binary": {"base64": "yO2rw/c4TKO2jauSqRR4ow==", "subType": "04"}}')).toMatchObject({
      sub_type: 4,
    });
    expect(parsed('{"$regex": "^a", "$options": "i"}')).toEqual(new BSONRegExp("^a", "i"));
    expect(
      parsed('{"$regex": {"$regularExpression": {"pattern": "a", "options": ""}}, "$nin": ["ab"]}'),
    ).toEqual({
      $regex: new BSONRegExp("a", ""),
      $nin: ["ab"],
    });
    expect(parsed('{"$not": {"$regex": "^x"}}')).toEqual({ $not: new BSONRegExp("^x", "") });
    expect(parsed('{"$timestamp": {"t": 4294967295, "i": 1}}')).toMatchObject({ _bsontype: "Timestamp" });
    expect(parsed('{"$minKey": 1}')).toMatchObject({ _bsontype: "MinKey" });
    expect(parsed('{"$ref": "users", "$id": 5, "$db": "app", "note": "x"}')).toMatchObject({
      _bsontype: "DBRef",
      collection: "users",
      oid: 5,
      db: "app",
    });
    expect(parsed('{"$ref": "users"}')).toEqual({ $ref: "users" });
    expect(parsed('{"$type": "string"}')).toEqual({ $type: "string" });
  });
});
