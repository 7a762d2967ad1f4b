/**
 * Connecting to MongoDB: a client opened for one piece of work and always closed, and the URI
 * helpers (which database a URI names, the URI without its password, another database).
 */
import { MongoClient } from "mongodb";
import { BadInputError } from "../common/errors.js";
import { Store } from "./store.js";

/** The database named in the URI's path, or `chunkrelay`. */
export function databaseNameOf(uri: string, fallback = "chunkrelay"): string {
  const match = /^mongodb(?:\+srv)?:\/\/[^/]+\/([^?]*)/.exec(uri);
  const name = match?.[1] ? decodeURIComponent(match[1]) : "";
  return name || fallback;
}

/** Removes the password from a MongoDB URI before it is printed anywhere. */
export function redactUri(uri: string): string {
  return uri.replace(/^(mongodb(?:\+srv)?:\/\/)([^@/]*)@/, (_m, scheme: string, auth: string) => {
    const user = auth.split(":")[0] ?? "";
    return `${scheme}${user ? `${user}:***` : "***"}@`;
  });
}

/** Opens a client, runs `fn` with the store, and always closes the client. */
export async function withMongo<T>(
  uri: string,
  fn: (store: Store, client: MongoClient) => Promise<T>,
): Promise<T> {
  // 10 s to find the server unless the URI says otherwise.
  let client: MongoClient;
  try {
    client = new MongoClient(
      uri,
      /serverSelectionTimeoutMS=/i.test(uri) ? {} : { serverSelectionTimeoutMS: 10_000 },
    );
  } catch (err) {
    // A connection string the driver cannot read is bad input (exit 2), not a failure to retry.
    // The driver's message names the problem; the URI itself (and its password) is not repeated.
    // The constructor only parses (it connects nothing), so whatever it throws is about the URI.
    const why = err instanceof Error ? err.message : String(err);
    throw new BadInputError(`the MongoDB connection string is not valid: ${why}`);
  }
  try {
    await client.connect();
    const store = new Store(client.db(databaseNameOf(uri)));
    await store.ensureIndexes();
    return await fn(store, client);
  } finally {
    await closeWithin(client, CLOSE_WAIT_MS);
  }
}

/** How long closing a client may take before the CLI stops waiting for it. */
const CLOSE_WAIT_MS = 5_000;

/**
 * Closes a client, waiting at most `ms`: closing ends the server's sessions and cursors, which a
 * server that stopped answering never acknowledges; a command must not hang on its way out. The
 * sockets are closed at once either way; only those goodbyes are left behind.
 */
async function closeWithin(client: MongoClient, ms: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([
    client.close(),
    new Promise<void>((resolve) => {
      timer = setTimeout(resolve, ms);
      timer.unref();
    }),
  ]).finally(() => clearTimeout(timer));
}

/** The same URI pointing at another database (query options kept). */
export function uriWithDatabase(uri: string, db: string): string {
  const m = /^(mongodb(?:\+srv)?:\/\/[^/?]+)(\/[^?]*)?(\?.*)?$/.exec(uri);
  if (!m) throw new Error(`not a MongoDB URI: ${redactUri(uri)}`);
  return `${m[1]}/${encodeURIComponent(db)}${m[3] ?? ""}`;
}

/** A long-lived client (one per worker process): connect once, close when the process ends. */
export interface StoreClient {
  /** Connects and returns the store on the URI's database (indexes are the caller's to ensure). */
  connect(prefix?: string): Promise<Store>;
  close(): Promise<void>;
}

/**
 * A client for `uri`, not connected yet. Throws when the driver cannot read the URI (the
 * constructor only parses: whatever it throws is about the URI); the caller words that.
 */
export function newStoreClient(uri: string, options: { maxPoolSize?: number } = {}): StoreClient {
  const client = new MongoClient(
    uri,
    options.maxPoolSize !== undefined ? { maxPoolSize: options.maxPoolSize } : {},
  );
  return {
    async connect(prefix) {
      await client.connect();
      return new Store(client.db(databaseNameOf(uri)), prefix);
    },
    close: () => client.close(),
  };
}
