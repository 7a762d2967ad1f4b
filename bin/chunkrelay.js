#!/usr/bin/env node
// Runs the TypeScript CLI through tsx's loader, so a checkout works right after `npm ci`.
import { setTimeout } from "node:timers";
import { register } from "tsx/esm/api";

register();
// `chunkrelay status … | head` closes stdout early: stop quietly, as Unix tools do.
for (const stream of [process.stdout, process.stderr]) {
  stream.on("error", (err) => {
    if (err.code !== "EPIPE") throw err;
    process.exit(process.exitCode ?? 0);
  });
}
const { main } = await import("../src/lib/cli/main.ts");
const code = await main(process.argv.slice(2));
process.exitCode = code;
// Normally the process ends here by itself. Should something still hold the event loop (a
// database that stopped answering while its client said goodbye), exit anyway: the command has
// finished and said what it had to.
setTimeout(() => process.exit(code), 3_000).unref();
