/**
 * A reply longer than `replyLimitBytes` is flagged `truncated`, also when the limit falls exactly
 * at the end of one piece of the body and the rest comes after (found by review: the reader
 * stopped at the limit without looking for more, so a cut body could parse as a whole outcome).
 */
import { type Server, createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { postChunk } from "../../../src/steps/dispatch/post-chunk.js";

const OUTCOME = '{"status":"processed"}';
let server: Server;
let url: string;

beforeAll(async () => {
  server = createServer((req, res) => {
    req.resume();
    req.on("end", () => {
      res.writeHead(200, { "content-type": "application/json" });
      res.write(OUTCOME);
      if (req.url === "/more") {
        // The rest of the body, in a piece of its own.
        setImmediate(() => res.end(', "and": "more"}'));
      } else res.end();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
afterAll(async () => {
  server.closeAllConnections();
  await new Promise<void>((resolve) => server.close(() => resolve()));
});

const send = (path: string, replyLimitBytes: number) =>
  postChunk({ url: `${url}${path}`, body: "{}", headers: {}, timeoutMs: 5_000, replyLimitBytes });

describe("the reply limit", () => {
  it("a body of exactly the limit is whole", async () => {
    expect(await send("/exact", OUTCOME.length)).toEqual({ kind: "accepted", status: 200, body: OUTCOME });
  });

  it("more after the limit, in a later piece, is flagged", async () => {
    expect(await send("/more", OUTCOME.length)).toEqual({
      kind: "accepted",
      status: 200,
      body: OUTCOME,
      truncated: true,
    });
  });

  it("more within one piece is flagged, the body cut at the limit", async () => {
    expect(await send("/exact", 5)).toEqual({
      kind: "accepted",
      status: 200,
      body: OUTCOME.slice(0, 5),
      truncated: true,
    });
  });
});
