/**
 * What `npm ci --omit=dev` installs is the lockfile's entries without `dev: true`: no package that
 * downloads a MongoDB binary, none that only the tests, lint or benchmarks use. The build tool
 * stays, since `prepare` compiles the CLI on that install too. (`scripts/check-lean-install.sh`
 * checks the same on a real install.)
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { z } from "zod";

const lockSchema = z.object({
  packages: z.record(z.string(), z.object({ dev: z.boolean().optional() }).loose()),
});

const lock = lockSchema.parse(
  JSON.parse(readFileSync(join(import.meta.dirname, "../../package-lock.json"), "utf8")),
);

/** Package names of the production closure (a nested copy counts under its own name). */
const production = new Set(
  Object.entries(lock.packages)
    .filter(([path, entry]) => path !== "" && entry.dev !== true)
    .map(([path]) => path.slice(path.lastIndexOf("node_modules/") + "node_modules/".length)),
);

describe("the production install (npm ci --omit=dev)", () => {
  it.each([
    "mongodb-memory-server",
    "mongodb-memory-server-core",
    "vitest",
    "eslint",
    "prettier",
    "playwright-core",
    "typescript-eslint",
    "tsx",
    "trigger.dev",
  ])("leaves out %s", (name) => {
    expect(production.has(name)).toBe(false);
  });

  it("keeps what the CLI and the build need", () => {
    for (const name of ["typescript", "commander", "mongodb", "zod", "bson", "mingo"]) {
      expect(production.has(name), name).toBe(true);
    }
  });
});
