/**
 * MongoDB compatibility, the product's aggregations: the only pipelines chunkrelay runs, in the
 * form it runs them ($match, then one $group with `$sum: 1` over a compound key, or `$sum` of a
 * field with a null key), with the MongoDB 7.0 manual's answer. Driven only through the official
 * driver, so this file passes unchanged against a real mongod (MONGODB_URI).
 *
 * Product code paths it stands for (src/…:function):
 * - store/chunks.ts: sumChunkCounts (via sumChunkTotals, sumChunksByStatus): $match on jobId and
 *   a chunk range, $group by {status, records, processed, failed} with n: {$sum: 1}, where counts
 *   not yet written are missing; streamed with for await.
 * - store/records.ts: countAttemptStatuses: $match {jobId, chunk}, $group by
 *   {status, attempt, attempts} with n: {$sum: 1}, `attempt` missing until a report.
 * - store/source-collection.ts: sumSourceWeight (via sources/mongo-source.ts count and
 *   queries/backlog.ts): $match of the config filter and window, $group {_id: null, w: {$sum:
 *   "$<weightField>"}}, no row on an empty match.
 */
import { type Document, Double, Int32, Long } from "mongodb";
import { describe, expect, it } from "vitest";
import { useTestDatabase } from "./support/db.js";

const t = useTestDatabase("compat_product_aggregation");

/** Groups in a stable order for comparison ($group's output order is unspecified). */
const sorted = (rows: Document[]) =>
  [...rows].sort((a, b) => (JSON.stringify(a) < JSON.stringify(b) ? -1 : 1));

describe("$group with $sum: 1 over a compound key", () => {
  it("groups chunks by status and counts, leaving counts not yet written out of the key", async () => {
    const c = t.db().collection("agg_chunks");
    await c.createIndex({ jobId: 1, chunk: 1 }, { unique: true });
    const chunk = (n: number, status: string, counts: Document) => ({
      jobId: "j",
      chunk: n,
      status,
      ...counts,
    });
    await c.insertMany([
      chunk(0, "processed", { recordCount: 100, processedCount: 100, failedCount: 0 }),
      chunk(1, "processed", { recordCount: 100, processedCount: 100, failedCount: 0 }),
      chunk(2, "failed", { recordCount: 100, processedCount: 98, failedCount: 2 }),
      chunk(3, "processed", { recordCount: 40, processedCount: 40, failedCount: 0 }),
      chunk(4, "sent", { recordCount: 100 }),
      chunk(5, "pending", { recordCount: 100 }),
      chunk(6, "pending", { recordCount: 100 }),
      chunk(7, "pending", {}),
      { jobId: "other", chunk: 0, status: "processed", recordCount: 5, processedCount: 5, failedCount: 0 },
    ]);
    const group = (match: Document) =>
      c
        .aggregate([
          { $match: match },
          {
            $group: {
              _id: {
                status: "$status",
                records: "$recordCount",
                processed: "$processedCount",
                failed: "$failedCount",
              },
              n: { $sum: 1 },
            },
          },
        ])
        .toArray();
    expect(sorted(await group({ jobId: "j" }))).toEqual(
      sorted([
        { _id: { status: "processed", records: 100, processed: 100, failed: 0 }, n: 2 },
        { _id: { status: "processed", records: 40, processed: 40, failed: 0 }, n: 1 },
        { _id: { status: "failed", records: 100, processed: 98, failed: 2 }, n: 1 },
        { _id: { status: "sent", records: 100 }, n: 1 },
        { _id: { status: "pending", records: 100 }, n: 2 },
        { _id: { status: "pending" }, n: 1 },
      ]),
    );
    // The committed chunks only (chunk $lt 3).
    expect(sorted(await group({ jobId: "j", chunk: { $lt: 3 } }))).toEqual(
      sorted([
        { _id: { status: "processed", records: 100, processed: 100, failed: 0 }, n: 2 },
        { _id: { status: "failed", records: 100, processed: 98, failed: 2 }, n: 1 },
      ]),
    );
    expect(await group({ jobId: "nosuchjob" })).toEqual([]);
  });

  it("groups a chunk's records by status, attempt and attempts, attempt missing until reported", async () => {
    const c = t.db().collection("agg_records");
    await c.createIndex({ jobId: 1, chunk: 1, status: 1 });
    const rec = (status: string, attempts: number, attempt?: number) => ({
      jobId: "j",
      chunk: 3,
      status,
      attempts,
      ...(attempt !== undefined ? { attempt } : {}),
    });
    await c.insertMany([
      rec("sent", 2),
      rec("sent", 2),
      rec("processed", 2, 2),
      rec("processed", 2, 2),
      rec("processed", 2, 2),
      rec("failed", 2, 1),
      rec("failed", 2, 2),
      { ...rec("pending", 0), chunk: 4 },
    ]);
    const rows = await c
      .aggregate([
        { $match: { jobId: "j", chunk: 3 } },
        {
          $group: { _id: { status: "$status", attempt: "$attempt", attempts: "$attempts" }, n: { $sum: 1 } },
        },
      ])
      .toArray();
    expect(sorted(rows)).toEqual(
      sorted([
        { _id: { status: "sent", attempts: 2 }, n: 2 },
        { _id: { status: "processed", attempt: 2, attempts: 2 }, n: 3 },
        { _id: { status: "failed", attempt: 1, attempts: 2 }, n: 1 },
        { _id: { status: "failed", attempt: 2, attempts: 2 }, n: 1 },
      ]),
    );
  });

  it("streams 450 groups through the aggregate cursor's getMores", async () => {
    const c = t.db().collection("agg_many_groups");
    await c.insertMany(
      Array.from({ length: 1_350 }, (_, i) => ({
        jobId: "j",
        chunk: i,
        status: "processed",
        recordCount: i % 450,
      })),
    );
    const groups = c.aggregate<{ _id: { status: string; records: number }; n: number }>(
      [
        { $match: { jobId: "j" } },
        { $group: { _id: { status: "$status", records: "$recordCount" }, n: { $sum: 1 } } },
      ],
      { batchSize: 100 },
    );
    const seen = new Set<number>();
    let total = 0;
    for await (const g of groups) {
      expect(g.n).toBe(3);
      seen.add(g._id.records);
      total += g.n;
    }
    expect(seen.size).toBe(450);
    expect(total).toBe(1_350);
  });
});

describe("$group with a null key and $sum of a field", () => {
  it("sums a weight field over the matching records, ignoring missing, null and non-numeric values", async () => {
    const c = t.db().collection("agg_weight");
    await c.insertMany([
      { _id: 1 as never, state: "ready", w: 3 },
      { _id: 2 as never, state: "ready", w: 4 },
      { _id: 3 as never, state: "ready" },
      { _id: 4 as never, state: "ready", w: null },
      { _id: 5 as never, state: "ready", w: "12" },
      { _id: 6 as never, state: "held", w: 100 },
      { _id: 7 as never, state: "ready", w: 0.5 },
    ]);
    const sum = (match: Document) =>
      c.aggregate([{ $match: match }, { $group: { _id: null, w: { $sum: "$w" } } }]).toArray();
    expect(await sum({ state: "ready" })).toEqual([{ _id: null, w: 7.5 }]);
    expect(await sum({ state: "ready", _id: { $lte: 5 } })).toEqual([{ _id: null, w: 7 }]);
    // Only records without a numeric weight: the sum is 0.
    expect(await sum({ _id: { $in: [3, 4, 5] } })).toEqual([{ _id: null, w: 0 }]);
    // No matching record: no row at all.
    expect(await sum({ state: "gone" })).toEqual([]);
  });

  it("sums Int32 as Int32, widens to Long past 2^31 or with a Long, and to Double with a Double", async () => {
    const c = t.db().collection("agg_weight_types");
    await c.insertMany([
      { g: "int", w: new Int32(2) },
      { g: "int", w: new Int32(5) },
      { g: "overflow", w: new Int32(2_147_483_647) },
      { g: "overflow", w: new Int32(1) },
      { g: "long", w: new Int32(2) },
      { g: "long", w: Long.fromNumber(40) },
      { g: "double", w: Long.fromNumber(1) },
      { g: "double", w: new Double(2) },
    ]);
    const rows = await c
      .aggregate([{ $match: { g: { $exists: true } } }, { $group: { _id: "$g", w: { $sum: "$w" } } }], {
        promoteValues: false,
      })
      .toArray();
    const byGroup = new Map(
      rows.map((r) => [String(r._id), r.w as { _bsontype: string; valueOf(): unknown }]),
    );
    const described = (g: string) => {
      const w = byGroup.get(g);
      return [w?._bsontype, w instanceof Long ? w.toString() : Number(w?.valueOf())];
    };
    expect(described("int")).toEqual(["Int32", 7]);
    expect(described("overflow")).toEqual(["Long", "2147483648"]);
    expect(described("long")).toEqual(["Long", "42"]);
    expect(described("double")).toEqual(["Double", 3]);
  });
});
