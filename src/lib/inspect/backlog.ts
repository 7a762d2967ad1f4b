/**
 * The backlog of a config: matching records past its watermark (not yet covered by a completed
 * job), and their total weight. One count and one aggregation on the source, both bounded by the
 * order key (indexed for `_id`; index your order key if it is another field).
 */
import type { Document, Filter } from "mongodb";
import { loadConfig } from "../config/load.js";
import type { Store } from "../store/store.js";

export interface Backlog {
  config: string;
  completedUpTo?: unknown;
  completedBy?: string;
  records: number;
  weight?: number;
}

export async function readBacklog(store: Store, configName: string): Promise<Backlog> {
  const config = await loadConfig(store, configName);
  const mark = await store.watermarks.findOne({ _id: configName });
  const key = config.source.orderBy;
  const parts: Document[] = [];
  if (Object.keys(config.source.filter).length > 0) parts.push(config.source.filter);
  if (mark?.completedUpTo !== undefined && mark.completedUpTo !== null)
    parts.push({ [key]: { $gt: mark.completedUpTo } });
  const filter = (
    parts.length === 0 ? {} : parts.length === 1 ? parts[0] : { $and: parts }
  ) as Filter<Document>;
  const source = store.db.collection(config.source.collection);
  const records = await source.countDocuments(filter);
  let weight: number | undefined;
  if (config.source.weightField) {
    const [row] = await source
      .aggregate<{ w: number }>([
        { $match: filter },
        { $group: { _id: null, w: { $sum: `$${config.source.weightField}` } } },
      ])
      .toArray();
    weight = row?.w ?? 0;
  }
  return {
    config: configName,
    ...(mark?.completedUpTo !== undefined && mark.completedUpTo !== null
      ? { completedUpTo: mark.completedUpTo }
      : {}),
    ...(mark?.completedBy ? { completedBy: mark.completedBy } : {}),
    records,
    ...(weight !== undefined ? { weight } : {}),
  };
}
