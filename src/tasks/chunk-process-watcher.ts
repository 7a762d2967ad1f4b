/**
 * `chunkProcessWatcher`: polls one chunk attempt until every record is terminal, then hands back
 * to the server. Polls wait with `wait.for`: on Trigger.dev cloud a wait above 60 s checkpoints
 * the run and frees its concurrency slot, so set `watch.pollIntervalMs` above 60000 for slow
 * services; shorter waits keep the run (and its slot) alive. One run polls at most
 * WATCH_LIMITS.maxPolls times or for maxRunMs, then continues in a fresh run.
 */
import { schemaTask, wait } from "@trigger.dev/sdk";
import { type WatchLimits, watchChunk, watchPayloadSchema } from "../lib/watcher/watch.js";
import { runTaskStep } from "./worker.js";

export const WATCH_LIMITS: WatchLimits = { maxPolls: 200, maxRunMs: 45 * 60_000 };

export const chunkProcessWatcher = schemaTask({
  id: "chunk-process-watcher",
  description: "Wait until every record of a chunk is processed, then hand back to the server.",
  schema: watchPayloadSchema,
  maxDuration: 3600,
  run: (payload, { ctx }) => runChunkProcessWatcher(payload, ctx),
});

/** The task body, exported so tests can run it in a mock task context. */
export function runChunkProcessWatcher(payload: unknown, ctx: { run: { id: string } }) {
  return runTaskStep(
    ctx,
    "chunkProcessWatcher",
    payload,
    (deps) => watchChunk(deps, payload, WATCH_LIMITS),
    (r) => ({ outcome: r.outcome }),
    (ms) => wait.for({ seconds: Math.max(1, Math.ceil(ms / 1000)) }),
  );
}
