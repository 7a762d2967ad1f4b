import { describe, expect, it } from "vitest";
import { ConfigError, configHash, configJsonSchema, parseConfig } from "../../src/lib/config/schema.js";

const minimal = {
  name: "orders",
  source: { collection: "orders" },
  target: { url: "https://svc.example/chunks" },
};

const issuesOf = (raw: unknown): string[] => {
  try {
    parseConfig(raw);
  } catch (err) {
    if (err instanceof ConfigError) return err.issues;
    throw err;
  }
  throw new Error("expected the config to be refused");
};

describe("config schema", () => {
  it("refuses credentials in target.url and header values with control characters", () => {
    expect(issuesOf({ ...minimal, target: { url: "https://user:pw@svc.example/chunks" } }).join()).toMatch(
      /target\.url.*no credentials in the URL.*environment variable/,
    );
    expect(
      issuesOf({
        ...minimal,
        target: { url: "https://svc.example/c", headers: { x: { value: "a\nb" } } },
      }).join(),
    ).toMatch(/target\.headers\.x.*control characters/);
  });

  it("fills every default", () => {
    const c = parseConfig(minimal);
    expect(c).toMatchObject({
      description: "",
      source: { filter: {}, orderBy: "_id", fields: [] },
      chunking: { maxRecords: 500 },
      target: { timeoutMs: 30_000, headers: {} },
      maxInFlight: 1,
      retry: { maxAttempts: 3, maxDeliveryTries: 8, backoffMs: 1000, maxBackoffMs: 60_000 },
      watch: { pollIntervalMs: 2000, chunkTimeoutMs: 600_000 },
    });
  });

  it("takes file sources, workload caps and a schedule, each with its defaults", () => {
    const c = parseConfig({
      ...minimal,
      source: { type: "csv", path: "items.csv", weightField: "size" },
      workload: { maxRecords: 1000, maxWeight: 50 },
      schedule: {},
    });
    expect(c.source).toEqual({
      type: "csv",
      path: "items.csv",
      weightField: "size",
      fields: [],
      delimiter: ",",
    });
    expect(c.workload).toEqual({ maxRecords: 1000, maxWeight: 50 });
    expect(c.schedule).toEqual({ timezone: "UTC", iterations: 1 });
    expect(parseConfig(minimal).workload).toEqual({});
    expect(parseConfig(minimal).schedule).toBeUndefined();
    expect(issuesOf({ ...minimal, source: { type: "parquet", path: "x" } })).toEqual([
      'source.type: must be "mongodb" (or absent), "ndjson" or "csv"',
    ]);
    expect(issuesOf({ ...minimal, source: { type: "ndjson" } })[0]).toContain("source.path");
    expect(issuesOf({ ...minimal, source: { type: "ndjson", path: "x", collection: "y" } })[0]).toContain(
      "unknown field(s) 'collection'",
    );
    expect(issuesOf({ ...minimal, workload: { maxWeight: 5 } })[0]).toContain(
      "workload.maxWeight needs source.weightField",
    );
    expect(issuesOf({ ...minimal, schedule: { cron: "every night" } })[0]).toContain(
      "five-field cron pattern",
    );
  });

  it("reads a document from batch_config, with _id as the name", () => {
    const { name: _n, ...rest } = minimal;
    expect(parseConfig({ _id: "orders", ...rest, updatedAt: new Date() }).name).toBe("orders");
  });

  it("names each bad field and how to fix it", () => {
    const issues = issuesOf({
      ...minimal,
      source: { collection: "orders", filter: { $and: [{ $where: "this.a > 1" }] }, colour: "red" },
      chunking: { maxRecords: -5 },
      target: { url: "ftp://svc.example/x" },
      maxInFlight: 0,
    });
    expect(issues.join("\n")).toContain("'$where' runs JavaScript on the server");
    expect(issues.join("\n")).toContain("unknown field(s) 'colour'");
    expect(issues.join("\n")).toContain("chunking.maxRecords");
    expect(issues.join("\n")).toContain("target.url: an http:// or https:// URL");
    expect(issues.join("\n")).toContain("maxInFlight");
  });

  it("rejects $function and $accumulator anywhere in the filter", () => {
    expect(
      issuesOf({ ...minimal, source: { collection: "o", filter: { $expr: { $function: {} } } } })[0],
    ).toContain("$function");
    expect(
      issuesOf({ ...minimal, source: { collection: "o", filter: { x: { $accumulator: 1 } } } })[0],
    ).toContain("$accumulator");
  });

  it("needs a weight field for a weight limit", () => {
    expect(issuesOf({ ...minimal, chunking: { maxWeight: 10 } })[0]).toContain("needs source.weightField");
  });

  it("keeps secrets out of the document: headers name environment variables", () => {
    const c = parseConfig({
      ...minimal,
      target: {
        url: "http://x.example",
        headers: { Authorization: { env: "SVC_TOKEN", prefix: "Bearer " } },
      },
    });
    expect(c.target.headers.Authorization).toEqual({ env: "SVC_TOKEN", prefix: "Bearer " });
    expect(
      issuesOf({
        ...minimal,
        target: { url: "http://x.example", headers: { Authorization: "Bearer abc" } },
      })[0],
    ).toContain("target.headers.Authorization");
  });

  it("hashes equal configs equally, whatever the key order or description", () => {
    const a = parseConfig(minimal);
    const b = parseConfig({
      target: minimal.target,
      source: minimal.source,
      name: "orders",
      description: "other",
    });
    expect(configHash(a)).toBe(configHash(b));
    expect(configHash(parseConfig({ ...minimal, maxInFlight: 2 }))).not.toBe(configHash(a));
  });

  it("publishes a JSON Schema with the defaults documented", () => {
    const schema = configJsonSchema() as { properties: Record<string, { description?: string }> };
    expect(schema.properties.maxInFlight?.description).toContain("Default: 1");
    expect(Object.keys(schema.properties)).toEqual(
      expect.arrayContaining([
        "name",
        "source",
        "chunking",
        "target",
        "maxInFlight",
        "retry",
        "watch",
        "description",
      ]),
    );
  });
});
