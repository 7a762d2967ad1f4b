/**
 * One chunk on demand (`chunkrelay run-chunk <jobId> <chunk>`, or `runChunk` in a server payload):
 * a finished job is reopened and the chunk sent again as a new attempt — all its records, or
 * (`onlyFailed`) only those not processed. Every rule of a normal attempt holds: its own
 * idempotency key, records marked before the request, outcomes fenced on the attempt; the job
 * finishes again with exact totals, and records it had set aside that are processed now stop
 * being exceptions. Refused, with nothing changed, for a job still running or settling, a chunk
 * that does not exist or is in flight, or a chunk with nothing to send.
 */
import { z } from "zod";
import { BadInputError } from "../../common/errors.js";
import { readConfig } from "../../store/configs.js";
import { readChunk, reopenChunkForRerun } from "../../store/chunks.js";
import { readJob, readJobFields, releaseRequeue, reopenJobForRerun } from "../../store/jobs.js";
import type { JobRerun } from "../../store/store.js";
import { countSendableRecords, listSettledElsewhere } from "../../store/records.js";
import { listResolvedRecords } from "../../store/set-aside-records.js";
import { type StepDeps, keys } from "../handover.js";
import { claimRequeueChain } from "../../jobs/requeue-claims.js";
import { findFullJobLockHolder } from "../../jobs/full-job-lock.js";
import { releaseFullJobLock, takeFullJobLock } from "../../store/lanes.js";

/**
 * A requeue claim whose exceptions job is not running after this long was left by a requeue that
 * stopped before it created its job, or by a rerun of it that stopped before reopening it (as the
 * full-job lock's orphans are taken over after a minute).
 */
export const REQUEUE_CLAIM_STALE_MS = 60_000;

export const runChunkRequestSchema = z
  .object({
    chunk: z.number().int().positive().describe("The chunk to send again (from 1)."),
    attempt: z
      .number()
      .int()
      .positive()
      .optional()
      .describe(
        "The chunk's attempt being run again, as `chunkrelay status <jobId> --chunks` shows it. Given, a replay of the same request finds the chunk past it and does nothing. Default: the chunk's current attempt.",
      ),
    onlyFailed: z
      .boolean()
      .optional()
      .describe(
        "Send only the records not processed (failed or set aside); records whose exception was resolved are left out. Default: false (every record of the chunk).",
      ),
  })
  .strict();

export type RunChunkRequest = z.infer<typeof runChunkRequestSchema>;

export type RunChunkResult =
  /** The job was reopened and the chunk will be sent as `rerun.attempt`. */
  | { kind: "reopened"; rerun: JobRerun; records: number }
  /** A replay: this request had already reopened the chunk (`attempt` given and passed). */
  | { kind: "alreadyRun"; attempt: number };

/**
 * Reopens the job and its chunk for a rerun, then hands over to the server. Changes nothing
 * unless every check passes; the two writes (job, then chunk) are each conditional, and a server
 * that finds the job reopened but the chunk not (a requester stopped between them) reopens it.
 */
export async function runChunkAgain(
  deps: Pick<StepDeps, "store" | "now" | "owner" | "handOver" | "log">,
  jobId: string,
  rawRequest: unknown,
  /** `serveHere`: the caller is the server step and serves the job itself. Default: hand over. */
  options: { serveHere?: boolean } = {},
): Promise<RunChunkResult> {
  const parsed = runChunkRequestSchema.safeParse(rawRequest);
  if (!parsed.success) {
    throw new BadInputError(
      `run-chunk request is invalid: ${parsed.error.issues.map((i) => `${i.path.join(".") || "request"}: ${i.message}`).join("; ")}`,
    );
  }
  const request = parsed.data;
  const { store } = deps;
  const job = await readJob(store, jobId);
  if (!job) throw new BadInputError(`job '${jobId}' not found (list jobs with \`chunkrelay jobs\`)`);
  const committed = job.planning.nextChunk - 1;
  const chunk = request.chunk <= committed ? await readChunk(store, jobId, request.chunk) : null;
  if (!chunk) {
    throw new BadInputError(
      committed === 0
        ? `job '${jobId}' has no chunks; there is no chunk ${request.chunk}`
        : `job '${jobId}' has chunks 1 to ${committed}; there is no chunk ${request.chunk}`,
    );
  }
  // A replay of a request that named its attempt: the chunk moved past it under this rerun.
  const asked = request.attempt;
  if (asked !== undefined && chunk.attempt !== asked) {
    if (chunk.attempt > asked && (chunk.reruns ?? []).some((r) => r.attempt === asked + 1))
      return { kind: "alreadyRun", attempt: asked + 1 };
    throw new BadInputError(
      `chunk ${request.chunk} of job '${jobId}' is at attempt ${chunk.attempt}, not ${asked}; see \`chunkrelay status ${jobId} --chunks\``,
    );
  }
  const scope = request.onlyFailed ? ("failed" as const) : ("all" as const);
  if (
    job.status === "running" &&
    job.rerun?.chunk === request.chunk &&
    job.rerun.scope === scope &&
    chunk.attempt === job.rerun.attempt - 1 &&
    chunk.done
  ) {
    // This very rerun stopped between reopening the job and its chunk (a crash; on Trigger.dev
    // the platform retries the run with the same payload): carry it on (found by review).
    const rerun = job.rerun;
    await reopenChunkForRerun(store, jobId, request.chunk, rerun);
    if (!options.serveHere) await deps.handOver.serve({ jobId }, keys.serveRerun(jobId, rerun.seq));
    const records =
      scope === "all"
        ? chunk.recordCount
        : await countSendableRecords(store, jobId, request.chunk, rerun.skip ?? []);
    return { kind: "reopened", rerun, records };
  }
  if (job.status === "planning" || job.status === "running") {
    const what =
      job.rerun && !job.unsettled
        ? ` (a rerun of chunk ${job.rerun.chunk}, attempt ${job.rerun.attempt})`
        : "";
    throw new BadInputError(
      `job '${jobId}' is ${job.status}${what}: a chunk is run again only once its job has finished; follow it with \`chunkrelay status ${jobId}\` (or \`chunkrelay resume ${jobId}\` if nothing runs it)`,
    );
  }
  if (job.unsettled) {
    throw new BadInputError(
      `job '${jobId}' has finished but is still settling (watermark, locks); try again in a moment, or run \`chunkrelay resume ${jobId}\` to settle it`,
    );
  }
  // An exceptions job sending this job's exceptions again would send the same records: wait
  // for it. Its claim goes when it is settled; one left behind — its job never created, or a
  // rerun of it that stopped before reopening it — is dropped once it is a minute old and its
  // job is not running (younger, its job may be about to be created or reopened).
  for (const claim of job.requeues ?? []) {
    const holder = await readJobFields(store, claim.job, ["status", "unsettled"]);
    const idle =
      !holder || ((holder.status === "succeeded" || holder.status === "failed") && !holder.unsettled);
    const over = idle && deps.now().getTime() - claim.at.getTime() > REQUEUE_CLAIM_STALE_MS;
    if (over) {
      await releaseRequeue(store, jobId, claim.job);
      continue;
    }
    throw new BadInputError(
      `job '${claim.job}' is sending the exceptions of job '${jobId}' again (${holder ? holder.status : "starting"}); a chunk is run again once it has finished`,
    );
  }
  if (!chunk.done || (chunk.status !== "processed" && chunk.status !== "failed")) {
    throw new BadInputError(
      `chunk ${request.chunk} of job '${jobId}' is in flight (${chunk.status}, attempt ${chunk.attempt}); a chunk is run again only once it is done`,
    );
  }
  let records = chunk.recordCount;
  let skip: unknown[] = [];
  if (scope === "failed") {
    const unprocessed = await countSendableRecords(store, jobId, request.chunk, []);
    skip = unprocessed > 0 ? await listResolvedRecords(store, jobId, request.chunk) : [];
    if (unprocessed > 0 && job.mode === "exceptions" && job.fromJob) {
      // An exceptions job's records are its source job's exceptions: one no longer waiting there
      // (processed by a rerun of that job, or resolved) is not sent again.
      skip = [...skip, ...(await listSettledElsewhere(store, jobId, request.chunk, job.fromJob))];
    }
    // Counted, not subtracted: a record may be left out for two reasons at once.
    records = skip.length === 0 ? unprocessed : await countSendableRecords(store, jobId, request.chunk, skip);
    if (records <= 0) {
      throw new BadInputError(
        unprocessed === 0
          ? `chunk ${request.chunk} of job '${jobId}' has no failed or set-aside records (all ${chunk.recordCount} processed); without --only-failed every record is sent again`
          : `chunk ${request.chunk} of job '${jobId}' has ${unprocessed} record(s) not processed, all with resolved exceptions; nothing to send`,
      );
    }
  }
  // The config must still be there (and valid): the chunk is sent under it as it is now.
  await readConfig(store, job.config);
  const now = deps.now();
  const rerun: JobRerun = {
    chunk: request.chunk,
    seq: (job.rerun?.seq ?? 0) + 1,
    attempt: chunk.attempt + 1,
    scope,
    at: now,
    by: deps.owner,
    ...(skip.length > 0 ? { skip } : {}),
  };
  // A full job runs alone in its config (two would send the same records): its rerun takes the
  // lock back, and finishing releases it again (found by review).
  let locked = false;
  if (job.mode === "full") {
    const found = await findFullJobLockHolder(store, job.config, jobId, now);
    const orphan = found && "orphan" in found ? { orphan: found.orphan } : {};
    if (
      (found && "held" in found) ||
      !(await takeFullJobLock(store, { config: job.config, jobId, now, ...orphan }))
    ) {
      throw new BadInputError(
        `config '${job.config}' has an active full job${found && "held" in found ? ` '${found.held}'` : ""}; a chunk of full job '${jobId}' is run again once it has finished`,
      );
    }
    locked = true;
  }
  // An exceptions job run again sends its source job's exceptions again: it claims them anew
  // (refused while that job runs a chunk again itself), until it is settled once more.
  if (job.mode === "exceptions" && job.fromJob) await claimRequeueChain(deps, job.fromJob, jobId);
  if (!(await reopenJobForRerun(store, jobId, rerun, job.rerun?.seq, now))) {
    if (locked) await releaseFullJobLock(store, job.config, jobId);
    throw new BadInputError(
      `job '${jobId}' changed while the rerun was prepared (another run-chunk, or a resume); look at \`chunkrelay status ${jobId}\` and try again`,
    );
  }
  await reopenChunkForRerun(store, jobId, request.chunk, rerun);
  deps.log.info(`job ${jobId}: chunk ${request.chunk} runs again as attempt ${rerun.attempt}`, {
    scope,
    records,
  });
  if (!options.serveHere) await deps.handOver.serve({ jobId }, keys.serveRerun(jobId, rerun.seq));
  return { kind: "reopened", rerun, records };
}
