import { defineConfig } from "vitest/config";
import { sourceCondition } from "./test/support/source-condition.js";

// The Kafka lane: `*.kafka.test.ts` against a real Apache Kafka broker — `npm run test:kafka`
// (CI runs it after `npm test`, which leaves these files out). The broker is KAFKA_BROKERS when
// set, otherwise one started for the run by scripts/kafka/start-broker.sh (Apache Kafka from
// Maven Central, run with the machine's Java) and stopped at the end.
export default defineConfig({
  // Workspace packages are tested from their TypeScript sources, never from a stale dist/.
  plugins: [sourceCondition()],
  test: {
    include: ["test/**/*.kafka.test.ts"],
    exclude: ["**/node_modules/**"],
    // MongoDB as in the default lane (the Kafka source feeds the same pipeline), then the broker.
    globalSetup: ["test/support/global-setup.ts", "test/support/kafka-broker.ts"],
    setupFiles: ["test/support/leak-guard.ts"],
    pool: "forks",
    maxWorkers: 2,
    reporters: ["default", "./test/support/summary-reporter.ts"],
    testTimeout: 30_000,
    // The first broker start fetches Apache Kafka from Maven Central (about 30 s on a cold cache).
    hookTimeout: 180_000,
  },
});
