/**
 * An exceptions job's claim on the exceptions it sends again (recorded on the jobs they came from,
 * up the chain of requeues): while it holds them, none of those jobs runs a chunk again on demand,
 * and while one of them does, no exceptions job of it starts — either would send the same
 * records twice.
 */
import { BadInputError } from "../common/errors.js";
import { claimRequeue, listRequeueChain, readJobFields, releaseRequeue } from "../store/jobs.js";
import type { StepDeps } from "../steps/handover.js";

/**
 * Claims the exceptions of `fromJob` and its chain for the exceptions job `jobId`; refused, with
 * every claim made here dropped again, while one of them runs a chunk again on demand.
 */
export async function claimRequeueChain(
  deps: Pick<StepDeps, "store" | "now">,
  fromJob: string,
  jobId: string,
): Promise<void> {
  const chain = await listRequeueChain(deps.store, fromJob);
  const claimed: string[] = [];
  for (const id of chain) {
    if (await claimRequeue(deps.store, id, jobId, deps.now())) {
      claimed.push(id);
      continue;
    }
    for (const c of claimed) await releaseRequeue(deps.store, c, jobId);
    const rerun = (await readJobFields(deps.store, id, ["rerun"]))?.rerun;
    throw new BadInputError(
      `job '${id}' is running chunk ${rerun?.chunk ?? "?"} again (run-chunk); requeue its exceptions once it has finished`,
    );
  }
}
