/**
 * Which MongoDB server the run talks to (test/support/global-setup.ts, or the FerretDB lane's
 * test/support/ferretdb-server.ts), for the few tests that need what one implementation lacks.
 */
import { type TestContext, inject } from "vitest";

/** True in the FerretDB lane (`npm run test:ferretdb`). */
export function onFerretDB(): boolean {
  return inject("mongoKind") === "FerretDB";
}

/**
 * Skips the running test on FerretDB and says why: exactly the test that needs what FerretDB
 * lacks, never a whole file. The lane's closing summary prints every skip with its reason.
 */
export function skipOnFerretDB(ctx: TestContext, why: string): void {
  ctx.skip(onFerretDB(), `FerretDB: ${why}`);
}
