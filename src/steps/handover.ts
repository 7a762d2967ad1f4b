/**
 * What every pipeline step receives: its dependencies (store, HTTP, clock, sleep, logger) and
 * the hand-over to the next step. On Trigger.dev the hand-over triggers the next task with an
 * idempotency key; in the local runner it queues the step in-process. Keys are built here, from
 * business ids only (job, chunk, attempt, try), so a replayed step hands over under the same key.
 */
import type { PostChunk } from "./dispatch/post-chunk.js";
import type { ReportProgress } from "../queries/progress.js";
import type { Store } from "../store/store.js";
import type { StepCache } from "./step-cache.js";

export interface DispatchPayload {
  jobId: string;
}

export interface WatchPayload {
  jobId: string;
  chunk: number;
  attempt: number;
  /** Continuation number when one watcher run hands over to the next (default 0). */
  round?: number;
}

/** One chunk attempt: what an idempotency key and a callback belong to. */
export interface AttemptRef {
  jobId: string;
  chunk: number;
  attempt: number;
}

/**
 * What a callback brought: the body the service sent (not yet parsed: the watcher parses and checks
 * it against the attempt's records), and `settle`, told once the watcher has applied it or refused
 * it (a local listener answers the service with it; on Trigger.dev the token is completed already
 * and there is nobody to answer).
 */
export type CallbackArrival =
  | {
      kind: "called";
      body: unknown;
      settle?: (verdict: { ok: true } | { ok: false; status: number; error: string }) => void;
    }
  | { kind: "timedOut" };

/**
 * How a service in `completion: "callback"` mode tells that an attempt is done: locally a route on a
 * small HTTP listener the runner starts (a per-attempt URL and an HMAC-signed token), on
 * Trigger.dev a wait token (`wait.createToken` / `wait.forToken`) whose URL the service POSTs to.
 */
export interface CallbackChannel {
  /**
   * Where the service calls back for this attempt, and the token it must send back (absent where
   * the URL itself is the secret, as a Trigger.dev wait token's is). The same answer for the same
   * attempt: a redelivery under the same key carries the same callback.
   */
  open(ref: AttemptRef, timeoutMs: number): Promise<{ url: string; token?: string }>;
  /**
   * Waits up to `timeoutMs` for this attempt's callback, without polling the database. A callback
   * that came before the wait began is not lost (it is held for the attempt until it is taken).
   */
  wait(ref: AttemptRef, timeoutMs: number): Promise<CallbackArrival>;
}

/** The refusal when a config needs callbacks and the runtime has no `CallbackChannel`. */
export const CALLBACK_CHANNEL_MISSING = (config: string) =>
  `config '${config}' uses completion "callback", but this runtime has no callback listener; run it with \`npx chunkrelay run\` or the Trigger.dev worker, or set completion to "status" or "response"`;

export interface HandOver {
  /** Runs the initializer (the next job of an iteration). Deduplicated by `key`. */
  initialize(payload: Record<string, unknown>, key: string): Promise<void>;
  /** Runs the server step for a job, after `delayMs` if given. Deduplicated by `key`. */
  serve(payload: DispatchPayload, key: string, delayMs?: number): Promise<void>;
  /** Runs the watcher for one chunk attempt. Deduplicated by `key`. */
  watch(payload: WatchPayload, key: string): Promise<void>;
}

export interface Logger {
  info(message: string, fields?: Record<string, unknown>): void;
  warn(message: string, fields?: Record<string, unknown>): void;
}

export const silentLogger: Logger = { info: () => undefined, warn: () => undefined };

/** Default lease: short, so a runner started after a crash takes over within seconds. */
export const DEFAULT_LEASE_MS = 10_000;

export interface StepDeps {
  store: Store;
  post: PostChunk;
  handOver: HandOver;
  now: () => Date;
  /** A wait between polls; on Trigger.dev it may suspend the run (`wait.for`). */
  sleep: (ms: number) => Promise<void>;
  /**
   * An in-process wait that never suspends the run, for lease heartbeats while a step works.
   * Rejects when `signal` aborts.
   */
  timer: (ms: number, signal?: AbortSignal) => Promise<void>;
  random: () => number;
  /** Environment the header secrets are read from. */
  env: Record<string, string | undefined>;
  /** Lease owner: who is working on a chunk (a run id, or host:pid for local runs). */
  owner: string;
  /** How long a claim lasts without renewal; renewed while a step works. */
  leaseMs: number;
  log: Logger;
  /**
   * Records per planning group (one insertMany of details, one of chunks, one checkpoint).
   * Default: 1000. The simulation plans in groups of a few records, so that planning, serving
   * and crashes interleave at every group boundary.
   */
  planningBatch?: number;
  /**
   * Stops long work between its units when aborted (the local runner's Ctrl-C): planning checks it
   * between groups. A stopped step leaves what a crash at that point would, which every step is
   * built to resume. Default: never aborted (Trigger.dev runs stop by the platform's own means).
   */
  signal?: AbortSignal;
  /**
   * Told after every watcher poll, so a runtime can show live progress (Trigger.dev run
   * metadata). Read-only and never failing a step. Default: nobody is told.
   */
  reportProgress?: ReportProgress;
  /**
   * Where callbacks arrive, for configs with `completion: "callback"`: the local runner's listener
   * or Trigger.dev wait tokens. Default: none — such a config is then refused with the fix.
   */
  callbacks?: CallbackChannel;
  /**
   * What this process's steps remember between invocations (planned jobs' fixed facts, configs
   * for a short while). Default: none — every step reads the job and its config.
   */
  cache?: StepCache;
}

export const keys = {
  serveAfterPlanning: (jobId: string) => `serve:${jobId}:planned`,
  serveRetry: (jobId: string, chunk: number, attempt: number, tries: number) =>
    `serve:${jobId}:${chunk}:${attempt}:try${tries}`,
  serveAfterClose: (jobId: string, chunk: number, attempt: number) =>
    `serve:${jobId}:${chunk}:${attempt}:closed`,
  watch: (jobId: string, chunk: number, attempt: number) => `watch:${jobId}:${chunk}:${attempt}`,
  /** Serving a job reopened for its `seq`-th rerun on demand. */
  serveRerun: (jobId: string, seq: number) => `serve:${jobId}:rerun:${seq}`,
  /** The key the batch service sees: one per chunk attempt, stable across tries and replays. */
  delivery: (jobId: string, chunk: number, attempt: number) => `${jobId}:${chunk}:${attempt}`,
};
