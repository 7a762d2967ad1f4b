/**
 * The backlog of a config: matching records past its watermark (the end of the completed prefix
 * of its incremental lane: full and incremental jobs), and their total weight. For a MongoDB
 * source that is one count and one aggregation bounded by the order key (index your order key);
 * a file source is read once.
 */
import { listBackfillLanes, readLane } from "../store/lanes.js";
import { readConfig } from "../store/configs.js";
import type { Cut } from "../planning/cuts.js";
import { openSource } from "../sources/open-source.js";
import { withSource } from "../sources/source.js";
import type { Store } from "../store/store.js";

export interface Backlog {
  config: string;
  completedUpTo?: Cut;
  completedBy?: string;
  /** The end of the newest claimed window (jobs running or done). */
  claimedUpTo?: Cut;
  claimedBy?: string;
  records: number;
  weight?: number;
  /** The config's backfill windows: how far each pass has been claimed and completed. */
  backfills: Array<{
    lane: string;
    window: { from?: Cut; to?: Cut };
    pass: number;
    claimedUpTo?: Cut;
    completedUpTo?: Cut;
    completedBy?: string;
  }>;
}

export async function readBacklog(store: Store, configName: string): Promise<Backlog> {
  const config = await readConfig(store, configName);
  const mark = await readLane(store, configName);
  // Before the first job, a source with a start of its own (a Kafka group's committed offsets)
  // counts from there: the backlog is the consumer lag.
  const counted = await withSource(openSource(store, config), async (source) =>
    source.count(mark?.completedUpTo ?? (await source.startCut?.())),
  );
  const lanes = await listBackfillLanes(store, configName);
  return {
    config: configName,
    ...(mark?.completedUpTo ? { completedUpTo: mark.completedUpTo } : {}),
    ...(mark?.completedBy ? { completedBy: mark.completedBy } : {}),
    ...(mark?.claimedUpTo ? { claimedUpTo: mark.claimedUpTo } : {}),
    ...(mark?.claimedBy ? { claimedBy: mark.claimedBy } : {}),
    ...counted,
    backfills: lanes.map((l) => ({
      lane: l._id,
      window: l.window ?? {},
      pass: l.generation ?? 1,
      ...(l.claimedUpTo ? { claimedUpTo: l.claimedUpTo } : {}),
      ...(l.completedUpTo ? { completedUpTo: l.completedUpTo } : {}),
      ...(l.completedBy ? { completedBy: l.completedBy } : {}),
    })),
  };
}
