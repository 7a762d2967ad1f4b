/**
 * The engine applies `$set`, `$unset` and `$inc` along plain-object paths itself and leaves every
 * other update to mingo's updater. The two must never disagree: random documents and random
 * updates go through both, and wherever the direct path takes an update, the documents must come
 * out exactly as mingo leaves them (and mingo must not have refused the update).
 */
import { updateMany } from "mingo";
import { describe, expect, it } from "vitest";
import { applySimpleOperators, validateUpdate } from "../src/update.js";
import { cloneValue, type BsonDocument } from "../src/values.js";
import { seededRandom } from "./support/random.js";

describe("direct update operators", () => {
  it("leave documents exactly as mingo's updater does", () => {
    const rand = seededRandom(7);
    const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rand() * xs.length)] as T;
    const values = [0, 1, -2.5, "s", null, true, [1, 2], { x: 1 }, { b: { c: 3 } }, [{ b: 1 }]];
    const paths = ["a", "a.b", "a.b.c", "n", "m.k", "arr", "arr.b", "z.y.x", "a.0", "a.$"];
    const randomDoc = (): BsonDocument => {
      const doc: BsonDocument = { _id: 1 };
      for (const f of ["a", "n", "m", "arr", "b", "k", "x"])
        if (rand() < 0.6) doc[f] = cloneValue(pick(values));
      return doc;
    };
    let direct = 0;
    let fallback = 0;
    for (let i = 0; i < 3_000; i++) {
      const update: BsonDocument = {};
      for (const op of ["$set", "$unset", "$inc"] as const) {
        if (rand() < 0.5) continue;
        const arg: BsonDocument = {};
        for (let k = 0; k < 1 + Math.floor(rand() * 2); k++) {
          arg[pick(paths)] =
            op === "$inc" ? pick([1, -3, 0.5, "x"]) : op === "$unset" ? "" : cloneValue(pick(values));
        }
        update[op] = arg;
      }
      if (Object.keys(update).length === 0) continue;
      try {
        validateUpdate(update);
      } catch {
        continue; // conflicting paths, non-numeric $inc: refused before either path runs
      }
      const docs = [randomDoc(), randomDoc()];
      const mine = docs.map((d) => cloneValue(d));
      const theirs = docs.map((d) => cloneValue(d));
      if (!applySimpleOperators(mine, update)) {
        fallback++;
        expect(mine).toEqual(docs); // declined before touching anything
        continue;
      }
      direct++;
      updateMany(theirs, {}, update as never, { arrayFilters: [] }, { scriptEnabled: false });
      expect(mine, `update ${JSON.stringify(update)} on ${JSON.stringify(docs)}`).toEqual(theirs);
      // Key order too: the server keeps a field's position and appends new fields.
      expect(mine.map((d) => JSON.stringify(d))).toEqual(theirs.map((d) => JSON.stringify(d)));
    }
    // Both paths were exercised often enough to mean something.
    expect(direct).toBeGreaterThan(300);
    expect(fallback).toBeGreaterThan(300);
  });

  it("never walk into Object.prototype: such paths go to mingo, which refuses them", () => {
    for (const path of ["__proto__.polluted", "a.__proto__.polluted", "constructor.prototype.polluted"]) {
      for (const op of ["$set", "$unset", "$inc"]) {
        const docs: BsonDocument[] = [{ _id: 1, a: { b: 1 } }];
        expect(applySimpleOperators(docs, { [op]: { [path]: op === "$unset" ? "" : 1 } })).toBe(false);
        expect(docs).toEqual([{ _id: 1, a: { b: 1 } }]);
      }
    }
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
    expect(typeof Object.prototype.hasOwnProperty).toBe("function");
  });
});
