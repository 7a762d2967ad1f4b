/** `batchDataServer`: dispatches the job's next due chunk(s) and hands over to the watcher. */
import { schemaTask } from "@trigger.dev/sdk";
import { serveJob, servePayloadSchema } from "../lib/dispatch/serve.js";
import { mapError, workerDeps } from "./worker.js";

export const batchDataServer = schemaTask({
  id: "batch-data-server",
  description: "Send the next chunk of a chunkrelay job to the batch service.",
  schema: servePayloadSchema,
  maxDuration: 900,
  run: (payload, { ctx }) => runBatchDataServer(payload, ctx),
});

/** The task body, exported so tests can run it in a mock task context. */
export async function runBatchDataServer(payload: unknown, ctx: { run: { id: string } }) {
  try {
    const deps = await workerDeps(ctx.run.id, (ms) => new Promise((r) => setTimeout(r, ms)));
    return await serveJob(deps, payload);
  } catch (err) {
    throw mapError(err);
  }
}
