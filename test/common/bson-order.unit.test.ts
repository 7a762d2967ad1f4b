/**
 * compareBson against MongoDB's documented comparison/sort order, value by value, and against
 * the embedded engine's sort (through its public entry) on random values where the two must
 * agree. readPath as the product reads order keys, weights and picked fields.
 */
import {
  BSON,
  BSONRegExp,
  BSONSymbol,
  Binary,
  Code,
  DBRef,
  Decimal128,
  Double,
  Int32,
  Long,
  MaxKey,
  MinKey,
  ObjectId,
  Timestamp,
} from "bson";
import { Engine } from "@chunkrelay/embedded-mongo";
import { describe, expect, it } from "vitest";
import { compareBson, readPath } from "../../src/common/bson-order.js";
import { seededRandom } from "../support/random.js";

const sign = (n: number) => Math.sign(n) || 0;
const order = (a: unknown, b: unknown) => sign(compareBson(a, b));

/** Every pair of a list that must be strictly ascending compares as such, in both directions. */
function expectAscending(values: readonly unknown[]): void {
  for (let i = 0; i < values.length; i++) {
    for (let j = 0; j < values.length; j++) {
      const want = sign(i - j);
      if (order(values[i], values[j]) !== want) {
        throw new Error(
          `compareBson(${BSON.EJSON.stringify({ v: values[i] })}, ${BSON.EJSON.stringify({ v: values[j] })}) should be ${want}, is ${order(values[i], values[j])}`,
        );
      }
    }
  }
}

const TWO_53 = 2 ** 53;

describe("compareBson: type order", () => {
  it("orders one value of each type as the manual lists them", () => {
    expectAscending([
      new MinKey(),
      null,
      1,
      "a",
      { a: 1 },
      [1],
      new Binary(Buffer.from([1])),
      new ObjectId("000000000000000000000001"),
      false,
      new Date(0),
      new Timestamp({ t: 1, i: 1 }),
      /a/,
      new Code("f()"),
      new Code("f()", { x: 1 }),
      new MaxKey(),
    ]);
  });

  it("puts each type's extreme values on the right side of every boundary", () => {
    expectAscending([
      new MinKey(),
      null,
      Number.NaN,
      -Infinity,
      new Long("-9223372036854775808"),
      Decimal128.fromString("1E+6144"),
      Infinity,
      "",
      "\u{10FFFF}",
      {},
      { "\u{10FFFF}": new MaxKey() },
      [],
      [new MaxKey()],
      new Binary(new Uint8Array()),
      new Binary(Buffer.alloc(64, 0xff), 0x80),
      new ObjectId("000000000000000000000000"),
      new ObjectId("ffffffffffffffffffffffff"),
      false,
      true,
      new Date(-8.64e15),
      new Date(8.64e15),
      new Timestamp({ t: 0, i: 0 }),
      new Timestamp({ t: 0xffffffff, i: 0xffffffff }),
      new BSONRegExp("", ""),
      new BSONRegExp("\u{10FFFF}", "x"),
      new Code(""),
      new Code("\u{10FFFF}"),
      new Code("", {}),
      new MaxKey(),
    ]);
  });

  it("treats a missing value (undefined) as null, and symbols as strings", () => {
    expect(order(undefined, null)).toBe(0);
    expect(order(undefined, new MinKey())).toBe(1);
    expect(order(undefined, -Infinity)).toBe(-1);
    expect(order(new BSONSymbol("b"), "a")).toBe(1);
    expect(order(new BSONSymbol("a"), "a")).toBe(0);
  });

  it("refuses values that are not BSON", () => {
    expect(() => compareBson(() => 1, 1)).toThrow(TypeError);
    expect(() => compareBson(Symbol("s"), 1)).toThrow(TypeError);
  });
});

describe("compareBson: numbers", () => {
  it("compares a Long beyond 2^53 with a Double exactly", () => {
    const above = Long.fromBigInt(BigInt(TWO_53) + 1n);
    expect(order(above, TWO_53)).toBe(1);
    expect(order(TWO_53, above)).toBe(-1);
    expect(order(above, new Double(TWO_53))).toBe(1);
    // 2^53 + 2 is a double: equal to the Long of the same value.
    expect(order(Long.fromBigInt(BigInt(TWO_53) + 2n), TWO_53 + 2)).toBe(0);
    expect(order(Long.fromBigInt(BigInt(TWO_53) + 1n), TWO_53 + 2)).toBe(-1);
    // The largest Long is 2^63 - 1, below the double 2^63 (which no Long reaches).
    expect(order(Long.MAX_VALUE, 2 ** 63)).toBe(-1);
    expect(order(Long.MIN_VALUE, -(2 ** 63))).toBe(0);
    expect(order(Long.MIN_VALUE, -(2 ** 63) - 2048)).toBe(1);
  });

  it("compares bigints (useBigInt64) and Longs alike", () => {
    expect(order(2n ** 60n + 1n, Long.fromBigInt(2n ** 60n))).toBe(1);
    expect(order(2n ** 60n, Long.fromBigInt(2n ** 60n))).toBe(0);
    expect(order(-(2n ** 60n) - 1n, -(2 ** 60))).toBe(-1);
    expect(order(3n, 2.5)).toBe(1);
    expect(order(2n, 2.5)).toBe(-1);
    expect(order(-3n, -2.5)).toBe(-1);
  });

  it("equates the same value across int32, Long, Double and Decimal128", () => {
    const ones = [
      1,
      new Int32(1),
      new Double(1),
      Long.fromInt(1),
      1n,
      Decimal128.fromString("1"),
      Decimal128.fromString("1.000"),
    ];
    for (const a of ones) for (const b of ones) expect(order(a, b)).toBe(0);
    expect(order(0, -0)).toBe(0);
    expect(order(Decimal128.fromString("-0"), 0)).toBe(0);
    expect(order(Decimal128.fromString("0E+10"), Long.ZERO)).toBe(0);
  });

  it("compares Decimal128 exactly against doubles, which are binary fractions", () => {
    // The double 0.1 is 0.1000000000000000055511151231257827021181583404541015625.
    expect(order(Decimal128.fromString("0.1"), 0.1)).toBe(-1);
    expect(order(Decimal128.fromString("0.1000000000000000055511151231257827"), 0.1)).toBe(-1);
    expect(order(Decimal128.fromString("0.1000000000000000055511151231257828"), 0.1)).toBe(1);
    expect(order(Decimal128.fromString("0.5"), 0.5)).toBe(0);
    expect(order(Decimal128.fromString("9007199254740993"), TWO_53)).toBe(1);
    expect(order(Decimal128.fromString("9007199254740993"), Long.fromBigInt(BigInt(TWO_53) + 1n))).toBe(0);
    expect(order(Decimal128.fromString("-1E-6176"), 0)).toBe(-1);
    expect(order(Decimal128.fromString("1E-6176"), Number.MIN_VALUE)).toBe(-1);
    expect(order(Decimal128.fromString("1E+309"), Number.MAX_VALUE)).toBe(1);
    expect(order(Decimal128.fromString("1E+309"), Infinity)).toBe(-1);
  });

  it("puts NaN (double or decimal) below every number and equal to itself", () => {
    for (const nan of [Number.NaN, new Double(Number.NaN), Decimal128.fromString("NaN")]) {
      expect(order(nan, Number.NaN)).toBe(0);
      expect(order(nan, Decimal128.fromString("NaN"))).toBe(0);
      expect(order(nan, -Infinity)).toBe(-1);
      expect(order(nan, Decimal128.fromString("-Infinity"))).toBe(-1);
      expect(order(nan, Long.MIN_VALUE)).toBe(-1);
      expect(order(nan, null)).toBe(1);
      expect(order(Long.MIN_VALUE, nan)).toBe(1);
    }
    expect(order(Decimal128.fromString("Infinity"), Infinity)).toBe(0);
    expect(order(Decimal128.fromString("-Infinity"), Long.MIN_VALUE)).toBe(-1);
  });
});

describe("compareBson: within a type", () => {
  it("orders strings by UTF-8 bytes, not UTF-16 units", () => {
    // U+FF61 is one UTF-16 unit above the surrogates that encode U+1F600, but fewer UTF-8 bytes.
    expect("\uFF61" > "\u{1F600}").toBe(true);
    expect(order("\uFF61", "\u{1F600}")).toBe(-1);
    expect(order("a\u{1F600}", "a\uFFFF")).toBe(1);
    expectAscending(["", "A", "Z", "a", "a\0", "ab", "é", "\uFFFF", "\u{10000}"]);
  });

  it("orders objects by field types, then names, then values; a prefix first", () => {
    expectAscending([{}, { b: null }, { a: 1 }, { a: 1, b: 1 }, { a: 2 }, { b: 1 }, { a: "x" }]);
    // Field order counts: these hold the same fields.
    expect(order({ a: 1, b: 2 }, { b: 2, a: 1 })).toBe(-1);
  });

  it("compares a DBRef as the object it is stored as", () => {
    const id = new ObjectId("000000000000000000000001");
    expect(order(new DBRef("c", id), { $ref: "c", $id: id })).toBe(0);
    expect(order(new DBRef("c", id, "db"), { $ref: "c", $id: id })).toBe(1);
  });

  it("orders arrays element by element, types first; a prefix first", () => {
    expectAscending([[], [null], [1], [1, 1], [2], ["a"], [{}], [[]]]);
    expect(order([1, Long.fromBigInt(BigInt(TWO_53) + 1n)], [1, TWO_53])).toBe(1);
  });

  it("orders BinData by length, then subtype, then bytes", () => {
    expectAscending([
      new Binary(Buffer.from([9, 9])),
      new Binary(Buffer.from([0, 0]), 4),
      new Binary(Buffer.from([0, 0, 0])),
      new Binary(Buffer.from([0, 0, 1])),
    ]);
    expect(order(Buffer.from([1, 2]), new Binary(Buffer.from([1, 2])))).toBe(0);
  });

  it("orders ObjectIds, booleans, Dates, Timestamps and regexes", () => {
    expectAscending([new ObjectId("00000000000000000000000f"), new ObjectId("0000000000000000000000f0")]);
    expectAscending([false, true]);
    expectAscending([new Date(-1), new Date(0), new Date(1)]);
    expectAscending([
      new Timestamp({ t: 1, i: 9 }),
      new Timestamp({ t: 2, i: 0 }),
      new Timestamp({ t: 0x80000000, i: 0 }),
    ]);
    expectAscending([/a/, /a/i, /a/im, /b/]);
    expect(order(/a/im, new BSONRegExp("a", "mi"))).toBe(0);
  });
});

describe("compareBson agrees with the embedded engine's sort", () => {
  // Values where the engine's comparator is exact. It is approximate — and compareBson is the
  // reference — for: Longs beyond 2^53 against Doubles and Decimal128 (the engine rounds both to
  // doubles), Decimal128 with more digits than a double holds, Code with scope (ranked with Code),
  // and regexes (compared as their printed text).
  function randomValue(rnd: () => number, depth: number): unknown {
    const pick = Math.floor(rnd() * (depth > 1 ? 14 : 16));
    const small = () => Math.floor(rnd() * 7) - 3;
    switch (pick) {
      case 0:
        return null;
      case 1:
        return small();
      case 2:
        return small() + 0.5;
      case 3:
        return new Int32(small());
      case 4:
        return Long.fromNumber(small() * 2 ** 40);
      case 5:
        return ["", "a", "ab", "b", "é", "\uFF61", "\u{1F600}"][Math.floor(rnd() * 7)];
      case 6:
        return rnd() < 0.5;
      case 7:
        return new Date(small() * 1000);
      case 8:
        return new ObjectId(`${"0".repeat(22)}${Math.floor(rnd() * 3)}${Math.floor(rnd() * 3)}`);
      case 9:
        return new Binary(
          Buffer.from([Math.floor(rnd() * 2), Math.floor(rnd() * 2)].slice(0, 1 + Math.floor(rnd() * 2))),
        );
      case 10:
        return [Number.NaN, Infinity, -Infinity][Math.floor(rnd() * 3)];
      case 11:
        return new Timestamp({ t: Math.floor(rnd() * 3), i: Math.floor(rnd() * 3) });
      case 12:
        return rnd() < 0.5 ? new MinKey() : new MaxKey();
      case 13:
        return Decimal128.fromString(String(small() / 4));
      case 14: {
        const n = Math.floor(rnd() * 3);
        return Array.from({ length: n }, () => randomValue(rnd, depth + 1));
      }
      default: {
        const out: Record<string, unknown> = {};
        for (const k of ["a", "b", "c"]) if (rnd() < 0.5) out[k] = randomValue(rnd, depth + 1);
        return out;
      }
    }
  }

  it("sorts 500 random values (nested objects and arrays included) in the same order", () => {
    const rnd = seededRandom(13);
    // Wrapped in an object, so that arrays compare as values, not as multikey sort keys.
    const docs = Array.from({ length: 500 }, (_, i) => ({ _id: i, v: { x: randomValue(rnd, 0) } }));
    const engine = new Engine();
    const run = (command: Record<string, unknown>) => {
      const reply = engine.run(BSON.deserialize(BSON.serialize(command), { promoteValues: false }), "t", 1);
      return BSON.deserialize(Buffer.isBuffer(reply) ? reply : BSON.serialize(reply), {
        promoteValues: false,
      });
    };
    expect(run({ insert: "c", documents: docs }).n).toEqual(new Int32(500));
    const found = run({ find: "c", filter: {}, sort: { v: 1, _id: 1 }, batchSize: 1000 }) as {
      cursor: { firstBatch: { _id: Int32 }[] };
    };
    const engineOrder = found.cursor.firstBatch.map((d) => d._id.value);
    const ours = [...docs].sort((a, b) => compareBson(a.v, b.v) || a._id - b._id).map((d) => d._id);
    expect(engineOrder).toEqual(ours);
  });
});

describe("readPath", () => {
  const doc = {
    a: { b: { c: 3 } },
    tags: ["x", { y: 1 }],
    id: new ObjectId("000000000000000000000001"),
    n: Long.fromNumber(5),
    z: null,
  };

  it("reads top-level and nested fields", () => {
    expect(readPath(doc, "a.b.c")).toBe(3);
    expect(readPath(doc, "a.b")).toEqual({ c: 3 });
    expect(readPath(doc, "id")).toBe(doc.id);
    expect(readPath(doc, "z")).toBeNull();
  });

  it("indexes arrays by a numeric segment only, without expanding them", () => {
    expect(readPath(doc, "tags.0")).toBe("x");
    expect(readPath(doc, "tags.1.y")).toBe(1);
    expect(readPath(doc, "tags.2")).toBeUndefined();
    expect(readPath(doc, "tags.y")).toBeUndefined();
    expect(readPath(doc, "tags.length")).toBeUndefined();
    expect(readPath(doc, "tags.01")).toBeUndefined();
  });

  it("is undefined for missing paths and never reads into BSON values or prototypes", () => {
    expect(readPath(doc, "a.x.c")).toBeUndefined();
    expect(readPath(doc, "z.a")).toBeUndefined();
    expect(readPath(doc, "a.b.c.d")).toBeUndefined();
    expect(readPath(doc, "n.low")).toBeUndefined();
    expect(readPath(doc, "id.id")).toBeUndefined();
    expect(readPath(doc, "a.constructor")).toBeUndefined();
    expect(readPath(doc, "__proto__")).toBeUndefined();
  });
});
