/**
 * The hand-over on Trigger.dev: the next step is a `trigger()` of the next task with an
 * idempotency key built from business ids (`handover.ts`), made global-scope so a replay of the
 * step (a new run id) hands over under the same key instead of starting a second chain. The
 * trigger functions are passed in, so this wiring is testable without the platform.
 */
import type { HandOver, DispatchPayload, WatchPayload } from "../../steps/handover.js";

/** Idempotency keys live this long (Trigger.dev's default is 30 days; we say it explicitly). */
export const IDEMPOTENCY_TTL = "30d";

export interface TriggerOptions {
  idempotencyKey: string;
  idempotencyKeyTTL: string;
  delay?: Date;
  tags: string[];
  /**
   * Server runs only: the job id. The server task's queue allows one run at a time per key, so
   * two server runs of one job (a hand-over and a replay, a heal) never overlap.
   */
  concurrencyKey?: string;
}

export interface TriggerFunctions {
  /** `idempotencyKeys.create(key, { scope: "global" })`. */
  globalKey(key: string): Promise<string>;
  triggerInitializer(payload: Record<string, unknown>, options: TriggerOptions): Promise<unknown>;
  triggerServer(payload: DispatchPayload, options: TriggerOptions): Promise<unknown>;
  triggerWatcher(payload: WatchPayload, options: TriggerOptions): Promise<unknown>;
  /** The config a job belongs to, for the `config:` tag (undefined: the job is unknown). */
  configOf(jobId: string): Promise<string | undefined>;
  now(): Date;
}

/** A tag as Trigger.dev takes it: at most 128 characters. */
const tag = (text: string) => text.slice(0, 128);

/**
 * Run tags (at most 10 per run) that let the dashboard filter a chain's runs by job, config and
 * chunk. The `job:` tag also lets a replayed initializer find the job it started (replays copy
 * the run's tags).
 */
export function runTags(jobId: string, config: string | undefined, chunk?: number): string[] {
  const tags = [tag(`job:${jobId}`)];
  if (config !== undefined) tags.push(tag(`config:${config}`));
  if (chunk !== undefined) tags.push(`chunk:${chunk}`);
  return tags;
}

export function createTriggerHandOver(fns: TriggerFunctions): HandOver {
  return {
    async initialize(payload, key) {
      const jobId = String(payload.jobId);
      await fns.triggerInitializer(payload, {
        idempotencyKey: await fns.globalKey(key),
        idempotencyKeyTTL: IDEMPOTENCY_TTL,
        tags: runTags(jobId, typeof payload.config === "string" ? payload.config : await fns.configOf(jobId)),
      });
    },
    async serve(payload, key, delayMs) {
      await fns.triggerServer(payload, {
        idempotencyKey: await fns.globalKey(key),
        idempotencyKeyTTL: IDEMPOTENCY_TTL,
        // A delayed trigger holds no concurrency slot while it waits (unlike wait.for).
        ...(delayMs && delayMs > 0 ? { delay: new Date(fns.now().getTime() + delayMs) } : {}),
        tags: runTags(payload.jobId, await fns.configOf(payload.jobId)),
        concurrencyKey: payload.jobId,
      });
    },
    async watch(payload, key) {
      await fns.triggerWatcher(payload, {
        idempotencyKey: await fns.globalKey(key),
        idempotencyKeyTTL: IDEMPOTENCY_TTL,
        tags: runTags(payload.jobId, await fns.configOf(payload.jobId), payload.chunk),
      });
    },
  };
}
