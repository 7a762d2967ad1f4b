import { startEmbeddedMongo } from "@chunkrelay/embedded-mongo";
import { untilSignal } from "../signals.js";

export interface MongoFlags {
  port: number;
  host: string;
  dir?: string;
}

/** `chunkrelay mongo`: the embedded MongoDB engine, until Ctrl-C. */
export async function serveEmbeddedMongo(opts: MongoFlags): Promise<void> {
  const server = await startEmbeddedMongo({
    port: opts.port,
    host: opts.host,
    ...(opts.dir ? { dir: opts.dir } : {}),
  });
  process.stdout.write(`${server.uri}\n`);
  process.stderr.write(
    `embedded MongoDB engine listening on ${server.uri}` +
      (opts.dir ? ` (data dir ${opts.dir}, ${server.loadedDocuments} documents loaded)` : " (in memory)") +
      "; stop with Ctrl-C\n",
  );
  const signal = await untilSignal();
  await server.stop();
  process.stderr.write(`stopped on ${signal}${opts.dir ? `; data saved to ${opts.dir}` : ""}\n`);
}
