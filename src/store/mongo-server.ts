/**
 * Where MongoDB comes from (README, in this order): `MONGODB_URI` when set; otherwise a real `mongod` from
 * mongodb-memory-server if it can get a binary quickly; otherwise the embedded engine. Used by
 * the demo and by the test run. Whatever is chosen is a real wire connection for the official
 * driver. `CHUNKRELAY_TEST_MONGO=embedded|memory-server` forces a choice.
 */
import { startEmbeddedMongo } from "@chunkrelay/embedded-mongo";
import { redactUri } from "./connection.js";

export type ServerKind = "MONGODB_URI" | "mongodb-memory-server" | "embedded engine";

export interface PickedServer {
  uri: string;
  kind: ServerKind;
  detail: string;
  stop(): Promise<void>;
}

async function tryMemoryServer(timeoutMs: number): Promise<PickedServer | string> {
  const started = Date.now();
  try {
    // A dev dependency: a production install (`npm ci --omit=dev`) has none, and its postinstall
    // would download a mongod there. Then the embedded engine serves, and the reason says why.
    let MongoMemoryServer: typeof import("mongodb-memory-server").MongoMemoryServer;
    try {
      ({ MongoMemoryServer } = await import("mongodb-memory-server"));
    } catch (err) {
      const missing =
        (err as NodeJS.ErrnoException).code === "ERR_MODULE_NOT_FOUND" &&
        (err as Error).message.includes("'mongodb-memory-server'");
      if (missing) return "mongodb-memory-server is not installed (a production install)";
      throw err;
    }
    // mongodb-memory-server prints its own stack trace when it cannot start; the reason is
    // reported once, in the line that says which server was chosen.
    const warn = console.warn;
    console.warn = () => undefined;
    const creating = MongoMemoryServer.create().finally(() => {
      console.warn = warn;
    });
    const timeout = new Promise<"timeout">((resolve) =>
      setTimeout(() => resolve("timeout"), timeoutMs).unref(),
    );
    const result = await Promise.race([creating, timeout]);
    if (result === "timeout") {
      // Do not leave a late-starting mongod behind.
      creating
        .then(
          (s) => s.stop(),
          () => undefined,
        )
        .catch(() => undefined);
      return `no mongod binary within ${timeoutMs} ms`;
    }
    return {
      uri: result.getUri(),
      kind: "mongodb-memory-server",
      detail: `real mongod via mongodb-memory-server (${Date.now() - started} ms to start)`,
      stop: async () => {
        await result.stop();
      },
    };
  } catch (err) {
    const message = err instanceof Error ? err.message.split("\n")[0] : String(err);
    return `mongodb-memory-server could not start mongod after ${Date.now() - started} ms: ${message}`;
  }
}

export async function pickMongoServer(
  env: Record<string, string | undefined> = process.env,
): Promise<PickedServer> {
  if (env.MONGODB_URI) {
    return {
      uri: env.MONGODB_URI,
      kind: "MONGODB_URI",
      detail: redactUri(env.MONGODB_URI),
      stop: async () => {},
    };
  }
  const forced = env.CHUNKRELAY_TEST_MONGO;
  let why = "CHUNKRELAY_TEST_MONGO=embedded";
  if (forced !== "embedded") {
    const timeoutMs = Number(env.CHUNKRELAY_MONGOMS_TIMEOUT_MS ?? 20_000);
    const memory = await tryMemoryServer(timeoutMs);
    if (typeof memory !== "string") return memory;
    if (forced === "memory-server") throw new Error(memory);
    why = memory;
  }
  const engine = await startEmbeddedMongo();
  return {
    uri: engine.uri,
    kind: "embedded engine",
    detail: `chunkrelay's embedded wire-protocol engine at ${engine.uri} (${why})`,
    stop: () => engine.stop(),
  };
}
