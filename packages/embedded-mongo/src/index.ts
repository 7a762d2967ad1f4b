/**
 * The embedded MongoDB engine: an in-process server that speaks the MongoDB wire protocol, so
 * the official `mongodb` driver connects to it with a plain `mongodb://127.0.0.1:PORT/` URI.
 *
 * What it is: a strict development and test engine for machines without `mongod` (no package, no
 * Docker, no download). It implements the commands chunkrelay and its tests use, with the server's
 * error codes and messages, BSON numeric types kept intact, and B+ tree indexes (unique,
 * compound, sparse, partial, multikey) that the query planner walks for equality, range and sort.
 * Matching, update operators and aggregation are mingo's; BSON is the `bson` package.
 *
 * What it is not: a database for production. No replica sets, change streams, transactions,
 * authentication, text/geo search, collation, server-side JavaScript or durable storage (only an
 * optional snapshot on clean stop). Production uses a real MongoDB (`MONGODB_URI`).
 */
export { startEmbeddedMongo, type EmbeddedMongo, type EmbeddedMongoOptions } from "./server.js";
export { Engine, EMULATED_VERSION } from "./engine.js";
export type { QueryStats } from "./collection.js";
