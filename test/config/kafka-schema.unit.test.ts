/** The Kafka parts of the config schema: the source's fields and defaults, errorTopic's rules. */
import { describe, expect, it } from "vitest";
import { ConfigError, carriesData, kafkaGroupOf, parseConfig } from "../../src/config/schema.js";

const base = {
  name: "stream",
  source: { type: "kafka", brokers: ["kafka-1:9092"], topic: "orders" },
  target: { url: "http://127.0.0.1:3000/chunks" },
};

const issues = (raw: unknown): string[] => {
  try {
    parseConfig(raw);
  } catch (err) {
    if (err instanceof ConfigError) return err.issues;
    throw err;
  }
  return [];
};

describe("Kafka config", () => {
  it("fills the source's defaults and names the group after the config", () => {
    const c = parseConfig(base);
    expect(c.source).toEqual({
      type: "kafka",
      brokers: ["kafka-1:9092"],
      topic: "orders",
      clientId: "chunkrelay",
      startFrom: "earliest",
      fields: [],
      invalidMessages: "fail",
      timeoutMs: 10_000,
      maxBytesPerPartition: 1024 * 1024,
    });
    expect(carriesData(c.source)).toBe(true);
    if (c.source.type !== "kafka") throw new Error("not kafka");
    expect(kafkaGroupOf({ name: c.name, source: c.source })).toBe("chunkrelay.stream");
    expect(kafkaGroupOf({ name: c.name, source: { ...c.source, groupId: "billing" } })).toBe("billing");
  });

  it("refuses bad brokers, topics and groups, naming the field", () => {
    expect(issues({ ...base, source: { ...base.source, brokers: [] } })[0]).toMatch(/^source\.brokers/);
    expect(issues({ ...base, source: { ...base.source, brokers: ["kafka-1"] } })[0]).toContain(
      "a broker address host:port",
    );
    expect(issues({ ...base, source: { ...base.source, topic: "orders/eu" } })[0]).toContain(
      "a Kafka topic name",
    );
    expect(issues({ ...base, source: { ...base.source, topic: ".." } })[0]).toContain(
      "other than '.' or '..'",
    );
    expect(issues({ ...base, source: { ...base.source, topic: "x".repeat(250) } })[0]).toMatch(
      /^source\.topic/,
    );
    expect(issues({ ...base, source: { ...base.source, groupId: "a b" } })[0]).toMatch(/^source\.groupId/);
    expect(issues({ ...base, source: { ...base.source, partitions: 3 } })[0]).toContain(
      "unknown field(s) 'partitions'",
    );
    expect(issues({ ...base, source: { ...base.source, type: "rabbit" } })[0]).toContain('"kafka"');
  });

  it("needs errorTopic for skipped messages, and brokers for an error topic beside a collection", () => {
    expect(issues({ ...base, source: { ...base.source, invalidMessages: "skip" } })).toEqual([
      'source.invalidMessages: source.invalidMessages "skip" needs errorTopic (skipped messages go there, so none is lost); add errorTopic: {topic: "…"} or use "fail"',
    ]);
    expect(
      issues({ ...base, source: { ...base.source, invalidMessages: "skip" }, errorTopic: { topic: "dead" } }),
    ).toEqual([]);
    const collection = { ...base, source: { collection: "orders" } };
    expect(issues({ ...collection, errorTopic: { topic: "dead" } })).toEqual([
      "errorTopic.brokers: errorTopic.brokers is required when the source is not a Kafka topic",
    ]);
    expect(issues({ ...collection, errorTopic: { topic: "dead", brokers: ["k:9092"] } })).toEqual([]);
  });
});
