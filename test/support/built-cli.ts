/**
 * `bin/chunkrelay.js` runs the compiled CLI in dist/, not src/: a test that spawns it after a source
 * change without a build would test stale JavaScript and pass or fail for the wrong reason. Tests
 * that spawn the CLI take its path from here, which refuses a missing or stale build.
 */
import { readdirSync, statSync } from "node:fs";
import { join } from "node:path";

const ROOT = join(import.meta.dirname, "../..");

/** What the build compiles, each into its own dist/: src (tsconfig.build.json) and the engine package. */
const BUILDS = [
  { sources: "src", output: "dist/cli/main.js" },
  { sources: "packages/embedded-mongo/src", output: "packages/embedded-mongo/dist/index.js" },
];

/** Throws, saying what to run, unless every build under `root` is newer than its sources. */
export function checkBuildIsFresh(root: string): void {
  for (const { sources, output } of BUILDS) {
    let builtAt: number;
    try {
      builtAt = statSync(join(root, output)).mtimeMs;
    } catch {
      throw new Error(`${output} is not built: run \`npm run build\` (\`npm test\` does) first`);
    }
    for (const file of readdirSync(join(root, sources), { recursive: true, encoding: "utf8" })) {
      if (!file.endsWith(".ts")) continue;
      if (statSync(join(root, sources, file)).mtimeMs > builtAt) {
        throw new Error(
          `${output} is older than ${sources}/${file}: run \`npm run build\` (\`npm test\` does) so the tests run the current code`,
        );
      }
    }
  }
}

/** The path of `bin/chunkrelay.js`, once its build is known to be current. */
export function builtCli(): string {
  checkBuildIsFresh(ROOT);
  return join(ROOT, "bin/chunkrelay.js");
}
