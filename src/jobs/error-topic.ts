/**
 * The error topic (config `errorTopic`): set-aside records, and messages a Kafka source skipped,
 * produced to a Kafka topic as the worker system's `error` queue did, besides `batch_exceptions`.
 * Each message is keyed `<jobId>/<recordId>`, so a consumer can drop the repeat a crash may cause
 * (produced at least once: the exceptions are written first, then produced, and a step that dies
 * in between produces them again when it runs again).
 */
import { EJSON } from "bson";
import type { BatchConfig } from "../config/schema.js";
import { KafkaProducer } from "../sources/kafka-client.js";

export interface ErrorTopicMessage {
  kind: "set-aside" | "skipped";
  jobId: string;
  config: string;
  recordId: unknown;
  reason: string;
  chunk?: number;
  attempts?: number;
  /** A skipped message's value as text. */
  value?: string | null;
  at: Date;
}

export interface ErrorTopic {
  readonly topic: string;
  send(messages: readonly ErrorTopicMessage[]): Promise<void>;
  close(): Promise<void>;
}

/** The config's error topic, or undefined when it has none. Connects on first send. */
export function openErrorTopic(config: BatchConfig): ErrorTopic | undefined {
  const target = config.errorTopic;
  if (!target) return undefined;
  const source = config.source;
  const brokers = target.brokers ?? (source.type === "kafka" ? source.brokers : undefined);
  // The schema makes brokers required unless the source is a topic.
  if (!brokers) throw new Error(`config '${config.name}': errorTopic.brokers is missing`);
  const producer = new KafkaProducer({
    brokers,
    clientId: source.type === "kafka" ? source.clientId : "chunkrelay",
    timeoutMs: source.type === "kafka" ? source.timeoutMs : 10_000,
  });
  return {
    topic: target.topic,
    async send(messages) {
      await producer.send(
        target.topic,
        messages.map((m) => {
          const id =
            typeof m.recordId === "string" ? m.recordId : EJSON.stringify({ v: m.recordId }).slice(5, -1);
          return {
            key: `${m.jobId}/${id}`,
            // Extended JSON (relaxed): ObjectIds and dates stay readable and exact.
            value: JSON.parse(EJSON.stringify({ ...m, recordId: m.recordId }, { relaxed: true })) as unknown,
          };
        }),
      );
    },
    close: () => producer.close(),
  };
}
