import { describe, expect, it } from "vitest";
import { MAX_RECORDS_WITH_WEIGHT_ONLY, parseConfig } from "../../src/config/schema.js";
import { addRecord, emptyChunk, planChunks, weightOf } from "../../src/planning/chunking.js";

const recs = (weights: number[]) => weights.map((weight, i) => ({ i, weight }));
const cut = (weights: number[], limits: { maxRecords?: number; maxWeight?: number }) =>
  [...planChunks(recs(weights), limits)].map((c) => c.map((r) => r.i));

describe("planChunks", () => {
  it("cuts by record count, keeping order and leaving the remainder in a last chunk", () => {
    expect(cut([1, 1, 1, 1, 1, 1, 1], { maxRecords: 3 })).toEqual([[0, 1, 2], [3, 4, 5], [6]]);
  });

  it("cuts by weight: a chunk never exceeds the limit", () => {
    expect(cut([4, 4, 4, 3, 5, 1], { maxWeight: 8 })).toEqual([
      [0, 1],
      [2, 3],
      [4, 5],
    ]);
  });

  it("closes on whichever limit is hit first", () => {
    expect(cut([1, 1, 1, 9, 1, 1], { maxRecords: 2, maxWeight: 5 })).toEqual([[0, 1], [2], [3], [4, 5]]);
  });

  it("puts a record heavier than the limit in a chunk of its own", () => {
    expect(cut([1, 20, 1, 1], { maxWeight: 5 })).toEqual([[0], [1], [2, 3]]);
    // Two oversize records in a row: two single-record chunks.
    expect(cut([20, 30], { maxWeight: 5 })).toEqual([[0], [1]]);
  });

  it("bounds weight-only chunks by records too: weightless records still close chunks", () => {
    // Regression: with only maxWeight set, 25,000 records without weight made one chunk (one huge
    // POST, a $in past MongoDB's 16 MB limit). The config now gives such chunks a record bound.
    const config = parseConfig({
      name: "weights",
      source: { collection: "src", weightField: "w" },
      chunking: { maxWeight: 100 },
      target: { url: "http://127.0.0.1:9/x" },
    });
    expect(config.chunking.maxRecords).toBe(MAX_RECORDS_WITH_WEIGHT_ONLY);
    const sizes = [...planChunks(recs(new Array<number>(25_000).fill(0)), config.chunking)].map(
      (c) => c.length,
    );
    expect(sizes).toEqual([10_000, 10_000, 5_000]);
    // An explicit record limit is kept as given.
    const explicit = parseConfig({ ...config, chunking: { maxWeight: 100, maxRecords: 50 } });
    expect(explicit.chunking.maxRecords).toBe(50);
  });

  it("yields nothing for an empty source", () => {
    expect(cut([], { maxRecords: 10 })).toEqual([]);
  });

  it("never loses or repeats a record on a large random input", () => {
    const weights = Array.from({ length: 5000 }, (_, i) => (i * 7919) % 13);
    const chunks = cut(weights, { maxRecords: 37, maxWeight: 60 });
    expect(chunks.flat()).toEqual(weights.map((_, i) => i));
    for (const c of chunks) {
      expect(c.length).toBeLessThanOrEqual(37);
      const w = c.reduce((s, i) => s + (weights[i] ?? 0), 0);
      if (c.length > 1) expect(w).toBeLessThanOrEqual(60);
    }
  });

  it("reports closed chunks from a single step", () => {
    const step = addRecord(emptyChunk(), { weight: 10 }, { maxWeight: 5 });
    expect(step.closed).toHaveLength(1);
    expect(step.open.records).toHaveLength(0);
  });
});

describe("weightOf", () => {
  it("accepts finite non-negative numbers and BSON numeric wrappers, else 0", () => {
    expect(weightOf(3.5)).toBe(3.5);
    expect(weightOf({ valueOf: () => 7 })).toBe(7);
    expect(weightOf(-1)).toBe(0);
    expect(weightOf("12")).toBe(0);
    expect(weightOf(undefined)).toBe(0);
    expect(weightOf(Number.NaN)).toBe(0);
  });
});
