/**
 * What must hold after every simulated history, checked against the database and the service's
 * ledger. Each returns sentences naming the job, chunk or record concerned.
 */
import { EJSON } from "bson";
import { compareCuts, isInside } from "../../src/planning/cuts.js";
import type { DetailDoc, JobDoc, Store } from "../../src/store/store.js";
import { laneDocId, lanePass } from "../../src/planning/lane-ids.js";
import type { SimService } from "./service.js";
import type { Scenario } from "./world.js";

/** A config every full run of which is refused at planning (its order key is on no record). */
export const REFUSED_CONFIG = "sim-refused";

const idOf = (v: unknown) => EJSON.stringify({ v }, { relaxed: false });

export async function checkInvariants(
  store: Store,
  service: SimService,
  scenario: Scenario,
  config: string,
  crashedRefusal: boolean,
): Promise<string[]> {
  const out: string[] = [];
  const jobs = await store.jobs.find({}).toArray();
  const details = await store.details.find({}).toArray();
  const chunks = await store.chunks.find({}).toArray();
  const exceptions = await store.exceptions.find({}).toArray();
  const source = await store.db.collection("src").find({}).toArray();
  const orderBy = scenario.kind === "backfill" ? "n" : "_id";
  const keyOf = (doc: Record<string, unknown>) => ({ key: doc[orderBy], id: doc._id });

  const detailsOf = new Map<string, DetailDoc[]>();
  for (const d of details) detailsOf.set(d.jobId, [...(detailsOf.get(d.jobId) ?? []), d]);
  const detailByKey = new Map(details.map((d) => [`${d.jobId}|${idOf(d.recordId)}`, d]));

  for (const job of jobs) {
    const mine = detailsOf.get(job._id) ?? [];
    const committed = chunks.filter((c) => c.jobId === job._id && c.chunk < job.planning.nextChunk);
    const myExceptions = exceptions.filter((e) => e.jobId === job._id);
    if (job.status === "succeeded" || job.status === "failed") {
      // Exact counts.
      const processed = mine.filter((d) => d.status === "processed").length;
      const t = job.totals;
      if (!t) out.push(`job ${job._id} is ${job.status} without totals`);
      else {
        if (t.records !== mine.length)
          out.push(`job ${job._id}: totals.records ${t.records}, records ${mine.length}`);
        if (t.processed !== processed)
          out.push(`job ${job._id}: totals.processed ${t.processed}, processed records ${processed}`);
        if (t.exceptions !== myExceptions.length)
          out.push(`job ${job._id}: totals.exceptions ${t.exceptions}, exceptions ${myExceptions.length}`);
        if (t.chunks !== committed.length)
          out.push(`job ${job._id}: totals.chunks ${t.chunks}, chunks ${committed.length}`);
        if (t.processed + t.exceptions !== t.records)
          out.push(
            `job ${job._id}: ${t.processed} processed + ${t.exceptions} exceptions ≠ ${t.records} records`,
          );
      }
      if (committed.some((c) => !c.done)) out.push(`job ${job._id} is ${job.status} with chunks not done`);
    }
    if (job.status === "succeeded") {
      const waiting = mine.filter((d) => d.status !== "processed");
      if (waiting.length > 0)
        out.push(
          `job ${job._id} succeeded with ${waiting.length} record(s) not processed, e.g. ${idOf(waiting[0]?.recordId)} (${waiting[0]?.status}, chunk ${waiting[0]?.chunk})`,
        );
      if (myExceptions.length > 0)
        out.push(`job ${job._id} succeeded with ${myExceptions.length} exception(s)`);
    }
    // Every record of the window is in the job, and nothing else.
    if ((job.mode === "full" || job.mode === "incremental" || job.mode === "backfill") && job.planning.done) {
      const inWindow = new Set(
        source
          .filter((s) => job.window.to !== null && isInside(keyOf(s), job.window.from, job.window.to))
          .map((s) => idOf(s._id)),
      );
      const have = new Set(mine.map((d) => idOf(d.recordId)));
      const missing = [...inWindow].filter((i) => !have.has(i));
      const extra = [...have].filter((i) => !inWindow.has(i));
      if (missing.length > 0)
        out.push(`job ${job._id} misses ${missing.length} record(s) of its window, e.g. ${missing[0]}`);
      if (extra.length > 0)
        out.push(`job ${job._id} holds ${extra.length} record(s) outside its window, e.g. ${extra[0]}`);
    }
  }

  // Liveness of what a finished job entails: settled, completion known, lock released, and each
  // lane's watermark at the end of its completed prefix.
  for (const job of jobs) {
    if (job.status !== "succeeded" && job.status !== "failed") continue;
    if (job.unsettled) out.push(`job ${job._id} is ${job.status} but was never settled`);
    if (job.complete === undefined)
      out.push(`job ${job._id} is ${job.status} but its completion was never worked out`);
  }
  const lock = await store.watermarks.findOne({ _id: config });
  if (lock?.activeJob) {
    const holder = jobs.find((j) => j._id === lock.activeJob);
    // A lock whose job was never created is taken over by the next full run after a minute;
    // one held by a finished job would block for good.
    // A lock taken after its job finished is a rerun that stopped before it reopened the job
    // (its retries used up): free a minute after it was taken (full-job-lock.ts), not for good.
    const takenAfter =
      holder?.finishedAt !== undefined &&
      lock.activeSince !== undefined &&
      lock.activeSince >= holder.finishedAt;
    if (holder && (holder.status === "succeeded" || holder.status === "failed") && !takenAfter)
      out.push(`config ${config} is still locked by job ${lock.activeJob} (${holder.status})`);
  }
  // A refused run writes nothing: no job, and no lock once it is over (a refusing runner that
  // crashed between its claim and its release leaves an orphan lock, which the next full run
  // takes over after a minute).
  if (scenario.refusals > 0) {
    const refusedJobs = jobs.filter((j) => j.config === REFUSED_CONFIG);
    if (refusedJobs.length > 0)
      out.push(`refused runs left job(s) ${refusedJobs.map((j) => j._id).join(", ")}`);
    const refusedLock = await store.watermarks.findOne({ _id: REFUSED_CONFIG });
    if (refusedLock?.activeJob && !crashedRefusal)
      out.push(`a refused run left config ${REFUSED_CONFIG} locked by ${refusedLock.activeJob}`);
  }
  for (const lane of await store.watermarks.find({}).toArray()) {
    const members = jobs
      .filter(
        (j) => j.lane && laneDocId(j.lane.id) === lane._id && lanePass(j.lane.id) === (lane.generation ?? 1),
      )
      .sort((a, b) => (a.lane?.seq ?? 0) - (b.lane?.seq ?? 0));
    let expected = 0;
    for (const j of members) {
      if (j.lane?.seq !== expected + 1 || !j.complete) break;
      expected = j.lane.seq;
    }
    if ((lane.completedSeq ?? 0) < expected)
      out.push(
        `the watermark of ${lane._id} stopped at job seq ${lane.completedSeq ?? 0}; its jobs are complete up to seq ${expected}`,
      );
  }

  // Lanes: consecutive seqs, adjacent windows, disjoint records.
  const lanes = new Map<string, JobDoc[]>();
  for (const job of jobs)
    if (job.lane && job.mode !== "full") lanes.set(job.lane.id, [...(lanes.get(job.lane.id) ?? []), job]);
  for (const [lane, members] of lanes) {
    members.sort((a, b) => (a.lane?.seq ?? 0) - (b.lane?.seq ?? 0));
    const owner = new Map<string, string>();
    members.forEach((job, i) => {
      const prev = members[i - 1];
      if (job.lane?.seq !== (prev?.lane?.seq ?? 0) + 1 && !(i === 0 && (job.lane?.seq ?? 0) >= 1)) {
        out.push(`lane ${lane}: job ${job._id} has seq ${job.lane?.seq} after ${prev?.lane?.seq}`);
      }
      if (prev && compareCuts(prev.lane?.end, job.window.from) !== 0) {
        out.push(
          `lane ${lane}: job ${job._id}'s window does not start where ${prev._id}'s ends (gap or overlap)`,
        );
      }
      for (const d of detailsOf.get(job._id) ?? []) {
        const k = idOf(d.recordId);
        const other = owner.get(k);
        if (other) out.push(`lane ${lane}: record ${k} is in jobs ${other} and ${job._id}`);
        owner.set(k, job._id);
      }
    });
  }

  // Set-aside records were not processed; nothing the service recorded processed went back.
  for (const e of exceptions) {
    const d = detailByKey.get(`${e.jobId}|${idOf(e.recordId)}`);
    if (d?.status === "processed")
      out.push(`record ${idOf(e.recordId)} of job ${e.jobId} is processed and an exception`);
  }
  // Reruns on demand (`run-chunk`) of scope "all": the user asked for processed records again.
  const chunkOf = new Map(chunks.map((c) => [`${c.jobId}|${c.chunk}`, c]));
  const rerunAllBetween = (jobId: string, chunk: number, after: number, upTo: number) =>
    (chunkOf.get(`${jobId}|${chunk}`)?.reruns ?? []).some(
      (r) => r.scope === "all" && r.attempt > after && r.attempt <= upTo,
    );
  for (const [k, rec] of service.recordedProcessed) {
    const d = detailByKey.get(k);
    if (!d) out.push(`record ${k}, recorded processed at step ${rec.step}, has no detail any more`);
    else if (d.status !== "processed" && !rerunAllBetween(d.jobId, d.chunk, rec.attempt, d.attempts))
      out.push(`record ${k} went back from processed to ${d.status}`);
  }

  // Whether the service processed a record of a job under an attempt before `attempt`.
  const processedBefore = (jobId: string, recordId: unknown, attempt: number) => {
    const first = service.recordedProcessed.get(`${jobId}|${idOf(recordId)}`);
    if (first && first.attempt < attempt) return true;
    for (let n = 1; n < attempt; n++)
      if (service.saidProcessed.has(`${jobId}|${idOf(recordId)}|${n}`)) return true;
    return false;
  };

  // A record is processed only by the service's word about the attempt that last sent it: its
  // report (completion "status"), or the outcome chunkrelay recorded from a reply or a callback.
  for (const d of details) {
    if (d.status !== "processed") continue;
    const said = `${d.jobId}|${idOf(d.recordId)}|${d.attempt ?? "?"}`;
    if (!service.saidProcessed.has(said))
      out.push(
        `record ${idOf(d.recordId)} of job ${d.jobId} is processed under attempt ${d.attempt ?? "?"}, which the service never said`,
      );
    else if (d.attempt !== d.attempts)
      out.push(
        `record ${idOf(d.recordId)} of job ${d.jobId} is processed under attempt ${d.attempt}, but was last sent by attempt ${d.attempts}`,
      );
  }

  // A record accepted under a second key: only after its earlier attempt failed or timed out,
  // and never once the service had recorded it processed.
  const accepted = new Map<
    string,
    Array<{ key: string; jobId: string; chunk: number; attempt: number; step: number }>
  >();
  for (const a of service.acceptances) {
    for (const r of a.records) {
      const recordId = r.slice(r.indexOf("|") + 1);
      accepted.set(recordId, [...(accepted.get(recordId) ?? []), { ...a }]);
    }
  }
  const jobById = new Map(jobs.map((j) => [j._id, j]));
  for (const [recordId, list] of accepted) {
    for (let i = 1; i < list.length; i++) {
      const a = list[i - 1] as (typeof list)[number];
      const b = list[i] as (typeof list)[number];
      const earlier = service.recordedProcessed.get(`${a.jobId}|${recordId}`);
      // Sent again on purpose: a rerun of every record of b's chunk, after what came before.
      // Or a's chunk was sent again whole after the service had processed the record, and the
      // record was set aside then (a requeue takes it again).
      const resentOnDemand =
        rerunAllBetween(
          b.jobId,
          b.chunk,
          a.jobId === b.jobId ? Math.min(a.attempt, earlier?.attempt ?? a.attempt) : 0,
          b.attempt,
        ) ||
        (a.jobId !== b.jobId &&
          rerunAllBetween(a.jobId, a.chunk, earlier?.attempt ?? a.attempt - 1, Number.POSITIVE_INFINITY));
      if (resentOnDemand) continue;
      if (earlier && earlier.step < b.step) {
        out.push(
          `record ${recordId} was accepted under ${b.key} after the service had recorded it processed under ${a.jobId} attempt ${earlier.attempt}`,
        );
        continue;
      }
      if (a.jobId === b.jobId) {
        const chunk = chunks.find((c) => c.jobId === a.jobId && c.chunk === a.chunk);
        const end = chunk?.history?.find((h) => h.attempt === a.attempt);
        // A rerun of only the records not processed follows an attempt that ended any way.
        const rerunSince = (chunk?.reruns ?? []).some((r) => r.attempt > a.attempt && r.attempt <= b.attempt);
        if (
          !rerunSince &&
          (!end ||
            (end.outcome !== "timedOut" && end.outcome !== "recordsFailed" && end.outcome !== "badReply"))
        ) {
          out.push(
            `record ${recordId} was accepted under ${a.key} and then ${b.key}, but attempt ${a.attempt} ended ${end?.outcome ?? "never"}`,
          );
        }
      } else {
        const later = jobById.get(b.jobId);
        // A rerun of a's chunk may have processed the record since, dropping its exception.
        const setAside =
          exceptions.some((e) => e.jobId === a.jobId && idOf(e.recordId) === recordId) ||
          (chunkOf.get(`${a.jobId}|${a.chunk}`)?.reruns?.length ?? 0) > 0;
        // Or b ran its chunk again on demand: the record had not been processed in a's job.
        const rerunInB = (chunkOf.get(`${b.jobId}|${b.chunk}`)?.reruns ?? []).some(
          (r) => r.attempt <= b.attempt,
        );
        // What chunkrelay learned, not what the service meant: an outcome that never landed (a
        // lost callback, the attempt timed out) left the record to be sent again.
        const aDetail = detailByKey.get(`${a.jobId}|${recordId}`);
        const processedByA =
          service.recordedProcessed.get(`${a.jobId}|${recordId}`)?.attempt === a.attempt ||
          (aDetail?.status === "processed" && aDetail.attempt === a.attempt);
        if (rerunInB && !processedByA) continue;
        if (later?.mode !== "exceptions" || !setAside) {
          out.push(`record ${recordId} was accepted in job ${a.jobId} and again in job ${b.jobId}`);
        }
      }
    }
  }

  // The watermark covers only records processed or resolved in its lane.
  const marks = await store.watermarks.find({}).toArray();
  for (const mark of marks) {
    if (!mark.completedUpTo) continue;
    const laneJobs = jobs.filter(
      (j) => j.lane && laneDocId(j.lane.id) === mark._id && lanePass(j.lane.id) === (mark.generation ?? 1),
    );
    const done = new Set<string>();
    for (const j of laneJobs) {
      for (const d of detailsOf.get(j._id) ?? []) if (d.status === "processed") done.add(idOf(d.recordId));
    }
    for (const e of exceptions)
      if (e.resolution && laneJobs.some((j) => j._id === e.jobId)) done.add(idOf(e.recordId));
    // A record processed once stays under the watermark, also when a rerun of it failed later.
    for (const j of laneJobs) {
      for (const d of detailsOf.get(j._id) ?? []) {
        const reruns = (chunkOf.get(`${j._id}|${d.chunk}`)?.reruns ?? []).filter((r) => r.scope === "all");
        if (reruns.some((r) => processedBefore(j._id, d.recordId, r.attempt))) done.add(idOf(d.recordId));
      }
    }
    const lower = mark.window?.from;
    for (const s of source) {
      if (!isInside(keyOf(s), lower, mark.completedUpTo)) continue;
      if (!done.has(idOf(s._id))) {
        out.push(
          `the watermark of ${mark._id} covers record ${idOf(s._id)}, which is neither processed nor resolved`,
        );
        break;
      }
    }
  }
  out.push(...(await checkWorkers(store, chunks, details)));
  return out;
}

/**
 * The workers (local runners register one): each counts only what it finished, once. A crash can
 * lose a tally not yet written, never add one, so the sums are bounds, not equalities.
 */
async function checkWorkers(
  store: Store,
  chunks: Array<{ done: boolean; reruns?: unknown[]; recordCount?: number }>,
  details: DetailDoc[],
): Promise<string[]> {
  const out: string[] = [];
  const workers = await store.workers.find({}).toArray();
  for (const w of workers) {
    if (w.records !== w.succeeded + w.failed)
      out.push(`worker ${w._id}: ${w.records} records ≠ ${w.succeeded} succeeded + ${w.failed} failed`);
    if (w.chunks > w.records) out.push(`worker ${w._id}: ${w.chunks} chunks but only ${w.records} records`);
  }
  const sum = (f: (w: (typeof workers)[number]) => number) => workers.reduce((n, w) => n + f(w), 0);
  // A chunk run again on demand finishes once more: each rerun may add its chunk and records.
  const reruns = chunks.reduce((n, c) => n + (c.reruns?.length ?? 0), 0);
  const rerunRecords = chunks.reduce((n, c) => n + (c.reruns?.length ?? 0) * (c.recordCount ?? 0), 0);
  const doneChunks = chunks.filter((c) => c.done).length;
  if (sum((w) => w.chunks) > doneChunks + reruns)
    out.push(
      `workers counted ${sum((w) => w.chunks)} finished chunks; only ${doneChunks} are done (${reruns} reruns)`,
    );
  const processed = details.filter((d) => d.status === "processed").length;
  if (sum((w) => w.succeeded) > processed + rerunRecords)
    out.push(`workers counted ${sum((w) => w.succeeded)} succeeded records; only ${processed} are processed`);
  return out;
}
