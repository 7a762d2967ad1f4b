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
      // Store verbs, steps, queries, jobs: integration tests whose jobs are small.
      "test/store/**/*.test.ts",
      "test/jobs/**/*.test.ts",
      "test/queries/**/*.test.ts",
      "test/steps/**/*.test.ts",
      // The pipeline, lane, source, task, admin, service, status-page and CLI tests, end to end
      // included. FerretDB 1.x reads a whole collection for every query not on _id alone, so their
      // jobs of 2,000–60,000 records run with a tenth to a fiftieth of them there, the same chunks
      // per job (each file says where, and why).
      "test/lanes/windows.test.ts",
      "test/sources/sources.test.ts",
      "test/tasks/*.test.ts",
      "test/admin/*.test.ts",
      "test/service/*.test.ts",
      "test/status-page/status-api.test.ts",
      "test/status-page/daily-view-api.test.ts",
      "test/status-page/workers-api.test.ts",
      "test/cli/workers-command.test.ts",
      "test/runtimes/local/*.test.ts",
      "test/runtimes/trigger/sdk-calls.test.ts",
      "test/e2e/*.test.ts",
      // The chaos test (a tenth of its records on FerretDB: test/chaos/chaos.test.ts says why).
      "test/chaos/**/*.test.ts",
      // Not here, and why: test/cli/mongo-command.test.ts (`chunkrelay mongo` serves the embedded
      // engine: a test of the engine, not of a server); test/runtimes/trigger/deploy-index.test.ts
      // and test/simulation (no server: the deploy's bundle, and the engine in-process); the two
      // engine tests excluded below.
    ],
    exclude: [
      "**/*.unit.test.ts",
      "**/*.browser.test.ts",
      "**/*.kafka.test.ts",
      "**/node_modules/**",
      // About the embedded engine itself, not about the lane's server: these start an engine of
      // their own (`chunkrelay mongo`, or in-process) and stop, restart or freeze it (SIGSTOP) to
      // show a run surviving its database going away; FerretDB would play no part in them.
      "test/e2e/database-outage.test.ts",
      "test/e2e/interrupts.test.ts",
    ],
    globalSetup: ["test/support/ferretdb-server.ts"],
    setupFiles: ["test/support/leak-guard.ts"],
    pool: "forks",
    // One file at a time: the server passes one command at a time anyway, so a second file only
    // makes each wait longer; and deadlines are wider, FerretDB's SQLite being slower throughout.
    maxWorkers: 1,
    reporters: ["default", "./test/support/summary-reporter.ts"],
    testTimeout: 90_000,
    // The first start builds FerretDB (about 1–2 minutes with an empty Go module cache).
    hookTimeout: 300_000,
  },
});
