/** Verbs on `batch_task_stats`: one row per step invocation, for `stats` and dashboards. */
import type { Document } from "bson";
import { isDuplicateKey } from "./errors.js";
import type { Store, TaskStatDoc } from "./store.js";

/**
 * Records one step invocation. Never throws: statistics must never fail a step (a lost row is a
 * smaller harm than a lost chunk).
 */
export async function insertStepStat(store: Store, doc: TaskStatDoc): Promise<void> {
  await store.taskStats.insertOne(doc).catch(() => undefined);
}

/**
 * Records several step invocations in one command (a runner's buffer). Throws when MongoDB did
 * not take them, so the caller can keep them for its next try; rows already there (a retried
 * write) count as written.
 */
export async function insertStepStats(store: Store, docs: TaskStatDoc[]): Promise<void> {
  if (docs.length === 0) return;
  try {
    await store.taskStats.insertMany(docs, { ordered: false });
  } catch (err) {
    if (!isDuplicateKey(err)) throw err;
  }
}

/**
 * Per task, the durations of its invocations matching `match` (sorted ascending) and how many
 * failed (outcome starting with "error"), in task order.
 */
export async function collectStepDurations(
  store: Store,
  match: Document,
): Promise<Array<{ _id: string; durations: number[]; failed: number }>> {
  // Read in duration order and grouped here: every duration is returned anyway, and a find works
  // on every implementation chunkrelay is tested on ($push and $substrCP in $group do not).
  const rows = store.taskStats
    .find(match, { projection: { _id: 0, task: 1, durationMs: 1, outcome: 1 } })
    .sort({ durationMs: 1 });
  const byTask = new Map<string, { _id: string; durations: number[]; failed: number }>();
  for await (const row of rows) {
    const task = String(row.task);
    let group = byTask.get(task);
    if (!group) byTask.set(task, (group = { _id: task, durations: [], failed: 0 }));
    group.durations.push(row.durationMs);
    if (typeof row.outcome === "string" && row.outcome.startsWith("error")) group.failed++;
  }
  return [...byTask.values()].sort((a, b) => (a._id < b._id ? -1 : a._id > b._id ? 1 : 0));
}
