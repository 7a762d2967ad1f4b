import { mkdirSync, mkdtempSync, rmSync, utimesSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { checkBuildIsFresh } from "../support/built-cli.js";

let root: string | undefined;
afterEach(() => {
  if (root) rmSync(root, { recursive: true, force: true });
  root = undefined;
});

/** A checkout with one source file of each compiled tree and, if `builtAt` is given, a build. */
function checkout(sourcesAt: Date, builtAt?: Date): string {
  const dir = mkdtempSync(join(tmpdir(), "chunkrelay-built-cli-"));
  for (const file of ["src/cli/main.ts", "packages/embedded-mongo/src/deep/engine.ts"]) {
    mkdirSync(join(dir, file, ".."), { recursive: true });
    writeFileSync(join(dir, file), "export {};\n");
    utimesSync(join(dir, file), sourcesAt, sourcesAt);
  }
  if (builtAt) {
    for (const file of ["dist/cli/main.js", "packages/embedded-mongo/dist/index.js"]) {
      mkdirSync(join(dir, file, ".."), { recursive: true });
      writeFileSync(join(dir, file), "export {};\n");
      utimesSync(join(dir, file), builtAt, builtAt);
    }
  }
  return dir;
}

describe("checkBuildIsFresh", () => {
  it("accepts a build made after the last source change", () => {
    root = checkout(new Date(1_000_000), new Date(2_000_000));
    expect(() => checkBuildIsFresh(root!)).not.toThrow();
  });

  it("refuses a missing build, saying what to run", () => {
    root = checkout(new Date(1_000_000));
    expect(() => checkBuildIsFresh(root!)).toThrow(/not built.*npm run build/);
  });

  it("refuses a build older than a source file, naming the file", () => {
    root = checkout(new Date(1_000_000), new Date(2_000_000));
    const later = new Date(3_000_000);
    utimesSync(join(root, "packages/embedded-mongo/src/deep/engine.ts"), later, later);
    expect(() => checkBuildIsFresh(root!)).toThrow(
      "packages/embedded-mongo/dist/index.js is older than packages/embedded-mongo/src/deep/engine.ts",
    );
  });
});
