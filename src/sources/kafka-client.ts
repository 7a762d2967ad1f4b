/**
 * The few Kafka operations chunkrelay needs, over @platformatic/kafka: a topic's partitions and
 * offsets, a fetch of one partition from one offset, a consumer group's committed offsets and a
 * commit of new ones, and producing keyed messages. Reads never join a consumer group: windows are
 * chunkrelay's own (per-partition offset ranges claimed in MongoDB), so a group rebalance can never
 * hand a partition to someone else in the middle of a job. The group is written to only to mirror
 * the watermark (`commitOffsets`), the way another consumer of the group expects to find it.
 *
 * Connections open on first use and close with `close()`; every caller closes what it opened.
 * Errors are sorted once here: a topic that does not exist is bad input (never retried), a broker
 * that cannot be reached is an outage (retried by the step's runtime), both named in the message.
 */
import {
  Admin,
  Consumer,
  GenericError,
  ListOffsetTimestamps,
  MultipleErrors,
  ProduceAcks,
  Producer,
} from "@platformatic/kafka";
import { BadInputError } from "../common/errors.js";

type FetchResponse = Awaited<ReturnType<Consumer["fetch"]>>;

export interface KafkaEndpoint {
  brokers: readonly string[];
  clientId: string;
  /** Timeout of one request (connecting included), in ms. */
  timeoutMs: number;
}

export interface KafkaMessage {
  partition: number;
  offset: bigint;
  timestamp: bigint;
  key: Buffer | null;
  value: Buffer | null;
}

/** Partition → offset. */
export type PartitionOffsets = Map<number, bigint>;

/** A batch of transaction markers, not records (Kafka's batch attribute bit 5). */
const IS_CONTROL = 0x20;

/** All texts of an error and its causes (the client wraps per-broker errors in an AggregateError). */
function errorTexts(err: unknown, out: string[] = [], depth = 0): string[] {
  if (depth > 5 || err === null || err === undefined) return out;
  if (err instanceof Error) {
    out.push(err.message);
    // The client's ProtocolError carries Kafka's own error name (OFFSET_OUT_OF_RANGE, …) in apiId.
    for (const field of ["code", "apiId"] as const) {
      const value = (err as { [k in typeof field]?: unknown })[field];
      if (typeof value === "string") out.push(value);
    }
    if (err instanceof AggregateError || err instanceof MultipleErrors) {
      for (const e of err.errors) errorTexts(e, out, depth + 1);
    }
    errorTexts((err as { cause?: unknown }).cause, out, depth + 1);
  }
  return out;
}

/** A client error as chunkrelay's: an unknown topic is bad input; anything else stays an outage. */
export function explainKafkaError(err: unknown, endpoint: KafkaEndpoint, topic?: string): unknown {
  if (err instanceof BadInputError) return err;
  const texts = errorTexts(err).join(" | ");
  if (
    topic !== undefined &&
    /UNKNOWN_TOPIC_OR_PARTITION|unknown topic|does not host this topic/i.test(texts)
  ) {
    return new BadInputError(
      `Kafka topic '${topic}' does not exist on ${endpoint.brokers.join(",")}; create it (kafka-topics.sh --create --topic ${topic}) or fix source.topic`,
    );
  }
  if (err instanceof GenericError || err instanceof MultipleErrors) {
    const first = texts.split(" | ").slice(0, 3).join("; ");
    const unreachable =
      /ECONNREFUSED|ENOTFOUND|EAI_AGAIN|ETIMEDOUT|EHOSTUNREACH|timed out|Timeout|connect/i.test(texts);
    return new Error(
      unreachable
        ? `cannot reach the Kafka brokers ${endpoint.brokers.join(",")} (${first}); check source.brokers and that the brokers run — the step is retried`
        : `Kafka request failed on ${endpoint.brokers.join(",")}: ${first}`,
      { cause: err },
    );
  }
  return err;
}

const baseOptions = (endpoint: KafkaEndpoint) => ({
  clientId: endpoint.clientId,
  bootstrapBrokers: [...endpoint.brokers],
  timeout: endpoint.timeoutMs,
  connectTimeout: endpoint.timeoutMs,
  requestTimeout: endpoint.timeoutMs,
  // A few quick tries inside one request; past them the step's own retry (with backoff) decides.
  retries: 2,
  retryDelay: 200,
  autocreateTopics: false,
});

/** One topic of one cluster, read without joining a group. */
export class KafkaTopic {
  private consumer: Consumer | undefined;
  private admin: Admin | undefined;
  /** The topic's id and partition leaders, from the last metadata request. */
  private known: { id: string; leaders: number[] } | undefined;

  constructor(
    readonly endpoint: KafkaEndpoint,
    readonly topic: string,
    /** The group whose committed offsets are read and written. */
    readonly groupId: string,
    private readonly maxBytesPerPartition = 1024 * 1024,
  ) {}

  private client(): Consumer {
    this.consumer ??= new Consumer({ ...baseOptions(this.endpoint), groupId: this.groupId });
    return this.consumer;
  }

  private adminClient(): Admin {
    this.admin ??= new Admin(baseOptions(this.endpoint));
    return this.admin;
  }

  private async call<T>(run: () => Promise<T>): Promise<T> {
    try {
      return await run();
    } catch (err) {
      throw explainKafkaError(err, this.endpoint, this.topic);
    }
  }

  /** The topic's partitions and their leaders (fresh metadata: partitions may have been added). */
  private async metadata(): Promise<{ id: string; leaders: number[] }> {
    const meta = await this.call(() =>
      this.client().metadata({ topics: [this.topic], forceUpdate: true, autocreateTopics: false }),
    );
    const topic = meta.topics.get(this.topic);
    if (!topic) throw explainKafkaError(new Error("UNKNOWN_TOPIC_OR_PARTITION"), this.endpoint, this.topic);
    this.known = { id: topic.id, leaders: topic.partitions.map((p) => p.leader) };
    return this.known;
  }

  /** The topic's partition numbers, ascending. */
  async partitions(): Promise<number[]> {
    const { leaders } = await this.metadata();
    return leaders.map((_, i) => i);
  }

  /**
   * Offsets per partition: the log start ("earliest"), the high watermark ("latest": the offset
   * the next message will get), or, for a time in ms, the first offset whose timestamp is at or
   * after it (the high watermark when there is none).
   */
  async offsets(at: "earliest" | "latest" | number): Promise<PartitionOffsets> {
    const timestamp =
      at === "earliest"
        ? ListOffsetTimestamps.EARLIEST
        : at === "latest"
          ? ListOffsetTimestamps.LATEST
          : BigInt(Math.max(0, Math.floor(at)));
    const [listed, latest] = await Promise.all([
      this.call(() => this.client().listOffsets({ topics: [this.topic], timestamp })),
      typeof at === "number"
        ? this.call(() =>
            this.client().listOffsets({ topics: [this.topic], timestamp: ListOffsetTimestamps.LATEST }),
          )
        : Promise.resolve(undefined),
    ]);
    const offsets = listed.get(this.topic);
    if (!offsets) throw explainKafkaError(new Error("UNKNOWN_TOPIC_OR_PARTITION"), this.endpoint, this.topic);
    const out: PartitionOffsets = new Map();
    offsets.forEach((offset, partition) => {
      // No message at or after the time: the partition's end.
      const end = latest?.get(this.topic)?.[partition];
      out.set(partition, offset < 0n && end !== undefined ? end : offset);
    });
    return out;
  }

  /**
   * The messages of one partition from `offset` on (one fetch, at most maxBytesPerPartition), and
   * the offset to fetch next. `lost`: the offset was below the log start (deleted by retention);
   * the read went on from the log start.
   */
  async fetch(
    partition: number,
    offset: bigint,
  ): Promise<{ messages: KafkaMessage[]; next: bigint; lost?: { from: bigint; to: bigint } }> {
    const { id, leaders } = this.known ?? (await this.metadata());
    const leader = leaders[partition];
    if (leader === undefined || leader < 0) {
      throw new Error(
        `partition ${partition} of Kafka topic '${this.topic}' has no leader now; the step is retried`,
      );
    }
    const request = (from: bigint): Promise<FetchResponse> =>
      this.call(() =>
        this.client().fetch({
          node: leader,
          maxWaitTime: 100,
          minBytes: 1,
          maxBytes: this.maxBytesPerPartition,
          topics: [
            {
              topicId: id,
              partitions: [
                {
                  partition,
                  fetchOffset: from,
                  partitionMaxBytes: this.maxBytesPerPartition,
                  currentLeaderEpoch: -1,
                  lastFetchedEpoch: -1,
                },
              ],
            },
          ],
        }),
      );
    let response: FetchResponse;
    let lost: { from: bigint; to: bigint } | undefined;
    try {
      response = await request(offset);
    } catch (err) {
      if (!errorTexts(err).some((t) => /OFFSET_OUT_OF_RANGE/.test(t))) throw err;
      const start = (await this.offsets("earliest")).get(partition) ?? 0n;
      if (start <= offset) throw err;
      lost = { from: offset, to: start };
      response = await request(start);
    }
    const part = response.responses[0]?.partitions[0];
    if (part && part.errorCode !== 0) {
      throw new Error(
        `Kafka fetch of ${this.topic}/${partition} at ${offset} failed with error code ${part.errorCode}`,
      );
    }
    const from = lost ? lost.to : offset;
    const messages: KafkaMessage[] = [];
    let next = from;
    for (const batch of part?.records ?? []) {
      const last = batch.firstOffset + BigInt(batch.lastOffsetDelta);
      if (last + 1n > next) next = last + 1n;
      if (batch.attributes & IS_CONTROL) continue;
      for (const record of batch.records) {
        const at = batch.firstOffset + BigInt(record.offsetDelta);
        // A fetch returns whole batches: the records before the requested offset were read already.
        if (at < from) continue;
        messages.push({
          partition,
          offset: at,
          timestamp: batch.firstTimestamp + record.timestampDelta,
          key: record.key,
          value: record.value,
        });
      }
    }
    return { messages, next, ...(lost ? { lost } : {}) };
  }

  /** The group's committed offsets for this topic (partitions without a commit are absent). */
  async committedOffsets(): Promise<PartitionOffsets> {
    // Every partition, so a topic's later partitions are asked about too.
    const partitionIndexes = await this.partitions();
    const groups = await this.call(() =>
      this.adminClient().listConsumerGroupOffsets({
        groups: [{ groupId: this.groupId, topics: [{ name: this.topic, partitionIndexes }] }],
      }),
    );
    const out: PartitionOffsets = new Map();
    for (const g of groups) {
      for (const t of g.topics) {
        if (t.name !== this.topic) continue;
        for (const p of t.partitions)
          if (p.committedOffset >= 0n) out.set(p.partitionIndex, p.committedOffset);
      }
    }
    return out;
  }

  /**
   * Commits `offsets` (the next offset to read per partition) for the group, as an admin: the
   * group has no member of chunkrelay's. Kafka refuses this while the group has active members
   * (another application consuming with the same group id): that is bad input.
   */
  async commitOffsets(offsets: PartitionOffsets): Promise<void> {
    if (offsets.size === 0) return;
    try {
      await this.adminClient().alterConsumerGroupOffsets({
        groupId: this.groupId,
        topics: [
          {
            name: this.topic,
            partitionOffsets: [...offsets].map(([partition, offset]) => ({ partition, offset })),
          },
        ],
      });
    } catch (err) {
      if (
        errorTexts(err).some((t) =>
          /UNKNOWN_MEMBER_ID|REBALANCE_IN_PROGRESS|NON_EMPTY_GROUP|ILLEGAL_GENERATION/.test(t),
        )
      ) {
        throw new BadInputError(
          `consumer group '${this.groupId}' has active members, so chunkrelay cannot commit its watermark there; give the config its own source.groupId (other consumers of the topic must use another group)`,
        );
      }
      throw explainKafkaError(err, this.endpoint, this.topic);
    }
  }

  async close(): Promise<void> {
    const open = [this.consumer, this.admin].filter((c) => c !== undefined);
    this.consumer = undefined;
    this.admin = undefined;
    await Promise.allSettled(open.map((c) => c.close()));
  }
}

/** Produces keyed JSON messages to one topic (the error topic); connects on first use. */
export class KafkaProducer {
  private producer: Producer | undefined;

  constructor(readonly endpoint: KafkaEndpoint) {}

  async send(topic: string, messages: Array<{ key: string; value: unknown }>): Promise<void> {
    if (messages.length === 0) return;
    this.producer ??= new Producer({ ...baseOptions(this.endpoint), acks: ProduceAcks.ALL });
    const producer = this.producer;
    try {
      await producer.send({
        messages: messages.map((m) => ({
          topic,
          key: Buffer.from(m.key),
          value: Buffer.from(JSON.stringify(m.value)),
        })),
      });
    } catch (err) {
      throw explainKafkaError(err, this.endpoint, topic);
    }
  }

  async close(): Promise<void> {
    const p = this.producer;
    this.producer = undefined;
    if (p) await p.close();
  }
}
