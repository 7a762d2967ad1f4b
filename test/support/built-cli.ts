/**
 * `bin/chunkrelay.js` runs the compiled CLI in dist/, not src/: a test that spawns it after a source
 * change without a build would test stale JavaScript and pass or fail for the wrong reason. Tests
 * that spawn the CLI take its path from here, which refuses a missing or stale build.
 */
import { readdirSync, statSync } from "node:fs";
import { join } from "node:path";

const ROOT = join(import.meta.dirname, "../..");

/** What the build compiles (tsconfig.build.json): src and the embedded engine it imports. */
const SOURCE_DIRS = ["src", "packages/embedded-mongo/src"];

/** Throws, saying what to run, unless `root`'s dist/ was built after its last source change. */
export function checkBuildIsFresh(root: string): void {
  let builtAt: number;
  try {
    builtAt = statSync(join(root, "dist/src/cli/main.js")).mtimeMs;
  } catch {
    throw new Error("the CLI is not built (no dist/): run `npm run build` (`npm test` does) first");
  }
  for (const dir of SOURCE_DIRS) {
    for (const file of readdirSync(join(root, dir), { recursive: true, encoding: "utf8" })) {
      if (!file.endsWith(".ts")) continue;
      if (statSync(join(root, dir, file)).mtimeMs > builtAt) {
        throw new Error(
          `dist/ is older than ${dir}/${file}: run \`npm run build\` (\`npm test\` does) so the tests run the current code`,
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
