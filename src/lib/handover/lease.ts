/** Keeping a lease alive while a step works: renewed every third of a lease period. */
import type { StepDeps } from "./handover.js";

export async function withLeaseRenewal<T>(
  deps: Pick<StepDeps, "leaseMs" | "log">,
  what: string,
  renew: () => Promise<unknown>,
  work: () => Promise<T>,
): Promise<T> {
  const timer = setInterval(
    () => {
      renew().catch((err: unknown) =>
        deps.log.warn(`could not renew the ${what} lease`, { error: String(err) }),
      );
    },
    Math.max(50, Math.floor(deps.leaseMs / 3)),
  );
  try {
    return await work();
  } finally {
    clearInterval(timer);
  }
}
