/**
 * The local runner: the same three step functions the Trigger.dev tasks call, driven in-process.
 * Hand-overs go through a small scheduler with the tasks' semantics — each key runs at most once,
 * delays are timers, steps run concurrently — so `chunkrelay run` behaves like the deployed
 * pipeline. SIGINT/SIGTERM (an AbortSignal here) stop new steps, let running ones settle and
 * report the job as interrupted; running it again with the same job id resumes it.
 */
import { backoffDelay, retryWithBackoff } from "../../common/retry.js";
import { listSentChunks } from "../../store/chunks.js";
import { readJob } from "../../store/jobs.js";
import { randomBytes } from "node:crypto";
import { hostname } from "node:os";
import { postChunk, type PostChunk } from "../../steps/dispatch/post-chunk.js";
import { type DispatchResult, dispatchJob } from "../../steps/dispatch/dispatch.js";
import {
  type WatchPayload,
  type HandOver,
  type Logger,
  type StepDeps,
  keys,
  silentLogger,
} from "../../steps/handover.js";
import { isBadInput } from "../../common/errors.js";
import { StepStatBuffer, timeStep } from "../../queries/step-stats.js";
import { releaseLeases } from "../../jobs/lease.js";
import { initializeJob } from "../../steps/initialize/initialize.js";
import { newJobId } from "../../steps/initialize/open-job.js";
import type { InitializePayload } from "../../steps/initialize/payload.js";
import type { JobDoc, Store } from "../../store/store.js";
import { watchChunk } from "../../steps/watch/watch.js";
import { type JobProgress, readJobProgress } from "../../queries/progress.js";
import { buildStepDeps } from "../step-deps.js";
import { readCallbackEnv } from "../../config/env.js";
import { CallbackListener, type CallbackListenerOptions } from "./callback-listener.js";
import { type WorkerHandle, startWorker, tallyOfDispatch, tallyOfWatch } from "../worker-registry.js";

export class Interrupted extends Error {
  constructor() {
    super("interrupted");
    this.name = "Interrupted";
  }
}

/** Runs hand-overs in-process: once per key, after their delay, concurrently. */
class LocalScheduler implements HandOver {
  private readonly seen = new Set<string>();
  /** Steps waiting on a timer, with their keys. */
  private readonly timers = new Map<NodeJS.Timeout, string>();
  private active = 0;
  private failure: unknown;
  private settled: (() => void) | undefined;

  constructor(
    private readonly steps: {
      initialize: (payload: Record<string, unknown>) => Promise<unknown>;
      serve: (jobId: string) => Promise<DispatchResult>;
      watch: (p: WatchPayload) => Promise<unknown>;
    },
    private readonly signal: AbortSignal,
    private readonly retry: { tries: number; baseMs: number; maxMs: number; log: Logger },
  ) {
    // Stopping drops every waiting step at once (a retry may be due in an hour), not only when
    // the next running step ends.
    signal.addEventListener("abort", () => this.check(), { once: true });
  }

  initialize(payload: Record<string, unknown>, key: string): Promise<void> {
    // Through JSON, as a Trigger.dev payload travels: what survives here survives there.
    const sent = JSON.parse(JSON.stringify(payload)) as Record<string, unknown>;
    this.schedule(key, 0, () => this.steps.initialize(sent));
    return Promise.resolve();
  }

  serve(payload: { jobId: string }, key: string, delayMs?: number): Promise<void> {
    this.schedule(key, delayMs ?? 0, () => this.steps.serve(payload.jobId));
    return Promise.resolve();
  }

  watch(payload: WatchPayload, key: string): Promise<void> {
    this.schedule(key, 0, () => this.steps.watch(payload));
    return Promise.resolve();
  }

  private schedule(key: string, delayMs: number, fn: () => Promise<unknown>): void {
    if (this.seen.has(key) || this.signal.aborted || this.failure !== undefined) return;
    this.seen.add(key);
    this.run(key, delayMs, fn, 1);
  }

  /**
   * Runs a step after `delayMs`. A step that fails for a reason other than bad input (the
   * database is away, a network error) runs again with capped exponential backoff, as a
   * Trigger.dev task retries; every step is idempotent, so re-running it is safe.
   */
  private run(key: string, delayMs: number, fn: () => Promise<unknown>, attempt: number): void {
    const timer = setTimeout(() => {
      this.timers.delete(timer);
      if (this.signal.aborted || this.failure !== undefined) return this.check();
      this.active++;
      fn()
        .catch((err: unknown) => {
          if (err instanceof Interrupted || this.signal.aborted) return;
          if (isBadInput(err) || attempt >= this.retry.tries) {
            this.failure ??= err;
            return;
          }
          const wait = backoffDelay(attempt, { baseMs: this.retry.baseMs, capMs: this.retry.maxMs });
          this.retry.log.warn(`step ${key} failed (${(err as Error).message}); retrying in ${wait} ms`);
          this.run(key, wait, fn, attempt + 1);
        })
        .finally(() => {
          this.active--;
          this.check();
        });
    }, delayMs);
    this.timers.set(timer, key);
  }

  private check(): void {
    if (this.failure !== undefined || this.signal.aborted) {
      for (const t of this.timers.keys()) clearTimeout(t);
      this.timers.clear();
    }
    if (this.active === 0 && this.timers.size === 0) this.settled?.();
  }

  /** Drops the server wake-ups of a finished job (moot now); other jobs' steps stay. */
  cancelPending(jobId: string): void {
    for (const [t, key] of this.timers) {
      if (key.startsWith(`serve:${jobId}:`)) {
        clearTimeout(t);
        this.timers.delete(t);
      }
    }
    this.check();
  }

  /** Resolves when nothing runs and nothing is scheduled; rejects with the first step failure. */
  async settle(): Promise<void> {
    await new Promise<void>((resolve) => {
      this.settled = resolve;
      this.check();
    });
    this.settled = undefined;
    if (this.failure !== undefined) {
      throw this.failure instanceof Error ? this.failure : new Error(JSON.stringify(this.failure));
    }
  }
}

export interface LocalRunOptions {
  store: Store;
  config: string;
  jobId?: string | undefined;
  description?: string | undefined;
  /** Resume although the config changed since the job started. Default: false. */
  acceptConfigChange?: boolean | undefined;
  /** Send again the unresolved exceptions of this earlier job (a job of mode exceptions). */
  fromJob?: string | undefined;
  /** The rest of the initializer payload: mode, window, caps, iterations, sample. Default: full. */
  request?:
    | Omit<InitializePayload, "config" | "jobId" | "description" | "acceptConfigChange" | "fromJob">
    | undefined;
  post?: PostChunk;
  env?: Record<string, string | undefined>;
  log?: Logger;
  /** Aborting stops the run between steps (SIGINT/SIGTERM). */
  signal?: AbortSignal;
  /** Called once with the first job's id, before it is opened (a new job's id is chosen here). */
  onJobId?: (jobId: string) => void;
  /**
   * Awaited once the first job exists — its window claimed and its records planned — before the
   * run goes on (`listen` commits the message's offset here). Default: nothing.
   */
  onJobOpened?: (jobId: string) => Promise<void>;
  /** Called with the job's progress while it runs (every `progressEveryMs`, default 250). */
  onProgress?: (p: JobProgress) => void;
  progressEveryMs?: number;
  /** Chunk and planning lease, renewed while a step works. Default: 10000 ms. */
  leaseMs?: number;
  /** Runs of a step that fails for a transient reason (e.g. MongoDB away). Default: 8. */
  stepTries?: number;
  /** First wait before re-running a failed step, doubled per try up to 30 s. Default: 500 ms. */
  stepRetryMs?: number;
  /**
   * The worker this run counts its steps under (`batch_workers`); the caller stops it. Default: a
   * worker of kind `local` started for this run and stopped when it ends (a process running
   * many jobs, like `listen`, passes its own).
   */
  worker?: WorkerHandle;
  /**
   * The callback listener's settings, for configs with `completion: "callback"`. Default: read
   * from the environment (`CHUNKRELAY_CALLBACK_HOST`, `_PORT`, `_URL`, `_SECRET`) when the first
   * callback attempt is sent; runs without such a config never listen.
   */
  callbackListener?: CallbackListenerOptions;
}

export interface JobSummary {
  jobId: string;
  config: string;
  status: JobDoc["status"] | "interrupted";
  records: number;
  chunks: number;
  processed: number;
  exceptions: number;
  durationMs: number;
  recordsPerSecond: number;
  /** With iterations: every job this invocation ran, in order (this summary covers them all). */
  jobs?: JobSummary[];
}

/** The summary of a run stopped before its job finished (its counts are `status`'s to tell). */
export function interruptedSummary(jobId: string, config: string, durationMs: number): JobSummary {
  return {
    jobId,
    config,
    status: "interrupted",
    records: 0,
    chunks: 0,
    processed: 0,
    exceptions: 0,
    durationMs,
    recordsPerSecond: 0,
  };
}

function abortableSleep(signal: AbortSignal) {
  return (ms: number) =>
    new Promise<void>((resolve, reject) => {
      if (signal.aborted) return reject(new Interrupted());
      const onAbort = () => {
        clearTimeout(t);
        reject(new Interrupted());
      };
      const t = setTimeout(() => {
        signal.removeEventListener("abort", onAbort);
        resolve();
      }, ms);
      signal.addEventListener("abort", onAbort, { once: true });
    });
}

/** Runs `fn`, re-running it with backoff while it fails for a transient reason. */
function retryTransient<T>(
  fn: () => Promise<T>,
  policy: { tries: number; baseMs: number; signal: AbortSignal; log: Logger },
): Promise<T> {
  return retryWithBackoff(fn, {
    tries: policy.tries,
    baseMs: policy.baseMs,
    capMs: 30_000,
    retryable: (err) => !isBadInput(err) && !policy.signal.aborted,
    sleep: abortableSleep(policy.signal),
    onRetry: (err, wait) =>
      policy.log.warn(`initializer failed (${(err as Error).message}); retrying in ${wait} ms`),
  });
}

/** Starts the watchers a crashed run left behind (chunks sent but no longer watched). */
export async function resumeJob(deps: StepDeps, jobId: string): Promise<number> {
  const sent = await listSentChunks(deps.store, jobId);
  for (const c of sent) {
    await deps.handOver.watch(
      { jobId, chunk: c.chunk, attempt: c.attempt },
      keys.watch(jobId, c.chunk, c.attempt),
    );
  }
  return sent.length;
}

/** One job's summary from its document. */
async function summarizeJob(store: Store, jobId: string, durationMs: number): Promise<JobSummary> {
  const job = await readJob(store, jobId);
  if (!job) throw new Error(`job ${jobId} disappeared`);
  const records = job.totals?.records ?? job.planning.records;
  const ms = job.finishedAt ? job.finishedAt.getTime() - job.startedAt.getTime() : durationMs;
  return {
    jobId,
    config: job.config,
    status: job.status === "running" || job.status === "planning" ? "interrupted" : job.status,
    records,
    chunks: job.totals?.chunks ?? job.planning.nextChunk - 1,
    processed: job.totals?.processed ?? 0,
    exceptions: job.totals?.exceptions ?? 0,
    durationMs: ms,
    recordsPerSecond: ms > 0 ? Math.round((records * 1000) / ms) : 0,
  };
}

/** The summary of a chain of iterations: totals over all jobs, the worst status. */
function summarizeChain(jobs: JobSummary[], durationMs: number): JobSummary {
  const first = jobs[0] as JobSummary;
  if (jobs.length === 1)
    return {
      ...first,
      durationMs,
      recordsPerSecond: durationMs > 0 ? Math.round((first.records * 1000) / durationMs) : 0,
    };
  const sum = (f: (j: JobSummary) => number) => jobs.reduce((n, j) => n + f(j), 0);
  const records = sum((j) => j.records);
  const status = jobs.some((j) => j.status === "interrupted")
    ? "interrupted"
    : jobs.some((j) => j.status === "failed")
      ? "failed"
      : (jobs[jobs.length - 1] as JobSummary).status;
  return {
    jobId: first.jobId,
    config: first.config,
    status,
    records,
    chunks: sum((j) => j.chunks),
    processed: sum((j) => j.processed),
    exceptions: sum((j) => j.exceptions),
    durationMs,
    recordsPerSecond: durationMs > 0 ? Math.round((records * 1000) / durationMs) : 0,
    jobs,
  };
}

export async function runJobLocally(options: LocalRunOptions): Promise<JobSummary> {
  const started = Date.now();
  const signal = options.signal ?? new AbortController().signal;
  const retryPolicy = { tries: options.stepTries ?? 8, baseMs: options.stepRetryMs ?? 500 };
  // Every job this invocation runs: the first, then the iterations its jobs hand over to.
  const chain: string[] = [];
  // Step rows in groups (about one insertMany a second), written out when the run ends.
  const stats = new StepStatBuffer(options.store, {
    warn: (m) => (options.log ?? silentLogger).warn(m),
  });
  const initStep = (payload: Record<string, unknown>) =>
    timeStep(
      options.store,
      {
        task: "batchDataInitializer",
        ...(typeof payload.jobId === "string" ? { jobId: payload.jobId } : {}),
      },
      () => initializeJob(deps, payload),
      (r) => ({ outcome: r.status, jobId: r.jobId }),
      stats.add,
    );
  const scheduler = new LocalScheduler(
    {
      initialize: async (payload) => {
        const r = await initStep(payload);
        if (!chain.includes(r.jobId)) chain.push(r.jobId);
        // The next iteration may exist already (a resumed chain): watch what it had sent.
        if (r.resumed) await resumeJob(deps, r.jobId);
        return r;
      },
      serve: async (jobId) => {
        const result = await timeStep(
          options.store,
          { task: "batchDataServer", jobId },
          () => dispatchJob(deps, { jobId }),
          (r) => ({ outcome: r.outcome }),
          stats.add,
        );
        // Chunks the step finished itself (completion "response") count as a watcher's would.
        const tally = tallyOfDispatch(result);
        if (tally) worker.tally(tally);
        if (result.outcome === "finished") scheduler.cancelPending(jobId);
        return result;
      },
      // Locally a watcher run may poll for as long as it takes.
      watch: async (p) => {
        const result = await timeStep(
          options.store,
          { task: "chunkProcessWatcher", jobId: p.jobId, chunk: p.chunk },
          () => watchChunk(deps, p, { maxPolls: Number.MAX_SAFE_INTEGER, maxRunMs: Number.MAX_SAFE_INTEGER }),
          (r) => ({ outcome: r.outcome }),
          stats.add,
        );
        // Counted from the step's result; the tally is buffered, never failing the step.
        const tally = tallyOfWatch(result);
        if (tally) worker.tally(tally);
        return result;
      },
    },
    signal,
    { tries: retryPolicy.tries, baseMs: retryPolicy.baseMs, maxMs: 30_000, log: options.log ?? silentLogger },
  );
  // The worker id doubles as the lease owner: a chunk's lease then names the worker holding it.
  const worker =
    options.worker ??
    startWorker(options.store, { kind: "local", log: options.log ?? silentLogger, env: options.env });
  // Bound only when a callback attempt is first sent, closed with the run.
  const callbacks = new CallbackListener(
    options.store,
    () => {
      if (options.callbackListener) return options.callbackListener;
      const env = readCallbackEnv(options.env ?? process.env);
      return {
        host: env.CHUNKRELAY_CALLBACK_HOST,
        port: env.CHUNKRELAY_CALLBACK_PORT,
        publicUrl: env.CHUNKRELAY_CALLBACK_URL,
        secret: env.CHUNKRELAY_CALLBACK_SECRET,
      };
    },
    signal,
    options.log ?? silentLogger,
  );
  const deps = buildStepDeps({
    store: options.store,
    callbacks,
    post: options.post ?? ((req) => postChunk(req, signal)),
    handOver: scheduler,
    sleep: abortableSleep(signal),
    ...(options.env ? { env: options.env } : {}),
    // One owner per run: two runs in one process must not mistake each other's leases for their own.
    owner: options.worker ? `${hostname()}:${process.pid}:${randomBytes(3).toString("hex")}` : worker.id,
    ...(options.leaseMs !== undefined ? { leaseMs: options.leaseMs } : {}),
    ...(options.log ? { log: options.log } : {}),
    signal,
  });

  // The first job's id is chosen here, not by the initializer: a Ctrl-C while it plans can then
  // name the job to resume, and a retried initializer step opens the same job, not a second one.
  let jobId = options.jobId ?? newJobId(options.config, deps.now());
  let progressTimer: NodeJS.Timeout | undefined;
  try {
    const initialize = (jobIdToUse: string | undefined) =>
      retryTransient(
        () =>
          initStep({
            config: options.config,
            ...(options.request ?? {}),
            ...(jobIdToUse ? { jobId: jobIdToUse } : {}),
            ...(options.description ? { description: options.description } : {}),
            ...(options.acceptConfigChange ? { acceptConfigChange: true } : {}),
            ...(options.fromJob ? { mode: "exceptions" as const, fromJob: options.fromJob } : {}),
          }),
        { ...retryPolicy, signal, log: deps.log },
      );
    options.onJobId?.(jobId);
    let init = await initialize(jobId);
    // Another runner holds the planning lease: wait until it finishes planning (or its lease
    // expires because it died, and this runner takes planning over).
    while (init.status === "planning") {
      await abortableSleep(signal)(Math.min(deps.leaseMs, 1000));
      init = await initialize(init.jobId);
    }
    jobId = init.jobId;
    await options.onJobOpened?.(init.jobId);
    chain.push(init.jobId);
    if (init.resumed) await resumeJob(deps, init.jobId);
    if (options.onProgress) {
      const report = options.onProgress;
      const tick = () => {
        readJobProgress(options.store, chain[chain.length - 1] as string).then(report, () => undefined);
      };
      tick();
      progressTimer = setInterval(tick, options.progressEveryMs ?? 250);
    }
    await scheduler.settle();
    if (signal.aborted) throw new Interrupted();
    // Nothing is scheduled here but a job is not done: a step was lost, or another runner (a
    // second process on the same job) holds its last chunks under live leases. Heal as `resume`
    // would and look again, for as long as the job moves (the other runner finishing); give up
    // only when it has not moved for three leases.
    for (const id of [...chain]) {
      const open = (j: JobDoc | null) =>
        j !== null && !signal.aborted && (j.status === "running" || j.status === "planning");
      let job = await readJob(options.store, id);
      let seen = "";
      let movedAt = Date.now();
      for (let round = 0; open(job); round++) {
        await resumeJob(deps, id);
        await scheduler.serve({ jobId: id }, `serve:${id}:settle-check:${round}`);
        await scheduler.settle();
        job = await readJob(options.store, id);
        if (!open(job)) break;
        const p = await readJobProgress(options.store, id);
        const now = `${p.status}:${p.planningDone}:${p.doneChunks}:${p.inFlightChunks}:${p.processedRecords}:${p.failedRecords}`;
        if (now !== seen) {
          seen = now;
          movedAt = Date.now();
        } else if (Date.now() - movedAt > 3 * deps.leaseMs) {
          throw new Error(
            `job ${id} stopped making progress (status ${job?.status ?? "?"}); look at \`npx chunkrelay status ${id}\`, then resume it with \`npx chunkrelay resume ${id}\``,
          );
        }
        await abortableSleep(signal)(Math.min(deps.leaseMs, 500));
      }
    }
    if (options.onProgress)
      options.onProgress(await readJobProgress(options.store, chain[chain.length - 1] as string));
    const summaries: JobSummary[] = [];
    for (const id of chain) summaries.push(await summarizeJob(options.store, id, Date.now() - started));
    return summarizeChain(summaries, Date.now() - started);
  } catch (err) {
    if (err instanceof Interrupted || signal.aborted) {
      await scheduler.settle().catch(() => undefined);
      // Nothing of this run works any more: what it held is free for the resume at once. A
      // database that stopped answering fails this too (the CLI closes the client); the leases
      // then run out by themselves.
      await releaseLeases(deps, chain.length > 0 ? chain : [jobId]).catch(() => undefined);
      return interruptedSummary(jobId, options.config, Date.now() - started);
    }
    throw err;
  } finally {
    if (progressTimer) clearInterval(progressTimer);
    await callbacks.close();
    await stats.close();
    if (!options.worker) await worker.stop();
  }
}
