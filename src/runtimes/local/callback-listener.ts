/**
 * The local runner's callback route, for configs with `completion: "callback"`: a small HTTP
 * listener (node:http, one route) that a batch service POSTs an attempt's outcome to.
 *
 * - Each attempt gets its own URL, `<base>/callbacks/<jobId>/<chunk>/<attempt>?token=<token>`,
 *   the token HMAC-SHA256 of `<jobId>:<chunk>:<attempt>` under the listener's secret (also sent
 *   alone as `callback.token`). The service POSTs to the URL as sent.
 * - A callback with a wrong or missing token is refused (401) before its body is read: it was
 *   forged, or signed under another secret (a runner started since, without
 *   `CHUNKRELAY_CALLBACK_SECRET`).
 * - A callback for an attempt already closed is refused (409), so a replayed callback changes
 *   nothing; so is a second callback while the first is being applied.
 * - A callback that comes before its watcher waits (a fast service) is held for the attempt
 *   until the watcher takes it, or until the attempt's timeout.
 * The watcher applies the outcome (`applyServiceOutcome`) and settles the callback: the service
 * gets 200 once its outcome is written, 422 with the reason when it did not match the request.
 * The listener binds its port only when the first callback attempt is opened and is closed with
 * the run (`close()`).
 */
import { createHmac, randomBytes, timingSafeEqual } from "node:crypto";
import { type IncomingMessage, type Server, type ServerResponse, createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { z } from "zod";
import { jobIdSchema } from "../../config/schema.js";
import type { AttemptRef, CallbackArrival, CallbackChannel, Logger } from "../../steps/handover.js";
import { silentLogger } from "../../steps/handover.js";
import { readChunk } from "../../store/chunks.js";
import type { Store } from "../../store/store.js";

export interface CallbackListenerOptions {
  /** Interface the listener binds. Default: 127.0.0.1. */
  host?: string | undefined;
  /** TCP port. Default: 0 (any free port). */
  port?: number | undefined;
  /**
   * The base URL a service reaches the listener at (behind a proxy or from another host).
   * Default: `http://<host>:<port>`.
   */
  publicUrl?: string | undefined;
  /**
   * The HMAC key callback tokens are signed with. Default: 32 random bytes per listener, so a
   * callback for an attempt sent before a restart is refused (it times out and is sent again).
   */
  secret?: string | undefined;
}

/** The largest callback body read (an outcome per record of a large chunk). */
const MAX_CALLBACK_BYTES = 32 * 1024 * 1024;
/** How long a callback's HTTP reply waits for its watcher to apply it before answering 202. */
const SETTLE_WAIT_MS = 10_000;

type Verdict = { ok: true } | { ok: false; status: number; error: string };

interface Arrival {
  body: unknown;
  settled: Promise<Verdict>;
  settle: (v: Verdict) => void;
  /** A watcher took it (it may still fail before it settles). */
  taken?: boolean;
}

interface Expected {
  expiresAt: number;
  arrival?: Arrival | undefined;
  waiter?: ((a: CallbackArrival) => void) | undefined;
  /** Ends a waiting watcher when the run stops. */
  reject?: ((err: Error) => void) | undefined;
}

const keyOf = (ref: AttemptRef) => `${ref.jobId}:${ref.chunk}:${ref.attempt}`;

const pathSchema = z.object({
  jobId: jobIdSchema,
  chunk: z.coerce.number().int().positive(),
  attempt: z.coerce.number().int().positive(),
});

function reply(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { "content-type": "application/json", "content-length": Buffer.byteLength(text) });
  res.end(text);
}

function readBody(req: IncomingMessage): Promise<string | undefined> {
  return new Promise((resolve, reject) => {
    const parts: Buffer[] = [];
    let size = 0;
    req.on("data", (b: Buffer) => {
      size += b.length;
      if (size > MAX_CALLBACK_BYTES) {
        resolve(undefined);
        req.destroy();
        return;
      }
      parts.push(b);
    });
    req.on("end", () => resolve(Buffer.concat(parts).toString("utf8")));
    req.on("error", reject);
  });
}

export class CallbackListener implements CallbackChannel {
  private server: Server | undefined;
  private starting: Promise<string> | undefined;
  private key: Buffer | undefined;
  private readonly expected = new Map<string, Expected>();
  /** Attempts whose callback was taken in this process (a replay of one is refused at once). */
  private readonly closed = new Set<string>();
  private readonly timers = new Set<NodeJS.Timeout>();
  private stopped = false;

  private options: CallbackListenerOptions | undefined;

  /**
   * `settings` is read when the first callback attempt is opened (the environment is parsed only
   * by runs that use callbacks).
   */
  constructor(
    private readonly store: Store,
    private readonly settings: () => CallbackListenerOptions,
    private readonly signal?: AbortSignal,
    private readonly log: Logger = silentLogger,
  ) {
    signal?.addEventListener("abort", () => this.dropWaiters(), { once: true });
  }

  private get secret(): Buffer {
    this.options ??= this.settings();
    this.key ??= this.options.secret ? Buffer.from(this.options.secret, "utf8") : randomBytes(32);
    return this.key;
  }

  /** The token of an attempt: HMAC-SHA256 of its delivery key, base64url. */
  tokenOf(ref: AttemptRef): string {
    return createHmac("sha256", this.secret).update(keyOf(ref)).digest("base64url");
  }

  /** The listener's base URL, starting it on first use. */
  async url(): Promise<string> {
    this.starting ??= this.listen();
    return this.starting;
  }

  async open(ref: AttemptRef, timeoutMs: number): Promise<{ url: string; token: string }> {
    const base = await this.url();
    const key = keyOf(ref);
    const e = this.expected.get(key);
    const expiresAt = Date.now() + timeoutMs;
    if (e) e.expiresAt = Math.max(e.expiresAt, expiresAt);
    else this.expected.set(key, { expiresAt });
    this.prune();
    const path = `/callbacks/${encodeURIComponent(ref.jobId)}/${ref.chunk}/${ref.attempt}`;
    // The URL carries the token, so a forged callback is refused before its body is read.
    const token = this.tokenOf(ref);
    return { url: `${base}${path}?token=${token}`, token };
  }

  wait(ref: AttemptRef, timeoutMs: number): Promise<CallbackArrival> {
    const key = keyOf(ref);
    let e = this.expected.get(key);
    if (!e) {
      // A watcher of an attempt this process did not send (a resumed job): callbacks for it are
      // taken from now on.
      e = { expiresAt: Date.now() + timeoutMs };
      this.expected.set(key, e);
    }
    const entry = e;
    if (entry.arrival) return Promise.resolve(this.take(key, entry.arrival));
    return new Promise<CallbackArrival>((resolve, reject) => {
      if (this.signal?.aborted) return reject(new Error("interrupted"));
      const timer = setTimeout(() => {
        this.timers.delete(timer);
        // The watcher ends the attempt now: a callback after this is refused, not held.
        this.expected.delete(key);
        this.markClosed(key);
        resolve({ kind: "timedOut" });
      }, timeoutMs);
      this.timers.add(timer);
      entry.waiter = (a) => {
        clearTimeout(timer);
        this.timers.delete(timer);
        entry.waiter = undefined;
        resolve(a);
      };
      entry.reject = reject;
    });
  }

  async close(): Promise<void> {
    this.stopped = true;
    this.dropWaiters();
    for (const t of this.timers) clearTimeout(t);
    this.timers.clear();
    const server = this.server;
    if (!server) return;
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }

  /** The run stopped: its waiting watchers end (their attempts stay sent; a resume watches again). */
  private dropWaiters(): void {
    for (const e of this.expected.values()) {
      if (e.waiter) e.reject?.(new Error("interrupted"));
      e.waiter = undefined;
      e.reject = undefined;
    }
  }

  /**
   * Hands an arrival to its watcher. The attempt counts as closed only once the watcher settles
   * it (applied, or refused as not matching): a watcher that fails before (the database away)
   * leaves the attempt open, and the service's next try goes to the watcher's retry (found by
   * review: marking it closed here lost the callback and the attempt went out again).
   */
  private take(key: string, arrival: Arrival): CallbackArrival {
    this.expected.delete(key);
    arrival.taken = true;
    return {
      kind: "called",
      body: arrival.body,
      settle: (v) => {
        this.markClosed(key);
        arrival.settle(v);
      },
    };
  }

  private markClosed(key: string): void {
    // Bounded: past this many, a replay of an old attempt is told apart by reading its chunk.
    if (this.closed.size >= 100_000) this.closed.clear();
    this.closed.add(key);
  }

  private prune(): void {
    const now = Date.now();
    for (const [key, e] of this.expected) {
      if (e.expiresAt < now && !e.waiter) this.expected.delete(key);
    }
  }

  private async listen(): Promise<string> {
    const options = (this.options ??= this.settings());
    const server = createServer((req, res) => {
      this.handle(req, res).catch((err: unknown) => {
        this.log.warn(`callback route failed: ${(err as Error).message}`);
        if (!res.headersSent) reply(res, 500, { error: "callback could not be taken; try again" });
      });
    });
    this.server = server;
    // A body that trickles in is cut off (a slow client holds no request for long).
    server.requestTimeout = 60_000;
    server.headersTimeout = 10_000;
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(options.port ?? 0, options.host ?? "127.0.0.1", () => resolve());
    });
    const { port } = server.address() as AddressInfo;
    const base = options.publicUrl ?? `http://${options.host ?? "127.0.0.1"}:${port}`;
    this.log.info(`callback listener at ${base}`);
    return base.replace(/\/+$/, "");
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const [pathPart = "", query = ""] = (req.url ?? "").split("?", 2);
    const match = /^\/callbacks\/([^/]+)\/([^/]+)\/([^/]+)$/.exec(pathPart);
    if (!match) return reply(res, 404, { error: "POST /callbacks/<jobId>/<chunk>/<attempt>" });
    if (req.method !== "POST") return reply(res, 405, { error: "POST the outcome" });
    if (this.stopped) return reply(res, 503, { error: "the runner is stopping; try again" });
    let decoded: string;
    try {
      decoded = decodeURIComponent(match[1] ?? "");
    } catch {
      return reply(res, 404, { error: "unknown attempt" });
    }
    const parsedPath = pathSchema.safeParse({ jobId: decoded, chunk: match[2], attempt: match[3] });
    if (!parsedPath.success) return reply(res, 404, { error: "unknown attempt" });
    const ref = parsedPath.data;
    // The token first: nothing of an unauthenticated request's body is read.
    const token = new URLSearchParams(query).get("token") ?? "";
    const expected = Buffer.from(this.tokenOf(ref));
    const given = Buffer.from(token);
    if (given.length !== expected.length || !timingSafeEqual(given, expected)) {
      req.resume();
      return reply(res, 401, {
        error: "token missing or wrong for this attempt: POST to the callback URL as sent",
      });
    }
    const text = await readBody(req);
    if (text === undefined) return reply(res, 413, { error: `body over ${MAX_CALLBACK_BYTES} bytes` });
    let body: unknown;
    try {
      body = JSON.parse(text);
    } catch (err) {
      return reply(res, 400, { error: `body is not JSON: ${(err as Error).message}` });
    }
    const key = keyOf(ref);
    if (this.closed.has(key))
      return reply(res, 409, { error: "this attempt is closed (its callback came, or its time ran out)" });
    let entry = this.expected.get(key);
    if (!entry) {
      // Not sent by this process, or its watcher is gone: only an attempt still out may be held.
      const chunk = await readChunk(this.store, ref.jobId, ref.chunk);
      if (
        !chunk ||
        chunk.attempt !== ref.attempt ||
        (chunk.status !== "sent" && chunk.status !== "dispatching")
      ) {
        return reply(res, 409, {
          error: chunk
            ? `this attempt is closed (chunk ${ref.chunk} is ${chunk.status} at attempt ${chunk.attempt})`
            : "unknown attempt",
        });
      }
      entry = { expiresAt: Date.now() + 60 * 60_000 };
      this.expected.set(key, entry);
    }
    if (entry.arrival) return reply(res, 409, { error: "a callback for this attempt is being applied" });
    let settle: (v: Verdict) => void = () => undefined;
    const settled = new Promise<Verdict>((resolve) => (settle = resolve));
    const arrival: Arrival = { body, settled, settle };
    if (entry.waiter) entry.waiter(this.take(key, arrival));
    else entry.arrival = arrival;
    let timer: NodeJS.Timeout | undefined;
    const verdict = await Promise.race([
      settled,
      new Promise<undefined>((resolve) => {
        timer = setTimeout(() => resolve(undefined), SETTLE_WAIT_MS);
      }),
    ]);
    clearTimeout(timer);
    if (!verdict) {
      if (!arrival.taken) return reply(res, 202, { received: true }); // held until its watcher comes
      // Taken, not applied: the watcher failed or hangs. Open for the next try of the service.
      if (!this.closed.has(key) && !this.expected.has(key))
        this.expected.set(key, { expiresAt: Date.now() + 60 * 60_000 });
      return reply(res, 503, { error: "the callback was not applied yet; send it again" });
    }
    if (verdict.ok) return reply(res, 200, { ok: true });
    return reply(res, verdict.status, { error: verdict.error });
  }
}
