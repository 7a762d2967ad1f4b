/**
 * Config documents as stored: `saveConfig` writes a source filter as canonical Extended JSON text
 * (every MongoDB implementation stores that; FerretDB 1.x refuses `$`-prefixed field names in a
 * stored document); documents written by older versions hold the filter as a document. Both read
 * back as the same config, with BSON types intact.
 */
import { EJSON, Long } from "bson";
import { describe, expect, it } from "vitest";
import { parseConfigDoc } from "../../src/store/configs.js";

const base = { _id: "orders", target: { url: "https://svc.example/chunks" } };
const filter = { n: { $gte: Long.fromNumber(5) }, state: { $in: ["a", "b"] } };

describe("stored config documents", () => {
  it("reads a filter stored as Extended JSON text and one stored as a document alike", () => {
    const fromText = parseConfigDoc({
      ...base,
      source: { collection: "orders", filter: EJSON.stringify(filter, { relaxed: false }) },
    });
    const fromDocument = parseConfigDoc({ ...base, source: { collection: "orders", filter } });
    expect(fromText.source).toEqual(fromDocument.source);
    expect(fromText.source).toMatchObject({ filter: { n: { $gte: expect.any(Long) as unknown } } });
  });

  it("refuses a stored filter that is not Extended JSON, saying how to repair it", () => {
    expect(() => parseConfigDoc({ ...base, source: { collection: "orders", filter: "{not json" } })).toThrow(
      /not Extended JSON.*config apply/,
    );
  });
});
