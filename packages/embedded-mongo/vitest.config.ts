import { defineConfig } from "vitest/config";

// The package's tests on their own (`npm test -w @chunkrelay/embedded-mongo`). The repository's
// root `npm test` runs them too, against whichever server its setup picked.
export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    globalSetup: ["test/support/global-setup.ts"],
    pool: "forks",
    maxWorkers: 2,
    testTimeout: 30_000,
    hookTimeout: 60_000,
  },
});
