/**
 * Waiting on events in tests: every wait names what it waits for, has a deadline, and stops
 * early when the process it watches has exited. Never a guessed delay: a loaded machine makes
 * these waits longer, never changes what a test means.
 */
import { setTimeout as delay } from "node:timers/promises";

export interface WaitOptions {
  /** What is awaited, for the failure message ("the first chunk processed"). */
  what: string;
  /** Give up after this long. Default: 30 s. */
  deadlineMs?: number;
  /** Settles when the watched process (or step) ends: no event can come after it. */
  exited?: Promise<unknown>;
  /** Extra text for the failure message: a process's output, a document. */
  context?: () => string;
  /** How often `event` is asked. Default: 10 ms. */
  everyMs?: number;
}

export type WaitOutcome = "happened" | "exited" | "deadline";

/** Asks `event` until it holds, the watched process exits or the deadline passes. */
export async function waitFor(
  event: () => boolean | Promise<boolean>,
  options: Pick<WaitOptions, "deadlineMs" | "exited" | "everyMs"> = {},
): Promise<WaitOutcome> {
  let exited = false;
  void options.exited?.then(
    () => (exited = true),
    () => (exited = true),
  );
  const deadline = Date.now() + (options.deadlineMs ?? 30_000);
  for (;;) {
    if (await event()) return "happened";
    if (exited) return "exited";
    if (Date.now() > deadline) return "deadline";
    await delay(options.everyMs ?? 10);
  }
}

/** As `waitFor`, but fails the test unless the event happened. */
export async function waitUntil(
  event: () => boolean | Promise<boolean>,
  options: WaitOptions,
): Promise<void> {
  const outcome = await waitFor(event, options);
  const context = options.context ? `:\n${options.context()}` : "";
  switch (outcome) {
    case "happened":
      return;
    case "exited":
      throw new Error(`the run exited before ${options.what}${context}`);
    case "deadline":
      throw new Error(`no ${options.what} within ${options.deadlineMs ?? 30_000} ms${context}`);
    default: {
      const never: never = outcome;
      throw new Error(`unknown wait outcome ${String(never)}`);
    }
  }
}
