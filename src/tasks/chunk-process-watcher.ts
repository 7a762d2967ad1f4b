/**
 * `chunkProcessWatcher`: polls one chunk attempt until every record is terminal, then hands back
 * to the server. Between polls it waits `watch.pollIntervalMs` (default 2000) with
 * `platformSleep`: up to 5 s in-process (the run stays alive and is billed as compute, as the
 * SDK would do anyway); above that through `wait.for`, and above 60 s on Trigger.dev cloud the run
 * is checkpointed and frees its concurrency slot — so for a service that takes minutes per chunk,
 * set `watch.pollIntervalMs` above 60000. One run polls at most WATCH_LIMITS.maxPolls times or
 * for maxRunMs, then continues in a fresh run.
 */
import { schemaTask } from "@trigger.dev/sdk";
import { type WatchLimits, watchChunk, watchPayloadSchema } from "../steps/watch/watch.js";
import { type RunContext, platformSleep, runTaskStep } from "../runtimes/trigger/worker.js";

export const WATCH_LIMITS: WatchLimits = { maxPolls: 200, maxRunMs: 45 * 60_000 };

export const chunkProcessWatcher = schemaTask({
  id: "chunk-process-watcher",
  description: "Wait until every record of a chunk is processed, then hand back to the server.",
  schema: watchPayloadSchema,
  maxDuration: 3600,
  run: (payload, { ctx }) => runChunkProcessWatcher(payload, ctx),
});

/** The task body, exported so tests can run it in a task context. */
export function runChunkProcessWatcher(payload: unknown, ctx: RunContext) {
  return runTaskStep(
    ctx,
    "chunkProcessWatcher",
    payload,
    (deps) => watchChunk(deps, payload, WATCH_LIMITS),
    (r) => ({ outcome: r.outcome }),
    platformSleep,
  );
}
