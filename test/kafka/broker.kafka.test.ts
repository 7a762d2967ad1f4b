/**
 * The Kafka lane works: a real broker (test/support/kafka-broker.ts) takes a topic, messages
 * produced to chosen partitions come back to a consumer group in order, with their offsets, and
 * the client names an unknown topic clearly.
 */
import {
  Consumer,
  type Message,
  Producer,
  UserError,
  stringDeserializers,
  stringSerializers,
} from "@platformatic/kafka";
import { describe, expect, it } from "vitest";
import { useKafka } from "../support/kafka.js";
import { waitUntil } from "../support/wait.js";

describe("the Kafka test broker", () => {
  const kafka = useKafka("broker");

  it("takes 30 messages on a 3-partition topic and gives them back in order, with their offsets", async () => {
    const topic = await kafka.createTopic(3);
    const sent = Array.from({ length: 30 }, (_, i) => ({ partition: i % 3, value: { i } }));
    await kafka.produce(topic, sent);
    expect(await kafka.endOffsets(topic, 3)).toEqual([10n, 10n, 10n]);

    const consumer = new Consumer({
      clientId: kafka.clientId("consumer"),
      groupId: `${topic}-group`,
      bootstrapBrokers: kafka.brokers,
      deserializers: stringDeserializers,
      maxWaitTime: 500,
    });
    const received: Message<string, string, string, string>[] = [];
    try {
      const stream = await consumer.consume({ topics: [topic], mode: "earliest", autocommit: false });
      try {
        stream.on("data", (message: Message<string, string, string, string>) => received.push(message));
        await waitUntil(() => received.length >= 30, {
          what: "30 messages consumed",
          deadlineMs: 20_000,
          context: () => `${received.length} received`,
        });
      } finally {
        await stream.close();
      }
    } finally {
      await consumer.close();
    }

    expect(received).toHaveLength(30);
    for (const partition of [0, 1, 2]) {
      const mine = received.filter((m) => m.partition === partition);
      expect(mine.map((m) => m.offset)).toEqual(Array.from({ length: 10 }, (_, k) => BigInt(k)));
      // Within a partition, in the order produced: i = partition, partition + 3, ...
      expect(mine.map((m) => (JSON.parse(m.value) as { i: number }).i)).toEqual(
        Array.from({ length: 10 }, (_, k) => partition + 3 * k),
      );
      expect(mine.every((m) => m.topic === topic)).toBe(true);
    }
  });

  it("rejects a send to a topic that does not exist with the client's UserError naming it", async () => {
    // The client's own error, from a plain producer (acks from all in-sync replicas).
    const missing = `${kafka.clientId("missing")}-no-such-topic`;
    const producer = new Producer({
      clientId: kafka.clientId("plain-producer"),
      bootstrapBrokers: kafka.brokers,
      serializers: stringSerializers,
      acks: -1,
    });
    try {
      const sending = producer.send({ messages: [{ topic: missing, partition: 0, value: "{}" }] });
      await expect(sending).rejects.toThrow(UserError);
      await expect(sending).rejects.toThrow(`Unknown topic ${missing}.`);
      await expect(sending).rejects.toMatchObject({ code: "PLT_KFK_USER" });
    } finally {
      await producer.close();
    }
    // The helper's (idempotent) producer fails the same way instead of waiting forever.
    const viaHelper = kafka.produce(missing, [{ partition: 0, value: { never: true } }]);
    await expect(viaHelper).rejects.toThrow(UserError);
    await expect(viaHelper).rejects.toThrow(`Unknown topic ${missing}.`);
  });
});
