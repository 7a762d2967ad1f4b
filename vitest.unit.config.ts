import { defineConfig } from "vitest/config";
import { sourceCondition } from "./test/support/source-condition.js";

// The unit lane: pure code only (`*.unit.test.ts`, beside the other tests of the same module), no MongoDB server started — `npm run test:unit`,
// seconds rather than minutes. `npm test` runs these too, with everything else.
export default defineConfig({
  // Workspace packages are tested from their TypeScript sources, never from a stale dist/.
  plugins: [sourceCondition()],
  test: {
    include: ["test/**/*.unit.test.ts"],
    setupFiles: ["test/support/leak-guard.ts"],
    pool: "forks",
    maxWorkers: 2,
    testTimeout: 30_000,
  },
});
