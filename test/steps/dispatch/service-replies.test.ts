/** Malformed batch-service replies: classified by status, read only up to a cap, never fatal. */
import { type Server, createServer } from "node:http";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { REDACT_SCAN_CHARS } from "../../../src/config/redact.js";
import { postChunk } from "../../../src/steps/dispatch/post-chunk.js";

let server: Server;
let url = "";

beforeAll(async () => {
  server = createServer((req, res) => {
    req.resume();
    req.on("end", () => {
      switch (req.url) {
        case "/huge":
          res.writeHead(500, { "content-type": "text/plain" });
          // 20 MB of reply: the client must read at most its cap and move on.
          for (let i = 0; i < 20; i++) res.write("x".repeat(1024 * 1024));
          res.end();
          return;
        case "/html":
          res.writeHead(400, { "content-type": "text/html" });
          res.end("<html><body>Bad Request</body></html>");
          return;
        case "/slow":
          setTimeout(() => {
            res.writeHead(202);
            res.end("{}");
          }, 1000);
          return;
        default:
          res.writeHead(202, { "content-type": "application/json" });
          res.end("{not json");
      }
    });
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", () => r()));
  const a = server.address();
  url = `http://127.0.0.1:${typeof a === "object" && a ? a.port : 0}`;
});

afterAll(async () => {
  server.closeAllConnections();
  await new Promise<void>((r) => server.close(() => r()));
});

const send = (path: string, timeoutMs = 5000) =>
  postChunk({ url: `${url}${path}`, body: "{}", headers: {}, timeoutMs });

describe("batch-service replies", () => {
  it("reads a huge error reply only up to the cap and retries", async () => {
    const outcome = await send("/huge");
    expect(outcome.kind).toBe("retry");
    // The reason keeps as much as redaction reads; it is cut to 310 only after (`redactOutcome`).
    if (outcome.kind === "retry")
      expect(outcome.reason.length).toBeLessThanOrEqual(REDACT_SCAN_CHARS + "HTTP 500: ".length);
  });

  it("takes non-JSON bodies as text: a 4xx page is a rejection, a 2xx is accepted", async () => {
    expect(await send("/html")).toEqual({
      kind: "rejected",
      status: 400,
      reason: "HTTP 400: <html><body>Bad Request</body></html>",
    });
    expect(await send("/ok")).toEqual({ kind: "accepted", status: 202, body: "{not json" });
  });

  it("turns a reply slower than the timeout into a retry", async () => {
    const outcome = await send("/slow", 200);
    expect(outcome).toMatchObject({
      kind: "retry",
      reason: expect.stringContaining("timed out after 200 ms") as string,
    });
  });

  it("turns a refused connection into a retry", async () => {
    const outcome = await postChunk({
      url: "http://127.0.0.1:9/x",
      body: "{}",
      headers: {},
      timeoutMs: 2000,
    });
    expect(outcome).toMatchObject({
      kind: "retry",
      reason: expect.stringContaining("could not deliver") as string,
    });
  });
});
