/**
 * The engine's wire protocol, spoken by hand over a raw socket: the legacy OP_QUERY handshake,
 * OP_MSG kind-1 document sequences, the checksum flag and moreToCome (no reply). These are the
 * paths the driver may or may not take, so they are tested below the driver.
 */
import { connect, type Socket } from "node:net";
import { deserialize, serialize } from "bson";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type EmbeddedMongo, startEmbeddedMongo } from "../src/index.js";

let server: EmbeddedMongo;
let socket: Socket;
let requestId = 1;
let inbox = Buffer.alloc(0);
const waiters: Array<() => void> = [];

beforeAll(async () => {
  server = await startEmbeddedMongo();
  socket = connect(server.port, "127.0.0.1");
  socket.on("data", (chunk: Buffer) => {
    inbox = Buffer.concat([inbox, chunk]);
    waiters.splice(0).forEach((w) => w());
  });
  await new Promise<void>((resolve) => socket.once("connect", () => resolve()));
});

afterAll(async () => {
  socket.destroy();
  await server.stop();
});

async function readMessage(timeoutMs = 2000): Promise<Buffer> {
  const deadline = Date.now() + timeoutMs;
  while (inbox.length < 4 || inbox.length < inbox.readInt32LE(0)) {
    if (Date.now() > deadline) throw new Error("no reply");
    await new Promise<void>((resolve) => {
      waiters.push(resolve);
      setTimeout(resolve, 50);
    });
  }
  const len = inbox.readInt32LE(0);
  const msg = inbox.subarray(0, len);
  inbox = inbox.subarray(len);
  return msg;
}

function header(length: number, opCode: number, id: number): Buffer {
  const h = Buffer.alloc(16);
  h.writeInt32LE(length, 0);
  h.writeInt32LE(id, 4);
  h.writeInt32LE(0, 8);
  h.writeInt32LE(opCode, 12);
  return h;
}

function opMsg(
  body: object,
  opts: { flags?: number; sequences?: Array<[string, object[]]>; checksum?: boolean } = {},
) {
  const parts: Buffer[] = [];
  const flags = Buffer.alloc(4);
  flags.writeUInt32LE((opts.flags ?? 0) | (opts.checksum ? 1 : 0), 0);
  parts.push(flags, Buffer.from([0]), Buffer.from(serialize(body)));
  for (const [id, docs] of opts.sequences ?? []) {
    const payload = Buffer.concat([Buffer.from(`${id}\0`), ...docs.map((d) => Buffer.from(serialize(d)))]);
    const size = Buffer.alloc(4);
    size.writeInt32LE(payload.length + 4, 0);
    parts.push(Buffer.from([1]), size, payload);
  }
  if (opts.checksum) parts.push(Buffer.alloc(4)); // CRC-32C is optional to verify; the engine skips it.
  const rest = Buffer.concat(parts);
  const id = requestId++;
  return { id, bytes: Buffer.concat([header(16 + rest.length, 2013, id), rest]) };
}

function replyBody(msg: Buffer): Record<string, unknown> {
  expect(msg.readInt32LE(12)).toBe(2013);
  expect(msg.readUInt8(20)).toBe(0);
  return deserialize(msg.subarray(21));
}

describe("wire protocol", () => {
  it("answers a legacy OP_QUERY isMaster with OP_REPLY", async () => {
    const query = Buffer.concat([
      Buffer.alloc(4), // flags
      Buffer.from("admin.$cmd\0"),
      Buffer.from([0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff]), // skip 0, return -1
      Buffer.from(serialize({ isMaster: 1, client: { driver: { name: "raw", version: "0" } } })),
    ]);
    const id = requestId++;
    socket.write(Buffer.concat([header(16 + query.length, 2004, id), query]));
    const reply = await readMessage();
    expect(reply.readInt32LE(8)).toBe(id); // responseTo
    expect(reply.readInt32LE(12)).toBe(1); // OP_REPLY
    expect(reply.readInt32LE(32)).toBe(1); // numberReturned
    const doc = deserialize(reply.subarray(36));
    expect(doc).toMatchObject({ ismaster: true, ok: 1, maxWireVersion: 21 });
  });

  it("merges kind-1 document sequences into the command and honours the checksum flag", async () => {
    const insert = opMsg(
      { insert: "raw", $db: "wire", ordered: true },
      {
        sequences: [
          [
            "documents",
            [
              { _id: 1, a: 1 },
              { _id: 2, a: 2 },
            ],
          ],
        ],
        checksum: true,
      },
    );
    socket.write(insert.bytes);
    const msg = await readMessage();
    expect(msg.readInt32LE(8)).toBe(insert.id);
    expect(replyBody(msg)).toMatchObject({ n: 2, ok: 1 });
  });

  it("sends no reply when moreToCome is set, but applies the write", async () => {
    const fireAndForget = opMsg(
      { insert: "raw", $db: "wire", writeConcern: { w: 0 } },
      { flags: 2, sequences: [["documents", [{ _id: 3, a: 3 }]]] },
    );
    socket.write(fireAndForget.bytes);
    const count = opMsg({ count: "raw", $db: "wire" });
    socket.write(count.bytes);
    const msg = await readMessage();
    // The first reply on the socket answers the count: the w:0 insert got none.
    expect(msg.readInt32LE(8)).toBe(count.id);
    expect(replyBody(msg)).toMatchObject({ n: 3, ok: 1 });
  });

  it("replies to an unknown command with code 59 and keeps the connection usable", async () => {
    const bad = opMsg({ definitelyNotACommand: 1, $db: "wire" });
    socket.write(bad.bytes);
    expect(replyBody(await readMessage())).toMatchObject({ ok: 0, code: 59, codeName: "CommandNotFound" });
    const ping = opMsg({ ping: 1, $db: "admin" });
    socket.write(ping.bytes);
    expect(replyBody(await readMessage())).toMatchObject({ ok: 1 });
  });

  it("reassembles a message split across many small TCP writes", async () => {
    const big = opMsg(
      { insert: "split", $db: "wire" },
      { sequences: [["documents", Array.from({ length: 500 }, (_, i) => ({ i, pad: "p".repeat(100) }))]] },
    );
    for (let at = 0; at < big.bytes.length; at += 1000) socket.write(big.bytes.subarray(at, at + 1000));
    expect(replyBody(await readMessage())).toMatchObject({ n: 500, ok: 1 });
  });
});
