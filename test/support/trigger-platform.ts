/**
 * A stand-in for the Trigger.dev platform, so the task bodies run through the real SDK: an HTTP
 * server on port 0 that answers the API calls the SDK makes (trigger, batch trigger, tags, run
 * metadata, duration waits) and records them, plus a runner that executes triggered runs the way a
 * worker does — a task context per run, the SDK's own metadata manager flushing to the server.
 *
 * What it does not reproduce, because only the platform has it: checkpoint and restore of a
 * waiting run (a wait here resolves at once), queues and concurrency limits (runs execute one at
 * a time, the first due first), retries of a
 * failed attempt, and the webapp's exact idempotency rules (a key seen before returns the earlier
 * run, as the platform does within the key's TTL).
 *
 * Import this module before anything that imports `@trigger.dev/sdk`: the SDK takes its metadata
 * manager for `metadata.root`/`metadata.parent` once, when it loads.
 */
import { type IncomingMessage, type Server, type ServerResponse, createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { randomBytes } from "node:crypto";
import { apiClientManager, runMetadata, runtime, taskContext } from "@trigger.dev/core/v3";
import { StandardMetadataManager } from "@trigger.dev/core/v3/workers";

type Json = Record<string, unknown>;

// The client is created per call from TRIGGER_API_URL / TRIGGER_SECRET_KEY, which a test sets
// once its server listens.
const lazyClient = new Proxy(
  {},
  {
    get: (_target, key) => {
      const client = apiClientManager.clientOrThrow() as unknown as Record<string | symbol, unknown>;
      const value = client[key];
      return typeof value === "function" ? (value as (...a: unknown[]) => unknown).bind(client) : value;
    },
  },
) as ConstructorParameters<typeof StandardMetadataManager>[0];

const manager = new StandardMetadataManager(lazyClient);
if (!runMetadata.setGlobalManager(manager)) {
  throw new Error("a run metadata manager was registered before test/support/trigger-platform.ts");
}
/** Every `wait.for` that reached the runtime (waits above 5 s; shorter ones never leave the SDK). */
export const runtimeWaits: Json[] = [];

/**
 * Wait tokens (`wait.createToken`): completed by a POST to their URL, or timed out at their
 * `timeout`. A run waiting on one (`wait.forToken`) resumes when either happens — at once when it
 * already has (the platform would checkpoint the run meanwhile).
 */
export interface PlatformToken {
  id: string;
  url: string;
  idempotencyKey: string | undefined;
  timeoutAt: number | undefined;
  tags: string[];
  /** The body of the callback that completed it, as JSON text. */
  output?: string;
  /** Who is waiting for it. */
  waiters: Array<() => void>;
}
const tokens = new Map<string, PlatformToken>();

function waitForToken(token: PlatformToken): Promise<{ ok: boolean; output?: string; outputType?: string }> {
  return new Promise((resolve) => {
    const settle = () => {
      clearTimeout(timer);
      if (token.output !== undefined)
        resolve({ ok: true, output: token.output, outputType: "application/json" });
      else
        resolve({
          ok: false,
          output: JSON.stringify({ message: `Wait for token ${token.id} timed out` }),
          outputType: "application/json",
        });
    };
    const left = token.output !== undefined ? 0 : (token.timeoutAt ?? Number.POSITIVE_INFINITY) - Date.now();
    const timer = setTimeout(settle, Math.max(0, Math.min(left, 2 ** 31 - 1)));
    token.waiters.push(settle);
  });
}

runtime.setGlobalRuntimeManager({
  disable() {},
  waitForWaitpoint(params: Json) {
    const token = tokens.get(params.waitpointFriendlyId as string);
    if (token) return waitForToken(token);
    runtimeWaits.push(params);
    return Promise.resolve({ ok: true });
  },
  waitForTask() {
    return Promise.reject(new Error("triggerAndWait is not used by chunkrelay"));
  },
  waitForBatch() {
    return Promise.reject(new Error("batchTriggerAndWait is not used by chunkrelay"));
  },
});

export interface ApiRequest {
  method: string;
  path: string;
  /** The run the request was made from (the task context's run), if any. */
  fromRun: string | undefined;
  body: Json | Json[] | undefined;
  /** When the stand-in received it (ms since the epoch). */
  receivedAt: number;
}

export interface PlatformRun {
  id: string;
  taskId: string;
  payload: unknown;
  tags: string[];
  metadata: Json;
  parentId: string | undefined;
  rootId: string | undefined;
  createdAt: Date;
  /** When the run may start: its trigger's `delay`, or at once. */
  dueAt: Date;
  /** The trigger's options as the SDK sent them (idempotency key, TTL, delay, concurrency key…). */
  options: Json;
  /** Replayed from this run (copied payload and tags, as the platform's replay does). */
  replayOf?: string;
  executed: boolean;
}

export interface FakeTriggerApi {
  url: string;
  requests: ApiRequest[];
  runs: Map<string, PlatformRun>;
  /** Wait tokens created (kept for the test file's life; ids are random, so they never repeat). */
  tokens: Map<string, PlatformToken>;
  /** Runs triggered and not yet executed, the first due first. */
  pending(): PlatformRun[];
  /** Starts a root run, as the dashboard's Test page does. */
  startRun(taskId: string, payload: unknown, tags?: string[]): PlatformRun;
  /** A replay from the dashboard: a new run with the old one's payload and tags. */
  replay(runId: string): PlatformRun;
  close(): Promise<void>;
}

let currentRunId: string | undefined;

export async function startFakeTriggerApi(): Promise<FakeTriggerApi> {
  const requests: ApiRequest[] = [];
  const runs = new Map<string, PlatformRun>();
  let baseUrl = "";
  const byIdempotencyKey = new Map<string, string>();
  let next = 1;
  const newRun = (taskId: string, payload: unknown, options: Json, parentId: string | undefined) => {
    const parent = parentId === undefined ? undefined : runs.get(parentId);
    const run: PlatformRun = {
      id: `run_${next++}`,
      taskId,
      payload,
      tags: [...new Set((options.tags as string[] | undefined) ?? [])],
      metadata: {},
      parentId: parent?.id,
      rootId: parent ? (parent.rootId ?? parent.id) : undefined,
      createdAt: new Date(),
      dueAt: typeof options.delay === "string" ? new Date(options.delay) : new Date(),
      options,
      executed: false,
    };
    runs.set(run.id, run);
    return run;
  };
  const trigger = (taskId: string, payload: unknown, options: Json): { id: string; isCached: boolean } => {
    const key = options.idempotencyKey as string | undefined;
    const earlier = key === undefined ? undefined : byIdempotencyKey.get(key);
    if (earlier !== undefined) return { id: earlier, isCached: true };
    const run = newRun(taskId, payload, options, options.parentRunId as string | undefined);
    if (key !== undefined) byIdempotencyKey.set(key, run.id);
    return { id: run.id, isCached: false };
  };
  const applyOperations = (runId: string | undefined, operations: unknown) => {
    const run = runId === undefined ? undefined : runs.get(runId);
    if (!run || !Array.isArray(operations)) return;
    for (const op of operations as Json[]) {
      if (op.type === "set") run.metadata[op.key as string] = op.value;
      else if (op.type === "delete") delete run.metadata[op.key as string];
      else throw new Error(`metadata operation ${String(op.type)} is not used by chunkrelay`);
    }
  };
  const handle = async (req: IncomingMessage, res: ServerResponse) => {
    let raw = "";
    for await (const chunk of req) raw += String(chunk);
    const path = req.url ?? "";
    const ndjson = (req.headers["content-type"] ?? "").includes("ndjson");
    const body =
      raw === ""
        ? undefined
        : ndjson
          ? raw
              .trim()
              .split("\n")
              .map((l) => JSON.parse(l) as Json)
          : (JSON.parse(raw) as Json);
    requests.push({ method: req.method ?? "", path, fromRun: currentRunId, body, receivedAt: Date.now() });
    const reply = (status: number, json: unknown) => {
      res.writeHead(status, { "content-type": "application/json", "x-should-retry": "false" });
      res.end(JSON.stringify(json));
    };
    let m: RegExpExecArray | null;
    if ((m = /^\/api\/v1\/tasks\/([^/]+)\/trigger$/.exec(path)) && req.method === "POST") {
      const b = body as Json;
      const payload = JSON.parse(b.payload as string) as { json: unknown };
      return reply(200, trigger(m[1] as string, payload.json, (b.options as Json | undefined) ?? {}));
    }
    if (path === "/api/v3/batches" && req.method === "POST") {
      const b = body as Json;
      return reply(200, { id: `batch_${next++}`, runCount: b.runCount, isCached: false });
    }
    if ((m = /^\/api\/v3\/batches\/([^/]+)\/items$/.exec(path)) && req.method === "POST") {
      const items = body as Json[];
      let deduplicated = 0;
      for (const item of items) {
        const payload = JSON.parse(item.payload as string) as { json: unknown };
        const options = { ...((item.options as Json | undefined) ?? {}), parentRunId: currentRunId };
        if (trigger(item.task as string, payload.json, options).isCached) deduplicated++;
      }
      return reply(200, {
        id: m[1],
        itemsAccepted: items.length - deduplicated,
        itemsDeduplicated: deduplicated,
        sealed: true,
      });
    }
    if ((m = /^\/api\/v1\/runs\/([^/]+)\/tags$/.exec(path)) && req.method === "POST") {
      const run = runs.get(m[1] as string);
      if (!run) return reply(404, { error: "run not found" });
      const added = ((body as Json).tags as string[]).filter((t) => t.trim() !== "" && !run.tags.includes(t));
      if (run.tags.length + added.length > 10) return reply(422, { error: "Runs can only have 10 tags" });
      run.tags.push(...added);
      return reply(200, { message: "ok" });
    }
    if ((m = /^\/api\/v1\/runs\/([^/]+)\/metadata$/.exec(path)) && req.method === "PUT") {
      const run = runs.get(m[1] as string);
      if (!run) return reply(404, { error: "run not found" });
      const b = body as Json;
      applyOperations(run.id, b.operations);
      applyOperations(run.parentId ?? run.id, b.parentOperations);
      applyOperations(run.rootId ?? run.id, b.rootOperations);
      return reply(200, { metadata: run.metadata });
    }
    if ((m = /^\/engine\/v1\/runs\/([^/]+)\/wait\/duration$/.exec(path)) && req.method === "POST") {
      return reply(200, { waitUntil: (body as Json).date, waitpoint: { id: `waitpoint_${next++}` } });
    }
    if (path === "/api/v1/waitpoints/tokens" && req.method === "POST") {
      const b = (body ?? {}) as Json;
      const key = b.idempotencyKey as string | undefined;
      const earlier =
        key === undefined ? undefined : [...tokens.values()].find((tk) => tk.idempotencyKey === key);
      if (earlier) return reply(200, { id: earlier.id, isCached: true, url: earlier.url });
      const id = `waitpoint_token_${randomBytes(6).toString("hex")}`;
      const token: PlatformToken = {
        id,
        url: `${baseUrl}/api/v1/waitpoints/tokens/${id}/callback/${randomBytes(8).toString("hex")}`,
        idempotencyKey: key,
        timeoutAt: typeof b.timeout === "string" ? Date.parse(b.timeout) : undefined,
        tags: (b.tags as string[] | undefined) ?? [],
        waiters: [],
      };
      tokens.set(id, token);
      return reply(200, { id, isCached: false, url: token.url });
    }
    if (
      (m = /^\/api\/v1\/waitpoints\/tokens\/([^/]+)\/callback\/([^/]+)$/.exec(path)) &&
      req.method === "POST"
    ) {
      const token = tokens.get(m[1] as string);
      if (!token || !token.url.endsWith(`/${m[2]}`)) return reply(404, { error: "no such waitpoint" });
      // The first completion wins; the platform ignores later ones.
      if (token.output === undefined && (token.timeoutAt ?? Infinity) > Date.now()) {
        token.output = raw === "" ? "{}" : raw;
        for (const w of token.waiters.splice(0)) w();
      }
      return reply(200, { success: true });
    }
    if (
      (m = /^\/engine\/v1\/runs\/([^/]+)\/waitpoints\/tokens\/([^/]+)\/wait$/.exec(path)) &&
      req.method === "POST"
    ) {
      return reply(tokens.has(m[2] as string) ? 200 : 404, { success: tokens.has(m[2] as string) });
    }
    return reply(404, { error: `not a Trigger.dev API route this stand-in knows: ${req.method} ${path}` });
  };
  const server: Server = createServer((req, res) => {
    handle(req, res).catch((err: unknown) => {
      res.writeHead(500, { "x-should-retry": "false" });
      res.end(String(err));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  baseUrl = url;
  process.env.TRIGGER_API_URL = url;
  process.env.TRIGGER_SECRET_KEY = "tr_dev_chunkrelay_tests";
  return {
    url,
    requests,
    runs,
    tokens,
    pending: () =>
      [...runs.values()].filter((r) => !r.executed).sort((a, b) => a.dueAt.getTime() - b.dueAt.getTime()),
    startRun: (taskId, payload, tags = []) => newRun(taskId, payload, { tags }, undefined),
    replay(runId) {
      const old = runs.get(runId);
      if (!old) throw new Error(`no run ${runId}`);
      const run = newRun(old.taskId, old.payload, { tags: old.tags }, undefined);
      run.replayOf = old.id;
      return run;
    },
    async close() {
      manager.reset();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      delete process.env.TRIGGER_API_URL;
      delete process.env.TRIGGER_SECRET_KEY;
    },
  };
}

/** The context a worker gives a run's body (the fields chunkrelay reads, and the ones the SDK needs). */
export function contextOf(run: PlatformRun) {
  return {
    task: { id: run.taskId, filePath: `src/tasks/${run.taskId}.ts` },
    attempt: { number: 1, startedAt: new Date() },
    run: {
      id: run.id,
      tags: [...run.tags],
      isTest: false,
      isReplay: run.replayOf !== undefined,
      createdAt: run.createdAt,
      startedAt: new Date(),
      ...(run.parentId ? { parentTaskRunId: run.parentId } : {}),
      ...(run.rootId ? { rootTaskRunId: run.rootId } : {}),
    },
    machine: { name: "small-1x", cpu: 0.5, memory: 0.5, centsPerMs: 0 },
    queue: { id: `queue_${run.taskId}`, name: `task/${run.taskId}` },
    environment: { id: "env_test", slug: "prod", type: "PRODUCTION" },
    organization: { id: "org_test", slug: "test", name: "test" },
    project: { id: "project_test", ref: "proj_test", slug: "test", name: "test" },
  };
}

/**
 * Executes one run as a managed worker does: its task context, the metadata manager pointed at the
 * run (flushing every `flushMs` like the worker's 1 s timer, and once at the end).
 */
export async function executeRun<T>(
  run: PlatformRun,
  body: (payload: unknown, ctx: ReturnType<typeof contextOf>) => Promise<T>,
  flushMs = 1000,
): Promise<{ result?: T; error?: unknown }> {
  const ctx = contextOf(run);
  run.executed = true;
  taskContext.setGlobalTaskContext({
    ctx,
    worker: { id: "worker_test", version: "20261204.1", contentHash: "test", engine: "V2" },
    isWarmStart: false,
  } as unknown as Parameters<typeof taskContext.setGlobalTaskContext>[0]);
  currentRunId = run.id;
  manager.reset();
  manager.runId = run.id;
  manager.runIdIsRoot = run.rootId === undefined;
  manager.enterWithMetadata({ ...run.metadata } as Parameters<typeof manager.enterWithMetadata>[0]);
  manager.startPeriodicFlush(flushMs);
  try {
    return { result: await body(run.payload, ctx) };
  } catch (error) {
    return { error };
  } finally {
    manager.stopPeriodicFlush();
    await manager.flush();
    manager.reset();
    currentRunId = undefined;
    delete (globalThis as unknown as Record<symbol, Record<string, unknown>>)[
      Symbol.for("dev.trigger.ts.api")
    ]?.["task-context"];
  }
}

/** A task body as a worker runs it: the run's payload and context. */
export type RunBody = (payload: unknown, ctx: ReturnType<typeof contextOf>) => Promise<unknown>;

/**
 * Executes triggered runs until the chain ends, as workers would one at a time: the first due
 * first, a delayed run not before its time. `bodies` maps task ids to their bodies (passed in:
 * this module must load before anything that imports the SDK).
 */
export async function drainRuns(
  api: FakeTriggerApi,
  bodies: Record<string, RunBody>,
  limit = 200,
): Promise<PlatformRun[]> {
  const done: PlatformRun[] = [];
  for (let run = api.pending()[0]; run; run = api.pending()[0]) {
    if (done.length >= limit) throw new Error(`the chain did not end within ${limit} runs`);
    const early = run.dueAt.getTime() - Date.now();
    if (early > 0) await new Promise((r) => setTimeout(r, early));
    const body = bodies[run.taskId];
    if (!body) throw new Error(`no body for task ${run.taskId}`);
    const { error } = await executeRun(run, body, 20);
    if (error) throw error instanceof Error ? error : new Error(JSON.stringify(error));
    done.push(run);
  }
  return done;
}
