/** `batchDataServer`: dispatches the job's next due chunk(s) and hands over to the watcher. */
import { schemaTask } from "@trigger.dev/sdk";
import { type ServeLimits, dispatchJob, dispatchPayloadSchema } from "../steps/dispatch/dispatch.js";
import { type RunContext, runTaskStep } from "../runtimes/trigger/worker.js";

/**
 * A server run claims chunks for at most 5 minutes, then a fresh run goes on: in completion
 * "response" mode one run would otherwise serve the whole job, past `maxDuration` (the requests
 * still open when it stops, each bounded by `target.timeoutMs`, must fit in the rest).
 */
export const SERVE_LIMITS: ServeLimits = { maxRunMs: 5 * 60_000 };

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
    (deps) => dispatchJob(deps, payload, SERVE_LIMITS),
    (r) => ({
      outcome: r.outcome,
    }),
  );
}
