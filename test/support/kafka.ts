/**
 * Kafka for tests (the Kafka lane, `*.kafka.test.ts`): topics of their own, JSON messages
 * produced to chosen partitions, and every client closed at the end — the leak guard fails a file
 * that leaves a socket open.
 *
 *   const kafka = useKafka("orders");        // at the top of a describe/file
 *   const topic = await kafka.createTopic(3); // unique name, 3 partitions, ready for produce
 *   await kafka.produce(topic, [{ partition: 0, value: { id: 1 } }]);
 */
import { randomBytes } from "node:crypto";
import { Admin, type ProduceResult, Producer, stringSerializers } from "@platformatic/kafka";
import { afterAll, inject } from "vitest";
import { KafkaTopic } from "../../src/sources/kafka-client.js";
import { waitUntil } from "./wait.js";

export interface JsonMessage {
  partition: number;
  value: unknown;
  key?: string;
}

export interface TestKafka {
  /** Bootstrap brokers (`host:port`), as given to the lane. */
  brokers: string[];
  /** A new client id, unique within the run. */
  clientId: (role: string) => string;
  /** Creates a uniquely named topic and resolves once every partition has a leader that answers. */
  createTopic: (partitions: number, options?: { deadlineMs?: number }) => Promise<string>;
  /** Produces JSON values to the given partitions (acks from all in-sync replicas). */
  produce: (topic: string, messages: JsonMessage[]) => Promise<ProduceResult>;
  /** A consumer group's committed offsets for a topic, by partition (partitions without one left out). */
  committedOffsets: (topic: string, group: string) => Promise<Record<number, number>>;
  /** The next offset to be written in each partition (the high watermark), by partition index. */
  endOffsets: (topic: string, partitions: number) => Promise<bigint[]>;
  deleteTopics: (topics: string[]) => Promise<void>;
  /** Deletes the topics this helper created and closes its clients (also done in afterAll). */
  close: () => Promise<void>;
}

/** Between the client's retries (its default is 1 s; the broker here is local). */
const RETRY_DELAY_MS = 250;

export function kafkaBrokers(): string[] {
  return inject("kafkaBrokers");
}

export function useKafka(label: string): TestKafka {
  const brokers = kafkaBrokers();
  const prefix = `t_${label.replace(/[^a-zA-Z0-9_-]/g, "_").slice(0, 30)}_${randomBytes(3).toString("hex")}`;
  let seq = 0;
  const clientId = (role: string) => `chunkrelay-test-${role}-${prefix}-${++seq}`;
  const created = new Set<string>();
  let admin: Admin | undefined;
  let producer: Producer<string, string, string, string> | undefined;

  const theAdmin = () =>
    (admin ??= new Admin({
      clientId: clientId("admin"),
      bootstrapBrokers: brokers,
      retryDelay: RETRY_DELAY_MS,
    }));
  const theProducer = () =>
    (producer ??= new Producer({
      clientId: clientId("producer"),
      bootstrapBrokers: brokers,
      serializers: stringSerializers,
      retryDelay: RETRY_DELAY_MS,
      acks: -1,
      // A retried send (e.g. a partition whose leadership the broker is still taking up) must not
      // write its records twice: tests count and place every message.
      idempotent: true,
    }));

  async function createTopic(partitions: number, options: { deadlineMs?: number } = {}): Promise<string> {
    const topic = `${prefix}_${++seq}`;
    const client = theAdmin();
    await client.createTopics({ topics: [topic], partitions, replicas: 1 });
    created.add(topic);
    // Ready when the metadata lists every partition with a leader and each leader answers a
    // ListOffsets for it (the broker has taken up leadership), not after a guessed sleep.
    let last = "nothing asked yet";
    await waitUntil(
      async () => {
        try {
          const metadata = await client.metadata({ topics: [topic], forceUpdate: true });
          const info = metadata.topics.get(topic);
          if (!info || info.partitionsCount !== partitions || info.partitions.some((p) => p.leader < 0)) {
            last = `metadata: ${info ? `${info.partitionsCount} partitions` : "no topic"}`;
            return false;
          }
          const ends = await endOffsets(topic, partitions);
          const answered = ends.filter((o) => o >= 0n).length;
          last = `listOffsets answered for ${answered} of ${partitions} partitions`;
          return answered === partitions;
        } catch (error) {
          last = String(error);
          return false;
        }
      },
      {
        what: `topic ${topic} ready with ${partitions} partitions`,
        deadlineMs: options.deadlineMs ?? 15_000,
        everyMs: 50,
        context: () => last,
      },
    );
    return topic;
  }

  async function produce(topic: string, messages: JsonMessage[]): Promise<ProduceResult> {
    // The idempotent producer of @platformatic/kafka 1.35 never settles a send to a topic that
    // does not exist (a plain one rejects with UserError "Unknown topic <name>."): ask the
    // metadata first, which rejects with that same error.
    await theAdmin().metadata({ topics: [topic] });
    return theProducer().send({
      messages: messages.map((m) => ({
        topic,
        partition: m.partition,
        value: JSON.stringify(m.value),
        ...(m.key === undefined ? {} : { key: m.key }),
      })),
    });
  }

  async function deleteTopics(topics: string[]): Promise<void> {
    if (topics.length === 0) return;
    await theAdmin().deleteTopics({ topics });
    for (const t of topics) created.delete(t);
  }

  async function endOffsets(topic: string, partitions: number): Promise<bigint[]> {
    const listed = await theAdmin().listOffsets({
      topics: [
        {
          name: topic,
          partitions: Array.from({ length: partitions }, (_, i) => ({ partitionIndex: i, timestamp: -1n })),
        },
      ],
    });
    const byIndex = new Map(
      listed.find((t) => t.name === topic)?.partitions.map((p) => [p.partitionIndex, p.offset]),
    );
    return Array.from({ length: partitions }, (_, i) => byIndex.get(i) ?? -1n);
  }

  async function committedOffsets(topic: string, group: string): Promise<Record<number, number>> {
    const t = new KafkaTopic({ brokers, clientId: clientId("committed"), timeoutMs: 5000 }, topic, group);
    try {
      return Object.fromEntries([...(await t.committedOffsets())].map(([p, o]) => [p, Number(o)]));
    } finally {
      await t.close();
    }
  }

  async function close(): Promise<void> {
    try {
      if (created.size > 0) await deleteTopics([...created]);
    } finally {
      const [p, a] = [producer, admin];
      producer = undefined;
      admin = undefined;
      await p?.close();
      await a?.close();
    }
  }

  afterAll(close);

  return { brokers, clientId, createTopic, produce, committedOffsets, endOffsets, deleteTopics, close };
}
