/**
 * Callbacks on Trigger.dev (configs with `completion: "callback"`): one wait token per chunk
 * attempt. The server step creates it before the request and sends its URL as `callback.url`;
 * the service POSTs its outcome there, which completes the token with that body as output. The
 * watcher run waits with `wait.forToken`: on the platform the run is checkpointed, so it neither
 * polls nor holds a concurrency slot while the service works.
 *
 * The token's idempotency key is the attempt (`callback:<jobId>:<chunk>:<attempt>`), global to
 * the environment: a redelivery of the attempt, a replayed server run and the watcher all get the
 * same token back (`isCached`). Its timeout is the chunk timeout from when the attempt was first
 * sent; a callback that never comes ends the wait with `ok: false`, and the watcher times the
 * attempt out as in "status" mode. The URL is the only credential: no HMAC token is sent.
 */
import { wait } from "@trigger.dev/sdk";
import type { AttemptRef, CallbackArrival, CallbackChannel } from "../../steps/handover.js";

/** How long a token's idempotency key outlives its timeout (a late watcher still finds it). */
const KEY_GRACE_S = 24 * 3600;

export const callbackTokenKey = (ref: AttemptRef) => `callback:${ref.jobId}:${ref.chunk}:${ref.attempt}`;

/** The SDK calls used (injected by tests that run outside a task). */
export interface TokenApi {
  createToken(options: {
    idempotencyKey: string;
    idempotencyKeyTTL: string;
    timeout: Date;
    tags: string[];
  }): Promise<{ id: string; url: string }>;
  forToken(id: string): Promise<{ ok: true; output?: unknown } | { ok: false; error?: unknown }>;
}

const sdkTokens: TokenApi = {
  createToken: (options) => wait.createToken(options),
  forToken: (id) => wait.forToken<unknown>(id),
};

export function triggerCallbacks(api: TokenApi = sdkTokens, now: () => number = Date.now): CallbackChannel {
  const token = (ref: AttemptRef, timeoutMs: number) =>
    api.createToken({
      idempotencyKey: callbackTokenKey(ref),
      idempotencyKeyTTL: `${Math.ceil(timeoutMs / 1000) + KEY_GRACE_S}s`,
      timeout: new Date(now() + timeoutMs),
      // Run tags' form (`job:<id>`), so the dashboard's token list filters by job.
      tags: [`job:${ref.jobId}`.slice(0, 128)],
    });
  return {
    async open(ref, timeoutMs) {
      const t = await token(ref, timeoutMs);
      return { url: t.url };
    },
    async wait(ref, timeoutMs): Promise<CallbackArrival> {
      // The same key: the token the server step created for this attempt (its own timeout holds).
      const t = await token(ref, timeoutMs);
      const result = await api.forToken(t.id);
      return result.ok ? { kind: "called", body: result.output } : { kind: "timedOut" };
    },
  };
}
