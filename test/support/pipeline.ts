/** Helpers for pipeline tests: step dependencies with a recording hand-over, and fake services. */
import { type IncomingMessage, type Server, createServer } from "node:http";
import { EJSON } from "bson";
import type { HandOver, DispatchPayload, StepDeps, WatchPayload } from "../../src/steps/handover.js";
import { afterAll, afterEach, beforeAll } from "vitest";
import { Store } from "../../src/store/store.js";
import { useTestDatabase } from "./db.js";
import { buildStepDeps } from "../../src/runtimes/step-deps.js";

export type HandOverCall =
  | { kind: "initialize"; payload: Record<string, unknown>; key: string }
  | { kind: "serve"; payload: DispatchPayload; key: string; delayMs?: number }
  | { kind: "watch"; payload: WatchPayload; key: string };

/** A hand-over that only records what it was asked to do. */
export function recordingHandOver(): HandOver & { calls: HandOverCall[] } {
  const calls: HandOverCall[] = [];
  return {
    calls,
    initialize(payload, key) {
      calls.push({ kind: "initialize", payload, key });
      return Promise.resolve();
    },
    serve(payload, key, delayMs) {
      calls.push({ kind: "serve", payload, key, ...(delayMs !== undefined ? { delayMs } : {}) });
      return Promise.resolve();
    },
    watch(payload, key) {
      calls.push({ kind: "watch", payload, key });
      return Promise.resolve();
    },
  };
}

export function stepDeps(store: Store, overrides: Partial<StepDeps> = {}): StepDeps {
  return buildStepDeps({
    store,
    handOver: recordingHandOver(),
    random: () => 0.5,
    env: {},
    owner: "test-runner",
    ...overrides,
  });
}

export interface FakeRequest {
  key: string;
  headers: IncomingMessage["headers"];
  body: {
    jobId: string;
    chunk: number;
    attempt: number;
    records: Array<{ id: unknown; [k: string]: unknown }>;
  };
}

export interface FakeReply {
  status: number;
  headers?: Record<string, string>;
  body?: string;
  /** What the fake service then reports for the chunk's records. */
  report?: "processed" | "failed" | "none";
}

/** An HTTP batch service whose every reply the test decides; it reports into `store`. */
export async function startFakeService(
  store: Store,
  decide: (req: FakeRequest, n: number) => FakeReply | Promise<FakeReply>,
): Promise<{
  url: string;
  requests: FakeRequest[];
  /** Resolves once every report of the replies sent so far is written. */
  reportsWritten(): Promise<void>;
  stop(): Promise<void>;
}> {
  const requests: FakeRequest[] = [];
  // The report is written after the reply, as a real service would: tests that need it done
  // wait on these rather than on a guessed delay.
  const reports = new Set<Promise<void>>();
  const server: Server = createServer((req, res) => {
    const parts: Buffer[] = [];
    req.on("data", (b: Buffer) => parts.push(b));
    req.on("end", () => {
      const report = (async () => {
        const body = EJSON.parse(Buffer.concat(parts).toString("utf8"), {
          relaxed: true,
        }) as FakeRequest["body"];
        const request: FakeRequest = {
          key: String(req.headers["idempotency-key"]),
          headers: req.headers,
          body,
        };
        requests.push(request);
        const reply = await decide(request, requests.length);
        res.writeHead(reply.status, { "content-type": "application/json", ...(reply.headers ?? {}) });
        res.end(reply.body ?? "{}");
        if (reply.report && reply.report !== "none") {
          await store.details.updateMany(
            { jobId: body.jobId, recordId: { $in: body.records.map((r) => r.id) }, status: "sent" },
            {
              $set: {
                status: reply.report,
                processedAt: new Date(),
                ...(reply.report === "failed" ? { error: "fake failure" } : {}),
              },
            },
          );
        }
      })();
      reports.add(report);
      void report.finally(() => reports.delete(report));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", () => resolve()));
  const address = server.address();
  const port = typeof address === "object" && address ? address.port : 0;
  return {
    url: `http://127.0.0.1:${port}/chunks`,
    requests,
    reportsWritten: async () => {
      while (reports.size > 0) await Promise.allSettled([...reports]);
    },
    stop: async () => {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/**
 * A test file's database with chunkrelay's collections and indexes, plus a list of clean-ups
 * (servers, clients) run after each test.
 */
export function usePipelineStore(label: string) {
  const t = useTestDatabase(label);
  let store: Store | undefined;
  const cleanups: Array<() => Promise<void>> = [];
  const runCleanups = async () => {
    for (const c of cleanups.splice(0).reverse()) await c();
  };
  beforeAll(async () => {
    store = new Store(t.db());
    await store.ensureIndexes();
  });
  afterEach(runCleanups);
  afterAll(runCleanups);
  return {
    t,
    cleanups,
    store: () =>
      store ??
      (() => {
        throw new Error("store used before beforeAll");
      })(),
  };
}
