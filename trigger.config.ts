/**
 * Trigger.dev project configuration. The project ref comes from the environment
 * (TRIGGER_PROJECT_REF, e.g. proj_abc123 from the dashboard's project settings), so the same
 * checkout deploys to any project: `TRIGGER_PROJECT_REF=proj_… npx trigger.dev deploy`.
 */
import { defineConfig } from "@trigger.dev/sdk";

const project = process.env.TRIGGER_PROJECT_REF;
if (!project) {
  throw new Error(
    "TRIGGER_PROJECT_REF is not set: export your Trigger.dev project ref (proj_…, from the dashboard) before `npx trigger.dev dev` or `deploy`",
  );
}

export default defineConfig({
  project,
  dirs: ["./src/tasks"],
  runtime: "node",
  // The longest a run may take; the watcher hands over to a fresh run well before this.
  maxDuration: 3600,
  retries: {
    enabledInDev: true,
    // Transient failures (the database away, a crash) retry with backoff; bad input never does
    // (the tasks throw AbortTaskRunError for it).
    default: { maxAttempts: 5, factor: 2, minTimeoutInMs: 1000, maxTimeoutInMs: 60_000, randomize: true },
  },
});
