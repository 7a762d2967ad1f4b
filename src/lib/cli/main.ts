/**
 * The `chunkrelay` command line: parses flags with commander (and zod for values), then calls
 * the same `src/lib` functions the Trigger.dev tasks use. Exit codes: 0 done, 1 failed,
 * 2 bad usage or config, 3 interrupted.
 */
import { Command, CommanderError, InvalidArgumentError } from "commander";
import { z } from "zod";
import { startEmbeddedMongo } from "../embedded-mongo/index.js";

export const EXIT = { ok: 0, failed: 1, usage: 2, interrupted: 3 } as const;

const portSchema = z.coerce
  .number()
  .int()
  .min(0, "a port is 0 (any free port) or 1-65535")
  .max(65535, "a port is 0 (any free port) or 1-65535");

function parsePort(value: string): number {
  const parsed = portSchema.safeParse(value);
  if (!parsed.success) {
    throw new InvalidArgumentError(
      `'${value}' is not a port: ${parsed.error.issues[0]?.message ?? "invalid"}.`,
    );
  }
  return parsed.data;
}

/** Resolves when the process receives SIGINT or SIGTERM. */
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

export function buildProgram(): Command {
  const program = new Command("chunkrelay")
    .description("Feed MongoDB records to a REST batch service in chunks, with back-pressure.")
    .exitOverride()
    .configureOutput({ writeErr: (s) => process.stderr.write(s) });

  program
    .command("mongo")
    .description(
      "Serve the embedded MongoDB engine (for machines without mongod). Prints the URI as the first stdout line.",
    )
    .option("--port <n>", "TCP port; 0 picks a free one", parsePort, 27017)
    .option("--host <address>", "interface to bind", "127.0.0.1")
    .option(
      "--dir <path>",
      "load data from here on start and save it here on clean stop (default: memory only)",
    )
    .action(async (opts: { port: number; host: string; dir?: string }) => {
      const server = await startEmbeddedMongo({ port: opts.port, host: opts.host, dir: opts.dir });
      process.stdout.write(`${server.uri}\n`);
      process.stderr.write(
        `embedded MongoDB engine listening on ${server.uri}` +
          (opts.dir
            ? ` (data dir ${opts.dir}, ${server.loadedDocuments} documents loaded)`
            : " (in memory)") +
          "; stop with Ctrl-C\n",
      );
      const signal = await untilSignal();
      await server.stop();
      process.stderr.write(`stopped on ${signal}${opts.dir ? `; data saved to ${opts.dir}` : ""}\n`);
    });

  return program;
}

export async function main(argv: string[]): Promise<number> {
  const program = buildProgram();
  try {
    await program.parseAsync(argv, { from: "user" });
    return EXIT.ok;
  } catch (err) {
    if (err instanceof CommanderError) {
      return err.exitCode === 0 ? EXIT.ok : EXIT.usage;
    }
    process.stderr.write(`chunkrelay: ${err instanceof Error ? err.message : String(err)}\n`);
    return EXIT.failed;
  }
}

process.exitCode = await main(process.argv.slice(2));
