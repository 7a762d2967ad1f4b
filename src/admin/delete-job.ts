/** Deleting one job's documents, when nothing depends on them any more. */
import { laneDocId } from "../planning/lane-ids.js";
import { BadInputError } from "../common/errors.js";
import { countJobDocuments, deleteJobDocuments } from "../store/job-documents.js";
import { readJob } from "../store/jobs.js";
import { readLane } from "../store/lanes.js";
import type { Store } from "../store/store.js";

export interface DeletePlan {
  jobId: string;
  details: number;
  chunks: number;
  exceptions: number;
  taskStats: number;
  job: number;
}

/**
 * Deletes every document of one job from every chunkrelay collection. Without `confirm` it only
 * counts what it would delete. A job still planning or running is refused: stop it first.
 */
export async function deleteJob(
  store: Store,
  jobId: string,
  confirm: boolean,
): Promise<DeletePlan & { deleted: boolean }> {
  const job = await readJob(store, jobId);
  if (!job) throw new BadInputError(`job '${jobId}' not found`);
  const plan: DeletePlan = { jobId, ...(await countJobDocuments(store, jobId)), job: 1 };
  if (!confirm) return { ...plan, deleted: false };
  if (job.status === "planning" || job.status === "running") {
    throw new BadInputError(
      `job '${jobId}' is ${job.status}; it cannot be deleted while it runs (stop its runner, let it finish, or resume it first)`,
    );
  }
  if (job.lane) {
    // The watermark walks a lane's jobs in order; a job it has not passed yet cannot go, or the
    // walk would stop at the hole for good.
    const lane = await readLane(store, laneDocId(job.lane.id));
    if ((lane?.completedSeq ?? 0) < job.lane.seq) {
      throw new BadInputError(
        `job '${jobId}' is in lane ${job.lane.id} (seq ${job.lane.seq}) and the watermark has not passed it yet; resolve or requeue its exceptions first (\`npx chunkrelay exceptions list --job ${jobId}\`)`,
      );
    }
  }
  await deleteJobDocuments(store, jobId, job.config);
  return { ...plan, deleted: true };
}
