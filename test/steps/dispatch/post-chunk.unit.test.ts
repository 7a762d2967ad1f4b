import { describe, expect, it } from "vitest";
import { classifyReply, parseRetryAfter } from "../../../src/steps/dispatch/post-chunk.js";

describe("batch-service replies", () => {
  it("classifies replies by the contract", () => {
    expect(classifyReply(202, "", undefined)).toEqual({ kind: "accepted", status: 202, body: "" });
    expect(classifyReply(409, "", undefined)).toEqual({ kind: "accepted", status: 409, body: "" });
    expect(classifyReply(429, "", 2000)).toMatchObject({ kind: "retry", retryAfterMs: 2000 });
    expect(classifyReply(503, '{"error":"busy"}', undefined)).toMatchObject({
      kind: "retry",
      reason: "HTTP 503: busy",
    });
    expect(classifyReply(500, "boom", undefined)).toMatchObject({ kind: "retry", reason: "HTTP 500: boom" });
    expect(classifyReply(400, '{"message":"bad chunk"}', undefined)).toEqual({
      kind: "rejected",
      status: 400,
      reason: "HTTP 400: bad chunk",
    });
  });

  it("rejects a redirect at once, saying what to fix", () => {
    for (const status of [301, 302, 307, 308]) {
      expect(classifyReply(status, "", undefined)).toMatchObject({
        kind: "rejected",
        status,
        reason: expect.stringContaining("set target.url"),
      });
    }
  });

  it("reads Retry-After as seconds or as an HTTP date", () => {
    const now = Date.UTC(2026, 0, 1, 0, 0, 0);
    expect(parseRetryAfter("3", now)).toBe(3000);
    expect(parseRetryAfter("Thu, 01 Jan 2026 00:00:05 GMT", now)).toBe(5000);
    expect(parseRetryAfter("soon", now)).toBeUndefined();
    expect(parseRetryAfter(undefined, now)).toBeUndefined();
  });
});
