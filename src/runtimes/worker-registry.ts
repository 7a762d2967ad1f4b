/**
 * "Workers you can see": every process that runs pipeline steps registers itself in
 * `batch_workers`, heartbeats while it lives, counts what its steps did and says when it stops.
 * A runtime calls `startWorker` once (the local runner per run unless given a worker, the
 * Trigger.dev worker once per process, `listen` once) and `tally` after each step.
 *
 * Nothing here ever fails a step: every store command is caught and logged as a warning — a
 * worker nobody can see is a smaller harm than a chunk that is not sent.
 *
 * Store commands: two to register (the first prunes aged-out workers); then one per heartbeat;
 * tallies are gathered for `tallyEveryMs` (default 1 s) and written in one command, coalesced with
 * any tallies that arrive while a flush is on its way, and a flush counts as a heartbeat. Commands of one worker run one after another, so the
 * stop is always its last write.
 */
import { randomBytes } from "node:crypto";
import { hostname } from "node:os";
import { z } from "zod";
import { type Logger, silentLogger } from "../steps/handover.js";
import type { WatchResult } from "../steps/watch/watch.js";
import type { DispatchResult } from "../steps/dispatch/dispatch.js";
import type { Store, WorkerKind } from "../store/store.js";
import {
  type WorkerIdentity,
  type WorkerTally,
  markWorkerStopped,
  recordWorkerActivity,
  registerWorker,
} from "../store/workers.js";

export type { WorkerKind } from "../store/store.js";
export type { WorkerTally } from "../store/workers.js";

/** Default heartbeat interval: a worker is stale after 3 of them (45 s) without one. */
export const DEFAULT_HEARTBEAT_MS = 15_000;

/** How long tallies are gathered before one write: about a second behind, a fraction of a command per chunk. */
export const DEFAULT_TALLY_MS = 1_000;

/** How long `stop()` waits for its last writes before giving up (the database may be away). */
export const DEFAULT_STOP_WAIT_MS = 2_000;

/** `CHUNKRELAY_WORKER_NAME`: printable, at most 100 characters. */
export const workerNameSchema = z
  .string()
  .trim()
  .min(1, "empty")
  .max(100, "longer than 100 characters")
  .refine((n) => !/\p{Cc}/u.test(n), "holds a control character");

export interface StartWorkerOptions {
  kind: WorkerKind;
  /** Default: `CHUNKRELAY_WORKER_NAME` from `env`, else `<kind>@<host>`. */
  name?: string | undefined;
  /** The clock. Default: the wall clock. */
  now?: (() => Date) | undefined;
  /** Heartbeat interval in ms. Default: `DEFAULT_HEARTBEAT_MS` (15000). */
  heartbeatMs?: number | undefined;
  /** Where `CHUNKRELAY_WORKER_NAME` is read. Default: process.env. */
  env?: Record<string, string | undefined> | undefined;
  /** Warnings about failed registry writes. Default: none logged. */
  log?: Logger | undefined;
  /** Default: `os.hostname()`. */
  host?: string | undefined;
  /** Default: `process.pid`. */
  pid?: number | undefined;
  /** Default: `<host>:<pid>:<6 random hex>`. */
  id?: string | undefined;
  /**
   * Upper bound on how long `stop()` waits for its last writes; `Infinity` waits as long as they
   * take (a harness on a simulated clock, where a real timer would race it). Default: 2000 ms.
   */
  stopWaitMs?: number | undefined;
  /**
   * How long tallies are gathered before they are written (one command for all the chunks
   * finished meanwhile). Default: 1000 ms; 0 writes each at once (a harness on a simulated
   * clock). `stop()` writes what is left.
   */
  tallyEveryMs?: number | undefined;
  /**
   * Heartbeat on a real interval timer. Default: true. A harness that drives time itself (the
   * simulation) turns it off; its tallies still flush (and heartbeat) as they come.
   */
  heartbeatTimer?: boolean | undefined;
}

export interface WorkerHandle {
  readonly id: string;
  readonly name: string;
  readonly kind: WorkerKind;
  /** Counts what a step did; written within `tallyEveryMs` (one command for all gathered). */
  tally(t: Partial<WorkerTally>): void;
  /** Resolves once every write asked for so far was tried (tests, and before a report). */
  flush(): Promise<void>;
  /** Stops heartbeating, flushes what is buffered and marks the worker stopped. Never throws. */
  stop(): Promise<void>;
}

const ZERO: WorkerTally = { chunks: 0, records: 0, succeeded: 0, failed: 0 };

/** The worker's name: the option, else the variable (when valid), else `<kind>@<host>`. */
function nameOf(options: StartWorkerOptions, host: string, log: Logger): string {
  const given = options.name ?? (options.env ?? process.env).CHUNKRELAY_WORKER_NAME;
  if (given !== undefined) {
    const parsed = workerNameSchema.safeParse(given);
    if (parsed.success) return parsed.data;
    log.warn(
      `CHUNKRELAY_WORKER_NAME is invalid (${parsed.error.issues[0]?.message ?? "invalid"}); using the default name`,
    );
  }
  return `${options.kind}@${host}`;
}

/** Registers a worker and keeps it alive until `stop()`. Returns at once; writes go on in the background. */
export function startWorker(store: Store, options: StartWorkerOptions): WorkerHandle {
  const now = options.now ?? (() => new Date());
  const log = options.log ?? silentLogger;
  const host = options.host ?? hostname();
  const pid = options.pid ?? process.pid;
  const identity: WorkerIdentity = {
    id: options.id ?? `${host}:${pid}:${randomBytes(3).toString("hex")}`,
    name: nameOf(options, host, log),
    kind: options.kind,
    host,
    pid,
    startedAt: now(),
    heartbeatMs: options.heartbeatMs ?? DEFAULT_HEARTBEAT_MS,
  };
  let buffer: WorkerTally = { ...ZERO };
  let failing = false;
  let stopped = false;
  // Every write of this worker, one after another: order is kept (the stop goes last) and at most
  // one command of it is in flight.
  let chain: Promise<void> = Promise.resolve();
  // A flush queued but not yet started takes every tally that arrives before it starts.
  let flushQueued = false;
  /** Tallies wait for this timer, so the chunks finished meanwhile cost one write. */
  let tallyTimer: NodeJS.Timeout | undefined;

  const attempt = (what: string, write: () => Promise<unknown>) => async () => {
    try {
      await write();
      if (failing) log.info(`worker registry: ${what} works again`);
      failing = false;
    } catch (err) {
      // Once per outage, not once per step.
      if (!failing) {
        log.warn(
          `worker registry: could not ${what} (${err instanceof Error ? err.message : String(err)}); steps go on`,
        );
      }
      failing = true;
    }
  };
  const enqueue = (step: () => Promise<void>) => {
    chain = chain.then(step);
    return chain;
  };
  const flush = () => {
    if (flushQueued) return chain;
    flushQueued = true;
    return enqueue(async () => {
      flushQueued = false;
      const tally = buffer;
      buffer = { ...ZERO };
      await attempt("record the worker's activity", () =>
        recordWorkerActivity(store, identity, tally, now()),
      )();
    });
  };

  void enqueue(attempt("register the worker", () => registerWorker(store, identity, now())));
  const timer =
    options.heartbeatTimer === false ? undefined : setInterval(() => void flush(), identity.heartbeatMs);
  // The heartbeat never keeps a process alive by itself.
  timer?.unref();

  return {
    id: identity.id,
    name: identity.name,
    kind: identity.kind,
    tally(t) {
      if (stopped) return;
      buffer = {
        chunks: buffer.chunks + (t.chunks ?? 0),
        records: buffer.records + (t.records ?? 0),
        succeeded: buffer.succeeded + (t.succeeded ?? 0),
        failed: buffer.failed + (t.failed ?? 0),
      };
      const every = options.tallyEveryMs ?? DEFAULT_TALLY_MS;
      if (every <= 0) void flush();
      else if (!tallyTimer) {
        tallyTimer = setTimeout(() => {
          tallyTimer = undefined;
          void flush();
        }, every);
        tallyTimer.unref();
      }
    },
    async flush() {
      if (tallyTimer) clearTimeout(tallyTimer);
      tallyTimer = undefined;
      await flush();
    },
    async stop() {
      if (stopped) return;
      stopped = true;
      if (timer) clearInterval(timer);
      if (tallyTimer) clearTimeout(tallyTimer);
      tallyTimer = undefined;
      const hasTally = Object.values(buffer).some((n) => n !== 0);
      if (hasTally) void flush();
      const done = enqueue(
        attempt("mark the worker stopped", () => markWorkerStopped(store, identity.id, now())),
      );
      const waitMs = options.stopWaitMs ?? DEFAULT_STOP_WAIT_MS;
      if (!Number.isFinite(waitMs)) return done;
      // Bounded: a database that stopped answering must not hold a process's exit. The worker
      // then shows as stale, and ages out.
      let bound: NodeJS.Timeout | undefined;
      await Promise.race([
        done,
        new Promise<void>((resolve) => {
          bound = setTimeout(resolve, waitMs);
          bound.unref();
        }),
      ]);
      clearTimeout(bound);
    },
  };
}

/** What a server step finished itself (completion "response"), as a worker counts it. */
export function tallyOfDispatch(result: DispatchResult): WorkerTally | undefined {
  return result.finished;
}

/**
 * What a watcher step did, as a worker counts it: a chunk this watcher finished (processed, or
 * failed with its records set aside) with its records. An attempt that goes out again counts
 * nothing yet (its chunk is not finished), nor does one another watcher closed first — so the
 * counters of all workers add up to the jobs' totals.
 */
export function tallyOfWatch(result: WatchResult): WorkerTally | undefined {
  if (result.outcome !== "closed" || !result.closedHere || result.status === "pending") return undefined;
  const c = result.counts;
  const records = c.pending + c.sent + c.processed + c.failed;
  return { chunks: 1, records, succeeded: c.processed, failed: records - c.processed };
}
