/**
 * The reference batch service: a real HTTP server implementing the service side of the
 * contract in README ("The batch service"), in each completion mode:
 * - `status` (default): answers 202 at once, processes the records in the background and sets
 *   each one's `batch_details` status to `processed` (or `failed`, at the configured fail rate);
 * - `response`: processes the chunk, then answers 200 with the outcome of every record
 *   (`{"results":[{"id":…,"status":…}]}`), without touching MongoDB;
 * - `callback`: answers 202 at once, processes, then POSTs `{token, results}` to the request's
 *   `callback.url`, trying again while the callback cannot be delivered.
 * A key it has seen before gets 409 and is not processed again (in "response" mode the 409
 * carries the first outcome again). Its ledger of deliveries is what tests check exactly-once
 * delivery against. Users copy it as the skeleton of their own service.
 */
import { createHash } from "node:crypto";
import { type IncomingMessage, type Server, type ServerResponse, createServer } from "node:http";
import { EJSON } from "bson";
import { request } from "undici";
import { z } from "zod";
import { reportRecordValues, reportRecords } from "../store/service-reports.js";
import { newStoreClient } from "../store/connection.js";

export interface BatchServiceOptions {
  /** MongoDB holding the chunkrelay collections whose `batch_details` this service updates. */
  mongoUri: string;
  /** Collection name prefix; default `batch_`. */
  prefix?: string;
  /** TCP port; default 0 (any free port). */
  port?: number;
  /** Interface; default 127.0.0.1. */
  host?: string;
  /** Time the service takes to process one chunk, in ms; default 20. */
  latencyMs?: number;
  /** Fraction of records (0..1) reported `failed`; default 0. */
  failRate?: number;
  /** Random source for the fail rate and faults (tests pass a seeded one); default Math.random. */
  random?: () => number;
  /** Fault injection: fractions (0..1) of requests, each default 0. */
  faults?: Partial<FaultRates>;
  /** How chunkrelay learns a chunk is done (the config's `completion`). Default: "status". */
  completion?: "status" | "response" | "callback";
  /**
   * Return a value for each processed record (`result`: `{fields, bytes, digest}` of the record
   * as received), as a service computing something would. Default: false.
   */
  results?: boolean;
}

/**
 * Faults the service can inject, each a fraction of requests (or chunks), default 0:
 * `error` 500 before accepting; `throttle` 429 with Retry-After; `reject` 400; `slow` answer
 * after `slowMs`; `drop` accept, then cut the connection without a reply; `stall` accept and
 * never process.
 */
export interface FaultRates {
  error: number;
  throttle: number;
  reject: number;
  slow: number;
  drop: number;
  stall: number;
  /** Delay of a slow reply, ms. Default 1000. */
  slowMs: number;
  /** Retry-After of a throttled reply, seconds. Default 1. */
  retryAfterS: number;
}

export type FaultCounts = Record<"error" | "throttle" | "reject" | "slow" | "drop" | "stall", number>;

export interface Delivery {
  key: string;
  jobId: string;
  chunk: number;
  attempt: number;
  /** Record ids as canonical Extended JSON strings. */
  recordIds: string[];
  receivedAt: number;
  /** When the service finished reporting this chunk's records (not set for duplicates). */
  processedAt?: number;
  duplicate: boolean;
}

export interface BatchService {
  readonly url: string;
  readonly port: number;
  /** Every request received, duplicates included, in arrival order. */
  readonly ledger: Delivery[];
  /** Most chunks being processed at the same time. */
  readonly maxConcurrent: number;
  /** Faults injected so far, by kind. */
  readonly faultCounts: FaultCounts;
  /** Resolves when every accepted chunk has been processed. */
  idle(): Promise<void>;
  stop(): Promise<void>;
}

const MAX_BODY_BYTES = 64 * 1024 * 1024;

const chunkBodySchema = z.object({
  jobId: z.string().min(1),
  chunk: z.number().int().positive(),
  attempt: z.number().int().positive(),
  records: z.array(z.object({ id: z.unknown() }).loose()),
  callback: z.object({ url: z.url(), token: z.string().optional() }).optional(),
});

/** One record's outcome, as a reply or a callback carries it. */
interface RecordResult {
  id: unknown;
  status: "processed" | "failed";
  error?: string;
  result?: unknown;
}

/** The value the reference service returns for a record: a little about what it received. */
export function describeRecord(record: Record<string, unknown>): {
  fields: number;
  bytes: number;
  digest: string;
} {
  const text = EJSON.stringify(record, { relaxed: false });
  return {
    fields: Object.keys(record).length - 1,
    bytes: Buffer.byteLength(text),
    digest: createHash("sha256").update(text).digest("hex").slice(0, 16),
  };
}

const idKey = (id: unknown) => EJSON.stringify({ id }, { relaxed: false });

function readBody(req: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const parts: Buffer[] = [];
    let size = 0;
    req.on("data", (b: Buffer) => {
      size += b.length;
      if (size > MAX_BODY_BYTES) {
        reject(new Error("body too large"));
        req.destroy();
        return;
      }
      parts.push(b);
    });
    req.on("end", () => resolve(Buffer.concat(parts).toString("utf8")));
    req.on("error", reject);
  });
}

/** A reply whose ids are Extended JSON, as the request's were. */
function replyEjson(res: ServerResponse, status: number, body: unknown): void {
  const text = EJSON.stringify(body, { relaxed: true });
  res.writeHead(status, { "content-type": "application/json", "content-length": Buffer.byteLength(text) });
  res.end(text);
}

function reply(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { "content-type": "application/json", "content-length": Buffer.byteLength(text) });
  res.end(text);
}

export async function startBatchService(options: BatchServiceOptions): Promise<BatchService> {
  const latencyMs = options.latencyMs ?? 20;
  const failRate = options.failRate ?? 0;
  const random = options.random ?? Math.random;
  const faults: FaultRates = {
    error: 0,
    throttle: 0,
    reject: 0,
    slow: 0,
    drop: 0,
    stall: 0,
    slowMs: 1000,
    retryAfterS: 1,
    ...options.faults,
  };
  const faultCounts: FaultCounts = { error: 0, throttle: 0, reject: 0, slow: 0, drop: 0, stall: 0 };
  const roll = (kind: keyof FaultCounts): boolean => {
    if (faults[kind] > 0 && random() < faults[kind]) {
      faultCounts[kind]++;
      return true;
    }
    return false;
  };
  const client = newStoreClient(options.mongoUri);
  const store = await client.connect(options.prefix);
  const ledger: Delivery[] = [];
  const seenKeys = new Set<string>();
  const completion = options.completion ?? "status";
  const withResults = options.results ?? false;
  /** Completion "response": each key's outcome, answered again to a repeated key. */
  const answers = new Map<string, Promise<RecordResult[]>>();
  const work = new Set<Promise<void>>();
  let concurrent = 0;
  let maxConcurrent = 0;
  let stopping = false;

  async function withRetries(work: () => Promise<void>): Promise<void> {
    for (let wait = 100; ; wait = Math.min(wait * 2, 5000)) {
      try {
        return await work();
      } catch (err) {
        if (stopping) throw err;
        await new Promise((r) => setTimeout(r, wait));
      }
    }
  }

  /** Works on a chunk for `latencyMs` and decides each record's outcome (the fail rate). */
  async function processChunk(
    body: z.infer<typeof chunkBodySchema>,
    delivery: Delivery,
  ): Promise<RecordResult[]> {
    concurrent++;
    maxConcurrent = Math.max(maxConcurrent, concurrent);
    try {
      if (latencyMs > 0) await new Promise((r) => setTimeout(r, latencyMs));
      const results: RecordResult[] = body.records.map((r) =>
        failRate > 0 && random() < failRate
          ? { id: r.id, status: "failed", error: "simulated failure (reference service fail rate)" }
          : { id: r.id, status: "processed", ...(withResults ? { result: describeRecord(r) } : {}) },
      );
      if (completion === "status") await reportStatuses(body, results);
      delivery.processedAt = Date.now();
      return results;
    } finally {
      concurrent--;
    }
  }

  /** Completion "status": each record's status into batch_details. */
  async function reportStatuses(body: z.infer<typeof chunkBodySchema>, results: RecordResult[]) {
    const valued = results.filter((r) => r.status === "processed" && r.result !== undefined);
    const ok = results.filter((r) => r.status === "processed" && r.result === undefined).map((r) => r.id);
    const failed = results.filter((r) => r.status === "failed").map((r) => r.id);
    // A real service keeps trying to report while its database is away; so does this one.
    await withRetries(async () => {
      const now = new Date();
      const { jobId, attempt } = body;
      if (valued.length > 0) {
        await reportRecordValues(store, {
          jobId,
          attempt,
          values: valued.map((r) => ({ id: r.id, result: r.result })),
          at: now,
        });
      }
      if (ok.length > 0) {
        await reportRecords(store, {
          jobId,
          attempt,
          recordIds: ok,
          at: now,
          outcome: { status: "processed" },
        });
      }
      if (failed.length > 0) {
        const error = "simulated failure (reference service fail rate)";
        await reportRecords(store, {
          jobId,
          attempt,
          recordIds: failed,
          at: now,
          outcome: { status: "failed", error },
        });
      }
    });
  }

  /**
   * Completion "callback": POSTs the outcome to the request's callback URL with its token. A
   * callback that cannot be delivered (connection refused, 5xx) is tried again for as long as the
   * chunk timeout would allow; a 4xx (a refused token, a closed attempt) is final.
   */
  async function callBack(body: z.infer<typeof chunkBodySchema>, results: RecordResult[]): Promise<void> {
    const cb = body.callback;
    if (!cb)
      throw new Error(`chunk ${body.chunk} asks for no callback (is the config's completion "callback"?)`);
    const text = EJSON.stringify({ ...(cb.token ? { token: cb.token } : {}), results }, { relaxed: true });
    for (let wait = 100, tries = 0; tries < 20 && !stopping; wait = Math.min(wait * 2, 5000), tries++) {
      try {
        const res = await request(cb.url, {
          method: "POST",
          body: text,
          headers: { "content-type": "application/json" },
        });
        await res.body.text();
        if (res.statusCode < 300) return;
        if (res.statusCode < 500) {
          process.stderr.write(
            `batch-service: callback for chunk ${body.chunk} refused: HTTP ${res.statusCode}\n`,
          );
          return;
        }
      } catch {
        // connection trouble: try again
      }
      await new Promise((r) => setTimeout(r, wait));
    }
  }

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    if (req.method === "GET" && req.url === "/health") return reply(res, 200, { ok: true });
    if (req.method !== "POST") return reply(res, 405, { error: "POST a chunk" });
    if (stopping) return reply(res, 503, { error: "shutting down" });
    const key = req.headers["idempotency-key"];
    if (typeof key !== "string" || key.length === 0)
      return reply(res, 400, { error: "Idempotency-Key header is required" });
    let body: z.infer<typeof chunkBodySchema>;
    try {
      const parsed = chunkBodySchema.safeParse(EJSON.parse(await readBody(req), { relaxed: true }));
      if (!parsed.success)
        return reply(res, 400, { error: `bad chunk: ${parsed.error.issues[0]?.message ?? "invalid"}` });
      body = parsed.data;
    } catch (err) {
      return reply(res, 400, { error: `body is not JSON: ${(err as Error).message}` });
    }
    // Faults before acceptance: nothing is recorded as accepted, the client must try again.
    if (roll("error")) return reply(res, 500, { error: "injected fault: internal error" });
    if (roll("throttle")) {
      res.setHeader("retry-after", String(faults.retryAfterS));
      return reply(res, 429, { error: "injected fault: throttled" });
    }
    if (roll("reject")) return reply(res, 400, { error: "injected fault: chunk rejected" });
    const duplicate = seenKeys.has(key);
    const delivery: Delivery = {
      key,
      jobId: body.jobId,
      chunk: body.chunk,
      attempt: body.attempt,
      recordIds: body.records.map((r) => idKey(r.id)),
      receivedAt: Date.now(),
      duplicate,
    };
    ledger.push(delivery);
    if (completion === "response") {
      // The reply is the outcome: the same key gets the same outcome again (409), never a second run.
      let answer = answers.get(key);
      if (!answer) {
        seenKeys.add(key);
        answer = processChunk(body, delivery);
        answers.set(key, answer);
        track(answer);
      }
      if (roll("stall")) return; // accepted, never answered: the client's timeout sends it again
      const results = await answer;
      if (roll("drop")) {
        req.socket.destroy();
        return;
      }
      return replyEjson(res, duplicate ? 409 : 200, { results });
    }
    if (duplicate) return reply(res, 409, { error: "already accepted under this Idempotency-Key" });
    if (completion === "callback" && !body.callback) {
      return reply(res, 400, { error: "this service calls back: the request must carry callback.url" });
    }
    seenKeys.add(key);
    const stalled = roll("stall");
    const p = stalled
      ? Promise.resolve()
      : processChunk(body, delivery).then((results) =>
          completion === "callback" ? callBack(body, results) : undefined,
        );
    track(p);
    // Faults after acceptance: the chunk is taken, but the client does not learn it in time.
    if (roll("drop")) {
      req.socket.destroy();
      return;
    }
    if (roll("slow")) await new Promise((r) => setTimeout(r, faults.slowMs));
    return reply(res, 202, { accepted: body.records.length });
  }

  function track(p: Promise<unknown>): void {
    const q = p.then(
      () => undefined,
      (err: unknown) => {
        process.stderr.write(`batch-service: processing a chunk failed: ${String(err)}\n`);
      },
    );
    work.add(q);
    void q.finally(() => work.delete(q));
  }

  const server: Server = createServer((req, res) => {
    handle(req, res).catch((err: unknown) => reply(res, 500, { error: String(err) }));
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(options.port ?? 0, options.host ?? "127.0.0.1", () => resolve());
  });
  const address = server.address();
  const port = typeof address === "object" && address ? address.port : 0;

  return {
    url: `http://${options.host ?? "127.0.0.1"}:${port}/chunks`,
    port,
    ledger,
    get maxConcurrent() {
      return maxConcurrent;
    },
    faultCounts,
    async idle() {
      while (work.size > 0) await Promise.all([...work]);
    },
    async stop() {
      stopping = true;
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      while (work.size > 0) await Promise.all([...work]);
      await client.close();
    },
  };
}
