import { ObjectId } from "bson";
import { describe, expect, it } from "vitest";
import { planChunks } from "../../src/planning/chunking.js";
import {
  type Cut,
  aboveCut,
  atOrBelowCut,
  compareCuts,
  isInside,
  keyFromPayload,
  keyToPayload,
  laterCut,
} from "../../src/planning/cuts.js";
import { WorkloadMeter, inSample, partitioningName, sampleComplete } from "../../src/planning/workload.js";
import { parseKeyAs, keyTypeOf } from "../../src/sources/key-values.js";
import { BadInputError } from "../../src/common/errors.js";
import { seededRandom } from "../support/random.js";

describe("cuts", () => {
  it("order by key, then by id, with 'before every record of key' and 'after every record of key'", () => {
    const before: Cut = { key: 5, keyIncluded: false };
    const after: Cut = { key: 5, keyIncluded: true };
    const mid: Cut = { key: 5, id: 3 };
    const sorted = [after, { key: 6, id: 0 }, mid, before, { key: 5, id: 9 }, { key: 4, keyIncluded: true }];
    sorted.sort(compareCuts);
    // (Array.sort keeps undefined away from the comparator: the start is checked on its own.)
    expect(compareCuts(undefined, { key: 4, keyIncluded: true })).toBeLessThan(0);
    expect(compareCuts(before, undefined)).toBeGreaterThan(0);
    expect(compareCuts(undefined, undefined)).toBe(0);
    expect(sorted).toEqual([
      { key: 4, keyIncluded: true },
      before,
      mid,
      { key: 5, id: 9 },
      after,
      { key: 6, id: 0 },
    ]);
    expect(laterCut(mid, undefined)).toBe(mid);
    expect(laterCut(undefined, mid)).toBe(mid);
  });

  it("build filters that select exactly the records a cut puts above or below it", () => {
    const r = seededRandom(7);
    const records = Array.from({ length: 300 }, (_, id) => ({ key: Math.floor(r() * 40), id }));
    const matches = (filter: Record<string, unknown>, rec: { key: number; id: number }): boolean => {
      if ("$or" in filter) return (filter.$or as Array<Record<string, unknown>>).some((f) => matches(f, rec));
      return Object.entries(filter).every(([field, cond]) => {
        const v = field === "_id" ? rec.id : rec.key;
        if (typeof cond !== "object" || cond === null) return v === cond;
        const [op, bound] = Object.entries(cond)[0] as [string, number];
        return op === "$gt" ? v > bound : op === "$gte" ? v >= bound : op === "$lt" ? v < bound : v <= bound;
      });
    };
    for (let i = 0; i < 60; i++) {
      const pick = records[Math.floor(r() * records.length)] as { key: number; id: number };
      const cuts: Cut[] = [
        { key: pick.key, id: pick.id },
        { key: pick.key, keyIncluded: true },
        { key: pick.key, keyIncluded: false },
      ];
      for (const cut of cuts) {
        for (const rec of records) {
          const inside = isInside(rec, cut, undefined);
          expect(matches(aboveCut("k", cut), rec)).toBe(inside);
          expect(matches(atOrBelowCut("k", cut), rec)).toBe(!inside);
        }
      }
    }
  });

  it("carry key values through JSON payloads as Extended JSON", () => {
    const id = new ObjectId();
    const at = new Date("2026-02-03T04:05:06Z");
    for (const v of [id, at, "x", 42]) {
      const wire = JSON.parse(JSON.stringify(keyToPayload(v))) as unknown;
      expect(keyFromPayload(wire)).toEqual(v);
    }
    expect(keyFromPayload({ $date: "2026-01-01T00:00:00Z" })).toEqual(new Date("2026-01-01T00:00:00Z"));
  });
});

describe("workload caps", () => {
  const take = (
    weights: number[],
    caps: ConstructorParameters<typeof WorkloadMeter>[0],
    chunking = { maxRecords: 3 },
  ) => {
    const meter = new WorkloadMeter(caps, chunking);
    let n = 0;
    for (const w of weights) {
      if (!meter.admit(w)) break;
      n++;
    }
    return n;
  };

  it("stop at whichever cap is reached first, and always take one record", () => {
    expect(take([1, 1, 1, 1, 1], { maxRecords: 3 })).toBe(3);
    expect(take([2, 2, 2, 2], { maxWeight: 5 })).toBe(2);
    expect(take([9, 1], { maxWeight: 5 })).toBe(1);
    expect(take([2, 2, 2, 2], { maxWeight: 100, maxRecords: 3 })).toBe(3);
    expect(take([], { maxRecords: 3 })).toBe(0);
  });

  it("count chunks exactly as the chunk cutter cuts them", () => {
    const r = seededRandom(11);
    for (let i = 0; i < 300; i++) {
      const weights = Array.from({ length: 60 }, () => Math.floor(r() * 10) + (r() < 0.05 ? 30 : 0));
      const chunking = { maxRecords: 1 + Math.floor(r() * 6), maxWeight: 5 + Math.floor(r() * 20) };
      const maxChunks = 1 + Math.floor(r() * 8);
      const n = take(weights, { maxChunks }, chunking);
      const chunks = [
        ...planChunks(
          weights.slice(0, n).map((weight) => ({ weight })),
          chunking,
        ),
      ];
      expect(chunks.length).toBeLessThanOrEqual(maxChunks);
      if (n < weights.length) {
        const more = [
          ...planChunks(
            weights.slice(0, n + 1).map((weight) => ({ weight })),
            chunking,
          ),
        ];
        expect(more.length).toBeGreaterThan(maxChunks);
      }
    }
  });
});

describe("samples", () => {
  it("keep every k-th position or the first n", () => {
    const every = Array.from({ length: 20 }, (_, i) => i).filter((i) => inSample({ every: 7 }, i));
    expect(every).toEqual([0, 7, 14]);
    expect(
      Array.from({ length: 20 }, (_, i) => i).filter((i) => inSample({ every: 7, offset: 3 }, i)),
    ).toEqual([3, 10, 17]);
    expect(partitioningName({ chunking: { maxRecords: 500 }, sample: { every: 200 } })).toBe(
      "size_500/every_200",
    );
    expect(
      partitioningName({
        chunking: { maxRecords: 100, maxWeight: 50 },
        sample: { every: 200, offset: 3 },
        workload: { maxRecords: 1000, maxChunks: 4 },
      }),
    ).toBe("size_100/weight_50/every_200+3/cap_1000/capchunks_4");
    expect(sampleComplete({ first: 3 }, 2)).toBe(false);
    expect(sampleComplete({ first: 3 }, 3)).toBe(true);
    expect(sampleComplete({ every: 3 }, 1e9)).toBe(false);
  });
});

describe("order-key values from the command line", () => {
  it("are read in the stored type, with messages that say what was expected", () => {
    expect(parseKeyAs("date", "2026-01-31", "--from")).toEqual(new Date("2026-01-31T00:00:00Z"));
    expect(parseKeyAs("date", "2026-01-31T12:30", "--from")).toEqual(new Date("2026-01-31T12:30:00Z"));
    expect(parseKeyAs("date", "2026-01-31T12:30:00+02:00", "--from")).toEqual(
      new Date("2026-01-31T10:30:00Z"),
    );
    expect(parseKeyAs("number", "42.5", "--to")).toBe(42.5);
    expect(parseKeyAs("string", "042", "--to")).toBe("042");
    const hex = "65a1b2c3d4e5f60718293a4b";
    expect(parseKeyAs("objectId", hex, "--to")).toEqual(new ObjectId(hex));
    expect((parseKeyAs("objectId", "2026-01-01", "--to") as ObjectId).getTimestamp()).toEqual(
      new Date("2026-01-01T00:00:00Z"),
    );
    expect(() => parseKeyAs("date", "yesterday", "--from")).toThrow(
      /'yesterday' is not a date; the order key holds dates/,
    );
    expect(() => parseKeyAs("number", "ten", "--to")).toThrow(BadInputError);
    expect(() => parseKeyAs("objectId", "xyz", "--to")).toThrow(/neither an ObjectId/);
    expect(() => parseKeyAs("date", "2026-13-45", "--to")).toThrow(/not a date/);
  });

  it("take their type from stored values", () => {
    expect([new Date(), new ObjectId(), "s", 3].map(keyTypeOf)).toEqual([
      "date",
      "objectId",
      "string",
      "number",
    ]);
    expect(keyTypeOf(true)).toBeUndefined();
  });
});
