/**
 * `stalledJobHealer`: every 10 minutes, hands over again for jobs whose chain broke (a run that
 * died after its retries). A chunk counts as stalled after 15 minutes without movement; raise
 * that if your service takes longer per chunk (a duplicate watcher is harmless, just a run).
 */
import { schedules } from "@trigger.dev/sdk";
import { healStalledJobs } from "../jobs/heal-stalled-jobs.js";
import { runTaskStep } from "../runtimes/trigger/worker.js";

export const STALE_AFTER_MS = 15 * 60_000;

export const stalledJobHealer = schedules.task({
  id: "stalled-job-healer",
  description: "Restart the hand-over chain of chunkrelay jobs that stopped moving.",
  cron: { pattern: "*/10 * * * *", window: "0m" },
  maxDuration: 300,
  run: (_payload, { ctx }) =>
    runTaskStep(
      ctx,
      "stalledJobHealer",
      {},
      (deps) => healStalledJobs(deps, { staleAfterMs: STALE_AFTER_MS }),
      (actions) => ({ outcome: `${actions.length} kicks` }),
    ),
});
