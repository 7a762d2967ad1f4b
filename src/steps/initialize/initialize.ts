/**
 * The initializer step (`batchDataInitializer`): validates the config, opens the job (claiming its
 * window, `open-job.ts`), streams the window's records in order with bounded memory, writes
 * `batch_details` and `batch_chunks` in bulk, checkpoints its position after every group of
 * chunks, and hands over to the server. Running it again with the same jobId resumes after the
 * last checkpoint and never duplicates a record.
 */
import { resolveHeaders } from "../../config/headers.js";
import { readConfig } from "../../store/configs.js";
import { type BatchConfig, configHash } from "../../config/schema.js";
import { finishJob, settleFinishedJob } from "../dispatch/dispatch.js";
import { BadInputError } from "../../common/errors.js";
import { type StepDeps, keys } from "../handover.js";
import { withLeaseRenewal } from "../../jobs/lease.js";
import { planChunksFrom } from "../../planning/chunking.js";
import type { Cut } from "../../planning/cuts.js";
import { inSample, sampleComplete } from "../../planning/workload.js";
import { openSource } from "../../sources/open-source.js";
import { openErrorTopic } from "../../jobs/error-topic.js";
import type { SourceRecord } from "../../sources/source.js";
import type { ChunkDoc, DetailDoc, JobDoc } from "../../store/store.js";
import { acceptConfig, openJob } from "./open-job.js";
import { deleteUncommittedChunks, insertPlannedChunks } from "../../store/chunks.js";
import {
  claimPlanning,
  finishPlanning,
  readJob,
  renewPlanningLease,
  savePlanningCheckpoint,
} from "../../store/jobs.js";
import { deleteUncommittedRecords, insertPlannedRecords } from "../../store/records.js";
import { initializePayloadSchema } from "./payload.js";

export interface InitializeResult {
  jobId: string;
  resumed: boolean;
  records: number;
  chunks: number;
  status: JobDoc["status"];
}

/**
 * Records per insertMany, per planning group and per source cursor batch. Larger cursor batches
 * (5000) made the driver's reply buffers grow the heap with N: peak RSS at 10·N rose ~45%.
 */
const DETAIL_BATCH = 1000;
const detailBatch = (deps: StepDeps) => deps.planningBatch ?? DETAIL_BATCH;
/** Planning groups being written while the next is read (memory: this many groups). */
const MAX_GROUPS_IN_FLIGHT = 3;

export async function initializeJob(deps: StepDeps, rawPayload: unknown): Promise<InitializeResult> {
  const parsed = initializePayloadSchema.safeParse(rawPayload);
  if (!parsed.success) {
    throw new BadInputError(
      `initializer payload is invalid: ${parsed.error.issues.map((i) => `${i.path.join(".") || "payload"}: ${i.message}`).join("; ")}`,
    );
  }
  const payload = parsed.data;
  const { store } = deps;
  const config = await readConfig(store, payload.config);
  // A missing header secret would stop the job at its first chunk: refuse before writing anything.
  resolveHeaders(config, deps.env);
  const opened = await openJob(deps, config, payload);
  const { resumed } = opened;
  const job = resumed ? await acceptConfig(deps, opened.job, config, payload.acceptConfigChange) : opened.job;
  const jobId = job._id;

  if (!job.planning.done) {
    // One initializer plans a job at a time: a second one (a replay, a second runner) leaves it
    // to the owner of the planning lease, unless that lease has expired (the owner died).
    const claimed = await claimPlanning(store, {
      jobId,
      owner: deps.owner,
      now: deps.now(),
      leaseMs: deps.leaseMs,
    });
    if (!claimed) {
      deps.log.info(`job ${jobId} is being planned by another runner`, {});
      return {
        jobId,
        resumed: true,
        records: job.planning.records,
        chunks: job.planning.nextChunk - 1,
        status: "planning",
      };
    }
    if (claimed.window.to !== null) {
      const renew = () =>
        renewPlanningLease(store, jobId, deps.owner, new Date(deps.now().getTime() + deps.leaseMs));
      await withLeaseRenewal(deps, "planning", renew, () => planJob(deps, config, claimed));
    }
  }
  const now = deps.now();
  await finishPlanning(store, jobId, deps.owner, now);
  let final = await readJob(store, jobId);
  if (!final) throw new Error(`job ${jobId} vanished`);
  if (final.status === "running" && final.planning.nextChunk === 1) {
    // Nothing to do (e.g. no new records): the job succeeds with zero records right here.
    await finishJob(deps, final);
    final = (await readJob(store, jobId)) ?? final;
  } else if (final.status === "planning" || final.status === "running") {
    await deps.handOver.serve({ jobId }, keys.serveAfterPlanning(jobId));
  } else if (resumed) {
    // A finished job resumed (a replay, `chunkrelay resume` after a crash): finish settling it
    // and make sure the next iteration was handed over; the key keeps it single.
    await settleFinishedJob(deps, final);
  }
  deps.log.info(`job ${jobId} planned`, {
    records: final.planning.records,
    chunks: final.planning.nextChunk - 1,
  });
  return {
    jobId,
    resumed,
    records: final.planning.records,
    chunks: final.planning.nextChunk - 1,
    status: final.status,
  };
}

async function planJob(deps: StepDeps, config: BatchConfig, job: JobDoc): Promise<void> {
  const { store } = deps;
  const jobId = job._id;
  const hash = configHash(config);
  // A crash may have left chunks past the checkpoint, uncommitted (no runner claims them): remove
  // them and cut again. Only what earlier epochs wrote is removed: a planner that lost its lease
  // while stalled and runs this late cannot touch what a later planner wrote (and committed, and
  // the service processed). Cutting again from the checkpoint with the job's own recorded limits
  // gives the same chunks; a late write of a stale planner collides on unique keys and changes
  // nothing.
  const epoch = job.planning.epoch ?? 0;
  await deleteUncommittedRecords(store, jobId, job.planning.nextChunk, epoch);
  await deleteUncommittedChunks(store, jobId, job.planning.nextChunk, epoch);

  const weightField = config.source.weightField;
  // Messages a Kafka source skips (`invalidMessages: "skip"`) go to the error topic as they are
  // read; a resumed planning reads them again and produces them again (keyed, at least once).
  const errorTopic = job.mode === "exceptions" ? undefined : openErrorTopic(config);
  const source = openSource(store, config, job.mode === "exceptions" ? job.fromJob : undefined, {
    warn: (message) => deps.log.warn(message, { jobId }),
    onSkipped: async (m) => {
      deps.log.warn(`job ${jobId}: Kafka message ${m.id} skipped: ${m.reason}`, { jobId });
      await errorTopic?.send([
        {
          kind: "skipped",
          jobId,
          config: config.name,
          recordId: m.id,
          reason: m.reason,
          value: m.value,
          at: deps.now(),
        },
      ]);
    },
  });
  const checkpoint: Cut | undefined =
    job.planning.lastKey !== undefined
      ? { key: job.planning.lastKey, id: job.planning.lastId }
      : job.window.from;
  const reading = source.read(
    { ...(checkpoint ? { from: checkpoint } : {}), ...(job.window.to ? { to: job.window.to } : {}) },
    detailBatch(deps),
  );
  const sample = job.partitioning.sample;
  // A sample keeps the records at the positions it selects; each kept record notes its position,
  // so the checkpoint can say where the next run goes on. Without a sample, batches pass as they
  // are (no copy per record: allocation rate shows in peak memory).
  type PlannedRecord = SourceRecord & { seq?: number };
  const batches: AsyncIterable<PlannedRecord[]> = sample
    ? (async function* () {
        let index = job.planning.scanned ?? job.planning.records;
        for await (const batch of reading.batches) {
          const kept: PlannedRecord[] = [];
          for (const r of batch) {
            if (sampleComplete(sample, index)) {
              if (kept.length > 0) yield kept;
              return;
            }
            if (inSample(sample, index)) kept.push(Object.assign(r, { seq: index }));
            index++;
          }
          if (kept.length > 0) yield kept;
        }
      })()
    : reading.batches;

  let chunkNo = job.planning.nextChunk;
  let total = job.planning.records;
  let totalWeight = job.planning.weight;
  const firstChunk = chunkNo;
  type Planned = {
    no: number;
    records: PlannedRecord[];
    weight: number;
  };

  // Small chunks are written in groups of about DETAIL_BATCH records (one insertMany for their
  // records, one for their chunk documents, one checkpoint), so the per-chunk cost stays a
  // fraction of a round trip. A group's writes overlap reading the next; at most
  // MAX_GROUPS_IN_FLIGHT groups are held (bounded memory). Checkpoints stay in order — each waits for the previous
  // one — and a crash leaves only chunks past the checkpoint, which the next run cuts again.
  let previous: Promise<void> = Promise.resolve();
  const outstanding: Promise<void>[] = [];
  const writeGroup = (group: Planned[]) => {
    const now = deps.now();
    const last = group[group.length - 1] as Planned;
    const lastRecord = last.records[last.records.length - 1];
    const checkpoint = { records: total, weight: totalWeight };
    const before = previous;
    const done = (async () => {
      const details: DetailDoc[] = [];
      const writes: Array<Promise<void>> = [];
      const flushDetails = () => {
        const docs = details.splice(0);
        if (docs.length > 0) writes.push(insertPlannedRecords(store, docs));
      };
      for (const c of group) {
        for (const r of c.records) {
          details.push({
            jobId,
            recordId: r.id,
            chunk: c.no,
            status: "pending",
            attempts: 0,
            planEpoch: epoch,
            ...(weightField ? { weight: r.weight } : {}),
            ...(r.data ? { data: r.data } : {}),
          });
          if (details.length >= detailBatch(deps)) flushDetails();
        }
      }
      flushDetails();
      const chunkDocs: ChunkDoc[] = group.map((c) => ({
        jobId,
        chunk: c.no,
        status: "pending",
        done: false,
        attempt: 1,
        deliveryTries: 0,
        recordCount: c.records.length,
        weight: c.weight,
        firstKey: c.records[0]?.key ?? null,
        lastKey: c.records[c.records.length - 1]?.key ?? null,
        lastId: c.records[c.records.length - 1]?.id,
        configHash: hash,
        planEpoch: epoch,
        dueAt: now,
        createdAt: now,
      }));
      writes.push(insertPlannedChunks(store, chunkDocs));
      await Promise.all(writes);
      await before;
      const firstNo = (group[0] as Planned).no;
      const saved = await savePlanningCheckpoint(store, {
        jobId,
        owner: deps.owner,
        fromChunk: firstNo,
        lastKey: lastRecord?.key ?? null,
        lastId: lastRecord?.id,
        scanned: lastRecord?.seq !== undefined ? lastRecord.seq + 1 : checkpoint.records,
        nextChunk: last.no + 1,
        records: checkpoint.records,
        weight: checkpoint.weight,
        now,
      });
      if (!saved) {
        throw new Error(`job ${jobId}: the planning lease was lost to another runner; stopping this one`);
      }
      // Start serving while planning goes on: the first chunk need not wait for the last.
      if (firstNo === firstChunk) await deps.handOver.serve({ jobId }, `serve:${jobId}:first-chunk`);
    })();
    done.catch(() => undefined); // observed below, when it is awaited in order
    previous = done;
    outstanding.push(done);
  };

  let group: Planned[] = [];
  let groupRecords = 0;
  try {
    for await (const records of planChunksFrom(batches, job.partitioning.chunking)) {
      const weight = records.reduce((w, r) => w + r.weight, 0);
      group.push({ no: chunkNo++, records, weight });
      groupRecords += records.length;
      total += records.length;
      totalWeight += weight;
      // The first group goes out with its first chunk: serving starts once one chunk is
      // committed, not a whole group (a job's first request comes that much sooner).
      if (groupRecords >= detailBatch(deps) || group[0]?.no === firstChunk) {
        writeGroup(group);
        group = [];
        groupRecords = 0;
        if (outstanding.length >= MAX_GROUPS_IN_FLIGHT) await outstanding.shift();
        // Stopped (Ctrl-C): what is written and checkpointed stays; a resume plans on from there.
        if (deps.signal?.aborted) throw new Error(`job ${jobId}: planning stopped`);
      }
    }
    if (group.length > 0) writeGroup(group);
    while (outstanding.length > 0) await outstanding.shift();
  } finally {
    await Promise.allSettled(outstanding);
    await reading.close();
    await source.close();
    await errorTopic?.close();
  }
}
