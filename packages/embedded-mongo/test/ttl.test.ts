/**
 * TTL indexes: a server's TTL monitor deletes, once a minute, the documents whose indexed date
 * (the earliest, for an array) is older than `expireAfterSeconds`; documents without a date there
 * never expire. The engine's sweep does the same (`Engine.expireDocuments`, run by the server
 * every 60 s); here it is called with a chosen clock, in-process.
 */
import { deserialize } from "bson";
import { describe, expect, it } from "vitest";
import { Engine } from "../src/engine.js";

function run(engine: Engine, command: Record<string, unknown>): Record<string, unknown> {
  const reply = engine.run(command, "ttl", 1);
  return Buffer.isBuffer(reply) ? deserialize(reply) : reply;
}

function ids(engine: Engine): unknown[] {
  const reply = run(engine, { find: "sessions", filter: {}, sort: { _id: 1 } }) as {
    cursor: { firstBatch: { _id: unknown }[] };
  };
  return reply.cursor.firstBatch.map((d) => d._id);
}

describe("TTL indexes", () => {
  it("deletes the documents whose date is older than expireAfterSeconds, and only those", () => {
    const engine = new Engine();
    const now = Date.parse("2026-12-05T12:00:00Z");
    const ago = (s: number) => new Date(now - s * 1000);
    run(engine, {
      insert: "sessions",
      documents: [
        { _id: 1, seenAt: ago(3600) },
        { _id: 2, seenAt: ago(59) },
        { _id: 3, seenAt: [ago(10), ago(7200)] },
        { _id: 4, seenAt: "not a date" },
        { _id: 5 },
        { _id: 6, seenAt: ago(61) },
      ],
    });
    const created = run(engine, {
      createIndexes: "sessions",
      indexes: [{ key: { seenAt: 1 }, name: "seenAt_ttl", expireAfterSeconds: 60 }],
    });
    expect(created.ok).toBe(1);
    expect(ids(engine)).toEqual([1, 2, 3, 4, 5, 6]);
    expect(engine.expireDocuments(now)).toBe(3);
    expect(ids(engine)).toEqual([2, 4, 5]);
    // A minute later the second one has expired too.
    expect(engine.expireDocuments(now + 60_000)).toBe(1);
    expect(ids(engine)).toEqual([4, 5]);
  });

  it("leaves collections without a TTL index alone", () => {
    const engine = new Engine();
    run(engine, { insert: "sessions", documents: [{ _id: 1, seenAt: new Date(0) }] });
    run(engine, { createIndexes: "sessions", indexes: [{ key: { seenAt: 1 }, name: "seenAt_1" }] });
    expect(engine.expireDocuments(Date.now())).toBe(0);
    expect(ids(engine)).toEqual([1]);
  });
});
