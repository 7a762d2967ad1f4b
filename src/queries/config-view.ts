/**
 * One config as the status page shows it: what it is, its lanes (the config's own lane with the
 * full-job lock and the watermark, and its backfill windows), the windows of its recent jobs on
 * the order key, the backlog past the watermark, and when its next scheduled run is.
 */
import { EJSON } from "bson";
import { type BatchConfig, configHash, orderKeyOf } from "../config/schema.js";
import { type Cut, compareCuts } from "../planning/cuts.js";
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
    /**
     * Where the window lies along the order key, as fractions 0–1 of the span the recent windows
     * cover (for the page's strip): linear in the key when every bound is a number or a date,
     * else by the bounds' order. Absent for an empty window.
     */
    span?: { from: number; to: number };
  }>;
}

/** A key as a number when it is one (or a date), for a linear scale. */
function numericKey(key: unknown): number | undefined {
  if (typeof key === "number" && Number.isFinite(key)) return key;
  if (key instanceof Date) return key.getTime();
  const bson = key as { _bsontype?: string; toNumber?: () => number } | null;
  if (
    (bson?._bsontype === "Long" || bson?._bsontype === "Int32" || bson?._bsontype === "Double") &&
    bson.toNumber
  )
    return bson.toNumber();
  return undefined;
}

/**
 * Each window's place along the order key: an open start is the lowest bound shown, an open end
 * the highest. Windows are shown relative to one another, so the scale is the recent windows' own.
 */
export function spansAlongKey(
  windows: ReadonlyArray<{ from?: Cut | undefined; to?: Cut | null | undefined }>,
): Array<{ from: number; to: number } | undefined> {
  const bounds: Cut[] = [];
  for (const w of windows) {
    if (w.from) bounds.push(w.from);
    if (w.to) bounds.push(w.to);
  }
  bounds.sort(compareCuts);
  // Adjacent windows share a bound: it is one place on the strip, not two ranks.
  const distinct = bounds.filter((b, i) => i === 0 || compareCuts(bounds[i - 1], b) !== 0);
  const numbers = bounds.map((b) => numericKey(b.key)).filter((n) => n !== undefined);
  const linear = bounds.length > 1 && numbers.length === bounds.length;
  const lo = linear ? Math.min(...numbers) : 0;
  const hi = linear ? Math.max(...numbers) : 0;
  // An open start (from the first record) or end (open-ended) has no key to place: it gets the
  // outer tenth of the strip, and the known bounds share the rest.
  const openStart = windows.some((w) => w.to !== null && w.from === undefined);
  const openEnd = windows.some((w) => w.to === undefined);
  const left = openStart ? 0.1 : 0;
  const right = openEnd ? 0.9 : 1;
  const fraction = (cut: Cut): number => {
    // One place only: at the end its open side leaves room for (or the middle, between two).
    if (distinct.length <= 1) return openStart && !openEnd ? 1 : openEnd && !openStart ? 0 : 0.5;
    if (linear) return hi > lo ? ((numericKey(cut.key) ?? lo) - lo) / (hi - lo) : 0;
    // By order: the cut's rank among the bounds, evenly spaced.
    const rank = distinct.findIndex((b) => compareCuts(b, cut) === 0);
    return distinct.length > 1 ? rank / (distinct.length - 1) : 0;
  };
  const place = (cut: Cut | undefined, open: number): number =>
    cut === undefined ? open : left + (right - left) * fraction(cut);
  return windows.map((w) =>
    w.to === null ? undefined : { from: place(w.from, 0), to: place(w.to ?? undefined, 1) },
  );
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
  const spans = spansAlongKey(jobs.map((j) => j.window));
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
    recentJobs: jobs.map((j, i) => {
      const span = spans[i];
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
        ...(span ? { span } : {}),
      };
    }),
  };
}
