/**
 * Callbacks in the simulation (configs with `completion: "callback"`): a registry with the
 * semantics of a Trigger.dev wait token — one per attempt, completed by the first callback and
 * never again, outliving the runs that wait on it — through which the simulated service calls
 * back. Waiting is in simulated time; the listener's own refusals (forged tokens, replays) are
 * tested against the real listener in test/runtimes/local/completion-modes.test.ts.
 */
import type { AttemptRef, CallbackChannel } from "../../src/steps/handover.js";
import type { Actor, Scheduler } from "./scheduler.js";

const keyOf = (ref: AttemptRef) => `${ref.jobId}:${ref.chunk}:${ref.attempt}`;

/** How often a waiting watcher looks at its token, in simulated ms. */
const LOOK_EVERY_MS = 100;

export class SimCallbacks {
  private readonly completed = new Map<string, unknown>();
  /** Attempts a callback was opened for (the service may call back only those). */
  readonly opened = new Set<string>();
  /** Callbacks that came after their attempt's token was completed (ignored, as the platform does). */
  ignored = 0;

  constructor(private readonly sched: Scheduler) {}

  channelFor(actor: Actor): CallbackChannel {
    return {
      open: async (ref) => {
        await this.sched.gate(`open callback ${keyOf(ref)}`, actor);
        this.opened.add(keyOf(ref));
        return { url: `sim://callbacks/${keyOf(ref)}`, token: `token:${keyOf(ref)}` };
      },
      wait: async (ref, timeoutMs) => {
        const deadline = this.sched.now + timeoutMs;
        for (;;) {
          const body = this.completed.get(keyOf(ref));
          if (body !== undefined) return { kind: "called", body };
          if (this.sched.now >= deadline) return { kind: "timedOut" };
          await this.sched.sleep(Math.min(LOOK_EVERY_MS, deadline - this.sched.now), actor);
        }
      },
    };
  }

  /** The service calls back under `url`: the first body completes the token, later ones are dropped. */
  complete(url: string, body: unknown): void {
    const key = url.replace(/^sim:\/\/callbacks\//, "");
    if (!this.opened.has(key)) throw new Error(`callback to ${url}, which was never opened`);
    if (this.completed.has(key)) {
      this.ignored++;
      return;
    }
    // Through JSON, as an HTTP body travels.
    this.completed.set(key, JSON.parse(JSON.stringify(body)));
  }
}
