/**
 * The batch config: where records come from, how they are cut into chunks, where they are sent
 * and how their completion is watched. One zod schema is the single source of truth — it
 * validates documents read from `batch_config`, files given to `config apply`, and it is
 * published as JSON Schema (`npx chunkrelay config schema`). Every field states its default.
 */
import { createHash } from "node:crypto";
import { EJSON } from "bson";
import cronParser from "cron-parser";
import cronstrue from "cronstrue";
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

/**
 * The zones Trigger.dev takes: "UTC" and the canonical names of `Intl.supportedValuesOf`
 * (its webapp's checkSchedule and upsertTaskSchedule), not every alias `Intl.DateTimeFormat`
 * reads — "Asia/Kolkata", "US/Pacific", "GMT" or "europe/berlin" are refused there.
 */
const TIME_ZONES = new Set(["UTC", ...Intl.supportedValuesOf("timeZone")]);

/** What is wrong with a schedule's timezone, or undefined. */
export function timeZoneProblem(zone: string): string | undefined {
  if (TIME_ZONES.has(zone)) return undefined;
  let canonical: string | undefined;
  try {
    canonical = new Intl.DateTimeFormat("en-US", { timeZone: zone }).resolvedOptions().timeZone;
  } catch {
    canonical = undefined;
  }
  return canonical !== undefined && TIME_ZONES.has(canonical)
    ? `'${zone}' is an alias Trigger.dev refuses; use its canonical name '${canonical}'`
    : `'${zone}' is not an IANA timezone Trigger.dev takes; use a name like 'Europe/Berlin' or 'UTC'`;
}

const MONTH_NAMES = ["JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"];
const DAY_NAMES = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"];
const DAYS_IN_MONTH = [31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];

const CRON_FIELDS = [
  { name: "minute", min: 0, max: 59 },
  { name: "hour", min: 0, max: 23 },
  { name: "day of month", min: 1, max: 31 },
  { name: "month", min: 1, max: 12, names: MONTH_NAMES, first: 1 },
  { name: "day of week", min: 0, max: 7, names: DAY_NAMES, first: 0 },
] as const;
type CronField = (typeof CRON_FIELDS)[number];

/** cron-parser's macros (its `predefined`), which Trigger.dev takes as they are. */
const CRON_MACROS = new Set(["@yearly", "@monthly", "@weekly", "@daily", "@hourly"]);

/** A number or (in month and day of week) a three-letter name, as cron-parser reads it. */
function cronValue(spec: CronField, text: string): number | undefined {
  // One digit in day of week: cronstrue (which Trigger.dev describes schedules with) fails on "07".
  if (/^\d+$/.test(text)) return spec.name === "day of week" && text.length > 1 ? undefined : Number(text);
  if (!("names" in spec) || !/^[A-Za-z]{3}$/.test(text)) return undefined;
  const at = spec.names.indexOf(text.toUpperCase());
  return at < 0 ? undefined : at + spec.first;
}

/**
 * What is wrong with a cron pattern of a config's schedule, or undefined. The pattern goes to
 * Trigger.dev (`chunkrelay schedule --sync`, schedules.create), whose webapp checks it with
 * `CronPattern` (triggerdotdev/trigger.dev apps/webapp/app/v3/schedules.ts): more than five
 * space-separated parts are refused, the rest must parse with the `cron-parser` package, v4
 * (`parseExpression`); the schedule is then described with `cronstrue` and its next time computed
 * with cron-parser (upsertTaskSchedule.server.ts, calculateNextSchedule.server.ts). Taken here is
 * what all of these take, and only in the forms that mean what they say:
 * - five fields separated by single spaces, or a macro: @yearly @monthly @weekly @daily @hourly;
 * - per field a list of `*`, values and ranges, each with an optional `/step` (step ≥ 1); names
 *   JAN–DEC and SUN–SAT (any case) in month and day of week, whose 0 and 7 are both Sunday;
 * - `?` for `*` in day of month and day of week;
 * - `L` (the last day) in day of month's list; `5L`/`FRIL` (the month's last Friday) in day of
 *   week's list;
 * - `MON#2` (the month's second Monday, 1–5) as the whole day-of-week field.
 * Refused: `W` (cron-parser 4 has no nearest-weekday: "15W", "LW" fail there), `L` alone in day
 * of week (cron-parser parses it and then fails computing the next run), `L` with a range or step
 * (the step would be ignored), `#` in a list or range, a lower-case `l`, seconds, and a day of
 * month past the end of the one month given ("0 0 30 2 *", which cron-parser refuses).
 */
export function cronProblem(pattern: string): string | undefined {
  if (CRON_MACROS.has(pattern)) return undefined;
  const fields = pattern.split(" ");
  if (fields.length !== 5 || fields.some((f) => f === "")) {
    const count = pattern.split(/\s+/).filter((f) => f !== "").length;
    return count === 5
      ? `'${pattern}': separate the five fields by single spaces (Trigger.dev counts every space)`
      : pattern.startsWith("@")
        ? `'${pattern}' is not one of ${[...CRON_MACROS].join(", ")}`
        : `'${pattern}' has ${count} field(s), not 5`;
  }
  const chosen: number[][] = [];
  for (let i = 0; i < 5; i++) {
    const spec = CRON_FIELDS[i] as CronField;
    const field = fields[i] as string;
    const dayOfMonth = i === 2;
    const dayOfWeek = i === 4;
    const values: number[] = [];
    if (dayOfWeek && field.includes("#")) {
      const m = /^([^#,/-]+)#(\d+)$/.exec(field);
      if (!m)
        return `day of week '${field}': # stands alone, as in MON#2 (the second Monday), not in a list, range or step`;
      const day = cronValue(spec, m[1] as string);
      if (day === undefined || day > 7) {
        return `day of week '${field}': # follows one day, 0–7 or SUN–SAT, as in MON#2 (the second Monday)`;
      }
      if (Number(m[2]) < 1 || Number(m[2]) > 5)
        return `day of week '${field}': the occurrence after # is 1 to 5`;
      chosen.push([day]);
      continue;
    }
    if (field.includes("*") && field.includes("?")) return `${spec.name} '${field}': use * or ?, not both`;
    for (const item of field.split(",")) {
      if (dayOfMonth && /w/i.test(item)) {
        return `day of month '${item}': W (nearest weekday) is not supported by Trigger.dev's cron parser (cron-parser 4)`;
      }
      if (dayOfMonth && item === "L") continue;
      if (dayOfWeek && /^(?:[0-7]|[A-Za-z]{3})L$/.test(item)) {
        const day = cronValue(spec, item.slice(0, -1));
        if (day === undefined || day > 7)
          return `day of week '${item}': L follows a day, as in 5L or FRIL (the last Friday)`;
        continue;
      }
      if ((dayOfMonth || dayOfWeek) && /l/i.test(item.replace(/[A-Za-z]{3}/g, ""))) {
        return dayOfMonth
          ? `day of month '${item}': L (the last day) stands alone, without a number, range or step, and in capitals`
          : `day of week '${item}': L follows a day, as in 5L or FRIL (the last Friday), without a range or step, and in capitals`;
      }
      const m = /^(\*|\?|([^-/]+)(?:-([^-/]+))?)(?:\/(\d+))?$/.exec(item);
      if (!m) return `${spec.name} '${item}' is not a value, range, list or step`;
      if (m[1] === "?" && !dayOfMonth && !dayOfWeek) {
        return `${spec.name} '${item}': ? (any) is for day of month and day of week only`;
      }
      const step = m[4] === undefined ? 1 : Number(m[4]);
      if (step < 1) return `${spec.name} '${item}' has a step of 0`;
      let lo: number = spec.min;
      let hi: number = spec.max;
      if (m[1] !== "*" && m[1] !== "?") {
        for (const part of [m[2], m[3]]) {
          if (part === undefined) continue;
          const n = cronValue(spec, part);
          if (n === undefined || n < spec.min || n > spec.max) {
            return `${spec.name} '${part}' is outside ${spec.min}–${spec.max}${"names" in spec ? ` (or ${spec.names[0]}–${spec.names[spec.names.length - 1]})` : ""}${dayOfWeek ? ", one digit" : ""}`;
          }
        }
        lo = cronValue(spec, m[2] as string) as number;
        hi = m[3] !== undefined ? (cronValue(spec, m[3]) as number) : m[4] !== undefined ? spec.max : lo;
        if (lo > hi) return `${spec.name} '${item}' is a range from high to low`;
      }
      for (let v = lo; v <= hi; v += step) values.push(v);
    }
    chosen.push(values);
  }
  // cron-parser refuses a day of month that the one month given never has.
  const months = new Set(chosen[3]);
  const days = chosen[2] as number[];
  if (months.size === 1 && days.length > 0) {
    const month = [...months][0] as number;
    const first = Math.min(...days);
    if (first > (DAYS_IN_MONTH[month - 1] as number)) {
      return `day of month ${first} never comes in ${MONTH_NAMES[month - 1]}`;
    }
  }
  return undefined;
}

/**
 * What Trigger.dev's own code says about a schedule, or undefined: the webapp's `CronPattern`
 * (at most five space-separated parts, `parseExpression` of cron-parser 4 — the version pinned in
 * package.json is the one the webapp uses), the next run computed in the timezone as
 * calculateNextSchedule does, and the description cronstrue gives the dashboard. Run after
 * `cronProblem`, whose messages are friendlier: this one is the authority, so a pattern or zone the
 * platform would refuse at `schedule --sync` is refused at `config apply` instead.
 */
export function platformScheduleProblem(pattern: string, timezone: string): string | undefined {
  // Configs are parsed on every step; a rare pattern can take cron-parser a few hundred ms.
  const key = `${timezone}\u0000${pattern}`;
  if (scheduleVerdicts.has(key)) return scheduleVerdicts.get(key);
  const verdict = checkPlatformSchedule(pattern, timezone);
  if (scheduleVerdicts.size >= 1000) scheduleVerdicts.clear();
  scheduleVerdicts.set(key, verdict);
  return verdict;
}

/** Verdicts of platformScheduleProblem by zone and pattern (bounded). */
const scheduleVerdicts = new Map<string, string | undefined>();

function checkPlatformSchedule(pattern: string, timezone: string): string | undefined {
  if (pattern === "" || pattern.split(" ").length > 5) return `'${pattern}' is not a five-field cron pattern`;
  try {
    cronParser.parseExpression(pattern);
  } catch (err) {
    return `'${pattern}' is refused by Trigger.dev's cron parser: ${err instanceof Error ? err.message : String(err)}`;
  }
  try {
    cronParser.parseExpression(pattern, { tz: timezone, currentDate: new Date() }).next();
  } catch (err) {
    return `'${pattern}' in ${timezone} has no next run for Trigger.dev's scheduler: ${err instanceof Error ? err.message : String(err)}`;
  }
  try {
    cronstrue.toString(pattern);
  } catch (err) {
    return `'${pattern}' cannot be described by the dashboard (cronstrue): ${String(err)}`;
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
      // Legal for MongoDB, but shown in status lines: a newline in it could forge one.
      .refine(
        (c) => !hasControlCharacter(c) && !/[\u0080-\u009f]/.test(c),
        "a collection name without control characters",
      )
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

const brokerList = z
  .array(
    z.string().regex(/^[A-Za-z0-9._-]+:\d{1,5}$/, "a broker address host:port, e.g. kafka-1.internal:9092"),
  )
  .min(1)
  .max(50);

/** Kafka topic names: at most 249 characters of letters, digits, '.', '_' and '-' (Kafka's rule). */
export const kafkaTopicName = z
  .string()
  .min(1)
  .max(249)
  .regex(/^[A-Za-z0-9._-]+$/, "a Kafka topic name: letters, digits, '.', '_' and '-'")
  .refine((t) => t !== "." && t !== "..", "a Kafka topic name other than '.' or '..'");

const kafkaSourceSchema = z
  .object({
    type: z
      .literal("kafka")
      .describe(
        "Messages of a Kafka topic. A record is one message, identified by topic/partition/offset; its JSON value gives the fields. Records are copied into batch_details when a job is planned, so re-sends never depend on topic retention.",
      ),
    brokers: brokerList.describe('Bootstrap brokers, e.g. ["kafka:9092"]. Required.'),
    topic: kafkaTopicName.describe("The topic the records are read from. Required."),
    groupId: z
      .string()
      .min(1)
      .max(249)
      .regex(/^[A-Za-z0-9._:-]+$/, "a consumer group id: letters, digits and . _ : -")
      .optional()
      .describe(
        "Consumer group whose committed offsets mirror the watermark: offsets are committed only as far as every record before them was processed, so another consumer of the group sees exactly what chunkrelay finished. Its committed offsets are also where a config's first incremental job starts. Default: chunkrelay.<config name>.",
      ),
    clientId: z
      .string()
      .min(1)
      .max(100)
      .regex(/^[A-Za-z0-9._-]+$/, "letters, digits, '.', '_' and '-'")
      .default("chunkrelay")
      .describe('Client id sent to the brokers (quotas, logs). Default: "chunkrelay".'),
    startFrom: z
      .enum(["earliest", "latest"])
      .default("earliest")
      .describe(
        'Where the first incremental job of a config starts when the group has no committed offsets: "earliest" (every retained message) or "latest" (only messages produced from then on). Default: "earliest".',
      ),
    fields: z
      .array(fieldPath)
      .max(200)
      .default([])
      .describe("Fields of each message's JSON value sent to the service. Default: [] (every field)."),
    weightField: weightFieldSchema,
    invalidMessages: z
      .enum(["fail", "skip"])
      .default("fail")
      .describe(
        'A message whose value is not a JSON object: "fail" stops the job planning it with an error naming its topic/partition/offset (nothing is committed past it); "skip" leaves it out of the job and produces it to `errorTopic` (required then), as Kafka Connect\'s errors.tolerance=all with a dead-letter topic does. Default: "fail".',
      ),
    timeoutMs: z
      .number()
      .int()
      .min(100)
      .max(600_000)
      .default(10_000)
      .describe("Timeout of one request to a broker (connecting included), in ms. Default: 10000."),
    maxBytesPerPartition: z
      .number()
      .int()
      .min(1024)
      .max(64 * 1024 * 1024)
      .default(1024 * 1024)
      .describe("Most bytes one fetch reads of one partition (memory per partition). Default: 1048576."),
  })
  .strict()
  .describe(
    "Records from a Kafka topic, in per-partition offset windows; the watermark is committed to the consumer group.",
  );

const sourceSchema = z
  .discriminatedUnion("type", [mongoSourceSchema, ndjsonSourceSchema, csvSourceSchema, kafkaSourceSchema])
  .describe(
    "Where the records come from: a MongoDB collection (default), an NDJSON / CSV file, or a Kafka topic; the records of a file or topic are copied into batch_details when a job is planned.",
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
      .max(200, { error: "a cron pattern of at most 200 characters", abort: true })
      .refine((c) => cronProblem(c) === undefined, {
        error: (issue) =>
          `${cronProblem(String(issue.input))}; a five-field cron pattern looks like '0 2 * * *' (Trigger.dev's cron syntax)`,
      })
      .optional()
      .describe(
        "This config's own cron pattern (synced to Trigger.dev by `chunkrelay schedule --sync`). Default: none — the config runs at the nightlyIncremental task's declared time (CHUNKRELAY_NIGHTLY_CRON, '0 2 * * *').",
      ),
    timezone: z
      .string()
      .min(1)
      .refine((z) => timeZoneProblem(z) === undefined, {
        error: (issue) =>
          `an IANA timezone like 'Europe/Berlin' or 'UTC': ${timeZoneProblem(String(issue.input))}`,
      })
      .default("UTC")
      .describe('IANA timezone of `cron`, e.g. "Europe/Berlin". Default: "UTC".'),
    iterations: iterationCount
      .default(1)
      .describe("Consecutive incremental jobs per scheduled run (each capped by workload). Default: 1."),
  })
  .strict()
  .superRefine((s, ctx) => {
    if (s.cron === undefined || cronProblem(s.cron) !== undefined) return;
    const problem = platformScheduleProblem(s.cron, s.timezone);
    if (problem !== undefined)
      ctx.addIssue({
        code: "custom",
        path: ["cron"],
        message: `${problem}; a five-field cron pattern looks like '0 2 * * *' (Trigger.dev's cron syntax)`,
      });
  })
  .describe("Run an incremental job of this config on a schedule. Default: not scheduled.");

/**
 * The record bound of a chunk limited by weight alone: records with a missing or zero weight would
 * otherwise never close one (one huge POST, a `$in` past MongoDB's 16 MB limit).
 */
export const MAX_RECORDS_WITH_WEIGHT_ONLY = 10_000;

/**
 * How chunkrelay learns that a chunk attempt is done (README, "The batch service").
 * - `status`: the service writes each record's status into `batch_details`; the watcher polls.
 * - `response`: the service's 2xx reply carries the outcome — `{"status":"processed"}` for all
 *   records, or `{"results":[{"id":…,"status":"processed"|"failed","error":…}]}`; no watcher.
 * - `callback`: the service POSTs that same outcome to the callback URL in the request when done.
 */
export const COMPLETION_MODES = ["status", "response", "callback"] as const;
export type CompletionMode = (typeof COMPLETION_MODES)[number];
export const completionSchema = z
  .enum(COMPLETION_MODES)
  .default("status")
  .describe(
    'How a chunk is known to be done: "status" (the service writes record statuses into batch_details, the watcher polls), "response" (the reply to the POST carries the results) or "callback" (the service calls back a URL sent in the request). Default: "status".',
  );

/** The default cap on one record's result value, as BSON (`results.maxBytes`). */
export const DEFAULT_RESULT_MAX_BYTES = 16_384;
/** The highest cap a config may set: results live in `batch_details`, beside the record's state. */
export const MAX_RESULT_MAX_BYTES = 1_048_576;

/**
 * Values the service returns per record (`result` in an outcome entry, or written beside the
 * status in "status" mode). Optional with no default, so configs written before it keep their
 * hash; read it with `resultMaxBytes`.
 */
export const resultsSchema = z
  .object({
    maxBytes: z
      .number()
      .int()
      .min(1)
      .max(MAX_RESULT_MAX_BYTES)
      .optional()
      .describe(
        `The largest result kept for one record, in bytes of BSON. A larger value is not kept: the record stays as the service said (processed or failed) and carries resultError saying why. Default: ${DEFAULT_RESULT_MAX_BYTES}.`,
      ),
  })
  .strict()
  .optional()
  .describe(
    `Per-record result values returned by the service. Default: {maxBytes: ${DEFAULT_RESULT_MAX_BYTES}}.`,
  );

/** The cap on one record's result value under `config` (`results.maxBytes`, default 16 KiB). */
export function resultMaxBytes(config: { results?: { maxBytes?: number | undefined } | undefined }): number {
  return config.results?.maxBytes ?? DEFAULT_RESULT_MAX_BYTES;
}

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
    errorTopic: z
      .object({
        topic: kafkaTopicName.describe("The topic set-aside records are produced to. Required."),
        brokers: brokerList
          .optional()
          .describe(
            "Bootstrap brokers of that topic. Default: source.brokers of a Kafka source (else required).",
          ),
      })
      .strict()
      .optional()
      .describe(
        "Also produce every set-aside record (and, with source.invalidMessages 'skip', every skipped message) to a Kafka topic, keyed by job and record id, as the worker system's `error` queue did; batch_exceptions keeps them too. At least once: a crash between the two may produce one again, with the same key. Default: none.",
      ),
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
    completion: completionSchema,
    results: resultsSchema,
    watch: z
      .object({
        pollIntervalMs: z
          .number()
          .int()
          .min(10)
          .max(3_600_000)
          .default(2000)
          .describe(
            "The longest wait between two counts of a chunk's statuses (the watcher polls sooner when the service's recent chunks came back sooner; see minPollIntervalMs). Default: 2000. On Trigger.dev cloud, values above 60000 free the concurrency slot while waiting.",
          ),
        minPollIntervalMs: z
          .number()
          .int()
          .min(10)
          .max(3_600_000)
          .default(10)
          .describe(
            "The shortest wait between two counts. The watcher learns how long this config's chunks take and counts first shortly before a chunk is due, then at growing intervals up to pollIntervalMs; set it equal to pollIntervalMs to count at a fixed interval. Default: 10.",
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
    if (c.errorTopic && !c.errorTopic.brokers && c.source.type !== "kafka") {
      ctx.addIssue({
        code: "custom",
        path: ["errorTopic", "brokers"],
        message: "errorTopic.brokers is required when the source is not a Kafka topic",
      });
    }
    if (c.source.type === "kafka" && c.source.invalidMessages === "skip" && !c.errorTopic) {
      ctx.addIssue({
        code: "custom",
        path: ["source", "invalidMessages"],
        message:
          'source.invalidMessages "skip" needs errorTopic (skipped messages go there, so none is lost); add errorTopic: {topic: "…"} or use "fail"',
      });
    }
    if (c.watch.minPollIntervalMs > c.watch.pollIntervalMs) {
      ctx.addIssue({
        code: "custom",
        path: ["watch", "minPollIntervalMs"],
        message: "watch.minPollIntervalMs must be at most watch.pollIntervalMs",
      });
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

export type KafkaSourceConfig = z.infer<typeof kafkaSourceSchema>;
export const isKafkaSource = (source: SourceConfig): source is KafkaSourceConfig => source.type === "kafka";

/**
 * A source whose records carry their fields (`SourceRecord.data`), copied into batch_details when a
 * job is planned: files and Kafka topics. A collection's records are read when their chunk is sent.
 */
export const carriesData = (
  source: SourceConfig,
): source is Extract<SourceConfig, { type: "ndjson" | "csv" | "kafka" }> =>
  isFileSource(source) || isKafkaSource(source);

/** The consumer group a Kafka source commits its watermark to. */
export const kafkaGroupOf = (config: { name: string; source: KafkaSourceConfig }): string =>
  config.source.groupId ?? `chunkrelay.${config.name}`;

/** The source's order key as shown to users (files by record number, topics by partition offsets). */
export const orderKeyOf = (source: SourceConfig): string =>
  isFileSource(source) ? "(record number)" : isKafkaSource(source) ? "(partition offsets)" : source.orderBy;
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
      return `source.type: must be "mongodb" (or absent), "ndjson", "csv" or "kafka"`;
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
