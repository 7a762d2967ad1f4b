/**
 * The initializer's payload — what the dashboard, a schedule, the CLI and an iteration hand-over
 * send to start (or resume) a job. One zod schema: it validates, and it is the JSON Schema the
 * Trigger.dev dashboard shows. Mode-specific rules live here, so every entry point refuses the
 * same requests with the same words.
 */
import { z } from "zod";
import { extendedJsonProblem } from "../../config/extended-json-check.js";
import { configNameSchema, iterationCount, jobIdSchema } from "../../config/schema.js";

/** An order-key value in a payload: plain JSON, or Extended JSON for dates and ObjectIds. */
const keyValueSchema = z
  .unknown()
  .refine((v) => v !== undefined && v !== null, "an order-key value")
  // Checked as written: bson would turn {"$date": "2026-02-30"} into March 2 without a word.
  .superRefine((v, ctx) => {
    const problem = extendedJsonProblem(v);
    if (problem !== undefined) ctx.addIssue({ code: "custom", message: `invalid Extended JSON: ${problem}` });
  })
  .describe(
    'A value of the order key: a string or number, or Extended JSON like {"$date": "2026-01-01T00:00:00Z"} or {"$oid": "…"}.',
  );

const capField = (what: string) =>
  z
    .number()
    .int()
    .positive()
    .optional()
    .describe(`Most ${what} this job takes (overrides the config's workload). Default: the config's.`);

/**
 * The defaults of a payload. The schema the dashboard shows keeps these fields optional, with the
 * default stated (Trigger.dev converts the *output* side of a task's schema, where a zod
 * `.default()` would list the field as required); they are filled in after the checks.
 */
const PAYLOAD_DEFAULTS = { mode: "full", again: false, iterations: 1, acceptConfigChange: false } as const;

/**
 * The payload as the dashboard shows and checks it (the initializer task's `schema`): every rule,
 * optional fields optional, defaults shown. `initializePayloadSchema` is the same with the
 * defaults filled in.
 */
export const dashboardPayloadSchema = z
  .object({
    config: configNameSchema.describe("Name of the config in batch_config (its _id)."),
    jobId: jobIdSchema
      .optional()
      .describe(
        "Job id; give the same one again to resume a job. Default: <config>-<UTC time>-<6 hex>, on Trigger.dev derived from the run (a replay continues the same job).",
      ),
    mode: z
      .enum(["full", "incremental", "backfill", "sample", "exceptions"])
      .optional()
      .meta({ default: PAYLOAD_DEFAULTS.mode })
      .describe(
        "full: every matching record present at start; incremental: the records after the config's watermark; backfill: the records between `from` and `to`; sample: every k-th or the first n records; exceptions: the unresolved exceptions of job `fromJob`, sent again. Default: full.",
      ),
    from: keyValueSchema.optional().describe("Backfill: first order-key value included."),
    to: keyValueSchema.optional().describe("Backfill: last order-key value included."),
    again: z
      .boolean()
      .optional()
      .meta({ default: PAYLOAD_DEFAULTS.again })
      .describe(
        "Backfill: start a new pass over a window that earlier backfill jobs already took. Default: false.",
      ),
    maxRecords: capField("records"),
    maxWeight: z
      .number()
      .positive()
      .optional()
      .describe("Most total weight this job takes. Default: the config's."),
    maxChunks: capField("chunks"),
    iterations: iterationCount
      .optional()
      .meta({ default: PAYLOAD_DEFAULTS.iterations })
      .describe(
        "Incremental/backfill: run up to this many consecutive jobs (stops early when nothing is left or a job fails). Default: 1.",
      ),
    sampleEvery: z
      .number()
      .int()
      .min(1)
      .optional()
      .describe("Sample: take every k-th record (the 1st, (k+1)th, …)."),
    sampleOffset: z
      .number()
      .int()
      .min(0)
      .optional()
      .describe(
        "Sample with sampleEvery k: start at this position (0..k-1), for another disjoint slice. Default: 0.",
      ),
    sampleFirst: z.number().int().min(1).optional().describe("Sample: take the first n records."),
    fromJob: jobIdSchema.optional().describe("With mode exceptions: the job whose exceptions are requeued."),
    description: z.string().max(2000).optional().describe("What this job is for; shown in job statistics."),
    acceptConfigChange: z
      .boolean()
      .optional()
      .meta({ default: PAYLOAD_DEFAULTS.acceptConfigChange })
      .describe(
        "Resume a job although its config changed since it started (the change is recorded). Default: false.",
      ),
    iteration: z
      .object({ index: z.number().int().min(2), of: z.number().int().min(2), firstJob: jobIdSchema })
      .strict()
      .optional()
      .describe("Set by chunkrelay when one job hands over to the next of its iterations; leave it out."),
  })
  .strict()
  .superRefine((given, ctx) => {
    const p = { ...given, mode: given.mode ?? PAYLOAD_DEFAULTS.mode, again: given.again ?? false };
    const iterations = given.iterations ?? PAYLOAD_DEFAULTS.iterations;
    const bad = (path: string, message: string) => ctx.addIssue({ code: "custom", path: [path], message });
    if ((p.mode === "exceptions") !== (p.fromJob !== undefined))
      bad(
        "fromJob",
        "mode exceptions needs fromJob (the job whose exceptions to requeue), and fromJob needs mode exceptions",
      );
    if (p.mode !== "backfill" && (p.from !== undefined || p.to !== undefined || p.again))
      bad("from", "from, to and again belong to mode backfill");
    if (p.mode === "backfill" && p.from === undefined && p.to === undefined)
      bad("to", "mode backfill needs a window: from and/or to (values of the order key)");
    const capped = p.maxRecords !== undefined || p.maxWeight !== undefined || p.maxChunks !== undefined;
    if ((capped || iterations > 1) && p.mode !== "incremental" && p.mode !== "backfill")
      bad(
        "maxRecords",
        "workload caps and iterations belong to modes incremental and backfill (a capped job leaves the rest to the next one); for a small slice use mode sample",
      );
    if (p.mode === "sample" && (p.sampleEvery === undefined) === (p.sampleFirst === undefined))
      bad(
        "sampleEvery",
        "mode sample needs exactly one of sampleEvery (every k-th record) or sampleFirst (the first n)",
      );
    if (p.mode !== "sample" && (p.sampleEvery !== undefined || p.sampleFirst !== undefined))
      bad("sampleEvery", "sampleEvery and sampleFirst belong to mode sample");
    if (p.sampleOffset !== undefined && (p.sampleEvery === undefined || p.sampleOffset >= p.sampleEvery))
      bad("sampleOffset", "sampleOffset needs sampleEvery k and must be below it (0..k-1)");
  });

export const initializePayloadSchema = dashboardPayloadSchema.transform((p) => ({
  ...p,
  mode: p.mode ?? PAYLOAD_DEFAULTS.mode,
  again: p.again ?? PAYLOAD_DEFAULTS.again,
  iterations: p.iterations ?? PAYLOAD_DEFAULTS.iterations,
  acceptConfigChange: p.acceptConfigChange ?? PAYLOAD_DEFAULTS.acceptConfigChange,
}));

export type InitializePayload = z.input<typeof initializePayloadSchema>;
export type InitializeRequest = z.output<typeof initializePayloadSchema>;
