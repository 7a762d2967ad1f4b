/** Per-record result values: the cap, malformed values, and the order keyset paging relies on. */
import { Decimal128, Int32, ObjectId } from "bson";
import { describe, expect, it } from "vitest";
import {
  keepResult,
  matchServiceOutcome,
  parseServiceOutcome,
  resultBytes,
  resultProblem,
} from "../../../src/steps/completion/service-outcome.js";
import { typesSortingAfter } from "../../../src/common/bson-order.js";

describe("result values", () => {
  it("measures a value as the BSON field it becomes, and keeps it up to the cap", () => {
    expect(resultBytes("abc")).toBe(1 + 7 + 4 + 4); // type, "result\0", length, "abc\0"
    expect(keepResult(1, "abc", 16)).toEqual({ id: 1, result: "abc" });
    expect(keepResult(1, "abcd", 16)).toMatchObject({
      id: 1,
      resultError: expect.stringMatching(/17 bytes of BSON, over the cap of 16/),
    });
  });

  it("refuses field names that cannot be stored as given, at any depth, and deep nesting", () => {
    expect(
      resultProblem({ a: [{ b: 1 }], d: new Date(0), o: new ObjectId(), n: Decimal128.fromString("1.5") }),
    ).toBeUndefined();
    expect(resultProblem({ a: [{ $gt: 1 }] })).toMatch(/'\$gt' starts with '\$'/);
    expect(resultProblem({ "a.b": 1 })).toMatch(/holds '\.'/);
    let deep: unknown = 1;
    for (let i = 0; i < 60; i++) deep = { x: deep };
    expect(resultProblem(deep)).toMatch(/nested deeper than 50/);
  });

  it("a malformed value refuses the whole outcome; a good one travels with its record", () => {
    expect(
      parseServiceOutcome(
        '{"results":[{"id":1,"status":"processed","result":{"_bsontype":"Code","code":"x"}}]}',
      ),
    ).toMatchObject({ error: expect.stringMatching(/'_bsontype' is reserved/) });
    expect(
      parseServiceOutcome('{"results":[{"id":1,"status":"processed","result":{"$oid":"zz"}}]}'),
    ).toMatchObject({
      error: expect.stringMatching(/not JSON/),
    });
    expect(
      parseServiceOutcome('{"results":[{"id":1,"status":"processed","result":{"$set":1}}]}'),
    ).toMatchObject({
      error: expect.stringMatching(/result of record 1 is malformed/),
    });
    const parsed = parseServiceOutcome(
      '{"results":[{"id":1,"status":"processed","result":{"at":{"$date":"2026-12-05T10:00:00Z"}}},{"id":2,"status":"failed","result":"x"}]}',
    );
    if ("error" in parsed) throw new Error(parsed.error);
    const matched = matchServiceOutcome([1, new Int32(2)], parsed, 100);
    expect(matched).toMatchObject({ kind: "matched", processed: [1] });
    if (matched.kind !== "matched") throw new Error("mismatch");
    expect(matched.values).toEqual([
      { id: 1, result: { at: new Date("2026-12-05T10:00:00Z") } },
      { id: new Int32(2), result: "x" },
    ]);
  });

  it("names the types that sort after a value's type, as $type aliases every server knows", () => {
    expect(typesSortingAfter(5)).toEqual([
      "string",
      "object",
      "array",
      "binData",
      "objectId",
      "bool",
      "date",
      "timestamp",
      "regex",
    ]);
    expect(typesSortingAfter("a")[0]).toBe("object");
    expect(typesSortingAfter(new ObjectId())).toEqual(["bool", "date", "timestamp", "regex"]);
    expect(typesSortingAfter(/x/)).toEqual([]);
  });
});
