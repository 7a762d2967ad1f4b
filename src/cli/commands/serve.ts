import { readStatusToken } from "../../config/env.js";
import { startStatusServer } from "../../status-page/server.js";
import type { CommandContext } from "../context.js";
import { CliError, EXIT } from "../exit.js";
import { withCommandStore } from "../open-store.js";
import { untilSignal } from "../signals.js";

export interface ServeFlags {
  port: number;
  host: string;
  token?: string;
  mongo?: string;
}

/** True for addresses only this machine can reach. */
function isLoopback(host: string): boolean {
  return host === "localhost" || host === "::1" || /^127\.\d+\.\d+\.\d+$/.test(host);
}

/** `chunkrelay serve`: the status page and its JSON API, until Ctrl-C. */
export async function serveStatusPage(ctx: CommandContext, opts: ServeFlags): Promise<void> {
  // An empty token would quietly turn authentication off: refuse it rather than guess.
  if (opts.token !== undefined && opts.token.trim() === "") {
    throw new CliError(
      "--token is empty: give a token, or leave the flag out to serve without one",
      EXIT.usage,
    );
  }
  if (opts.token !== undefined && /[\p{Cc}\s]/u.test(opts.token)) {
    throw new CliError("--token holds a space or a control character: give the bare token", EXIT.usage);
  }
  const token = opts.token ?? readStatusToken(ctx.env);
  if (!token && !isLoopback(opts.host)) {
    process.stderr.write(
      `warning: serving on ${opts.host} without a token: anyone who can reach this address can read every job; set --token or CHUNKRELAY_STATUS_TOKEN\n`,
    );
  }
  await withCommandStore(opts.mongo, ctx.env, async (store) => {
    const server = await startStatusServer({
      store,
      port: opts.port,
      host: opts.host,
      ...(token ? { token } : {}),
    });
    process.stdout.write(`${server.url}\n`);
    process.stderr.write(
      `status page on ${server.url}${token ? " (token required)" : ""}; stop with Ctrl-C\n`,
    );
    await untilSignal();
    await server.stop();
  });
}
