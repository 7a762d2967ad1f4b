/** Prints one plain closing line, `N passed, N failed`, that CI logs can be read by. */
import type { Reporter, TestModule } from "vitest/node";

export default class SummaryReporter implements Reporter {
  onTestRunEnd(testModules: ReadonlyArray<TestModule>): void {
    let passed = 0;
    let failed = 0;
    let skipped = 0;
    // Tests skipped with a reason (`ctx.skip(cond, note)`: what the server lacks), listed so a
    // skip is never silent.
    const reasons: string[] = [];
    for (const mod of testModules) {
      for (const test of mod.children.allTests()) {
        const result = test.result();
        if (result.state === "passed") passed++;
        else if (result.state === "failed") failed++;
        else {
          skipped++;
          if (result.state === "skipped" && result.note) {
            reasons.push(
              `skipped: ${mod.moduleId.replace(`${process.cwd()}/`, "")} > ${test.fullName} — ${result.note}`,
            );
          }
        }
      }
      if (mod.state() === "failed" && [...mod.children.allTests()].length === 0) failed++;
    }
    if (reasons.length > 0) process.stdout.write(`\n${reasons.join("\n")}\n`);
    process.stdout.write(`\n${passed} passed, ${failed} failed${skipped ? `, ${skipped} skipped` : ""}\n`);
  }
}
