/**
 * Records of a Kafka topic. A record is one message, identified by `<topic>/<partition>/<offset>`;
 * its JSON value (an object) gives the fields sent to the service, copied into batch_details when
 * the job is planned, so re-sends and requeues never depend on the topic's retention.
 *
 * Positions are per partition: a cut's key is an offset vector `{ "<partition>": <next offset> }`
 * — for every partition, the first offset *not* covered. A window is the per-partition offset
 * ranges [from[p], to[p]). The partitions are read together, merged by (timestamp, partition,
 * offset), and each record's key is the vector right after it; along one read the vectors only
 * grow, so the (key, id) order every other part of chunkrelay relies on holds: a chunk's last key
 * is where the completed prefix ends, and the lane's watermark — the vector after the completed
 * prefix — is exactly what may be committed to the consumer group (`commitWatermark`).
 *
 * Nothing here joins a consumer group (kafka-client.ts says why). A partition missing from a
 * `from` vector (one added to the topic later) starts at its log start; missing from a `to` vector,
 * it contributes nothing to that window.
 */
import { type Document, EJSON } from "bson";
import { readPath } from "../common/bson-order.js";
import { BadInputError } from "../common/errors.js";
import { type BatchConfig, type KafkaSourceConfig, kafkaGroupOf } from "../config/schema.js";
import { weightOf } from "../planning/chunking.js";
import type { Cut } from "../planning/cuts.js";
import { KafkaTopic, type KafkaMessage, type PartitionOffsets } from "./kafka-client.js";
import { type Source, type SourceRecord, type Window, generatorBatches, pickFields } from "./source.js";

/** An offset vector as stored in a cut's key: partition number (as a field name) → next offset. */
export type OffsetVector = Record<string, number>;

/** A message left out of a job (`invalidMessages: "skip"`), for the error topic. */
export interface SkippedMessage {
  id: string;
  partition: number;
  offset: number;
  reason: string;
  /** The value as text (UTF-8, cut to 64 KiB), or null for a tombstone. */
  value: string | null;
}

export interface KafkaSourceOptions {
  /** Told of every skipped message, in order, before the read goes on. Default: nobody. */
  onSkipped?: (message: SkippedMessage) => Promise<void>;
  /** Told when retention deleted offsets of a window before they could be read. */
  warn?: (message: string) => void;
}

const MAX_SAFE = BigInt(Number.MAX_SAFE_INTEGER);

function toNumber(offset: bigint): number {
  if (offset > MAX_SAFE) {
    throw new BadInputError(`Kafka offset ${offset} is beyond 2^53 - 1; chunkrelay cannot store it exactly`);
  }
  return Number(offset);
}

/** The offset vector of a cut (undefined: no cut), checked: a cut of another source is refused. */
export function vectorOf(cut: Cut | undefined, topic: string): PartitionOffsets | undefined {
  if (cut === undefined) return undefined;
  const key = cut.key;
  if (key === null || typeof key !== "object" || Array.isArray(key) || key instanceof Date) {
    throw new BadInputError(
      `a window bound of Kafka topic '${topic}' must be partition offsets (like {"0": 120, "1": 98}), not ${EJSON.stringify({ v: key }, { relaxed: true })}`,
    );
  }
  const out: PartitionOffsets = new Map();
  for (const [p, o] of Object.entries(key as Record<string, unknown>)) {
    const offset = typeof o === "number" ? o : Number((o as { valueOf?: () => unknown } | null)?.valueOf?.());
    if (!/^\d+$/.test(p) || !Number.isSafeInteger(offset) || offset < 0) {
      throw new BadInputError(
        `a window bound of Kafka topic '${topic}' has a bad partition offset ${p}: ${String(o)}`,
      );
    }
    out.set(Number(p), BigInt(offset));
  }
  return out;
}

/** The vector as a cut key: every partition, ascending (integer-like field names keep that order). */
export function vectorKey(vector: PartitionOffsets): OffsetVector {
  const out: OffsetVector = {};
  for (const p of [...vector.keys()].sort((a, b) => a - b))
    out[String(p)] = toNumber(vector.get(p) as bigint);
  return out;
}

export const kafkaRecordId = (topic: string, partition: number, offset: bigint | number): string =>
  `${topic}/${partition}/${offset}`;

/** A message's value as a document, or why it is not one. */
function parseValue(value: Buffer | null): { doc: Document } | { problem: string } {
  if (value === null) return { problem: "a tombstone (null value), not a JSON object" };
  let doc: unknown;
  try {
    doc = EJSON.parse(value.toString("utf8"), { relaxed: true });
  } catch (err) {
    return { problem: `not JSON (${(err as Error).message})` };
  }
  if (doc === null || typeof doc !== "object" || Array.isArray(doc)) {
    return { problem: "JSON, but not an object" };
  }
  return { doc: doc };
}

/** The per-partition bounds of a window on the topic as it is now. */
interface Bounds {
  partitions: number[];
  start: PartitionOffsets;
  end: PartitionOffsets;
}

type KafkaConfig = Pick<BatchConfig, "name"> & { source: KafkaSourceConfig };

export function openKafkaTopic(config: KafkaConfig): KafkaTopic {
  const s = config.source;
  return new KafkaTopic(
    { brokers: s.brokers, clientId: s.clientId, timeoutMs: s.timeoutMs },
    s.topic,
    kafkaGroupOf(config),
    s.maxBytesPerPartition,
  );
}

export function kafkaSource(config: KafkaConfig, options: KafkaSourceOptions = {}): Source {
  const source = config.source;
  const topic = openKafkaTopic(config);
  const name = source.topic;

  async function boundsOf(window: Window): Promise<Bounds> {
    const partitions = await topic.partitions();
    const [earliest, latest] = await Promise.all([topic.offsets("earliest"), topic.offsets("latest")]);
    const from = vectorOf(window.from, name);
    const to = vectorOf(window.to, name);
    const start: PartitionOffsets = new Map();
    const end: PartitionOffsets = new Map();
    for (const p of partitions) {
      const first = earliest.get(p) ?? 0n;
      const s = from?.get(p) ?? first;
      const high = latest.get(p) ?? first;
      // A position past the log's end: the topic was deleted and recreated (offsets start again at
      // 0) or its log truncated. Reading on from there would skip messages without a word.
      if (s > high) {
        throw new BadInputError(
          `Kafka topic ${name} partition ${p} ends at offset ${high}, before this window's start ${s}: the topic was recreated or its log truncated (or a backfill's --from lies past its end), so messages would be skipped unseen. To start over on the new topic, apply the config under a new name (its first job starts at the consumer group's offsets, or source.startFrom)`,
        );
      }
      const bound = to ? (to.get(p) ?? s) : high;
      const e = bound < high ? bound : high;
      start.set(p, s);
      end.set(p, e > s ? e : s);
    }
    return { partitions, start, end };
  }

  const toRecord = (m: KafkaMessage, doc: Document, vector: PartitionOffsets): SourceRecord => ({
    id: kafkaRecordId(name, m.partition, m.offset),
    key: vectorKey(vector),
    weight: source.weightField ? weightOf(readPath(doc, source.weightField)) : 0,
    data: pickFields(doc, source.fields),
  });

  /**
   * The window's messages merged by (timestamp, partition, offset), in batches. Once read to its
   * end, `done.cut` is the vector after the whole window — past skipped messages too.
   */
  async function* readWindow(
    window: Window,
    batchSize: number,
    done: { cut?: Cut },
  ): AsyncGenerator<SourceRecord[]> {
    const { partitions, start, end } = await boundsOf(window);
    const vector = new Map(start);
    const queues = new Map<number, KafkaMessage[]>(partitions.map((p) => [p, []]));
    const position = new Map(start);
    const fill = async (p: number) => {
      let stalls = 0;
      while (
        (queues.get(p) as KafkaMessage[]).length === 0 &&
        (position.get(p) as bigint) < (end.get(p) as bigint)
      ) {
        const at = position.get(p) as bigint;
        const got = await topic.fetch(p, at);
        if (got.lost) {
          options.warn?.(
            `Kafka topic ${name} partition ${p}: offsets ${got.lost.from}–${got.lost.to - 1n} were deleted by retention before chunkrelay read them; reading on from ${got.lost.to}`,
          );
          vector.set(p, got.lost.to);
        }
        const limit = end.get(p) as bigint;
        const kept = got.messages.filter((m) => m.offset < limit);
        (queues.get(p) as KafkaMessage[]).push(...kept);
        const next = got.next < limit ? got.next : limit;
        if (next <= at && kept.length === 0) {
          if (++stalls >= 3) {
            throw new Error(
              `Kafka topic ${name} partition ${p}: no progress reading at offset ${at} (below ${limit}); the step is retried`,
            );
          }
        } else stalls = 0;
        position.set(p, next);
        // Compaction gaps or transaction markers at the end: the partition is read to its bound.
        if (kept.length === 0 && next >= limit)
          vector.set(p, limit > (vector.get(p) as bigint) ? limit : (vector.get(p) as bigint));
      }
    };
    let batch: SourceRecord[] = [];
    for (;;) {
      await Promise.all(partitions.map((p) => fill(p)));
      let chosen: KafkaMessage | undefined;
      for (const p of partitions) {
        const head = (queues.get(p) as KafkaMessage[])[0];
        if (
          head &&
          (!chosen ||
            head.timestamp < chosen.timestamp ||
            (head.timestamp === chosen.timestamp && head.partition < chosen.partition))
        ) {
          chosen = head;
        }
      }
      if (!chosen) break;
      (queues.get(chosen.partition) as KafkaMessage[]).shift();
      vector.set(chosen.partition, chosen.offset + 1n);
      const parsed = parseValue(chosen.value);
      if ("problem" in parsed) {
        const id = kafkaRecordId(name, chosen.partition, chosen.offset);
        if (source.invalidMessages === "fail") {
          throw new BadInputError(
            `Kafka message ${id}: the value is ${parsed.problem}; a record's value must be a JSON object. Produce a corrected message, or set source.invalidMessages to "skip" (with errorTopic) to leave such messages out`,
          );
        }
        await options.onSkipped?.({
          id,
          partition: chosen.partition,
          offset: toNumber(chosen.offset),
          reason: `the value is ${parsed.problem}`,
          value: chosen.value === null ? null : chosen.value.subarray(0, 65_536).toString("utf8"),
        });
        continue;
      }
      batch.push(toRecord(chosen, parsed.doc, vector));
      if (batch.length >= batchSize) {
        yield batch;
        batch = [];
      }
    }
    if (batch.length > 0) yield batch;
    done.cut = { key: vectorKey(vector), id: null };
  }

  return {
    description: `kafka topic ${name} on ${source.brokers.join(",")}`,
    async lastRecord(window) {
      const { partitions, start, end } = await boundsOf(window);
      if (!partitions.some((p) => (end.get(p) as bigint) > (start.get(p) as bigint))) return undefined;
      // The vector after the window's last record is its end in every partition; the id is not
      // needed to place it (vectors are unique along a read), so it names the end itself.
      return { id: null, key: vectorKey(end) };
    },
    read(window, batchSize) {
      const done: { cut?: Cut } = {};
      return { ...generatorBatches(readWindow(window, batchSize, done)), endCut: () => done.cut };
    },
    async count(from) {
      const { partitions, start, end } = await boundsOf(from ? { from } : {});
      let records = 0;
      for (const p of partitions) records += toNumber((end.get(p) as bigint) - (start.get(p) as bigint));
      return { records };
    },
    async startCut() {
      const [partitions, committed, latest, earliest] = await Promise.all([
        topic.partitions(),
        topic.committedOffsets(),
        topic.offsets("latest"),
        topic.offsets("earliest"),
      ]);
      const start: PartitionOffsets = new Map();
      for (const p of partitions) {
        const fallback = source.startFrom === "latest" ? latest.get(p) : earliest.get(p);
        start.set(p, committed.get(p) ?? fallback ?? 0n);
      }
      return { key: vectorKey(start), id: null };
    },
    close: () => topic.close(),
  };
}

/**
 * A `--from`/`--to` of a Kafka source as an offset vector: a time (`2026-01-31T12:00:00Z`, the
 * first offsets at or after it; for `--to`, the messages up to and including that time), one
 * offset for every partition (`1200`), or offsets per partition (`0:1200,1:1180`); `--to` offsets
 * are inclusive, as `--to` is for every source.
 */
export async function parseKafkaBound(
  config: KafkaConfig,
  text: string,
  side: "from" | "to",
  what: string,
): Promise<OffsetVector> {
  const topic = openKafkaTopic(config);
  try {
    const partitions = await topic.partitions();
    const inclusive = side === "to" ? 1n : 0n;
    const trimmed = text.trim();
    if (/^\d+$/.test(trimmed)) {
      return vectorKey(new Map(partitions.map((p) => [p, BigInt(trimmed) + inclusive])));
    }
    if (/^\d+:\d+(,\d+:\d+)*$/.test(trimmed)) {
      const out: PartitionOffsets = new Map();
      for (const pair of trimmed.split(",")) {
        const [p, o] = pair.split(":").map(Number) as [number, number];
        if (!partitions.includes(p)) {
          throw new BadInputError(
            `${what} '${text}': topic ${config.source.topic} has no partition ${p} (it has ${partitions.length})`,
          );
        }
        out.set(p, BigInt(o) + inclusive);
      }
      if (side === "from") {
        // Partitions not named start at their log start.
        const earliest = await topic.offsets("earliest");
        for (const p of partitions) if (!out.has(p)) out.set(p, earliest.get(p) ?? 0n);
      }
      return vectorKey(out);
    }
    const time = Date.parse(/^\d{4}-\d{2}-\d{2}$/.test(trimmed) ? `${trimmed}T00:00:00Z` : trimmed);
    if (!/^\d{4}-\d{2}-\d{2}/.test(trimmed) || Number.isNaN(time)) {
      throw new BadInputError(
        `${what} '${text}' is not a Kafka position: write a time (2026-01-31 or 2026-01-31T12:00:00Z), one offset for every partition (1200), or offsets per partition (0:1200,1:1180)`,
      );
    }
    // `--to` a time: the messages up to and including it, so the first offset after it.
    return vectorKey(await topic.offsets(side === "to" ? time + 1 : time));
  } finally {
    await topic.close();
  }
}
