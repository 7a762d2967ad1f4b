/**
 * Self-healing for chains broken by runs that died for good (retries exhausted, a worker lost):
 * a small scheduled pass looks at every unfinished job and, where nothing has moved for a while,
 * hands over again — a watcher for chunks sent long ago, the server for chunks that are due or
 * whose lease expired or that failed half-way, the initializer for planning whose lease expired,
 * the server of a finished job that was not settled or whose next iteration never started. Every step is
 * idempotent, so a kick that turns out unnecessary costs one short run and changes nothing.
 * Kicks carry the period in their key, so each is issued at most once per period.
 */
import { listUndoneChunks } from "../store/chunks.js";
import { jobExists, listFinishedIterations, listOpenJobs, listUnsettledJobs } from "../store/jobs.js";
import { readConfig } from "../store/configs.js";
import { type HandOver, type StepDeps, keys } from "../steps/handover.js";

export interface HealOptions {
  /** Nothing moved for this long: the job counts as stalled. */
  staleAfterMs: number;
}

export interface HealAction {
  jobId: string;
  action: "watch" | "serve" | "plan";
  chunk?: number;
}

export async function healStalledJobs(
  deps: Pick<StepDeps, "store" | "now"> & { handOver: HandOver },
  options: HealOptions,
): Promise<HealAction[]> {
  const now = deps.now().getTime();
  const staleBefore = new Date(now - options.staleAfterMs);
  const period = Math.floor(now / options.staleAfterMs);
  const actions: HealAction[] = [];
  const jobs = await listOpenJobs(deps.store);
  for (const job of jobs) {
    const jobId = job._id;
    if (!job.planning.done) {
      const lease = job.planningLease?.expiresAt.getTime() ?? 0;
      if (lease < now - options.staleAfterMs / 2) {
        await deps.handOver.initialize({ config: job.config, jobId }, `heal:${jobId}:plan:${period}`);
        actions.push({ jobId, action: "plan" });
      }
      continue;
    }
    // The claim window: the first unfinished chunk and the next maxInFlight - 1. Chunks past it
    // are waiting their turn, not stalled.
    let maxInFlight: number;
    try {
      maxInFlight = (await readConfig(deps.store, job.config)).maxInFlight;
    } catch {
      continue; // an unknown or invalid config: resuming would fail the same way; leave it to a human
    }
    const open = await listUndoneChunks(deps.store, jobId, maxInFlight);
    let serve = open.length === 0; // all chunks done but the job not closed: the server closes it
    for (const c of open) {
      switch (c.status) {
        case "sent":
          if ((c.sentAt ?? staleBefore) <= staleBefore) {
            await deps.handOver.watch(
              { jobId, chunk: c.chunk, attempt: c.attempt },
              `${keys.watch(jobId, c.chunk, c.attempt)}:heal${period}`,
            );
            actions.push({ jobId, action: "watch", chunk: c.chunk });
          }
          break;
        case "dispatching":
          if ((c.lease?.expiresAt.getTime() ?? 0) < now) serve = true;
          break;
        case "pending":
          if (c.dueAt <= staleBefore) serve = true;
          break;
        case "failed":
          // Failed but not done: its records were not all set aside (a runner died in between).
          serve = true;
          break;
        case "processed":
          break;
        default: {
          const never: never = c.status;
          throw new Error(`unknown chunk status ${String(never)}`);
        }
      }
    }
    if (serve) {
      await deps.handOver.serve({ jobId }, `serve:${jobId}:heal${period}`);
      actions.push({ jobId, action: "serve" });
    }
  }
  // Finished jobs whose settling was cut short (completion, watermark, lock, next iteration):
  // the server step of a finished job settles it.
  const unsettled = await listUnsettledJobs(deps.store, staleBefore);
  for (const job of unsettled) {
    await deps.handOver.serve({ jobId: job._id }, `serve:${job._id}:heal${period}`);
    actions.push({ jobId: job._id, action: "serve" });
  }
  // Iteration chains: a job that finished (with records, without failing) a while ago but whose
  // next iteration never appeared lost its hand-over; the server step hands it over again.
  const finished = await listFinishedIterations(deps.store, new Date(now - 24 * 3_600_000), staleBefore);
  for (const job of finished) {
    const it = job.iteration;
    if (!it || it.index >= it.of) continue;
    const next = `${it.firstJob}.${it.index + 1}`;
    if (await jobExists(deps.store, next)) continue;
    await deps.handOver.serve({ jobId: job._id }, `serve:${job._id}:heal${period}`);
    actions.push({ jobId: job._id, action: "serve" });
  }
  return actions;
}
