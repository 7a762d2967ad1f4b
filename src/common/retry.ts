/**
 * The one retry/backoff helper. Every wait between tries in chunkrelay is computed by
 * `backoffDelay`: a chunk's retry after a refused or failed delivery (with jitter, so many chunks
 * refused at once do not come back at once), and the local runner's re-run of a step that failed
 * for a transient reason (a database away, a network error).
 *
 * Hand-written rather than a library (p-retry and friends): the waits must go through the
 * caller's `sleep` and `random`, so the seeded simulation replays them exactly and a Ctrl-C can
 * cut them short; those libraries sleep on their own timers.
 */

export interface Backoff {
  /** The first wait, in ms; each further try doubles it. */
  baseMs: number;
  /** No wait is longer than this, in ms. */
  capMs: number;
  /**
   * Jitter: a number in [0, 1) per call; the wait is then between half and all of the capped
   * exponential. Default: no jitter (the full capped exponential).
   */
  random?: () => number;
}

/** The wait before try `tries + 1`, after `tries` failed tries (1 = the first one failed). */
export function backoffDelay(tries: number, backoff: Backoff): number {
  const exp = Math.min(backoff.capMs, backoff.baseMs * 2 ** Math.max(0, tries - 1));
  if (!backoff.random) return exp;
  return Math.round(exp / 2 + (backoff.random() * exp) / 2);
}

export interface RetryPolicy extends Backoff {
  /** Tries in all, the first included (at least 1). */
  tries: number;
  /** Whether a failure may be tried again; bad input never is (the caller says so here). */
  retryable: (err: unknown) => boolean;
  /** The wait between tries; it may reject (an interrupt), which ends the retries with that error. */
  sleep: (ms: number) => Promise<void>;
  /** Told before each wait, to log it. */
  onRetry?: (err: unknown, waitMs: number, tries: number) => void;
}

/** Runs `fn` until it succeeds, a failure is not retryable, or `policy.tries` tries failed. */
export async function retryWithBackoff<T>(
  fn: (tries: number) => Promise<T>,
  policy: RetryPolicy,
): Promise<T> {
  for (let tries = 1; ; tries++) {
    try {
      return await fn(tries);
    } catch (err) {
      if (tries >= policy.tries || !policy.retryable(err)) throw err;
      const wait = backoffDelay(tries, policy);
      policy.onRetry?.(err, wait, tries);
      await policy.sleep(wait);
    }
  }
}
