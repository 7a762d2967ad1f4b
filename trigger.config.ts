/**
 * Trigger.dev project configuration. This file is loaded by the CLI on your machine and again,
 * bundled, inside the deploy image when the worker is indexed — where only the environment
 * variables set in the dashboard exist. So it never throws: the project ref is chosen by the CLI
 * (`npx trigger.dev deploy --project-ref proj_…`, or TRIGGER_PROJECT_REF in the environment or
 * `.env`, which the CLI reads itself and which override `project` below).
 */
import { defineConfig } from "@trigger.dev/sdk";

/**
 * Without a ref the CLI stops with "project not found" naming this text, which says what to do.
 * Default: TRIGGER_PROJECT_REF.
 */
const UNSET_PROJECT = "proj_unset_pass_--project-ref_or_set_TRIGGER_PROJECT_REF";

export default defineConfig({
  project: process.env.TRIGGER_PROJECT_REF ?? UNSET_PROJECT,
  dirs: ["./src/tasks"],
  // Pinned: the bare "node" runtime follows the platform's newest LTS (Node 24 with CLI 4.8). The
  // worker tests run the bundle's indexer and task bodies on Node 22 (test/runtimes/trigger), so what is
  // tested is what runs. Default: "node".
  runtime: "node-22",
  // Warm runs reuse the process, and so the worker's one MongoDB client and its ensured indexes
  // (src/runtimes/trigger/worker.ts). Default: false, a fresh process (connect, ensureIndexes) per run.
  processKeepAlive: { enabled: true, maxExecutionsPerProcess: 200 },
  // The longest a run may take; the watcher hands over to a fresh run well before this.
  maxDuration: 3600,
  build: {
    extensions: [
      {
        // The Kafka client's WebAssembly helpers (CRC32C, compression) read `native.wasm` next to
        // their module at import time, a file the worker bundle does not carry: the package's
        // `bundled` entry inlines the same module. Without this, indexing the worker fails.
        name: "kafka-wasm-inlined",
        onBuildStart(context) {
          context.registerPlugin({
            name: "kafka-wasm-inlined",
            setup(build) {
              build.onResolve({ filter: /^@platformatic\/wasm-utils$/ }, (args) =>
                build.resolve("@platformatic/wasm-utils/bundled", {
                  kind: args.kind,
                  resolveDir: args.resolveDir,
                }),
              );
            },
          });
        },
      },
    ],
  },
  retries: {
    enabledInDev: true,
    // Transient failures (the database away, a crash) retry with backoff; bad input never does
    // (the tasks throw AbortTaskRunError for it).
    default: { maxAttempts: 5, factor: 2, minTimeoutInMs: 1000, maxTimeoutInMs: 60_000, randomize: true },
  },
});
