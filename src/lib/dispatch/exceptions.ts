/** Records that could not be processed are set aside in `batch_exceptions` for a human. */
import type { StepDeps } from "../handover/handover.js";
import type { ChunkDoc, ExceptionDoc } from "../store/store.js";

/** Moves the chunk's unprocessed records to exceptions (idempotent: unique per job and record). */
export async function setAsideRecords(
  deps: StepDeps,
  config: string,
  chunk: ChunkDoc,
  reason: string,
): Promise<number> {
  const { store } = deps;
  const now = deps.now();
  let count = 0;
  const cursor = store.details.find(
    { jobId: chunk.jobId, chunk: chunk.chunk, status: { $in: ["pending", "sent", "failed"] } },
    { projection: { recordId: 1, attempts: 1, error: 1 } },
  );
  let batch: ExceptionDoc[] = [];
  const flush = async () => {
    if (batch.length === 0) return;
    const ops = batch.map((e) => ({
      updateOne: {
        filter: { jobId: e.jobId, recordId: e.recordId },
        update: { $setOnInsert: e },
        upsert: true,
      },
    }));
    await store.exceptions.bulkWrite(ops, { ordered: false });
    count += batch.length;
    batch = [];
  };
  for await (const d of cursor) {
    batch.push({
      jobId: chunk.jobId,
      config,
      recordId: d.recordId,
      chunk: chunk.chunk,
      attempts: Math.max(d.attempts, chunk.attempt),
      reason: d.error ? `${reason} (service said: ${d.error})` : reason,
      createdAt: now,
    });
    if (batch.length >= 1000) await flush();
  }
  await flush();
  return count;
}
