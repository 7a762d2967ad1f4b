/** `batchDataInitializer`: plans a job from a config and hands over to the server. */
import { schemaTask, tags } from "@trigger.dev/sdk";
import { initializeJob } from "../steps/initialize/initialize.js";
import { readConfig } from "../store/configs.js";
import { BadInputError, isBadInput } from "../common/errors.js";
import { dashboardPayloadSchema, initializePayloadSchema } from "../steps/initialize/payload.js";
import { chooseRunJobId } from "../steps/initialize/run-job-id.js";
import { type RunContext, runTaskStep } from "../runtimes/trigger/worker.js";

export const batchDataInitializer = schemaTask({
  id: "batch-data-initializer",
  description: "Plan a chunkrelay job from a batch config and start serving it.",
  // What the dashboard shows and checks; initializeJob parses the payload again with every rule.
  schema: dashboardPayloadSchema,
  maxDuration: 3600,
  run: (payload, { ctx }) => runBatchDataInitializer(payload, ctx),
});

/**
 * The task body, exported so tests can run it in a task context. A payload without `jobId` gets
 * the run's job (`chooseRunJobId`): the job tag goes on the run before the job exists, so a replay
 * continues it. Tagging that fails throws before anything is written, and the retry (same run id)
 * chooses the same job.
 */
export function runBatchDataInitializer(payload: unknown, ctx: RunContext) {
  return runTaskStep(
    ctx,
    "batchDataInitializer",
    payload,
    async (deps) => {
      const chosen = chooseRunJobId(payload, ctx.run);
      switch (chosen.kind) {
        case "given":
          return initializeJob(deps, payload);
        case "derived":
          // Refuse a bad payload or an unknown config before tagging: bad input fails at once.
          if (initializePayloadSchema.safeParse(payload).success)
            await readConfig(deps.store, (payload as { config: string }).config);
          else return initializeJob(deps, payload);
          await tags.add([chosen.tag]);
          ctx.run.tags = [...(ctx.run.tags ?? []), chosen.tag];
          return initializeJob(deps, { ...(payload as object), jobId: chosen.jobId });
        case "tagged":
          return initializeJob(deps, { ...(payload as object), jobId: chosen.jobId }).catch(
            (err: unknown) => {
              if (!isBadInput(err)) throw err;
              throw new BadInputError(
                `${err.message} (this run continues job '${chosen.jobId}', named by its tag job:${chosen.jobId}, which a replay copies from the run it replays; to start another job, trigger batch-data-initializer anew instead of replaying)`,
              );
            },
          );
        default: {
          const never: never = chosen;
          throw new Error(`unknown job choice ${JSON.stringify(never)}`);
        }
      }
    },
    (r) => ({
      outcome: r.status,
      jobId: r.jobId,
    }),
  );
}
