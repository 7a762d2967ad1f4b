/**
 * One config as the status page shows it: what it is, its lanes (the config's own lane with the
 * full-job lock and the watermark, and its backfill windows), the windows of its recent jobs on
 * the order key, the backlog past the watermark, and when its next scheduled run is.
 */
import { EJSON } from "bson";
import { type BatchConfig, configHash, orderKeyOf } from "../config/schema.js";
import type { Cut } from "../planning/cuts.js";
import { openSource } from "../sources/open-source.js";
import { readConfig } from "../store/configs.js";
import { listJobsPage } from "../store/job-listing.js";
import { readFullJobLock } from "../store/lanes.js";
import type { Store } from "../store/store.js";
import { type Backlog, readBacklog } from "./backlog.js";

/** Recent jobs shown with their windows. */
export const CONFIG_RECENT_JOBS = 20;

export interface ConfigView {
  name: string;
  description: string;
  hash: string;
  source: string;
  orderBy: string;
  completion: BatchConfig["completion"];
  maxInFlight: number;
  chunking: BatchConfig["chunking"];
  schedule?: { cron: string; timezone: string; iterations: number; nextRunAt?: Date; problem?: string };
  fullJobLock?: { job: string; since?: Date };
  backlog: Backlog;
  /** The newest jobs first: mode, status, the window on the order key, its lane and place in it. */
  recentJobs: Array<{
    jobId: string;
    mode: string;
    status: string;
    createdAt: Date;
    records: number;
    from?: string;
    to?: string;
    lane?: string;
    seq?: number;
    complete?: boolean;
  }>;
}

/** A cut as text: its key in relaxed Extended JSON (the id too when it decides). */
export function showCut(cut: Cut | null | undefined): string | undefined {
  if (cut === undefined) return undefined;
  if (cut === null) return "(empty)";
  const key = EJSON.stringify(cut.key, { relaxed: true });
  const id = cut.id === undefined ? undefined : EJSON.stringify(cut.id, { relaxed: true });
  // Ordered by _id, the key is the id: once is enough.
  return id === undefined || id === key ? key : `${key} / ${id}`;
}

/** When a config's next scheduled run is (the caller knows the schedules: `nextScheduledRun`). */
export type NextRunOf = (config: BatchConfig) => ConfigView["schedule"];

export async function readConfigView(store: Store, name: string, nextRunOf: NextRunOf): Promise<ConfigView> {
  const config = await readConfig(store, name);
  const [backlog, lock, jobs] = await Promise.all([
    readBacklog(store, name),
    readFullJobLock(store, name),
    listJobsPage(store, { config: name }, { limit: CONFIG_RECENT_JOBS }),
  ]);
  const schedule = nextRunOf(config);
  return {
    name,
    description: config.description,
    hash: configHash(config),
    source: openSource(store, config).description,
    orderBy: orderKeyOf(config.source),
    completion: config.completion,
    maxInFlight: config.maxInFlight,
    chunking: config.chunking,
    ...(schedule ? { schedule } : {}),
    ...(lock?.activeJob
      ? { fullJobLock: { job: lock.activeJob, ...(lock.activeSince ? { since: lock.activeSince } : {}) } }
      : {}),
    backlog,
    recentJobs: jobs.map((j) => {
      const from = showCut(j.window.from);
      const to = showCut(j.window.to);
      return {
        jobId: j._id,
        mode: j.mode,
        status: j.status,
        createdAt: j.createdAt,
        records: j.totals?.records ?? j.planning.records,
        ...(from !== undefined ? { from } : {}),
        ...(to !== undefined ? { to } : {}),
        ...(j.lane ? { lane: j.lane.id, seq: j.lane.seq } : {}),
        ...(j.complete !== undefined ? { complete: j.complete } : {}),
      };
    }),
  };
}
