/**
 * Written-out interleavings for regression tests: each actor (a planner, a server, a stale
 * runner) gets its own `Store` over the same database, whose every call first passes here. A test
 * can stop one actor at a chosen call (`pauseAt`), let others move, and release it; or kill it
 * there (`crashAt`: the call throws and never reaches the database). The simulation explores such
 * orders at random; these tests pin the ones that once broke.
 */
import type { Db } from "mongodb";
import { Store } from "../../src/store/store.js";

export interface StoreCall {
  actor: string;
  /** The collection name without its prefix: `jobs`, `chunks`, `details`, … */
  collection: string;
  method: string;
  args: unknown[];
}

type Matcher = (call: StoreCall) => boolean;

interface Pause {
  when: Matcher;
  reached: (call: StoreCall) => void;
  released: Promise<void>;
}

export class Crashed extends Error {
  constructor(call: StoreCall) {
    super(`${call.actor} crashed at ${call.collection}.${call.method}`);
  }
}

const CURSOR_METHODS = new Set(["find", "aggregate"]);
const CURSOR_READS = new Set(["toArray", "next", "hasNext", "tryNext"]);

export class Interleaving {
  private readonly pauses: Pause[] = [];
  private readonly crashes: Array<{ when: Matcher }> = [];
  /** Every call, in order, for assertions and failure messages. */
  readonly calls: StoreCall[] = [];

  constructor(
    private readonly db: Db,
    private readonly prefix = "batch_",
  ) {}

  /** The store `actor` works with: the same database, every call observed. */
  storeFor(actor: string): Store {
    return new Store(this.hookDb(actor), this.prefix);
  }

  /**
   * The next call matching `when` stops before it reaches the database: `reached` resolves with
   * it, and it goes on after `release()`.
   */
  pauseAt(when: Matcher): { reached: Promise<StoreCall>; release: () => void } {
    let release!: () => void;
    let reached!: (call: StoreCall) => void;
    const reachedP = new Promise<StoreCall>((r) => (reached = r));
    const released = new Promise<void>((r) => (release = r));
    this.pauses.push({ when, reached, released });
    return { reached: reachedP, release };
  }

  /** The next call matching `when` throws instead of reaching the database (the actor dies). */
  crashAt(when: Matcher): void {
    this.crashes.push({ when });
  }

  private async before(call: StoreCall): Promise<void> {
    this.calls.push(call);
    const crash = this.crashes.findIndex((c) => c.when(call));
    if (crash >= 0) {
      this.crashes.splice(crash, 1);
      throw new Crashed(call);
    }
    const i = this.pauses.findIndex((p) => p.when(call));
    if (i < 0) return;
    const [pause] = this.pauses.splice(i, 1) as [Pause];
    pause.reached(call);
    await pause.released;
  }

  private hookDb(actor: string): Db {
    return new Proxy(this.db, {
      get: (target, prop, receiver) => {
        if (prop === "collection") {
          return (name: string, options?: unknown) =>
            this.hookCollection(
              actor,
              name.startsWith(this.prefix) ? name.slice(this.prefix.length) : name,
              target.collection(name, options as never),
            );
        }
        const value: unknown = Reflect.get(target, prop, receiver);
        return typeof value === "function" ? (value as (...a: unknown[]) => unknown).bind(target) : value;
      },
    });
  }

  private hookCollection<T extends object>(actor: string, collection: string, coll: T): T {
    return new Proxy(coll, {
      get: (target, prop, receiver) => {
        const value: unknown = Reflect.get(target, prop, receiver);
        if (typeof value !== "function" || typeof prop !== "string") return value;
        const fn = (value as (...a: unknown[]) => unknown).bind(target);
        if (CURSOR_METHODS.has(prop)) {
          return (...args: unknown[]) =>
            this.hookCursor({ actor, collection, method: prop, args }, fn(...args) as object);
        }
        if (prop === "initializeOrderedBulkOp" || prop === "initializeUnorderedBulkOp") return fn;
        return async (...args: unknown[]) => {
          await this.before({ actor, collection, method: prop, args });
          return fn(...args);
        };
      },
    });
  }

  /** A cursor whose first read passes `before` (the query runs then, as with the driver). */
  private hookCursor<C extends object>(call: StoreCall, cursor: C): C {
    let passed: Promise<void> | undefined;
    const gate = () => (passed ??= this.before(call));
    const proxy: C = new Proxy(cursor, {
      get: (target, prop, receiver) => {
        const value: unknown = Reflect.get(target, prop, receiver);
        if (prop === Symbol.asyncIterator) {
          return async function* () {
            await gate();
            yield* target as unknown as AsyncIterable<unknown>;
          };
        }
        if (typeof value !== "function") return value;
        const fn = (value as (...a: unknown[]) => unknown).bind(target);
        if (typeof prop === "string" && CURSOR_READS.has(prop)) {
          return async (...args: unknown[]) => {
            await gate();
            return fn(...args);
          };
        }
        // Builders (sort, limit, project, …) return the cursor: keep returning the hooked one.
        return (...args: unknown[]) => {
          const out = fn(...args);
          return out === target ? proxy : out;
        };
      },
    });
    return proxy;
  }
}

/** Matches calls of `actor` on `collection` with `method` (any when omitted). */
export function callOf(actor: string, collection?: string, method?: string): Matcher {
  return (c) =>
    c.actor === actor &&
    (collection === undefined || c.collection === collection) &&
    (method === undefined || c.method === method);
}
