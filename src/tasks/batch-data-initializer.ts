/** `batchDataInitializer`: plans a job from a config and hands over to the server. */
import { schemaTask } from "@trigger.dev/sdk";
import { initializeJob } from "../lib/initializer/initialize.js";
import { initializePayloadSchema } from "../lib/initializer/payload.js";
import { runTaskStep } from "./worker.js";

export const batchDataInitializer = schemaTask({
  id: "batch-data-initializer",
  description: "Plan a chunkrelay job from a batch config and start serving it.",
  schema: initializePayloadSchema,
  maxDuration: 3600,
  run: (payload, { ctx }) => runBatchDataInitializer(payload, ctx),
});

/** The task body, exported so tests can run it in a mock task context. */
export function runBatchDataInitializer(payload: unknown, ctx: { run: { id: string } }) {
  return runTaskStep(
    ctx,
    "batchDataInitializer",
    payload,
    (deps) => initializeJob(deps, payload),
    (r) => ({
      outcome: r.status,
      jobId: r.jobId,
    }),
  );
}
