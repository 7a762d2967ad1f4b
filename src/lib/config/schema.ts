/**
 * The batch config: where records come from, how they are cut into chunks, where they are sent
 * and how their completion is watched. One zod schema is the single source of truth — it
 * validates documents read from `batch_config`, files given to `config apply`, and it is
 * published as JSON Schema (`npx chunkrelay config schema`). Every field states its default.
 */
import { createHash } from "node:crypto";
import { EJSON } from "bson";
import { z } from "zod";
import { filterProblem } from "./filter-check.js";

/** Query operators that would run JavaScript on the server; never allowed in a source filter. */
const FORBIDDEN_OPERATORS = new Set(["$where", "$function", "$accumulator"]);

function findForbidden(value: unknown, path: string[]): string | undefined {
  if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i++) {
      const found = findForbidden(value[i], [...path, String(i)]);
      if (found) return found;
    }
    return undefined;
  }
  if (value === null || typeof value !== "object") return undefined;
  if ((value as { _bsontype?: string })._bsontype !== undefined || value instanceof Date) return undefined;
  for (const [k, v] of Object.entries(value)) {
    if (FORBIDDEN_OPERATORS.has(k)) return [...path, k].join(".");
    const found = findForbidden(v, [...path, k]);
    if (found) return found;
  }
  return undefined;
}

/** True for a timezone this runtime (and so Trigger.dev's) knows. */
function isTimeZone(zone: string): boolean {
  try {
    new Intl.DateTimeFormat("en-US", { timeZone: zone });
    return true;
  } catch {
    return false;
  }
}

const CRON_FIELDS = [
  { name: "minute", min: 0, max: 59 },
  { name: "hour", min: 0, max: 23 },
  { name: "day of month", min: 1, max: 31 },
  {
    name: "month",
    min: 1,
    max: 12,
    names: ["JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"],
  },
  { name: "day of week", min: 0, max: 7, names: ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"] },
] as const;

/** What is wrong with a five-field cron pattern, or undefined. */
export function cronProblem(pattern: string): string | undefined {
  const fields = pattern.trim().split(/\s+/);
  if (fields.length !== 5) return `'${pattern}' has ${fields.length} field(s), not 5`;
  for (let i = 0; i < 5; i++) {
    const spec = CRON_FIELDS[i] as (typeof CRON_FIELDS)[number];
    const value = (v: string): number | undefined => {
      if (/^\d+$/.test(v)) return Number(v);
      const names: readonly string[] = "names" in spec ? spec.names : [];
      const at = names.indexOf(v.toUpperCase());
      return at < 0 ? undefined : at + (spec.min === 1 ? 1 : 0);
    };
    for (const item of (fields[i] as string).split(",")) {
      const m = /^(\*|([^-/]+)(?:-([^/]+))?)(?:\/(\d+))?$/.exec(item);
      if (!m) return `${spec.name} '${item}' is not a value, range, list or step`;
      if (m[4] !== undefined && Number(m[4]) < 1) return `${spec.name} '${item}' has a step of 0`;
      if (m[1] === "*") continue;
      for (const part of [m[2], m[3]]) {
        if (part === undefined) continue;
        const n = value(part);
        if (n === undefined || n < spec.min || n > spec.max) {
          return `${spec.name} '${part}' is outside ${spec.min}–${spec.max}`;
        }
      }
    }
  }
  return undefined;
}

/** Config names and job ids: safe in keys, tags, file names and URLs. */
export const configNameSchema = z
  .string()
  .min(1)
  .max(120)
  .regex(/^[A-Za-z0-9][A-Za-z0-9_.:-]*$/, "letters, digits and _ . : - (starting with a letter or digit)");
export const jobIdSchema = z
  .string()
  .min(1)
  .max(200)
  .regex(/^[A-Za-z0-9][A-Za-z0-9_.:-]*$/, "letters, digits and _ . : - (starting with a letter or digit)");

const fieldPath = z
  .string()
  .min(1)
  .regex(/^[^$.][^$]*$/, "a field path like `status` or `meta.size` (no leading '.' or '$')")
  .refine((p) => !p.split(".").some((s) => s === ""), "a field path must not contain empty segments");

const filterSchema = z
  .record(z.string(), z.unknown())
  .superRefine((filter, ctx) => {
    const bad = findForbidden(filter, []);
    if (bad) {
      ctx.addIssue({
        code: "custom",
        message: `'${bad.split(".").pop()}' runs JavaScript on the server and is not allowed (at filter.${bad}); express the condition with query operators or $expr`,
      });
      return;
    }
    const problem = filterProblem(filter);
    if (problem) ctx.addIssue({ code: "custom", message: problem });
  })
  .describe("MongoDB query selecting the records (Extended JSON in files). Default: {} (every document).");

/** CR, LF and other control characters (tab aside) would split or corrupt a request's headers. */
export function hasControlCharacter(text: string): boolean {
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if ((c < 0x20 && c !== 0x09) || c === 0x7f) return true;
  }
  return false;
}
const headerText = z
  .string()
  .refine((v) => !hasControlCharacter(v), "no control characters (CR, LF, …) in a header value");

const headerValueSchema = z.union([
  z
    .object({
      env: z
        .string()
        .regex(/^[A-Z_][A-Z0-9_]*$/, "an environment variable name like BATCH_SERVICE_TOKEN")
        .describe("Name of the environment variable holding the secret value."),
      prefix: headerText.default("").describe('Text put before the secret, e.g. "Bearer ". Default: "".'),
    })
    .strict(),
  z
    .object({
      value: headerText.describe("A literal, non-secret value (secrets go through `env`)."),
    })
    .strict(),
]);

const weightFieldSchema = fieldPath
  .optional()
  .describe(
    "Numeric field giving each record's weight (chunking.maxWeight, workload.maxWeight). Default: none.",
  );

const mongoSourceSchema = z
  .object({
    type: z.literal("mongodb").optional().describe('"mongodb" (the default when type is absent).'),
    collection: z
      .string()
      .min(1)
      .regex(/^[^$\0]+$/, "a collection name without '$'")
      .describe("Collection holding the records. Required."),
    filter: filterSchema.default({}),
    orderBy: fieldPath
      .default("_id")
      .describe(
        "Field the records are taken in, oldest first (ascending; ties by _id). Incremental jobs need it to grow with new records (an ObjectId _id or a creation time). Index it. Default: _id.",
      ),
    fields: z
      .array(fieldPath)
      .max(200)
      .default([])
      .describe("Fields sent to the service besides the record id. Default: [] (only the id)."),
    weightField: weightFieldSchema,
    settleMs: z
      .number()
      .int()
      .min(0)
      .max(7 * 86_400_000)
      .default(0)
      .describe(
        "Incremental jobs leave out records whose order key (a date, or an ObjectId's time) is newer than this many ms, so records other writers are still inserting with slightly older keys are not skipped. Default: 0.",
      ),
  })
  .strict()
  .describe("Records from a MongoDB collection, read when each chunk is sent.");

const fileSourceFields = {
  path: z
    .string()
    .min(1)
    .describe(
      "File path (relative to the working directory of the runner). Records are taken in file order; the record id and order key is the record number (1 = the first record), so appending records to the file is what incremental jobs pick up. Required.",
    ),
  fields: z
    .array(fieldPath)
    .max(200)
    .default([])
    .describe("Fields of each record sent to the service. Default: [] (every field)."),
  weightField: weightFieldSchema,
};

const ndjsonSourceSchema = z
  .object({
    type: z
      .literal("ndjson")
      .describe("One JSON document per line (Extended JSON allowed); blank lines are skipped."),
    ...fileSourceFields,
  })
  .strict();

const csvSourceSchema = z
  .object({
    type: z.literal("csv").describe("Comma-separated values with a header row naming the fields."),
    ...fileSourceFields,
    delimiter: z.string().length(1).default(",").describe('Field delimiter. Default: ",".'),
  })
  .strict();

const sourceSchema = z
  .discriminatedUnion("type", [mongoSourceSchema, ndjsonSourceSchema, csvSourceSchema])
  .describe(
    "Where the records come from: a MongoDB collection (default), or an NDJSON / CSV file whose records are copied into batch_details when a job is planned.",
  );

const capSchema = (what: string) =>
  z.number().int().positive().optional().describe(`Most ${what} one job takes. Default: no limit.`);

const workloadSchema = z
  .object({
    maxRecords: capSchema("records"),
    maxWeight: z
      .number()
      .positive()
      .optional()
      .describe("Most total weight one job takes (needs source.weightField). Default: no limit."),
    maxChunks: capSchema("chunks"),
  })
  .strict()
  .prefault({})
  .describe(
    "Caps on one incremental or backfill job; the rest of the backlog stays for the next job. A job always takes at least one record. Overridable per run (--max-records, --max-weight, --max-chunks).",
  );

/** How many consecutive jobs one invocation may run (config schedules and payloads alike). */
export const iterationCount = z.number().int().min(1).max(1000);

const scheduleSchema = z
  .object({
    cron: z
      .string()
      .refine((c) => cronProblem(c) === undefined, {
        error: (issue) =>
          `${cronProblem(String(issue.input))}; a five-field cron pattern looks like '0 2 * * *'`,
      })
      .optional()
      .describe(
        "This config's own cron pattern (synced to Trigger.dev by `chunkrelay schedule --sync`). Default: none — the config runs at the nightlyIncremental task's declared time (CHUNKRELAY_NIGHTLY_CRON, '0 2 * * *').",
      ),
    timezone: z
      .string()
      .min(1)
      .refine(isTimeZone, "an IANA timezone like 'Europe/Berlin' or 'UTC'")
      .default("UTC")
      .describe('IANA timezone of `cron`, e.g. "Europe/Berlin". Default: "UTC".'),
    iterations: iterationCount
      .default(1)
      .describe("Consecutive incremental jobs per scheduled run (each capped by workload). Default: 1."),
  })
  .strict()
  .describe("Run an incremental job of this config on a schedule. Default: not scheduled.");

/**
 * The record bound of a chunk limited by weight alone: records with a missing or zero weight would
 * otherwise never close one (one huge POST, a `$in` past MongoDB's 16 MB limit).
 */
export const MAX_RECORDS_WITH_WEIGHT_ONLY = 10_000;

export const configSchema = z
  .object({
    name: configNameSchema.describe("Config name, stored as the document's _id. Required."),
    description: z.string().max(2000).default("").describe('What this config is for. Default: "".'),
    source: sourceSchema,
    chunking: z
      .object({
        maxRecords: z
          .number()
          .int()
          .positive()
          .max(100_000)
          .optional()
          .describe(
            "Most records in one chunk. Default: 500 without maxWeight; 10000 with maxWeight alone (records without weight still close chunks).",
          ),
        maxWeight: z
          .number()
          .positive()
          .optional()
          .describe("Most total weight in one chunk (needs source.weightField). Default: none."),
      })
      .strict()
      .prefault({})
      .transform((c) =>
        c.maxRecords !== undefined
          ? c
          : { ...c, maxRecords: c.maxWeight === undefined ? 500 : MAX_RECORDS_WITH_WEIGHT_ONLY },
      )
      .describe("How records are cut into chunks; whichever limit is hit first closes a chunk."),
    target: z
      .object({
        url: z
          .url({ protocol: /^https?$/, error: "an http:// or https:// URL" })
          .refine((u) => {
            try {
              const parsed = new URL(u);
              return parsed.username === "" && parsed.password === "";
            } catch {
              return true; // not a URL: the check above reports it
            }
          }, 'no credentials in the URL (they would be stored in batch_config in plain text): send them as a header taken from an environment variable, e.g. headers.authorization: {env: "BATCH_SERVICE_TOKEN", prefix: "Bearer "}')
          .describe("The batch service endpoint chunks are POSTed to. Required."),
        timeoutMs: z
          .number()
          .int()
          .min(100)
          .max(600_000)
          .default(30_000)
          .describe("Timeout of one delivery request, in ms. Default: 30000."),
        headers: z
          .record(z.string().regex(/^[A-Za-z0-9-]+$/, "an HTTP header name"), headerValueSchema)
          .default({})
          .describe("Extra request headers; secret values are named by environment variable. Default: {}."),
      })
      .strict(),
    workload: workloadSchema,
    schedule: scheduleSchema.optional(),
    maxInFlight: z
      .number()
      .int()
      .min(1)
      .max(64)
      .default(1)
      .describe("Chunks of one job in flight at once. Default: 1 (strictly one chunk at a time)."),
    retry: z
      .object({
        maxAttempts: z
          .number()
          .int()
          .min(1)
          .max(100)
          .default(3)
          .describe("Attempts per chunk (failed records are re-sent until then). Default: 3."),
        maxDeliveryTries: z
          .number()
          .int()
          .min(1)
          .max(1000)
          .default(8)
          .describe("HTTP tries of one attempt before the chunk fails (5xx, timeouts, 429/503). Default: 8."),
        backoffMs: z
          .number()
          .int()
          .min(1)
          .max(3_600_000)
          .default(1000)
          .describe("First retry delay, doubled per try, with jitter. Default: 1000."),
        maxBackoffMs: z
          .number()
          .int()
          .min(1)
          .max(86_400_000)
          .default(60_000)
          .describe("Cap of the retry delay, a service's Retry-After included. Default: 60000."),
      })
      .strict()
      .prefault({}),
    watch: z
      .object({
        pollIntervalMs: z
          .number()
          .int()
          .min(10)
          .max(3_600_000)
          .default(2000)
          .describe(
            "How often the watcher counts a chunk's statuses. Default: 2000. On Trigger.dev cloud, values above 60000 free the concurrency slot while waiting.",
          ),
        chunkTimeoutMs: z
          .number()
          .int()
          .min(100)
          .max(7 * 86_400_000)
          .default(600_000)
          .describe(
            "How long an accepted chunk may take before it is sent again as a new attempt. Default: 600000.",
          ),
      })
      .strict()
      .prefault({}),
  })
  .strict()
  .superRefine((c, ctx) => {
    for (const part of ["workload", "chunking"] as const) {
      if (c[part].maxWeight !== undefined && !c.source.weightField) {
        ctx.addIssue({
          code: "custom",
          path: [part, "maxWeight"],
          message: `${part}.maxWeight needs source.weightField (the numeric field holding each record's weight)`,
        });
      }
    }
    if (c.retry.maxBackoffMs < c.retry.backoffMs) {
      ctx.addIssue({
        code: "custom",
        path: ["retry", "maxBackoffMs"],
        message: "retry.maxBackoffMs must be at least retry.backoffMs",
      });
    }
  });

export type BatchConfig = z.infer<typeof configSchema>;
export type SourceConfig = BatchConfig["source"];
export type MongoSourceConfig = z.infer<typeof mongoSourceSchema>;

/** A file source: records carry their fields and are ordered by record number. */
export const isFileSource = (
  source: SourceConfig,
): source is Extract<SourceConfig, { type: "ndjson" | "csv" }> =>
  source.type === "ndjson" || source.type === "csv";

/** The source's order key as shown to users (files are ordered by record number). */
export const orderKeyOf = (source: SourceConfig): string =>
  isFileSource(source) ? "(record number)" : source.orderBy;
export type BatchConfigInput = z.input<typeof configSchema>;

/** A config that failed validation: the message names every bad field and how to fix it. */
export class ConfigError extends Error {
  constructor(
    readonly configName: string,
    readonly issues: string[],
  ) {
    super(`config '${configName}' is invalid:\n${issues.map((i) => `  - ${i}`).join("\n")}`);
    this.name = "ConfigError";
  }
}

export function formatIssues(error: z.ZodError): string[] {
  return error.issues.map((issue) => {
    const path = issue.path.length > 0 ? issue.path.join(".") : "(config)";
    if (issue.code === "invalid_union" && path === "source.type") {
      return `source.type: must be "mongodb" (or absent), "ndjson" or "csv"`;
    }
    if (issue.code === "unrecognized_keys") {
      return `${path === "(config)" ? "" : `${path}: `}unknown field(s) ${issue.keys.map((k) => `'${k}'`).join(", ")}; remove them or check the spelling (see \`npx chunkrelay config schema\`)`;
    }
    return `${path}: ${issue.message}`;
  });
}

/** Validates a config document (from `batch_config`, with `_id` as the name) or a file. */
export function parseConfig(raw: unknown): BatchConfig {
  let input = raw;
  if (input && typeof input === "object" && !Array.isArray(input)) {
    const { _id, updatedAt: _u, createdAt: _c, ...rest } = input as Record<string, unknown>;
    input = _id !== undefined && rest.name === undefined ? { name: _id, ...rest } : rest;
    if (_id !== undefined && rest.name !== undefined && rest.name !== _id) {
      throw new ConfigError(JSON.stringify(_id), [
        `name: ${JSON.stringify(rest.name)} differs from _id ${JSON.stringify(_id)}; remove one of them`,
      ]);
    }
  }
  const proto = prototypeKeyIn(input, []);
  if (proto !== undefined) {
    const named = input && typeof input === "object" && "name" in input ? input.name : undefined;
    throw new ConfigError(typeof named === "string" ? named : "?", [
      `${proto}: a key named __proto__ would be dropped or misread; rename it`,
    ]);
  }
  const parsed = configSchema.safeParse(input);
  if (!parsed.success) {
    const named = input && typeof input === "object" && "name" in input ? input.name : undefined;
    const name = typeof named === "string" ? named : "?";
    throw new ConfigError(name, formatIssues(parsed.error));
  }
  return parsed.data;
}

/** The path of the first own `__proto__` key anywhere in a raw config (JSON.parse keeps them). */
function prototypeKeyIn(value: unknown, path: string[]): string | undefined {
  if (value === null || typeof value !== "object" || value instanceof Date) return undefined;
  if ((value as { _bsontype?: string })._bsontype !== undefined) return undefined;
  for (const key of Object.keys(value)) {
    if (key === "__proto__") return [...path, key].join(".");
    const found = prototypeKeyIn((value as Record<string, unknown>)[key], [...path, key]);
    if (found !== undefined) return found;
  }
  return undefined;
}

/** Sorted-key Extended JSON, so equal configs hash equally whatever their key order. */
function canonical(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(canonical);
  if (
    value &&
    typeof value === "object" &&
    (value as { _bsontype?: string })._bsontype === undefined &&
    !(value instanceof Date)
  ) {
    return Object.fromEntries(
      Object.keys(value)
        .sort()
        .map((k) => [k, canonical((value as Record<string, unknown>)[k])]),
    );
  }
  return value;
}

/**
 * A short hash of everything that changes what a job does (not the description). Stored on every
 * job and chunk, so a run can tell when it continues under a different config.
 */
export function configHash(config: BatchConfig): string {
  const { description: _d, ...rest } = config;
  const text = EJSON.stringify(canonical(rest), { relaxed: false });
  return createHash("sha256").update(text).digest("hex").slice(0, 16);
}

/** The JSON Schema users see in editors and in the Trigger.dev dashboard docs. */
export function configJsonSchema(): Record<string, unknown> {
  return z.toJSONSchema(configSchema, { io: "input", unrepresentable: "any" });
}
