/**
 * `embedded-mongo`: serves the engine on a port until SIGINT/SIGTERM. The URI is the first line on
 * stdout, so a script can start it in the background and read where to connect; everything else
 * goes to stderr. Exit codes: 0 after a clean stop, 2 for bad arguments.
 */
import { parseArgs } from "node:util";
import { startEmbeddedMongo } from "./server.js";

export const USAGE = `Usage: embedded-mongo [--port <n>] [--host <address>] [--dir <path>]

Serves the embedded MongoDB engine and prints its mongodb:// URI first.

  --port <n>        TCP port; 0 picks a free one (default 27017)
  --host <address>  interface to bind (default 127.0.0.1)
  --dir <path>      load data from here on start and save it here on clean stop
                    (default: memory only)
  -h, --help        show this help
`;

export const EXIT = { ok: 0, usage: 2 } as const;

export interface MongoCommandOptions {
  port: number;
  host: string;
  dir?: string;
}

class UsageError extends Error {}

function parsePort(text: string): number {
  // Whole decimal numbers only: "8080abc" or "1e3" are typos, not ports.
  const port = /^\d+$/.test(text) ? Number(text) : Number.NaN;
  if (!Number.isInteger(port) || port > 65535) {
    throw new UsageError(`--port '${text}' is not a port: expected a whole number from 0 to 65535`);
  }
  return port;
}

/** Reads the command line; `help` when -h/--help was given. Throws UsageError for bad arguments. */
export function parseMongoCommandArgs(argv: readonly string[]): MongoCommandOptions | "help" {
  let parsed;
  try {
    parsed = parseArgs({
      args: [...argv],
      options: {
        port: { type: "string" },
        host: { type: "string" },
        dir: { type: "string" },
        help: { type: "boolean", short: "h" },
      },
      strict: true,
      allowPositionals: false,
    });
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
  const { values } = parsed;
  if (values.help) return "help";
  if (values.host === "") throw new UsageError("--host is empty: give an address such as 127.0.0.1");
  if (values.dir === "") throw new UsageError("--dir is empty: give a directory, or leave the flag out");
  return {
    port: values.port === undefined ? 27017 : parsePort(values.port),
    host: values.host ?? "127.0.0.1",
    ...(values.dir === undefined ? {} : { dir: values.dir }),
  };
}

function untilSignal(): Promise<NodeJS.Signals> {
  return new Promise((resolve) => {
    const on = (signal: NodeJS.Signals) => {
      process.off("SIGINT", on);
      process.off("SIGTERM", on);
      resolve(signal);
    };
    process.on("SIGINT", on);
    process.on("SIGTERM", on);
  });
}

/** Runs the command to completion and returns its exit code. */
export async function main(argv: readonly string[]): Promise<number> {
  let opts: MongoCommandOptions | "help";
  try {
    opts = parseMongoCommandArgs(argv);
  } catch (err) {
    if (!(err instanceof UsageError)) throw err;
    process.stderr.write(`embedded-mongo: ${err.message}\n\n${USAGE}`);
    return EXIT.usage;
  }
  if (opts === "help") {
    process.stdout.write(USAGE);
    return EXIT.ok;
  }
  const server = await startEmbeddedMongo({
    port: opts.port,
    host: opts.host,
    ...(opts.dir === undefined ? {} : { dir: opts.dir }),
  });
  process.stdout.write(`${server.uri}\n`);
  process.stderr.write(
    `embedded MongoDB engine listening on ${server.uri}` +
      (opts.dir === undefined
        ? " (in memory)"
        : ` (data dir ${opts.dir}, ${server.loadedDocuments} documents loaded)`) +
      "; stop with Ctrl-C\n",
  );
  const signal = await untilSignal();
  await server.stop();
  process.stderr.write(
    `stopped on ${signal}${opts.dir === undefined ? "" : `; data saved to ${opts.dir}`}\n`,
  );
  return EXIT.ok;
}
