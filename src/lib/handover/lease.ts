/**
 * Keeping a lease alive while a step works: renewed every third of a lease period, on the step's
 * in-process timer (`deps.timer`), so the simulation's clock drives it like every other wait.
 */
import type { StepDeps } from "./handover.js";

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
