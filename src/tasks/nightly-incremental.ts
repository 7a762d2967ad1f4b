/**
 * `nightlyIncremental`: starts an incremental job for every scheduled config. Its declarative cron
 * is read when the worker is indexed: CHUNKRELAY_NIGHTLY_CRON (default "0 2 * * *") in
 * CHUNKRELAY_NIGHTLY_TZ (default "UTC"), without jitter. Configs with their own `schedule.cron` run
 * through imperative schedules instead (`npx chunkrelay schedule --sync`), which reach this task
 * with the config name as externalId.
 */
import { idempotencyKeys, schedules, tasks } from "@trigger.dev/sdk";
import { NIGHTLY_TASK_ID, nightlySchedule, startScheduledJobs } from "../admin/scheduled-runs.js";
import type { batchDataInitializer } from "./batch-data-initializer.js";
import { IDEMPOTENCY_TTL, runTags } from "../runtimes/trigger/trigger-handover.js";
import { type RunContext, runTaskStep } from "../runtimes/trigger/worker.js";

export const nightlyIncremental = schedules.task({
  id: NIGHTLY_TASK_ID,
  description: "Start an incremental chunkrelay job for every config with a schedule.",
  cron: { ...nightlySchedule(process.env), window: "0m" },
  maxDuration: 300,
  run: (payload, { ctx }) => runNightlyIncremental(payload, ctx),
});

/** The task body, exported so tests can run it in a task context. */
export function runNightlyIncremental(
  payload: { timestamp: Date; externalId?: string | undefined },
  ctx: RunContext,
) {
  return runTaskStep(
    ctx,
    "nightlyIncremental",
    {},
    async (deps) => {
      const started = await startScheduledJobs(
        deps.store,
        { timestamp: payload.timestamp, ...(payload.externalId ? { externalId: payload.externalId } : {}) },
        async (payloads) => {
          const items = await Promise.all(
            payloads.map(async (job) => ({
              payload: job,
              options: {
                // Named by the scheduled time: a replay of this run resumes these jobs.
                idempotencyKey: await idempotencyKeys.create(`initialize:${job.jobId ?? ""}`, {
                  scope: "global",
                }),
                idempotencyKeyTTL: IDEMPOTENCY_TTL,
                tags: runTags(job.jobId ?? "", job.config),
              },
            })),
          );
          await tasks.batchTrigger<typeof batchDataInitializer>("batch-data-initializer", items);
        },
      );
      return started.map((p) => p.jobId);
    },
    (jobs) => ({ outcome: `${jobs.length} jobs started` }),
  );
}
