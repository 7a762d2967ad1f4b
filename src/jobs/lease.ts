/**
 * Keeping a lease alive while a step works: renewed every third of a lease period, on the step's
 * in-process timer (`deps.timer`), so the simulation's clock drives it like every other wait.
 */
import { expireChunkLeases } from "../store/chunks.js";
import { expirePlanningLeases } from "../store/jobs.js";
import type { StepDeps } from "../steps/handover.js";

export async function withLeaseRenewal<T>(
  deps: Pick<StepDeps, "leaseMs" | "log" | "timer">,
  what: string,
  renew: () => Promise<unknown>,
  work: () => Promise<T>,
): Promise<T> {
  const stop = new AbortController();
  const period = Math.max(50, Math.floor(deps.leaseMs / 3));
  const heartbeat = (async () => {
    for (;;) {
      try {
        await deps.timer(period, stop.signal);
      } catch {
        return; // stopped
      }
      if (stop.signal.aborted) return;
      // A renewal that fails is logged, not fatal: the step's own guarded writes notice a lost
      // lease (they match nothing) and stop there.
      await renew().catch((err: unknown) =>
        deps.log.warn(`could not renew the ${what} lease`, { error: String(err) }),
      );
    }
  })();
  try {
    return await work();
  } finally {
    stop.abort();
    await heartbeat;
  }
}

/** `deps.timer` on real timers: resolves after `ms`, rejects at once when `signal` aborts. */
export function realTimer(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    if (signal?.aborted) return reject(new Error("aborted"));
    const onAbort = () => {
      clearTimeout(t);
      reject(new Error("aborted"));
    };
    const t = setTimeout(() => {
      signal?.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}

/**
 * Gives up the leases this runner holds on its jobs, once its steps have stopped (a Ctrl-C): a
 * resume takes the chunks and the planning over at once instead of waiting a lease period out.
 * It is the same as the leases running out early — every write of a lease holder is guarded by
 * its owner, so one that arrives late still changes nothing once another runner took over, as
 * with any lease that lapsed.
 */
export async function releaseLeases(
  deps: Pick<StepDeps, "store" | "owner">,
  jobIds: string[],
): Promise<void> {
  await expireChunkLeases(deps.store, jobIds, deps.owner);
  await expirePlanningLeases(deps.store, jobIds, deps.owner);
}
