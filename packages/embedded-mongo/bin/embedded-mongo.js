#!/usr/bin/env node
// Runs the compiled CLI (`dist/`, from `npm run build`). The package imports itself by name, so
// the `exports` conditions decide what loads: plain `node` gets dist/cli.js; in a checkout,
// `node --conditions=@chunkrelay/source --import tsx bin/embedded-mongo.js` runs the sources.
let cli;
try {
  cli = await import("@chunkrelay/embedded-mongo/cli");
} catch (err) {
  if (err?.code !== "ERR_MODULE_NOT_FOUND" || !String(err.message).includes("dist")) throw err;
  process.stderr.write(
    "embedded-mongo is not built yet: run `npm run build:engine` at the repository root\n" +
      "(or, from sources: node --conditions=@chunkrelay/source --import tsx packages/embedded-mongo/bin/embedded-mongo.js)\n",
  );
  process.exit(1);
}
process.exitCode = await cli.main(process.argv.slice(2));
