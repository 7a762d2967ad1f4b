/**
 * Mirrors a Kafka config's watermark into its consumer group: the committed offsets are the
 * lane's `completedUpTo` vector — every message before them processed (or set aside and
 * resolved) — and never more, so another consumer of the group, or a tool reading its lag, sees
 * exactly what chunkrelay finished. Only the config's incremental lane is mirrored: a backfill
 * window re-reads old offsets and says nothing about the live position.
 *
 * The commit follows the watermark in MongoDB, which stays the record of truth: a commit that
 * fails (a broker down) is logged, and the next job's settlement commits the whole vector again.
 */
import { readConfig } from "../store/configs.js";
import { readLane } from "../store/lanes.js";
import type { Store } from "../store/store.js";
import type { Logger } from "../steps/handover.js";
import { laneDocId } from "../planning/lane-ids.js";
import { openKafkaTopic, vectorOf } from "../sources/kafka-source.js";

export async function commitWatermark(
  deps: { store: Store; log: Logger },
  configName: string,
  laneId: string,
): Promise<void> {
  if (laneDocId(laneId) !== configName) return;
  const config = await readConfig(deps.store, configName).catch(() => undefined);
  if (config?.source.type !== "kafka") return;
  const source = config.source;
  const lane = await readLane(deps.store, configName);
  const vector = vectorOf(lane?.completedUpTo, source.topic);
  if (!vector) return;
  const topic = openKafkaTopic({ name: config.name, source });
  try {
    await topic.commitOffsets(vector);
  } catch (err) {
    deps.log.warn(
      `could not commit the watermark of ${configName} to Kafka group ${topic.groupId}: ${err instanceof Error ? err.message : String(err)}; the next job commits it again`,
      { config: configName },
    );
  } finally {
    await topic.close();
  }
}
