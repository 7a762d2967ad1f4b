/**
 * The TCP side of the embedded engine: accepts driver connections (the driver pools many), frames
 * their byte streams into messages, runs each command on the shared `Engine` and writes the
 * reply. Commands of one connection are answered in order; the engine itself is synchronous.
 */
import { type Server, type Socket, createServer } from "node:net";
import { Engine } from "./engine.js";
import { loadEngine, saveEngine } from "./persistence.js";
import {
  MessageFramer,
  OP_QUERY,
  decodeMessage,
  encodeOpMsg,
  encodeOpReply,
  serializeDocument,
} from "./wire.js";

export interface EmbeddedMongoOptions {
  /** TCP port; default 0 (the OS picks a free one). */
  port?: number;
  /** Interface to bind; default 127.0.0.1 (never exposed beyond this machine by default). */
  host?: string;
  /** Directory to load from on start and save to on `stop()`; default none (memory only). */
  dir?: string;
}

export interface EmbeddedMongo {
  /** `mongodb://host:port/` — give it to the official driver as is. */
  readonly uri: string;
  readonly port: number;
  readonly engine: Engine;
  /** Documents loaded from `dir` at start. */
  readonly loadedDocuments: number;
  /** Closes every connection and the listener, then saves to `dir` if one was given. */
  stop(): Promise<void>;
}

export async function startEmbeddedMongo(options: EmbeddedMongoOptions = {}): Promise<EmbeddedMongo> {
  const host = options.host ?? "127.0.0.1";
  const engine = new Engine();
  const loadedDocuments = options.dir ? loadEngine(engine, options.dir) : 0;
  const sockets = new Set<Socket>();
  let nextConnectionId = 1;

  const server: Server = createServer((socket) => {
    sockets.add(socket);
    socket.setNoDelay(true);
    const connectionId = nextConnectionId++;
    const framer = new MessageFramer();
    socket.on("data", (chunk: Buffer) => {
      let messages: Buffer[];
      try {
        messages = framer.push(chunk);
      } catch {
        socket.destroy();
        return;
      }
      for (const msg of messages) {
        let request;
        try {
          request = decodeMessage(msg);
        } catch {
          socket.destroy();
          return;
        }
        const reply = engine.run(request.command, request.db, connectionId);
        if (request.moreToCome) continue;
        const body = Buffer.isBuffer(reply) ? reply : serializeDocument(reply);
        socket.write(
          request.opCode === OP_QUERY
            ? encodeOpReply(request.requestId, body)
            : encodeOpMsg(request.requestId, body),
        );
      }
    });
    socket.on("error", () => socket.destroy());
    socket.on("close", () => sockets.delete(socket));
  });

  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(options.port ?? 0, host, () => {
      server.off("error", reject);
      resolve();
    });
  });
  const address = server.address();
  const port = typeof address === "object" && address ? address.port : 0;
  // Once a minute, as a server's cursor reaper and TTL monitor run.
  const reaper = setInterval(() => {
    engine.reapIdleCursors();
    engine.expireDocuments();
  }, 60_000);
  reaper.unref();

  let stopped: Promise<void> | undefined;
  return {
    uri: `mongodb://${host.includes(":") ? `[${host}]` : host}:${port}/`,
    port,
    engine,
    loadedDocuments,
    stop() {
      stopped ??= (async () => {
        clearInterval(reaper);
        const closed = new Promise<void>((resolve) => server.close(() => resolve()));
        for (const s of sockets) s.destroy();
        await closed;
        if (options.dir) saveEngine(engine, options.dir);
      })();
      return stopped;
    },
  };
}
