import { defineConfig } from "vitest/config";
import { sourceCondition } from "./test/support/source-condition.js";

// The FerretDB lane: the MongoDB compatibility suite, the pipeline and integration tests and the
// chaos test, against FerretDB — an independent implementation of the MongoDB wire protocol on
// SQLite, built with Go from the Go module proxy (scripts/ferretdb/build.sh) and started on a
// free port for the run (test/support/ferretdb-server.ts). `npm run test:ferretdb`; CI runs it
// after `npm test`. Where FerretDB lacks something a test needs, that test says so and skips
// (test/support/server-kind.ts); the closing summary lists every skip with its reason.
export default defineConfig({
  // Workspace packages are tested from their TypeScript sources, never from a stale dist/.
  plugins: [sourceCondition()],
  test: {
    include: [
      // The compatibility suite, written from the MongoDB manual.
      "packages/embedded-mongo/test/compat-*.test.ts",
      // Store verbs, steps, lanes, queries: the pipeline's integration tests.
      "test/store/**/*.test.ts",
      "test/steps/**/*.test.ts",
      "test/lanes/**/*.test.ts",
      "test/jobs/**/*.test.ts",
      "test/queries/**/*.test.ts",
      "test/admin/**/*.test.ts",
      "test/sources/**/*.test.ts",
      "test/tasks/**/*.test.ts",
      "test/runtimes/**/*.test.ts",
      // The CLI end to end, and the chaos test.
      "test/e2e/cli.test.ts",
      "test/chaos/**/*.test.ts",
    ],
    exclude: ["**/*.unit.test.ts", "**/*.browser.test.ts", "**/*.kafka.test.ts", "**/node_modules/**"],
    globalSetup: ["test/support/ferretdb-server.ts"],
    setupFiles: ["test/support/leak-guard.ts"],
    pool: "forks",
    maxWorkers: 2,
    reporters: ["default", "./test/support/summary-reporter.ts"],
    testTimeout: 30_000,
    // The first start builds FerretDB (about 1–2 minutes with an empty Go module cache).
    hookTimeout: 300_000,
  },
});
