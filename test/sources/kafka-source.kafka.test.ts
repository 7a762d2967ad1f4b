/**
 * The Kafka source against a real broker (the Kafka lane): per-partition offset windows, the
 * watermark committed to the consumer group and never past an unfinished record, incremental jobs
 * after the previous claim, backfills by offset, caps, the error topic, invalid messages, and the
 * errors of an unknown topic and of brokers that cannot be reached.
 */
import { Consumer, stringDeserializers } from "@platformatic/kafka";
import { beforeAll, describe, expect, it } from "vitest";
import { saveConfig } from "../../src/store/configs.js";
import { readBacklog } from "../../src/queries/backlog.js";
import { runJobLocally } from "../../src/runtimes/local/local-runner.js";
import { KafkaTopic } from "../../src/sources/kafka-client.js";
import { kafkaSource } from "../../src/sources/kafka-source.js";
import type { Store } from "../../src/store/store.js";
import { useKafka } from "../support/kafka.js";
import { type FakeReply, type FakeRequest, startFakeService, usePipelineStore } from "../support/pipeline.js";

const { cleanups, store: currentStore } = usePipelineStore("kafka_source");
const kafka = useKafka("source");
let store: Store;
beforeAll(() => {
  store = currentStore();
});

const processed: FakeReply = { status: 202, report: "processed" };

async function service(decide: (req: FakeRequest) => FakeReply | Promise<FakeReply> = () => processed) {
  const s = await startFakeService(store, decide);
  cleanups.push(() => s.stop());
  return s;
}

/** `count` messages spread round-robin over `partitions`, valued {n, sku, qty}. */
async function produceOrders(topic: string, partitions: number, from: number, count: number) {
  await kafka.produce(
    topic,
    Array.from({ length: count }, (_, k) => {
      const n = from + k;
      return { partition: n % partitions, value: { n, sku: `sku-${n}`, qty: (n % 5) + 1 } };
    }),
  );
}

async function kafkaConfig(name: string, topic: string, url: string, extra: Record<string, unknown> = {}) {
  const { source, ...rest } = extra as { source?: Record<string, unknown> };
  await saveConfig(
    store,
    {
      name,
      source: {
        type: "kafka",
        brokers: kafka.brokers,
        topic,
        fields: ["n", "sku"],
        weightField: "qty",
        ...source,
      },
      chunking: { maxRecords: 50 },
      target: { url },
      maxInFlight: 2,
      watch: { pollIntervalMs: 10 },
      retry: { maxAttempts: 2, backoffMs: 10, maxBackoffMs: 20 },
      ...rest,
    },
    new Date(),
  );
}

const sentIds = (s: { requests: FakeRequest[] }) =>
  s.requests.flatMap((r) => r.body.records.map((x) => x.id));

describe("Kafka source", () => {
  it("sends every message once with its JSON fields, commits the watermark, and takes only new messages next", async () => {
    const topic = await kafka.createTopic(3);
    await produceOrders(topic, 3, 0, 600);
    const s = await service();
    await kafkaConfig("k-inc", topic, s.url);

    const first = await runJobLocally({
      store,
      config: "k-inc",
      jobId: "k-inc-1",
      request: { mode: "incremental" },
    });
    expect(first).toMatchObject({ status: "succeeded", records: 600, processed: 600, chunks: 12 });
    const ids = sentIds(s);
    expect(new Set(ids).size).toBe(600);
    expect(ids).toHaveLength(600);
    const one = s.requests.flatMap((r) => r.body.records).find((r) => r.id === `${topic}/1/3`);
    // Offset 3 of partition 1 is the 4th message produced there: n = 3·3 + 1.
    expect(one).toEqual({ id: `${topic}/1/3`, n: 10, sku: "sku-10" });
    // The window is per partition; the watermark is the end offsets, committed to the group.
    const job = await store.jobs.findOne({ _id: "k-inc-1" });
    expect(job?.window.to?.key).toEqual({ "0": 200, "1": 200, "2": 200 });
    expect(job?.planning.weight).toBe(
      Array.from({ length: 600 }, (_, n) => (n % 5) + 1).reduce((a, b) => a + b),
    );
    expect(await kafka.committedOffsets(topic, "chunkrelay.k-inc")).toEqual({ 0: 200, 1: 200, 2: 200 });
    expect(await readBacklog(store, "k-inc")).toMatchObject({ records: 0 });

    await produceOrders(topic, 3, 600, 90);
    expect(await readBacklog(store, "k-inc")).toMatchObject({ records: 90 });
    const second = await runJobLocally({
      store,
      config: "k-inc",
      jobId: "k-inc-2",
      request: { mode: "incremental" },
    });
    expect(second).toMatchObject({ status: "succeeded", records: 90, processed: 90 });
    const all = sentIds(s);
    expect(all).toHaveLength(690);
    expect(new Set(all).size).toBe(690);
    expect(await kafka.committedOffsets(topic, "chunkrelay.k-inc")).toEqual({ 0: 230, 1: 230, 2: 230 });
  });

  it("caps a job's window and lets the next jobs take the rest, each message in exactly one job", async () => {
    const topic = await kafka.createTopic(2);
    await produceOrders(topic, 2, 0, 250);
    const s = await service();
    await kafkaConfig("k-cap", topic, s.url, { workload: { maxRecords: 70 } });
    const run = await runJobLocally({
      store,
      config: "k-cap",
      jobId: "k-cap-1",
      request: { mode: "incremental", iterations: 5 },
    });
    expect(run.jobs?.map((j) => j.records)).toEqual([70, 70, 70, 40, 0]);
    const ids = sentIds(s);
    expect(ids).toHaveLength(250);
    expect(new Set(ids).size).toBe(250);
    expect(await kafka.committedOffsets(topic, "chunkrelay.k-cap")).toEqual({ 0: 125, 1: 125 });
  });

  it("starts a config's first job at the group's committed offsets, and a backfill takes an offset range", async () => {
    const topic = await kafka.createTopic(2);
    await produceOrders(topic, 2, 0, 40); // 20 per partition
    const group = `g-${topic}`;
    const t = new KafkaTopic(
      { brokers: kafka.brokers, clientId: kafka.clientId("seed"), timeoutMs: 5000 },
      topic,
      group,
    );
    await t.commitOffsets(
      new Map([
        [0, 15n],
        [1, 18n],
      ]),
    );
    await t.close();
    const s = await service();
    await kafkaConfig("k-start", topic, s.url, { source: { groupId: group } });
    const inc = await runJobLocally({
      store,
      config: "k-start",
      jobId: "k-start-1",
      request: { mode: "incremental" },
    });
    expect(inc).toMatchObject({ status: "succeeded", records: 7 });
    expect(sentIds(s).sort()).toEqual(
      [15, 16, 17, 18, 19]
        .map((o) => `${topic}/0/${o}`)
        .concat([18, 19].map((o) => `${topic}/1/${o}`))
        .sort(),
    );
    expect(await kafka.committedOffsets(topic, group)).toEqual({ 0: 20, 1: 20 });

    // Offsets 3..5 of every partition, inclusive at both ends; the group's offsets stay as they are.
    const back = await runJobLocally({
      store,
      config: "k-start",
      jobId: "k-start-b",
      request: { mode: "backfill", from: "3", to: "5" },
    });
    expect(back).toMatchObject({ status: "succeeded", records: 6 });
    expect(sentIds(s).slice(7).sort()).toEqual(
      [3, 4, 5].flatMap((o) => [`${topic}/0/${o}`, `${topic}/1/${o}`]).sort(),
    );
    expect(await kafka.committedOffsets(topic, group)).toEqual({ 0: 20, 1: 20 });
  });

  it("sets a poison record aside, produces it to the error topic, and commits nothing past it", async () => {
    const topic = await kafka.createTopic(2);
    const errors = await kafka.createTopic(1);
    await produceOrders(topic, 2, 0, 100); // 50 per partition
    const poison = `${topic}/1/20`;
    const s = await service(async (req) => {
      await store.details.updateMany(
        { jobId: req.body.jobId, recordId: { $in: req.body.records.map((r) => r.id) }, status: "sent" },
        [
          {
            $set: {
              status: { $cond: [{ $eq: ["$recordId", poison] }, "failed", "processed"] },
              error: { $cond: [{ $eq: ["$recordId", poison] }, "cannot parse sku", "$$REMOVE"] },
            },
          },
        ],
      );
      return { status: 202, report: "none" };
    });
    await kafkaConfig("k-poison", topic, s.url, { errorTopic: { topic: errors } });
    const run = await runJobLocally({
      store,
      config: "k-poison",
      jobId: "k-poison-1",
      request: { mode: "incremental" },
    });
    expect(run).toMatchObject({ records: 100, processed: 99, exceptions: 1 });
    // Partition 0 is complete; partition 1 stops where its completed prefix does, before offset 20.
    const offsets = await kafka.committedOffsets(topic, "chunkrelay.k-poison");
    expect(offsets[1]).toBeLessThanOrEqual(20);
    expect(offsets[0] ?? 0).toBeLessThanOrEqual(50);
    // The error topic got the set-aside record, keyed by job and record.
    const consumer = new Consumer({
      clientId: kafka.clientId("errors"),
      groupId: `read-${errors}`,
      bootstrapBrokers: kafka.brokers,
      deserializers: stringDeserializers,
    });
    try {
      const stream = await consumer.consume({ topics: [errors], mode: "earliest", autocommit: false });
      let found: { key: string; value: string } | undefined;
      for await (const m of stream) {
        found = { key: m.key, value: m.value };
        break;
      }
      await stream.close();
      expect(found?.key).toBe(`k-poison-1/${poison}`);
      expect(JSON.parse(found?.value ?? "{}")).toMatchObject({
        kind: "set-aside",
        jobId: "k-poison-1",
        recordId: poison,
        reason: expect.stringContaining("cannot parse sku") as unknown,
      });
    } finally {
      await consumer.close();
    }
  });

  it("stops planning at a message that is not JSON, or skips it to the error topic when told to", async () => {
    const topic = await kafka.createTopic(1);
    const errors = await kafka.createTopic(1);
    await produceOrders(topic, 1, 0, 5);
    // A JSON string, not an object: as unusable as a value that does not parse at all.
    await kafka.produce(topic, [{ partition: 0, value: "{not json" }]);
    await produceOrders(topic, 1, 5, 5);
    const s = await service();
    await kafkaConfig("k-bad", topic, s.url);
    await expect(
      runJobLocally({ store, config: "k-bad", jobId: "k-bad-1", request: { mode: "incremental" } }),
    ).rejects.toThrow(`Kafka message ${topic}/0/5: the value is JSON, but not an object`);
    expect(await kafka.committedOffsets(topic, "chunkrelay.k-bad")).toEqual({});

    await kafkaConfig("k-skip", topic, s.url, {
      source: { invalidMessages: "skip" },
      errorTopic: { topic: errors },
    });
    const run = await runJobLocally({
      store,
      config: "k-skip",
      jobId: "k-skip-1",
      request: { mode: "incremental" },
    });
    expect(run).toMatchObject({ status: "succeeded", records: 10, processed: 10 });
    expect(await kafka.committedOffsets(topic, "chunkrelay.k-skip")).toEqual({ 0: 11 });
    const end = await kafka.endOffsets(errors, 1);
    expect(end[0]).toBe(1n);
  });

  it("names an unknown topic as bad input and unreachable brokers as an outage", async () => {
    const config = (brokers: string[], topic: string) => ({
      name: "k-err",
      source: {
        type: "kafka" as const,
        brokers,
        topic,
        clientId: "chunkrelay",
        startFrom: "earliest" as const,
        fields: [],
        invalidMessages: "fail" as const,
        timeoutMs: 1000,
        maxBytesPerPartition: 1 << 20,
      },
    });
    const missing = kafkaSource(config(kafka.brokers, "no-such-topic-here"));
    await expect(missing.count(undefined)).rejects.toMatchObject({
      name: "BadInputError",
      message: expect.stringContaining("Kafka topic 'no-such-topic-here' does not exist") as unknown,
    });
    await missing.close();
    const down = kafkaSource(config(["127.0.0.1:1"], "t"));
    const err = (await down.count(undefined).catch((e: unknown) => e)) as Error;
    expect(err.name).toBe("Error");
    expect(err.message).toContain("cannot reach the Kafka brokers 127.0.0.1:1");
    await down.close();
  });
});
