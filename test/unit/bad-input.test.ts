/**
 * Bad input, generated: hundreds of malformed configs and task payloads must each be refused
 * with a precise message (a ConfigError naming fields, or a BadInputError), never a crash, a
 * silent acceptance or a retryable error.
 */
import { describe, expect, it } from "vitest";
import { ConfigError, parseConfig } from "../../src/lib/config/schema.js";
import { servePayloadSchema } from "../../src/lib/dispatch/serve.js";
import { initializePayloadSchema } from "../../src/lib/initializer/payload.js";
import { watchPayloadSchema } from "../../src/lib/watcher/watch.js";
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
      { schema: servePayloadSchema, good: { jobId: "j" } },
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
