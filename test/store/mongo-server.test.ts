/** The test helper's choice of MongoDB server, in the order README gives. */
import { MongoClient } from "mongodb";
import { describe, expect, it } from "vitest";
import { pickMongoServer } from "../../src/store/mongo-server.js";

describe("pickMongoServer", () => {
  it("uses MONGODB_URI when it is set, and never prints its credentials", async () => {
    const picked = await pickMongoServer({ MONGODB_URI: "mongodb://user:s3cret@db.example:27017/x" });
    expect(picked.kind).toBe("MONGODB_URI");
    expect(picked.uri).toBe("mongodb://user:s3cret@db.example:27017/x");
    expect(picked.detail).not.toContain("s3cret");
    expect(picked.detail).toContain("user:***@");
    await picked.stop();
  });

  it("falls back to the embedded engine, which the driver can use", async () => {
    const picked = await pickMongoServer({ CHUNKRELAY_TEST_MONGO: "embedded" });
    try {
      expect(picked.kind).toBe("embedded engine");
      const client = new MongoClient(picked.uri);
      try {
        expect((await client.db("admin").command({ ping: 1 })).ok).toBe(1);
      } finally {
        await client.close();
      }
    } finally {
      await picked.stop();
    }
  });
});
