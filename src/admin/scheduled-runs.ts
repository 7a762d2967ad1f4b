/**
 * Scheduled incremental runs. A config with a `schedule` gets an incremental job per scheduled
 * run: either at the `nightlyIncremental` task's own (declarative) cron — configs without a cron
 * of their own — or at the config's `schedule.cron`, through an imperative Trigger.dev schedule
 * whose externalId is the config name (`chunkrelay schedule --sync` creates or updates them).
 * The scheduler's timestamp only names the job (so replaying a scheduled run resumes the same
 * job instead of starting another); what the job takes is decided by the watermark alone.
 *
 * A stored config that no longer passes validation (written around `config apply`, or valid under
 * an older chunkrelay) is skipped with a warning naming it and the fix; the other configs are
 * still scheduled. Callers learn of each skip through `onSkip` (by default a console warning).
 */
import cronParser from "cron-parser";
import type { ConfigView } from "../queries/config-view.js";
import { EJSON } from "bson";
import { forTerminal } from "../common/terminal-text.js";
import { parseConfigDoc, readConfig, streamScheduledConfigDocs } from "../store/configs.js";
import {
  type BatchConfig,
  ConfigError,
  cronProblem,
  platformScheduleProblem,
  timeZoneProblem,
} from "../config/schema.js";
import { BadInputError, isBadInput } from "../common/errors.js";
import type { InitializePayload } from "../steps/initialize/payload.js";
import type { Store } from "../store/store.js";

/** The Trigger.dev task id of the scheduled task. */
export const NIGHTLY_TASK_ID = "nightly-incremental";

/**
 * The declarative schedule of the nightly task, from CHUNKRELAY_NIGHTLY_CRON (default
 * "0 2 * * *") and CHUNKRELAY_NIGHTLY_TZ (default "UTC"), read when the worker is indexed. Checked
 * as a config's schedule is — cron-parser 4, the next run in the zone, cronstrue — so a value the
 * platform would refuse fails the deploy's indexing step with this message, naming the variable.
 */
export function nightlySchedule(env: Record<string, string | undefined>): {
  pattern: string;
  timezone: string;
} {
  const pattern = env.CHUNKRELAY_NIGHTLY_CRON ?? "0 2 * * *";
  const timezone = env.CHUNKRELAY_NIGHTLY_TZ ?? "UTC";
  const zone = timeZoneProblem(timezone);
  if (zone !== undefined)
    throw new BadInputError(`environment variable CHUNKRELAY_NIGHTLY_TZ is invalid: ${zone}`);
  const cron = cronProblem(pattern) ?? platformScheduleProblem(pattern, timezone);
  if (cron !== undefined)
    throw new BadInputError(`environment variable CHUNKRELAY_NIGHTLY_CRON is invalid: ${cron}`);
  return { pattern, timezone };
}

/** A stored config left out of a scheduled run because it no longer passes validation. */
export interface SkippedConfig {
  /** The config's name (its `_id`, shown as Extended JSON when it is not a string). */
  config: string;
  /** What is wrong and how to fix it, for a person. */
  message: string;
}

export type OnSkippedConfig = (skipped: SkippedConfig) => void;

/** The default: a warning on the console (stderr; the run's log on Trigger.dev). */
export const warnSkippedConfig: OnSkippedConfig = (skipped) => {
  console.warn(`warning: ${forTerminal(skipped.message, { keepNewlines: true })}`);
};

/**
 * Parses a stored config; one that no longer passes validation is reported to `onSkip` and
 * yields undefined. Anything but bad input (a bug) is thrown.
 */
function parseStoredConfig(doc: { _id: unknown }, onSkip: OnSkippedConfig): BatchConfig | undefined {
  try {
    return parseConfigDoc(doc);
  } catch (err) {
    if (!isBadInput(err)) throw err;
    const config = typeof doc._id === "string" ? doc._id : EJSON.stringify({ v: doc._id }).slice(5, -1);
    const problems =
      err instanceof ConfigError ? err.issues.map((i) => `  - ${i}`).join("\n") : `  - ${err.message}`;
    onSkip({
      config,
      message: `config '${config}' in batch_config no longer passes validation and was skipped (the other configs still run); fix its file and store it again with \`npx chunkrelay config apply <file>\`:\n${problems}`,
    });
    return undefined;
  }
}

/**
 * The configs a scheduled run covers: the one named by the schedule's externalId, or — for the
 * task's declarative schedule — every config with a schedule but no cron of its own.
 */
export async function scheduledConfigs(
  store: Store,
  externalId?: string,
  onSkip: OnSkippedConfig = warnSkippedConfig,
): Promise<BatchConfig[]> {
  if (externalId) {
    const config = await readConfig(store, externalId);
    if (!config.schedule) {
      throw new BadInputError(
        `config '${externalId}' has no schedule; add "schedule": {} to it, or delete the Trigger.dev schedule with externalId '${externalId}'`,
      );
    }
    return [config];
  }
  const found: BatchConfig[] = [];
  for await (const doc of streamScheduledConfigDocs(store)) {
    const config = parseStoredConfig(doc, onSkip);
    if (config?.schedule && config.schedule.cron === undefined) found.push(config);
  }
  return found;
}

/** Every config with a schedule, whatever its cron (a local `chunkrelay schedule` runs them all). */
export async function allScheduledConfigs(
  store: Store,
  onSkip: OnSkippedConfig = warnSkippedConfig,
): Promise<BatchConfig[]> {
  const found: BatchConfig[] = [];
  for await (const doc of streamScheduledConfigDocs(store)) {
    const config = parseStoredConfig(doc, onSkip);
    if (config) found.push(config);
  }
  return found;
}

/** `20260122T0200Z`: the scheduled time, to the minute, for job ids. */
const stamp = (at: Date) =>
  at
    .toISOString()
    .replace(/[-:]/g, "")
    .replace(/\d\d\.\d+Z$/, "Z");

/** The initializer payload of one config's scheduled run. */
export function scheduledJobPayload(config: BatchConfig, scheduledAt: Date): InitializePayload {
  const iterations = config.schedule?.iterations ?? 1;
  return {
    config: config.name,
    jobId: `${config.name}-scheduled-${stamp(scheduledAt)}`,
    mode: "incremental",
    ...(iterations > 1 ? { iterations } : {}),
    description: `scheduled incremental run of ${scheduledAt.toISOString()}`,
  };
}

/**
 * One scheduled run: the initializer payloads of the configs it covers, handed to `start` (on
 * Trigger.dev a batchTrigger of the initializer with idempotency keys from the job ids).
 */
export async function startScheduledJobs(
  store: Store,
  run: { externalId?: string; timestamp: Date },
  start: (payloads: InitializePayload[]) => Promise<void>,
  onSkip: OnSkippedConfig = warnSkippedConfig,
): Promise<InitializePayload[]> {
  const configs = await scheduledConfigs(store, run.externalId, onSkip);
  const payloads = configs.map((c) => scheduledJobPayload(c, run.timestamp));
  if (payloads.length > 0) await start(payloads);
  return payloads;
}

export interface ScheduleClient {
  /** `schedules.create` of @trigger.dev/sdk: creates, or updates the one with this deduplicationKey. */
  create(options: {
    task: string;
    cron: string;
    timezone: string;
    externalId: string;
    deduplicationKey: string;
  }): Promise<{ id: string }>;
  /** `schedules.list()`: every schedule of the project (all pages). */
  list(): AsyncIterable<{
    id: string;
    task: string;
    active: boolean;
    deduplicationKey?: string | null | undefined;
  }>;
  /** `schedules.deactivate(id)`. */
  deactivate(id: string): Promise<unknown>;
}

export interface SyncResult {
  synced: Array<{ config: string; cron: string; timezone: string; scheduleId: string }>;
  /** Schedules chunkrelay made for configs that no longer have a cron of their own. */
  deactivated: Array<{ scheduleId: string; config: string }>;
  /** Stored configs that no longer pass validation: their schedules are left as they are. */
  skipped: SkippedConfig[];
}

const DEDUP_PREFIX = "chunkrelay:";

/**
 * Makes the imperative schedules match the configs: one per config with its own cron, created or
 * updated (deduplicated by a key derived from the config name, so syncing twice changes nothing),
 * and those chunkrelay made for configs whose cron is gone (or that are gone) deactivated. A config
 * that no longer passes validation is skipped, and its schedule neither updated nor deactivated:
 * nothing is decided from a document that cannot be read.
 */
export async function syncConfigSchedules(
  store: Store,
  client: ScheduleClient,
  onSkip: OnSkippedConfig = warnSkippedConfig,
): Promise<SyncResult> {
  const synced: SyncResult["synced"] = [];
  const skipped: SkippedConfig[] = [];
  for await (const doc of streamScheduledConfigDocs(store, true)) {
    const config = parseStoredConfig(doc, (s) => {
      skipped.push(s);
      onSkip(s);
    });
    if (!config) continue;
    const cron = config.schedule?.cron;
    if (!cron || !config.schedule) continue;
    const created = await client.create({
      task: NIGHTLY_TASK_ID,
      cron,
      timezone: config.schedule.timezone,
      externalId: config.name,
      deduplicationKey: `${DEDUP_PREFIX}${config.name}`,
    });
    synced.push({ config: config.name, cron, timezone: config.schedule.timezone, scheduleId: created.id });
  }
  const keep = new Set([...synced, ...skipped].map((s) => `${DEDUP_PREFIX}${s.config}`));
  const deactivated: SyncResult["deactivated"] = [];
  for await (const schedule of client.list()) {
    const key = schedule.deduplicationKey ?? "";
    if (
      schedule.task !== NIGHTLY_TASK_ID ||
      !schedule.active ||
      !key.startsWith(DEDUP_PREFIX) ||
      keep.has(key)
    )
      continue;
    await client.deactivate(schedule.id);
    deactivated.push({ scheduleId: schedule.id, config: key.slice(DEDUP_PREFIX.length) });
  }
  return { synced, deactivated, skipped };
}

/**
 * When a config's next scheduled run is: its own cron in its timezone, or (a schedule without a
 * cron) the nightly task's declared time. Undefined when the config has no schedule.
 */
export function nextScheduledRun(
  config: BatchConfig,
  env: Record<string, string | undefined>,
  now: Date,
): ConfigView["schedule"] {
  if (!config.schedule) return undefined;
  let cron = config.schedule.cron;
  let timezone = config.schedule.timezone;
  try {
    if (cron === undefined) {
      // No cron of its own: the config runs with the nightly task, at its declared time.
      const nightly = nightlySchedule(env);
      cron = nightly.pattern;
      timezone = nightly.timezone;
    }
    const at = cronParser.parseExpression(cron, { tz: timezone, currentDate: now }).next().toDate();
    return { cron, timezone, iterations: config.schedule.iterations, nextRunAt: at };
  } catch (err) {
    return {
      cron: cron ?? "?",
      timezone,
      iterations: config.schedule.iterations,
      problem: (err as Error).message,
    };
  }
}
