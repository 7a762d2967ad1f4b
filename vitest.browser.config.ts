import { defineConfig } from "vitest/config";
import { sourceCondition } from "./test/support/source-condition.js";

// The browser test (needs Debian's chromium): `npm run test:browser`. Same MongoDB choice and
// leak guard as the main suite.
export default defineConfig({
  // Workspace packages are tested from their TypeScript sources, never from a stale dist/.
  plugins: [sourceCondition()],
  test: {
    include: ["test/**/*.browser.test.ts"],
    globalSetup: ["test/support/global-setup.ts"],
    setupFiles: ["test/support/leak-guard.ts"],
    pool: "forks",
    testTimeout: 120_000,
    hookTimeout: 60_000,
    reporters: ["default", "./test/support/summary-reporter.ts"],
  },
});
