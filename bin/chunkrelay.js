#!/usr/bin/env node
// Runs the compiled CLI in dist/ (built by `npm run build`, which `npm ci` runs as `prepare`).
import { existsSync } from "node:fs";
import { setTimeout } from "node:timers";
import { URL } from "node:url";

// The CLI's entry point, compiled; resolved by hand first to say what to do when it is missing.
const entry = new URL("../dist/cli/main.js", import.meta.url);
if (!existsSync(entry)) {
  process.stderr.write("chunkrelay: the CLI is not built (no dist/): run `npm run build`\n");
  process.exit(2);
}
// `chunkrelay status … | head` closes stdout early: stop quietly, as Unix tools do.
for (const stream of [process.stdout, process.stderr]) {
  stream.on("error", (err) => {
    if (err.code !== "EPIPE") throw err;
    process.exit(process.exitCode ?? 0);
  });
}
// A Ctrl-C while the CLI is still loading holds nothing: exit 3 (interrupted) rather than Node's
// 130. Commands install their own handlers once loaded.
const interruptedWhileLoading = () => {
  process.stderr.write("interrupted before the command started\n");
  process.exit(3);
};
process.on("SIGINT", interruptedWhileLoading);
process.on("SIGTERM", interruptedWhileLoading);
const { main } = await import(entry.href);
process.off("SIGINT", interruptedWhileLoading);
process.off("SIGTERM", interruptedWhileLoading);
const code = await main(process.argv.slice(2));
process.exitCode = code;
// Normally the process ends here by itself. Should something still hold the event loop (a
// database that stopped answering while its client said goodbye), exit anyway: the command has
// finished and said what it had to.
// Output still on its way to a slow reader (`| less`) is waited for, never cut off.
const exitOnceFlushed = () => {
  if (process.stdout.writableLength === 0 && process.stderr.writableLength === 0) process.exit(code);
  setTimeout(exitOnceFlushed, 200).unref();
};
setTimeout(exitOnceFlushed, 3_000).unref();
