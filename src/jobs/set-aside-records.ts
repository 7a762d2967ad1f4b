/** Records that could not be processed are set aside in `batch_exceptions` for a human. */
import { readConfig, readSecretValues } from "../store/configs.js";
import { openErrorTopic } from "./error-topic.js";
import { redactAndCut } from "../config/redact.js";

/** The most of a service's record error kept in an exception's reason. */
const EXCEPTION_ERROR_CHARS = 500;
import type { StepDeps } from "../steps/handover.js";
import type { AttemptOutcome, ChunkDoc, ExceptionDoc } from "../store/store.js";
import { type ChunkHold, closeFailedChunk, markChunkFailed } from "../store/chunks.js";
import { countProcessedRecords, markChunkRecordsFailed, streamUnprocessedRecords } from "../store/records.js";
import { insertSetAsideRecords } from "../store/set-aside-records.js";

/**
 * Copies the chunk's unprocessed records to exceptions (idempotent: unique per job and record).
 * Called only for a chunk already `failed`, whose records can no longer change.
 */
export async function setAsideRecords(
  deps: StepDeps,
  config: string,
  chunk: Pick<ChunkDoc, "jobId" | "chunk" | "attempt">,
  reason: string,
): Promise<number> {
  const { store } = deps;
  const now = deps.now();
  let count = 0;
  // A record's `error` is the service's own text: a secret it echoes is kept out of the store.
  const secrets = await readSecretValues(store, config, deps.env);
  // A service often gives many records the same error: each distinct text is redacted once (a
  // few milliseconds each), reading only about twice as far as the kept 500 characters (room
  // for secrets replaced by *** before the cut).
  const redacted = new Map<string, string>();
  const redactedError = (text: string): string => {
    let out = redacted.get(text);
    if (out === undefined) {
      out = redactAndCut(text, secrets, EXCEPTION_ERROR_CHARS, 2 * EXCEPTION_ERROR_CHARS);
      if (redacted.size < 1000) redacted.set(text, out);
    }
    return out;
  };
  const errorTopic = openErrorTopic(await readConfig(store, config));
  const cursor = streamUnprocessedRecords(store, chunk.jobId, chunk.chunk);
  let batch: ExceptionDoc[] = [];
  const flush = async () => {
    if (batch.length === 0) return;
    await insertSetAsideRecords(store, batch);
    // After batch_exceptions (the record of truth): a failure here fails the step, which runs
    // again and produces them again — at least once, never lost.
    await errorTopic?.send(batch.map((e) => ({ kind: "set-aside" as const, ...e, at: e.createdAt })));
    count += batch.length;
    batch = [];
  };
  try {
    for await (const d of cursor) {
      batch.push({
        jobId: chunk.jobId,
        config,
        recordId: d.recordId,
        chunk: chunk.chunk,
        attempts: Math.max(d.attempts, chunk.attempt),
        reason: d.error ? `${reason} (service said: ${redactedError(String(d.error))})` : reason,
        createdAt: now,
      });
      if (batch.length >= 1000) await flush();
    }
    await flush();
  } finally {
    await errorTopic?.close();
  }
  return count;
}

/**
 * Fails a chunk: moves it to `failed` under `hold` (the caller's view: status and attempt and,
 * for the server, its lease), then sets its records aside. Returns false when the
 * hold matched nothing — another runner moved the chunk on (a stale runner's late reply, a
 * replayed watcher) — and then touches no record.
 */
export async function failChunk(
  deps: StepDeps,
  config: string,
  chunk: ChunkDoc,
  hold: ChunkHold,
  outcome: Exclude<AttemptOutcome, "processed">,
  reason: string,
): Promise<boolean> {
  // `done` stays false until the records are set aside, so a crash in between leaves the
  // chunk unfinished and the next server run completes it (`completeFailedChunk`).
  if (!(await markChunkFailed(deps.store, hold, { outcome, reason, now: deps.now() }))) return false;
  await completeFailedChunk(deps, config, { ...chunk, lastError: reason });
  return true;
}

/**
 * Second half of failing a chunk, idempotent: its unprocessed records are marked `failed` — so a
 * late report of the attempt (which must match `status: "sent"`) can no longer land — and set
 * aside as exceptions; then the chunk is done, with exact counts.
 */
export async function completeFailedChunk(
  deps: StepDeps,
  config: string,
  chunk: Pick<ChunkDoc, "jobId" | "chunk" | "attempt" | "lastError">,
): Promise<void> {
  const { store } = deps;
  const { jobId } = chunk;
  await markChunkRecordsFailed(store, jobId, chunk.chunk);
  const setAside = await setAsideRecords(deps, config, chunk, chunk.lastError ?? "failed");
  const processed = await countProcessedRecords(store, jobId, chunk.chunk);
  await closeFailedChunk(store, jobId, chunk.chunk, { processed, setAside });
}
