/** Verbs on `batch_task_stats`: one row per step invocation, for `stats` and dashboards. */
import type { Document } from "bson";
import type { Store, TaskStatDoc } from "./store.js";

/**
 * Records one step invocation. Never throws: statistics must never fail a step (a lost row is a
 * smaller harm than a lost chunk).
 */
export async function insertStepStat(store: Store, doc: TaskStatDoc): Promise<void> {
  await store.taskStats.insertOne(doc).catch(() => undefined);
}

/**
 * Per task, the durations of its invocations matching `match` (sorted ascending) and how many
 * failed (outcome starting with "error"), in task order.
 */
export async function collectStepDurations(
  store: Store,
  match: Document,
): Promise<Array<{ _id: string; durations: number[]; failed: number }>> {
  return store.taskStats
    .aggregate<{ _id: string; durations: number[]; failed: number }>([
      { $match: match },
      { $sort: { durationMs: 1 } },
      {
        $group: {
          _id: "$task",
          durations: { $push: "$durationMs" },
          failed: { $sum: { $cond: [{ $eq: [{ $substrCP: ["$outcome", 0, 5] }, "error"] }, 1, 0] } },
        },
      },
      { $sort: { _id: 1 } },
    ])
    .toArray();
}
