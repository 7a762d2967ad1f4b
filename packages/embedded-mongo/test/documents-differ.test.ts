/** `documentsDiffer`: whether an update changed a document, BSON types included (nModified, index upkeep). */
import { Decimal128, Double, Int32, Long, ObjectId } from "bson";
import { describe, expect, it } from "vitest";
import { documentsDiffer } from "../src/update.js";

describe("documentsDiffer", () => {
  it("sees equal documents as equal, nested arrays and objects included", () => {
    const id = new ObjectId();
    const a = { _id: id, s: "x", n: 5, d: new Date(5), arr: [1, { b: [2, "3"] }], o: { p: null, q: true } };
    const b = { _id: id, s: "x", n: 5, d: new Date(5), arr: [1, { b: [2, "3"] }], o: { p: null, q: true } };
    expect(documentsDiffer(a, b)).toBe(false);
  });

  it("sees every change of value, type, order or shape", () => {
    const cases: Array<[Record<string, unknown>, Record<string, unknown>]> = [
      [{ a: 0 }, { a: -0 }],
      [{ a: 5 }, { a: new Long(5) }],
      [{ a: 5 }, { a: 5.5 }],
      [{ a: new Int32(5) }, { a: new Double(5) }],
      [{ a: new Decimal128("1.0") }, { a: new Decimal128("1.00") }],
      [{ a: new Date(1) }, { a: new Date(2) }],
      [
        { a: 1, b: 2 },
        { b: 2, a: 1 },
      ],
      [{ a: [1, 2] }, { a: [2, 1] }],
      [{ a: [1] }, { a: { 0: 1 } }],
      [{ a: "1" }, { a: 1 }],
      [{ a: null }, { a: false }],
      [{ a: { b: 1 } }, { a: { b: 1, c: 1 } }],
      [{ a: /x/i }, { a: /x/ }],
    ];
    for (const [a, b] of cases) expect(documentsDiffer(a, b), JSON.stringify([a, b])).toBe(true);
  });

  it("takes NaN as equal to NaN, as its bytes are", () => {
    expect(documentsDiffer({ a: Number.NaN }, { a: Number.NaN })).toBe(false);
  });
});
