// Printed at the end of `npm test`: the Kafka tests (`*.kafka.test.ts`) are not part of it; they
// run against a real broker in their own lane, `npm run test:kafka`. Never fails the run.
import { spawnSync } from "node:child_process";

let javaFound = false;
try {
  const probe = spawnSync("java", ["-version"], { stdio: "ignore", timeout: 10_000 });
  javaFound = probe.error === undefined && probe.status === 0;
} catch {
  javaFound = false;
}

if (javaFound) {
  console.log(
    "\nKafka lane: the Kafka tests run in their own lane with `npm run test:kafka` (CI runs it); it starts a real Apache Kafka broker with this machine's Java.",
  );
} else {
  console.log(
    "\nKafka lane not run: Java not found. Install Java 17+ and run `npm run test:kafka` (it fetches Apache Kafka from Maven Central and starts a broker).",
  );
}
