/**
 * What the steps of one run (a local run; one Trigger.dev run) may remember between invocations,
 * so that a chunk costs a handful of commands and not a re-read of the job and its config per step:
 * - a planned job's fixed facts: once planning is done, a job's config name and its committed
 *   chunk count never change again (nothing in the job's life rewrites them);
 * - configs, for `CONFIG_CACHE_MS`: an edited config is picked up within that time instead of at
 *   the next step (the config an attempt went out under is recorded with it either way);
 * - how long a config's chunks take to come back (`roundTrip`), so a watcher counts when a
 *   chunk is due rather than at a fixed interval.
 * Nothing else is kept: a job's status, its chunks and records are always read from MongoDB.
 */
import type { BatchConfig } from "../config/schema.js";
import { readConfig } from "../store/configs.js";
import { readJobFields } from "../store/jobs.js";
import type { Store } from "../store/store.js";

/** How long a config read from MongoDB is used before it is read again. Default: 2000 ms. */
export const CONFIG_CACHE_MS = 2_000;

/** Entries kept of each kind; the oldest go first (a process serves a few jobs at a time). */
const MAX_ENTRIES = 1_000;

/**
 * How long a planned job's facts are used before the job is read again. They cannot change
 * while the job lives; the bound covers a finished job deleted and started again under the same
 * id in another process while this one still remembers the first (`forgetJob` covers this one).
 */
export const PLANNED_JOB_CACHE_MS = 10 * 60_000;

/** A job whose planning is done: what can no longer change. */
export interface PlannedJob {
  config: string;
  /** `planning.nextChunk`: chunks below it are the job's, final. */
  committed: number;
}

function remember<K, V>(map: Map<K, V>, key: K, value: V): void {
  map.delete(key);
  map.set(key, value);
  if (map.size > MAX_ENTRIES) {
    const oldest = map.keys().next();
    if (!oldest.done) map.delete(oldest.value);
  }
}

export class StepCache {
  private readonly configs = new Map<string, { config: BatchConfig; readAt: number }>();
  private readonly planned = new Map<string, PlannedJob & { readAt: number }>();
  /**
   * `roundTrips` may be shared between caches: a Trigger.dev worker gives each run a cache of its
   * own (a run must not serve a job a process remembered from before it was deleted and started
   * again) but lets its watchers learn the service's round trip across runs.
   */
  constructor(
    private readonly configTtlMs = CONFIG_CACHE_MS,
    private readonly roundTrips = new Map<string, number>(),
  ) {}

  /** The config named, read again once it is older than the cache's time (by `now`, ms). */
  async config(store: Store, name: string, now: number): Promise<BatchConfig> {
    const hit = this.configs.get(name);
    if (hit && now - hit.readAt >= 0 && now - hit.readAt < this.configTtlMs) return hit.config;
    const config = await readConfig(store, name);
    remember(this.configs, name, { config, readAt: now });
    return config;
  }

  plannedJob(jobId: string, now: number = Date.now()): PlannedJob | undefined {
    const hit = this.planned.get(jobId);
    if (!hit) return undefined;
    if (now - hit.readAt < 0 || now - hit.readAt >= PLANNED_JOB_CACHE_MS) {
      this.planned.delete(jobId);
      return undefined;
    }
    return { config: hit.config, committed: hit.committed };
  }

  /**
   * How long this config's chunks took from being sent to all records done, as a watcher saw it
   * (a moving average, weight 0.3 to the newest): when the watcher counts first. Undefined until
   * a chunk of the config closed in this process.
   */
  roundTrip(config: string): number | undefined {
    return this.roundTrips.get(config);
  }

  observeRoundTrip(config: string, ms: number): void {
    const before = this.roundTrips.get(config);
    remember(this.roundTrips, config, before === undefined ? ms : 0.7 * before + 0.3 * ms);
  }

  /** Called only with a job read with `planning.done` true. */
  rememberPlannedJob(jobId: string, job: PlannedJob, now: number = Date.now()): void {
    remember(this.planned, jobId, { ...job, readAt: now });
  }

  /** A finished job: nothing of it is remembered (its id may be used again once it is deleted). */
  forgetJob(jobId: string): void {
    this.planned.delete(jobId);
  }
}

/** The config a job runs under: from the cache when the job is planned, else one read of the job. */
export async function readJobConfigName(
  store: Store,
  cache: StepCache | undefined,
  jobId: string,
  now: Date,
): Promise<string | undefined> {
  const planned = cache?.plannedJob(jobId, now.getTime());
  if (planned) return planned.config;
  const job = await readJobFields(store, jobId, ["config"]);
  return job?.config;
}

/** A config through the cache when there is one. */
export function readConfigCached(
  store: Store,
  cache: StepCache | undefined,
  name: string,
  now: Date,
): Promise<BatchConfig> {
  return cache ? cache.config(store, name, now.getTime()) : readConfig(store, name);
}
