/**
 * A seeded scheduler for the simulation. Every actor (a runner process, a Trigger.dev run, the
 * batch service, the healer) runs real chunkrelay code; wherever that code touches the outside
 * world — a store call, an HTTP exchange, a sleep — it stops at a *gate*, and the scheduler picks
 * with the seed's random numbers which waiting gate opens next. Between two gates an actor runs
 * alone (JavaScript is single-threaded), so one seed is one exact, repeatable interleaving.
 *
 * Faults are the scheduler's too: it can *crash* an actor between any two steps (its gates never
 * open again; its leases run out on the simulated clock) or *stall* one (nothing of it runs for a
 * while, as a paused process or a partitioned network would look, and then it carries on as if
 * nothing happened). Time is simulated: it moves by a little at every step and jumps to the next
 * timer when nothing is ready.
 */
export interface Actor {
  readonly id: number;
  readonly name: string;
  /** Crashable actors can be killed or stalled by the scheduler. */
  readonly crashable: boolean;
  /** Daemons (the healer, a record writer) run forever; the end of a history ignores them. */
  readonly daemon: boolean;
  dead: boolean;
  /** Nothing of this actor runs before this time (a stall). */
  frozenUntil: number;
  onCrash?: () => void;
}

interface Waiting {
  actor: Actor;
  at: number;
  label: string;
  resolve: () => void;
  reject: (err: unknown) => void;
}

export class Crash extends Error {
  constructor() {
    super("crashed");
  }
}

/** mulberry32: small, fast and good enough to pick interleavings. */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export interface FaultPlan {
  /** Chance per step that a crashable actor with a waiting gate is killed. */
  crash: number;
  /** Chance per step that one is stalled, and for how long at most (ms). */
  stall: number;
  stallMaxMs: number;
  /** Faults stop after this simulated time, or after this many crashes. */
  untilMs: number;
  maxCrashes: number;
}

export class Scheduler {
  readonly random: () => number;
  now: number;
  readonly start: number;
  steps = 0;
  crashes = 0;
  stalls = 0;
  /** The last steps taken, for a violation's report. */
  readonly trace: string[] = [];
  private readonly waiting: Waiting[] = [];
  private nextActorId = 1;
  readonly system: Actor;
  /** Errors thrown by actors that were not crashed: each is a finding unless expected. */
  readonly failures: Array<{ actor: string; error: unknown }> = [];

  constructor(
    seed: number,
    startMs: number,
    readonly faults: FaultPlan,
  ) {
    this.random = seededRandom(seed);
    this.now = startMs;
    this.start = startMs;
    this.system = this.actor("system", { crashable: false, daemon: false });
  }

  actor(name: string, kind: { crashable: boolean; daemon: boolean }): Actor {
    return { id: this.nextActorId++, name, ...kind, dead: false, frozenUntil: 0 };
  }

  /**
   * Runs `fn` as (part of) `actor`; its errors are recorded, crashes are expected. Whatever `fn`
   * does waits at gates of that actor: the simulation hands every actor its own store, service
   * client and sleep, each bound to it (cheaper than tracking the actor through async context).
   */
  spawn(actor: Actor, fn: () => Promise<unknown>, onError?: (err: unknown) => void): void {
    const run = async () => {
      try {
        await fn();
      } catch (err) {
        if (actor.dead || err instanceof Crash) return;
        if (onError) onError(err);
        else this.failures.push({ actor: actor.name, error: err });
      }
    };
    void run();
  }

  /** A step of `actor`'s history: resolves when the scheduler picks it. */
  gate(label: string, actor: Actor): Promise<void> {
    return this.wait(label, this.now, actor);
  }

  /** Simulated time passing for `actor`. */
  sleep(ms: number, actor: Actor, signal?: AbortSignal): Promise<void> {
    // A dead actor's sleep never ends (and pushes no entry the abort below could mistake).
    if (actor.dead) return new Promise(() => undefined);
    const p = this.wait(`sleep ${Math.round(ms)}`, this.now + Math.max(0, ms), actor);
    if (!signal) return p;
    return new Promise<void>((resolve, reject) => {
      if (signal.aborted) return reject(new Error("aborted"));
      const onAbort = () => {
        const i = this.waiting.findIndex((w) => w.resolve === entryResolve);
        if (i >= 0) this.waiting.splice(i, 1);
        reject(new Error("aborted"));
      };
      // The entry just pushed by wait() is the last one.
      const entry = this.waiting[this.waiting.length - 1] as Waiting;
      const entryResolve = entry.resolve;
      signal.addEventListener("abort", onAbort, { once: true });
      p.then(
        () => {
          signal.removeEventListener("abort", onAbort);
          resolve();
        },
        (err: unknown) => reject(err instanceof Error ? err : new Error(String(err))),
      );
    });
  }

  private wait(label: string, at: number, actor: Actor): Promise<void> {
    if (actor.dead) return new Promise(() => undefined);
    return new Promise<void>((resolve, reject) => {
      this.waiting.push({ actor, at, label, resolve, reject });
    });
  }

  crash(actor: Actor): void {
    if (actor.dead) return;
    actor.dead = true;
    this.crashes++;
    this.note(`CRASH ${actor.name}`);
    // Its waiting gates never open: dropped, so the history can end without them.
    for (let i = this.waiting.length - 1; i >= 0; i--) {
      if ((this.waiting[i] as Waiting).actor === actor) this.waiting.splice(i, 1);
    }
    actor.onCrash?.();
  }

  note(line: string): void {
    this.trace.push(`${String(this.now - this.start).padStart(7)}ms #${this.steps} ${line}`);
    if (this.trace.length > (process.env.SIM_TRACE ? 100000 : 80)) this.trace.shift();
  }

  /** True while some non-daemon actor still has something to do. */
  busy(): boolean {
    return this.waiting.some((w) => !w.actor.daemon && !w.actor.dead);
  }

  /**
   * Runs the history until `finished()` holds with no non-daemon work left, or `deadlineMs` of
   * simulated time passed, or `maxSteps`. Returns why it stopped.
   */
  async run(options: {
    finished: () => Promise<boolean>;
    deadlineMs: number;
    maxSteps: number;
    checkEvery?: number;
  }): Promise<"finished" | "deadline" | "steps" | "stuck"> {
    const checkEvery = options.checkEvery ?? 50;
    for (;;) {
      // Let every actor the last step woke run up to its next gate (microtasks only).
      await new Promise<void>((r) => setImmediate(r));
      if (this.steps >= options.maxSteps) return "steps";
      if (this.now - this.start > options.deadlineMs) return "deadline";
      if (this.steps % checkEvery === 0 || !this.busy()) {
        if (!this.busy() && (await options.finished())) return "finished";
      }
      const faulty = this.now - this.start < this.faults.untilMs && this.crashes < this.faults.maxCrashes;
      if (faulty && this.waiting.length > 0) {
        const r = this.random();
        if (r < this.faults.crash + this.faults.stall) {
          const candidates = this.waiting.filter((w) => w.actor.crashable && !w.actor.dead);
          const victim = candidates[Math.floor(this.random() * candidates.length)]?.actor;
          if (victim) {
            if (r < this.faults.crash) this.crash(victim);
            else {
              victim.frozenUntil = this.now + 1 + Math.floor(this.random() * this.faults.stallMaxMs);
              this.stalls++;
              this.note(`STALL ${victim.name} until +${victim.frozenUntil - this.start}ms`);
            }
            continue;
          }
        }
      }
      const ready: number[] = [];
      let nextAt = Number.POSITIVE_INFINITY;
      for (let i = 0; i < this.waiting.length; i++) {
        const w = this.waiting[i] as Waiting;
        const at = Math.max(w.at, w.actor.frozenUntil);
        if (at <= this.now) ready.push(i);
        else nextAt = Math.min(nextAt, at);
      }
      if (ready.length === 0) {
        if (nextAt === Number.POSITIVE_INFINITY) {
          return (await options.finished()) ? "finished" : "stuck";
        }
        this.now = nextAt;
        continue;
      }
      const index = ready[Math.floor(this.random() * ready.length)] as number;
      const [step] = this.waiting.splice(index, 1) as [Waiting];
      this.steps++;
      // A step takes a little time.
      this.now += Math.floor(this.random() * 4);
      if (!step.label.startsWith("sleep")) this.note(`${step.actor.name}: ${step.label}`);
      step.resolve();
    }
  }
}
