import { defineConfig } from "vitest/config";

// The browser test (needs Debian's chromium): `npm run test:browser`. Same MongoDB choice and
// leak guard as the main suite.
export default defineConfig({
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
