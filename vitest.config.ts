import { defineConfig } from "vitest/config";
import { sourceCondition } from "./test/support/source-condition.js";

export default defineConfig({
  // Workspace packages are tested from their TypeScript sources, never from a stale dist/.
  plugins: [sourceCondition()],
  test: {
    include: ["test/**/*.test.ts", "packages/*/test/**/*.test.ts"],
    // Browser tests need chromium; they run with `npm run test:browser`. Kafka tests need a
    // broker (and Java); they run with `npm run test:kafka` (vitest.kafka.config.ts).
    exclude: ["**/*.browser.test.ts", "**/*.kafka.test.ts", "**/node_modules/**"],
    // One MongoDB server for the whole run (MONGODB_URI, mongodb-memory-server or the embedded
    // engine — printed at start); every test file then works in a database of its own.
    globalSetup: ["test/support/global-setup.ts"],
    setupFiles: ["test/support/leak-guard.ts"],
    pool: "forks",
    // Two files at a time even on a 2-core machine (vitest's default there is one): most test
    // time is spent waiting on sockets and child processes, so the suite takes about half as
    // long. Tests wait on events with deadlines, never on guessed delays, so load does not change
    // what they mean.
    maxWorkers: 2,
    reporters: ["default", "./test/support/summary-reporter.ts"],
    testTimeout: 30_000,
    hookTimeout: 60_000,
  },
});
