/**
 * What the MongoDB source guarantees, on a Kafka topic: a sample takes every k-th message and moves
 * no watermark; set-aside messages are sent again by an exceptions job with the fields stored when
 * they were planned — after the topic lost them to retention (the records were deleted here) — and
 * resolving them moves the watermark and the group's committed offsets; `where` finds a message.
 */
import { Admin } from "@platformatic/kafka";
import { beforeAll, describe, expect, it } from "vitest";
import { saveConfig } from "../../src/store/configs.js";
import { whereIsRecord } from "../../src/queries/lineage.js";
import { runJobLocally } from "../../src/runtimes/local/local-runner.js";
import type { Store } from "../../src/store/store.js";
import { useKafka } from "../support/kafka.js";
import { type FakeRequest, startFakeService, usePipelineStore } from "../support/pipeline.js";

const { cleanups, store: currentStore } = usePipelineStore("kafka_requeue");
const kafka = useKafka("requeue");
let store: Store;
beforeAll(() => {
  store = currentStore();
});

describe("Kafka source: samples, exceptions, lineage", () => {
  it("samples every k-th message without moving the watermark", async () => {
    const topic = await kafka.createTopic(2);
    await kafka.produce(
      topic,
      Array.from({ length: 60 }, (_, n) => ({ partition: n % 2, value: { n } })),
    );
    const s = await startFakeService(store, () => ({ status: 202, report: "processed" }));
    cleanups.push(() => s.stop());
    await saveConfig(
      store,
      {
        name: "k-sample",
        source: { type: "kafka", brokers: kafka.brokers, topic },
        chunking: { maxRecords: 10 },
        target: { url: s.url },
        watch: { pollIntervalMs: 10 },
      },
      new Date(),
    );
    const run = await runJobLocally({
      store,
      config: "k-sample",
      jobId: "k-sample-1",
      request: { mode: "sample", sampleEvery: 6 },
    });
    expect(run).toMatchObject({ status: "succeeded", records: 10, processed: 10 });
    expect(await kafka.committedOffsets(topic, "chunkrelay.k-sample")).toEqual({});
  });

  it("sends set-aside messages again from their stored fields after the topic lost them, then commits past them", async () => {
    const topic = await kafka.createTopic(1);
    await kafka.produce(
      topic,
      Array.from({ length: 30 }, (_, n) => ({ partition: 0, value: { n, sku: `s${n}` } })),
    );
    const poison = new Set([`${topic}/0/7`, `${topic}/0/8`]);
    let healed = false;
    const s = await startFakeService(store, async (req: FakeRequest) => {
      for (const r of req.body.records) {
        const fail = !healed && poison.has(String(r.id));
        await store.details.updateOne(
          { jobId: req.body.jobId, recordId: r.id, status: "sent" },
          { $set: { status: fail ? "failed" : "processed", ...(fail ? { error: "bad sku" } : {}) } },
        );
      }
      return { status: 202, report: "none" };
    });
    cleanups.push(() => s.stop());
    await saveConfig(
      store,
      {
        name: "k-exc",
        source: { type: "kafka", brokers: kafka.brokers, topic, fields: ["sku"] },
        chunking: { maxRecords: 5 },
        target: { url: s.url },
        watch: { pollIntervalMs: 10 },
        retry: { maxAttempts: 2, backoffMs: 5, maxBackoffMs: 10 },
      },
      new Date(),
    );
    const first = await runJobLocally({
      store,
      config: "k-exc",
      jobId: "k-exc-1",
      request: { mode: "incremental" },
    });
    expect(first).toMatchObject({ records: 30, processed: 28, exceptions: 2 });
    // Chunk 2 (offsets 5–9) holds the set-aside messages: the watermark stops after chunk 1.
    expect(await kafka.committedOffsets(topic, "chunkrelay.k-exc")).toEqual({ 0: 5 });

    // Retention takes the messages; the exceptions job needs nothing from the topic.
    const admin = new Admin({ clientId: kafka.clientId("admin"), bootstrapBrokers: kafka.brokers });
    await admin.deleteRecords({ topics: [{ name: topic, partitions: [{ partition: 0, offset: 30n }] }] });
    await admin.close();
    healed = true;
    const requeue = await runJobLocally({ store, config: "k-exc", jobId: "k-exc-2", fromJob: "k-exc-1" });
    expect(requeue).toMatchObject({ status: "succeeded", records: 2, processed: 2 });
    const resent = s.requests.filter((r) => r.body.jobId === "k-exc-2").flatMap((r) => r.body.records);
    expect(resent.sort((a, b) => String(a.id).localeCompare(String(b.id)))).toEqual([
      { id: `${topic}/0/7`, sku: "s7" },
      { id: `${topic}/0/8`, sku: "s8" },
    ]);
    // Resolved by the exceptions job: the lane is complete, and the group's offsets say so.
    expect(await kafka.committedOffsets(topic, "chunkrelay.k-exc")).toEqual({ 0: 30 });

    const lineage = await whereIsRecord(store, `${topic}/0/7`, "k-exc");
    expect(JSON.stringify(lineage)).toContain("k-exc-1");
    expect(JSON.stringify(lineage)).toContain("k-exc-2");
  });
});
