#!/usr/bin/env node
// Runs the TypeScript CLI through tsx's loader, so a checkout works right after `npm ci`.
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
process.exitCode = await main(process.argv.slice(2));
