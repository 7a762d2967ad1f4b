/**
 * The MongoDB wire protocol: framing of the byte stream into messages, decoding of OP_MSG
 * (kind-0 body, kind-1 document sequences, checksum and moreToCome flags) and of the legacy
 * OP_QUERY handshake, and encoding of OP_MSG / OP_REPLY answers. Cursor batches are assembled
 * from already-serialized documents so each document is serialized exactly once.
 */
import { deserialize, serialize } from "bson";
import { CommandError } from "./errors.js";
import type { BsonDocument } from "./values.js";

export const OP_REPLY = 1;
export const OP_QUERY = 2004;
export const OP_COMPRESSED = 2012;
export const OP_MSG = 2013;

const CHECKSUM_PRESENT = 1 << 0;
const MORE_TO_COME = 1 << 1;

/** Largest message the engine accepts (what `hello` advertises as maxMessageSizeBytes). */
export const MAX_MESSAGE_BYTES = 48_000_000;
export const MAX_BSON_BYTES = 16 * 1024 * 1024;

export interface WireRequest {
  requestId: number;
  opCode: number;
  /** The command document, with kind-1 sequences merged in as arrays. */
  command: BsonDocument;
  /** Database the command runs in (`$db`, or the namespace of a legacy OP_QUERY). */
  db: string;
  /** The client wants no reply (unacknowledged write). */
  moreToCome: boolean;
}

// Keep numeric types as sent: Int32/Double/Long wrappers (see values.ts for the stored form).
const DESERIALIZE = { promoteValues: false, promoteBuffers: false } as const;

/**
 * Splits an incoming byte stream into whole messages. Chunks are kept in a list and joined once
 * per message, so a 48 MB insert arriving in 64 KB pieces costs O(n), not O(n²).
 */
export class MessageFramer {
  private chunks: Buffer[] = [];
  private buffered = 0;

  push(chunk: Buffer): Buffer[] {
    this.chunks.push(chunk);
    this.buffered += chunk.length;
    const out: Buffer[] = [];
    for (;;) {
      if (this.buffered < 4) break;
      const head = this.peek(4);
      const length = head.readInt32LE(0);
      if (length < 16 || length > MAX_MESSAGE_BYTES) {
        throw new CommandError("BadValue", `invalid message length ${length}`);
      }
      if (this.buffered < length) break;
      out.push(this.take(length));
    }
    return out;
  }

  private peek(n: number): Buffer {
    const first = this.chunks[0] as Buffer;
    if (first.length >= n) return first;
    this.chunks = [Buffer.concat(this.chunks)];
    return this.chunks[0] as Buffer;
  }

  private take(n: number): Buffer {
    const all = this.chunks.length === 1 ? (this.chunks[0] as Buffer) : Buffer.concat(this.chunks);
    const msg = all.subarray(0, n);
    const rest = all.subarray(n);
    this.chunks = rest.length > 0 ? [rest] : [];
    this.buffered = rest.length;
    return msg;
  }
}

function readCString(buf: Buffer, at: number): [string, number] {
  const end = buf.indexOf(0, at);
  if (end < 0) throw new CommandError("BadValue", "unterminated cstring in message");
  return [buf.toString("utf8", at, end), end + 1];
}

export function decodeMessage(msg: Buffer): WireRequest {
  const requestId = msg.readInt32LE(4);
  const opCode = msg.readInt32LE(12);
  if (opCode === OP_MSG) {
    const flags = msg.readUInt32LE(16);
    const end = flags & CHECKSUM_PRESENT ? msg.length - 4 : msg.length;
    let at = 20;
    let command: BsonDocument | undefined;
    const sequences: Array<[string, BsonDocument[]]> = [];
    while (at < end) {
      const kind = msg.readUInt8(at);
      at += 1;
      if (kind === 0) {
        const size = msg.readInt32LE(at);
        command = deserialize(msg.subarray(at, at + size), DESERIALIZE);
        at += size;
      } else if (kind === 1) {
        const size = msg.readInt32LE(at);
        const sectionEnd = at + size;
        const [identifier, docsAt] = readCString(msg, at + 4);
        const docs: BsonDocument[] = [];
        let p = docsAt;
        while (p < sectionEnd) {
          const docSize = msg.readInt32LE(p);
          docs.push(deserialize(msg.subarray(p, p + docSize), DESERIALIZE));
          p += docSize;
        }
        sequences.push([identifier, docs]);
        at = sectionEnd;
      } else {
        throw new CommandError("BadValue", `unknown OP_MSG section kind ${kind}`);
      }
    }
    if (!command) throw new CommandError("BadValue", "OP_MSG without a body section");
    for (const [identifier, docs] of sequences) {
      const existing = command[identifier];
      command[identifier] = Array.isArray(existing) ? [...(existing as unknown[]), ...docs] : docs;
    }
    const db = typeof command.$db === "string" ? command.$db : "admin";
    return { requestId, opCode, command, db, moreToCome: (flags & MORE_TO_COME) !== 0 };
  }
  if (opCode === OP_QUERY) {
    const [fullCollectionName, after] = readCString(msg, 20);
    const at = after + 8; // numberToSkip, numberToReturn
    const size = msg.readInt32LE(at);
    let command = deserialize(msg.subarray(at, at + size), DESERIALIZE);
    // Legacy clients may wrap the command as {$query: {...}, $readPreference: ...}.
    if (command.$query && typeof command.$query === "object") command = command.$query as BsonDocument;
    const db = fullCollectionName.split(".")[0] ?? "admin";
    return { requestId, opCode, command, db, moreToCome: false };
  }
  if (opCode === OP_COMPRESSED) {
    throw new CommandError("BadValue", "compression was not negotiated; OP_COMPRESSED is not accepted");
  }
  throw new CommandError("BadValue", `unsupported opCode ${opCode}`);
}

let nextResponseId = 1;

function header(total: number, responseTo: number, opCode: number): Buffer {
  const h = Buffer.allocUnsafe(16);
  h.writeInt32LE(total, 0);
  h.writeInt32LE(nextResponseId++ & 0x7fffffff, 4);
  h.writeInt32LE(responseTo, 8);
  h.writeInt32LE(opCode, 12);
  return h;
}

/** An OP_MSG reply around an already-serialized body. */
export function encodeOpMsg(responseTo: number, body: Buffer): Buffer {
  const total = 16 + 4 + 1 + body.length;
  const prefix = Buffer.allocUnsafe(5);
  prefix.writeUInt32LE(0, 0);
  prefix.writeUInt8(0, 4);
  return Buffer.concat([header(total, responseTo, OP_MSG), prefix, body], total);
}

/** An OP_REPLY (answer to the legacy OP_QUERY handshake). */
export function encodeOpReply(responseTo: number, body: Buffer): Buffer {
  const total = 16 + 20 + body.length;
  const fields = Buffer.alloc(20);
  fields.writeInt32LE(8, 0); // responseFlags: AwaitCapable
  fields.writeBigInt64LE(0n, 4); // cursorID
  fields.writeInt32LE(0, 12); // startingFrom
  fields.writeInt32LE(1, 16); // numberReturned
  return Buffer.concat([header(total, responseTo, OP_REPLY), fields, body], total);
}

export function serializeDocument(doc: BsonDocument): Buffer {
  const bytes = serialize(doc);
  return Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

function cstring(s: string): Buffer {
  return Buffer.from(`${s}\0`, "utf8");
}

function element(type: number, name: string, value: Buffer): Buffer[] {
  return [Buffer.from([type]), cstring(name), value];
}

function documentOf(parts: Buffer[]): Buffer {
  const size = parts.reduce((n, p) => n + p.length, 0) + 5;
  const head = Buffer.allocUnsafe(4);
  head.writeInt32LE(size, 0);
  return Buffer.concat([head, ...parts, Buffer.from([0])], size);
}

/**
 * `{cursor: {<batchKey>: [...docs], id: <int64>, ns: <string>}, ok: 1.0}`, assembled by hand
 * around the documents' own serialized bytes.
 */
export function encodeCursorReply(
  ns: string,
  cursorId: bigint,
  batchKey: "firstBatch" | "nextBatch",
  docs: Buffer[],
): Buffer {
  const arrayParts: Buffer[] = [];
  docs.forEach((d, i) => arrayParts.push(...element(0x03, String(i), d)));
  const id = Buffer.allocUnsafe(8);
  id.writeBigInt64LE(cursorId, 0);
  const nsBytes = Buffer.from(ns, "utf8");
  const nsValue = Buffer.allocUnsafe(4 + nsBytes.length + 1);
  nsValue.writeInt32LE(nsBytes.length + 1, 0);
  nsBytes.copy(nsValue, 4);
  nsValue.writeUInt8(0, 4 + nsBytes.length);
  const cursor = documentOf([
    ...element(0x04, batchKey, documentOf(arrayParts)),
    ...element(0x12, "id", id),
    ...element(0x02, "ns", nsValue),
  ]);
  const ok = Buffer.allocUnsafe(8);
  ok.writeDoubleLE(1, 0);
  return documentOf([...element(0x03, "cursor", cursor), ...element(0x01, "ok", ok)]);
}
