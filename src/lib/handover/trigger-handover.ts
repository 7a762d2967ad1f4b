/**
 * The hand-over on Trigger.dev: the next step is a `trigger()` of the next task with an
 * idempotency key built from business ids (`handover.ts`), made global-scope so a replay of the
 * step (a new run id) hands over under the same key instead of starting a second chain. The
 * trigger functions are passed in, so this wiring is testable without the platform.
 */
import type { HandOver, ServePayload, WatchPayload } from "./handover.js";

/** Idempotency keys live this long (Trigger.dev's default is 30 days; we say it explicitly). */
export const IDEMPOTENCY_TTL = "30d";

export interface TriggerOptions {
  idempotencyKey: string;
  idempotencyKeyTTL: string;
  delay?: Date;
  tags: string[];
}

export interface TriggerFunctions {
  /** `idempotencyKeys.create(key, { scope: "global" })`. */
  globalKey(key: string): Promise<string>;
  triggerInitializer(payload: Record<string, unknown>, options: TriggerOptions): Promise<unknown>;
  triggerServer(payload: ServePayload, options: TriggerOptions): Promise<unknown>;
  triggerWatcher(payload: WatchPayload, options: TriggerOptions): Promise<unknown>;
  now(): Date;
}

/** Run tags (at most 10 per run, 128 chars each) that let the dashboard filter by job and chunk. */
export function runTags(jobId: string, chunk?: number): string[] {
  const tags = [`job:${jobId}`.slice(0, 128)];
  if (chunk !== undefined) tags.push(`chunk:${chunk}`);
  return tags;
}

export function createTriggerHandOver(fns: TriggerFunctions): HandOver {
  return {
    async initialize(payload, key) {
      await fns.triggerInitializer(payload, {
        idempotencyKey: await fns.globalKey(key),
        idempotencyKeyTTL: IDEMPOTENCY_TTL,
        tags: runTags(String(payload.jobId)),
      });
    },
    async serve(payload, key, delayMs) {
      await fns.triggerServer(payload, {
        idempotencyKey: await fns.globalKey(key),
        idempotencyKeyTTL: IDEMPOTENCY_TTL,
        // A delayed trigger holds no concurrency slot while it waits (unlike wait.for).
        ...(delayMs && delayMs > 0 ? { delay: new Date(fns.now().getTime() + delayMs) } : {}),
        tags: runTags(payload.jobId),
      });
    },
    async watch(payload, key) {
      await fns.triggerWatcher(payload, {
        idempotencyKey: await fns.globalKey(key),
        idempotencyKeyTTL: IDEMPOTENCY_TTL,
        tags: runTags(payload.jobId, payload.chunk),
      });
    },
  };
}
