import { BSONRegExp } from "bson";
import { describe, expect, it } from "vitest";
import {
  ConfigError,
  configHash,
  configJsonSchema,
  cronProblem,
  platformScheduleProblem,
  parseConfig,
} from "../../src/config/schema.js";

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

  it("refuses a collection name with control characters (it would forge lines in `status`)", () => {
    for (const collection of ["orders\n  records 10/10", "orders\r", "a\u009bb", "a\u0007"]) {
      expect(issuesOf({ ...minimal, source: { collection } }).join()).toMatch(
        /source\.collection.*without control characters/,
      );
    }
    expect(() => parseConfig({ ...minimal, source: { collection: "orders.2026 é" } })).not.toThrow();
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
      'source.type: must be "mongodb" (or absent), "ndjson", "csv" or "kafka"',
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

describe("cron patterns: what Trigger.dev's scheduler takes (cron-parser 4, cronstrue)", () => {
  const cronIssue = (cron: string) => {
    try {
      parseConfig({ ...minimal, schedule: { cron } });
      return undefined;
    } catch (err) {
      if (err instanceof ConfigError) return err.issues.join("\n");
      throw err;
    }
  };

  it("takes L, nL, n#k, ? and the macros", () => {
    for (const cron of [
      "0 2 * * *",
      "30 4 * * 1-5",
      "0 0 L * *",
      "0 0 1,15,L * *",
      "0 0 L 2 *",
      "0 0 * * 5L",
      "0 0 * * FRIL",
      "0 0 * * 1,5L",
      "0 0 * * 7L",
      "0 0 * * MON#2",
      "0 0 * * mon#2",
      "0 0 * * 1#5",
      "0 0 ? * MON",
      "0 0 1 * ?",
      "0 0 ?/2 * *",
      "0 0 29 2 *",
      "0 0 1,30 2 *",
      "*/100 * * * *",
      "0 0 * JAN-MAR MON-FRI",
      "0 0 * * 0-7",
      "@daily",
      "@hourly",
      "@weekly",
      "@monthly",
      "@yearly",
    ]) {
      expect(cronProblem(cron), cron).toBeUndefined();
      expect(cronIssue(cron), cron).toBeUndefined();
    }
  });

  it("refuses what Trigger.dev refuses, and forms it would misread, naming the field", () => {
    const refused: Array<[string, RegExp]> = [
      ["foo bar baz qux quux", /minute 'foo'/],
      ["0 0 15W * *", /W \(nearest weekday\) is not supported/],
      ["0 0 LW * *", /W \(nearest weekday\)/],
      ["0 0 * * L", /L follows a day/],
      ["0 0 * * 15L", /L follows a day/],
      ["0 0 * * fril", /in capitals/],
      ["0 0 * * 5L/2", /without a range or step/],
      ["0 0 15L * *", /L \(the last day\) stands alone/],
      ["0 0 L/2 * *", /L \(the last day\) stands alone/],
      ["0 0 L-2 * *", /L \(the last day\) stands alone/],
      ["0 0 * * 1#6", /occurrence after # is 1 to 5/],
      ["0 0 * * 6#0", /occurrence after # is 1 to 5/],
      ["0 0 * * 1#2,3", /# stands alone/],
      ["0 0 * * *#2", /# follows one day/],
      ["? * * * *", /minute '\?'.*day of month and day of week only/],
      ["0 0 *,? * *", /use \* or \?, not both/],
      ["0 0 30 2 *", /day of month 30 never comes in FEB/],
      ["0 0 31 APR *", /day of month 31 never comes in APR/],
      ["0 0 * * SAT-SUN", /from high to low/],
      ["5-1 * * * *", /from high to low/],
      ["0 0 * * 8", /day of week '8' is outside 0–7/],
      ["0 0 * * 07", /one digit/],
      ["* * * *", /4 field\(s\), not 5/],
      ["0 0 0 * * *", /6 field\(s\), not 5/],
      ["0  2 * * *", /single spaces/],
      [" 0 2 * * *", /single spaces/],
      ["@annually", /not one of @yearly/],
      ["@reboot", /not one of @yearly/],
      ["*/0 * * * *", /step of 0/],
      ["60 * * * *", /minute '60' is outside 0–59/],
    ];
    for (const [cron, message] of refused) {
      expect(cronProblem(cron), cron).toMatch(message);
      expect(cronIssue(cron), cron).toMatch(/^schedule\.cron: .*five-field cron pattern/s);
    }
  });

  it("passes everything it takes through Trigger.dev's own parser, next-run computation and description", () => {
    // The platform's code is the authority: whatever the friendlier check takes, cron-parser 4
    // parses, computes a next run for in the zone, and cronstrue describes.
    const parts = [
      "*",
      "?",
      "L",
      "0",
      "1",
      "5",
      "7",
      "12",
      "31",
      "MON",
      "fri",
      "5L",
      "1#2",
      "*/2",
      "1-5",
      "1,2",
    ];
    const more = ["JAN", "?/2", "0-7", "29", "30", "2", "FRIL", "mon#2", "L,15", "*/100", "SAT-SUN"];
    const pool = [...parts, ...more];
    let state = 12345;
    const next = () => {
      state = (state * 1103515245 + 12345) % 2 ** 31;
      return pool[state % pool.length] as string;
    };
    let taken = 0;
    for (let i = 0; i < 6000; i++) {
      const cron = [next(), next(), next(), next(), next()].join(" ");
      if (cronProblem(cron) !== undefined) continue;
      taken++;
      for (const zone of ["UTC", "Europe/Berlin", "Pacific/Chatham", "America/St_Johns"])
        expect(platformScheduleProblem(cron, zone), `${cron} in ${zone}`).toBeUndefined();
    }
    expect(taken).toBeGreaterThan(150);
    // And it refuses on its own what the platform refuses.
    expect(platformScheduleProblem("0 0 * * L", "UTC")).toMatch(/has no next run/);
    expect(platformScheduleProblem("0 0 15W * *", "UTC")).toMatch(/refused by Trigger.dev's cron parser/);
    expect(platformScheduleProblem("0 0 0 * * *", "UTC")).toMatch(/not a five-field/);
    expect(platformScheduleProblem("0 0 * * 07", "UTC")).toMatch(/cronstrue/);
    expect(cronIssue("0 0 * * *")).toBeUndefined();
    // Zones as Trigger.dev takes them: canonical names only, aliases refused with the name to use.
    for (const [zone, message] of [
      ["Asia/Kolkata", /use its canonical name 'Asia\/Calcutta'/],
      ["US/Pacific", /'America\/Los_Angeles'/],
      ["europe/berlin", /'Europe\/Berlin'/],
      ["Etc/GMT+5", /not an IANA timezone Trigger.dev takes/],
    ] as const) {
      expect(
        () => parseConfig({ ...minimal, schedule: { cron: "0 2 * * *", timezone: zone } }),
        zone,
      ).toThrow(message);
    }
    expect(() => parseConfig({ ...minimal, schedule: { cron: "1 ".repeat(200) } })).toThrow(
      /at most 200 characters/,
    );
    expect(() =>
      parseConfig({ ...minimal, schedule: { cron: "0 2 * * *", timezone: "Mars/Olympus" } }),
    ).toThrow(/schedule\.timezone: an IANA timezone/);
  });
});

describe("filter operators: MongoDB's own set", () => {
  const withFilter = (filter: Record<string, unknown>) => ({
    ...minimal,
    source: { collection: "orders", filter },
  });

  it("takes operators the server takes, $sampleRate and $within among them", () => {
    for (const filter of [
      { $sampleRate: 0.25, state: "ready" },
      { $sampleRate: 1 },
      { $and: [{ $sampleRate: 0.5 }, { a: 1 }] },
      {
        loc: {
          $within: {
            $box: [
              [0, 0],
              [1, 1],
            ],
          },
        },
      },
      { loc: { $geoWithin: { $centerSphere: [[0, 0], 0.1] } } },
      { loc: { $geoNear: [0, 0], $maxDistance: 5 } },
      { loc: { $near: { $geometry: { type: "Point", coordinates: [0, 0] } }, $minDistance: 1 } },
      { $text: { $search: "coffee", $language: "en", $caseSensitive: false } },
      { $alwaysTrue: 1 },
      { a: { $in: [1, { b: 2 }] } },
      { tags: { $all: [{ $elemMatch: { x: 1 } }] } },
      { $alwaysFalse: 1 },
      { name: { $regex: "^a", $options: "i" } },
      { tags: { $elemMatch: { $gt: 1, $lt: 5 } } },
    ]) {
      expect(() => parseConfig(withFilter(filter)), JSON.stringify(filter)).not.toThrow();
    }
  });

  it("refuses unknown operators and misplaced or malformed ones, naming the path", () => {
    const refused: Array<[Record<string, unknown>, RegExp]> = [
      [{ $foo: 1 }, /filter\.\$foo: unknown query operator \$foo/],
      [{ a: { $foo: 1 } }, /filter\.a\.\$foo: unknown query operator/],
      [
        {
          loc: {
            $box: [
              [0, 0],
              [1, 1],
            ],
          },
        },
        /unknown query operator \$box/,
      ],
      [{ a: { $search: "x" } }, /unknown query operator \$search/],
      [{ a: { $sampleRate: 0.5 } }, /\$sampleRate combines whole filters/],
      [{ $sampleRate: 1.5 }, /filter\.\$sampleRate: \$sampleRate takes a number from 0 to 1/],
      [{ $sampleRate: "0.5" }, /takes a number from 0 to 1/],
      [{ tags: { $elemMatch: { $sampleRate: 0.5 } } }, /applies to whole documents only/],
      [{ tags: { $elemMatch: { $expr: { $gt: ["$a", 1] } } } }, /applies to whole documents only/],
      [{ $alwaysTrue: 2 }, /\$alwaysTrue is written \{"\$alwaysTrue": 1\}/],
      [{ a: { $options: "i" } }, /filter\.a\.\$options: \$options needs a \$regex/],
      [{ a: { $regex: 5 } }, /\$regex takes a pattern string/],
      [{ loc: { $maxDistance: 5 } }, /\$maxDistance is read only beside \$near/],
      [{ a: { $in: [1, { $gt: 1 }] } }, /filter\.a\.\$in\.1: \$in takes values, not operators/],
      [{ a: { $nin: [{ $exists: true }] } }, /filter\.a\.\$nin\.0: \$nin takes values/],
    ];
    for (const [filter, message] of refused) {
      expect(issuesOf(withFilter(filter)).join("\n"), JSON.stringify(filter)).toMatch(message);
    }
  });

  it("refuses options given both in a regular expression and in $options", () => {
    const regex = new BSONRegExp("^a", "i");
    expect(issuesOf(withFilter({ a: { $regex: regex, $options: "m" } })).join()).toMatch(
      /options set both in the regular expression and in \$options/,
    );
    expect(() => parseConfig(withFilter({ a: { $regex: regex, $nin: ["ab"] } }))).not.toThrow();
  });
});
