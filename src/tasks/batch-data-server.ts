/** `batchDataServer`: dispatches the job's next due chunk(s) and hands over to the watcher. */
import { schemaTask } from "@trigger.dev/sdk";
import { dispatchJob, dispatchPayloadSchema } from "../steps/dispatch/dispatch.js";
import { type RunContext, runTaskStep } from "../runtimes/trigger/worker.js";

export const batchDataServer = schemaTask({
  id: "batch-data-server",
  description: "Send the next chunk of a chunkrelay job to the batch service.",
  schema: dispatchPayloadSchema,
  // One server run per job at a time: hand-overs trigger it with the job id as concurrency key,
  // and each key gets its own copy of this queue. Jobs still run side by side.
  queue: { concurrencyLimit: 1 },
  maxDuration: 900,
  run: (payload, { ctx }) => runBatchDataServer(payload, ctx),
});

/** The task body, exported so tests can run it in a mock task context. */
export function runBatchDataServer(payload: unknown, ctx: RunContext) {
  return runTaskStep(
    ctx,
    "batchDataServer",
    payload,
    (deps) => dispatchJob(deps, payload),
    (r) => ({
      outcome: r.outcome,
    }),
  );
}
