/**
 * The status page and its JSON API (`npx chunkrelay serve`): jobs with live progress, one job's
 * report with its chunk timeline, step statistics, a config's backlog, exceptions, workers. Read-only;
 * bound to 127.0.0.1 unless told otherwise; with a token, every request must carry it
 * (`Authorization: Bearer …`, or `?token=` for the page). Built on node:http — a handful of GET
 * routes need no framework.
 */
import { timingSafeEqual } from "node:crypto";
import { type IncomingMessage, type Server, type ServerResponse, createServer } from "node:http";
import { EJSON } from "bson";
import { BadInputError, isBadInput } from "../common/errors.js";
import { readBacklog } from "../queries/backlog.js";
import { listExceptions, listJobExceptionsPage } from "../queries/set-aside-records.js";
import { jobListCursorOf, jobReport, listJobs, parseJobListCursor } from "../queries/jobs.js";
import { readJobTimeline } from "../queries/job-timeline.js";
import { readConfigView } from "../queries/config-view.js";
import { nextScheduledRun } from "../admin/scheduled-runs.js";
import { listJobResults, parseResultCursor } from "../queries/results.js";
import { stepStats } from "../queries/step-stats.js";
import { configNameSchema } from "../config/schema.js";
import { listConfigNames } from "../store/configs.js";
import type { Store } from "../store/store.js";
import { listWorkers, readWorker } from "../store/workers.js";
import { z } from "zod";
import { STATUS_PAGE_HTML } from "./page.js";

export interface StatusServerOptions {
  store: Store;
  /** Default 0 (any free port). */
  port?: number;
  /** Default 127.0.0.1: the page is not exposed beyond this machine unless asked. */
  host?: string;
  /** When set, every request must present it. Default: none. */
  token?: string;
  /**
   * Where the configs' header secrets are read from, to redact the service's text in errors and
   * exception reasons. Default: process.env.
   */
  env?: Record<string, string | undefined>;
}

export interface StatusServer {
  url: string;
  stop(): Promise<void>;
}

/** `/api/workers/<id>`: a worker id (`<host>:<pid>:<hex>`), printable, of a sane length. */
const workerIdSchema = z
  .string()
  .min(1)
  .max(300, "longer than 300 characters")
  .refine((id) => !/\p{Cc}/u.test(id), "holds a control character");

/** `?all=`: also stale and stopped workers. Default: false (live ones only, as `chunkrelay workers`). */
const workersQuerySchema = z.object({
  all: z.enum(["true", "false", "1", "0"]).optional(),
});

/**
 * `/api/jobs?config=&status=&mode=&limit=&before=`: jobs newest first, filtered, a page at a
 * time. `limit` default 50, at most 200; `before` is the cursor the previous page's `Link:
 * <…>; rel="next"` header carried. (`token` is the page's own parameter.)
 */
const jobsQuerySchema = z
  .object({
    config: configNameSchema.optional(),
    status: z.enum(["planning", "running", "succeeded", "failed"]).optional(),
    mode: z.enum(["full", "incremental", "backfill", "sample", "exceptions"]).optional(),
    limit: z.coerce.number().int().min(1).max(200).optional(),
    before: z.string().min(1).max(400).optional(),
    token: z.string().optional(),
  })
  .strict();

/** `?after=&limit=` of a job's results (default 20, at most 100; `withResult` only valued records) and exceptions. */
const pageQuerySchema = z
  .object({
    after: z.string().min(1).max(2000).optional(),
    limit: z.coerce.number().int().min(1).max(100).optional(),
    withResult: z.enum(["true", "false"]).optional(),
    token: z.string().optional(),
  })
  .strict();

/** A query string a schema refuses: 400, saying which parameter and why. */
class QueryError extends BadInputError {}

/** A value read from the query string (a cursor): refused as the client's mistake, 400. */
function fromQuery<T>(read: () => T): T {
  try {
    return read();
  } catch (err) {
    throw new QueryError(err instanceof Error ? err.message : String(err));
  }
}

function parseQuery<T>(schema: z.ZodType<T>, url: URL): T {
  const raw: Record<string, string> = {};
  for (const [k, v] of url.searchParams) {
    if (k in raw) throw new QueryError(`parameter '${k}' is given twice`);
    raw[k] = v;
  }
  const parsed = schema.safeParse(raw);
  if (!parsed.success) {
    const i = parsed.error.issues[0];
    throw new QueryError(
      `bad query: ${i?.path.length ? `${i.path.join(".")}: ` : ""}${i?.message ?? "invalid"}`,
    );
  }
  return parsed.data;
}

function send(res: ServerResponse, status: number, body: unknown): void {
  const text = EJSON.stringify(body, { relaxed: true });
  res.writeHead(status, { "content-type": "application/json; charset=utf-8", "cache-control": "no-store" });
  res.end(text);
}

function authorized(req: IncomingMessage, url: URL, token: string | undefined): boolean {
  if (!token) return true;
  const header = req.headers.authorization;
  // The auth scheme is case-insensitive (RFC 9110 §11.1): "bearer x" is as good as "Bearer x".
  const scheme = /^bearer\s+(.*)$/i.exec(header ?? "");
  const given = scheme ? (scheme[1] ?? "").trim() : (url.searchParams.get("token") ?? "");
  const a = Buffer.from(given);
  const b = Buffer.from(token);
  return a.length === b.length && timingSafeEqual(a, b);
}

export async function startStatusServer(options: StatusServerOptions): Promise<StatusServer> {
  const { store } = options;
  const env = options.env ?? process.env;
  const host = options.host ?? "127.0.0.1";

  async function route(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? "/", "http://status.local");
    if (req.method !== "GET") return send(res, 405, { error: "read-only: GET only" });
    if (!authorized(req, url, options.token)) return send(res, 401, { error: "a bearer token is required" });
    let parts: string[];
    try {
      parts = url.pathname.split("/").filter(Boolean).map(decodeURIComponent);
    } catch {
      // A malformed %-escape is the client's mistake, not a server error.
      return send(res, 400, { error: "malformed %-encoding in the path" });
    }
    // The page itself, at each of its views' URLs: the list, one job, one config. The script
    // draws the view the path names, so a reload or a shared link shows the same view.
    if (
      parts.length === 0 ||
      (parts.length === 2 && (parts[0] === "jobs" || parts[0] === "configs") && parts[1] !== "")
    ) {
      res.writeHead(200, {
        "content-type": "text/html; charset=utf-8",
        "cache-control": "no-store",
        // Everything the page shows comes from outside; nothing but its own script may run.
        "content-security-policy":
          "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self'; img-src 'self' data:",
        "x-content-type-options": "nosniff",
      });
      res.end(STATUS_PAGE_HTML);
      return;
    }
    if (parts[0] !== "api") return send(res, 404, { error: "not found" });
    const config = url.searchParams.get("config") ?? undefined;
    switch (parts[1]) {
      case "jobs": {
        if (parts[2] === undefined) {
          const q = parseQuery(jobsQuerySchema, url);
          const limit = q.limit ?? 50;
          const jobs = await listJobs(store, {
            config: q.config,
            status: q.status,
            mode: q.mode,
            limit,
            before: q.before === undefined ? undefined : fromQuery(() => parseJobListCursor(q.before ?? "")),
          });
          const last = jobs[jobs.length - 1];
          if (jobs.length === limit && last) {
            const next = new URLSearchParams();
            for (const k of ["config", "status", "mode", "limit"] as const)
              if (q[k] !== undefined) next.set(k, String(q[k]));
            next.set("before", jobListCursorOf(last));
            res.setHeader("link", `</api/jobs?${next.toString()}>; rel="next"`);
          }
          return send(res, 200, jobs);
        }
        if (parts.length > 4) return send(res, 404, { error: "not found" });
        switch (parts[3]) {
          case undefined:
            return send(res, 200, await jobReport(store, parts[2], env));
          case "chunks":
            return send(res, 200, (await jobReport(store, parts[2], env)).chunks);
          case "timeline":
            return send(res, 200, await readJobTimeline(store, parts[2]));
          case "results": {
            const q = parseQuery(pageQuerySchema, url);
            if (q.after !== undefined) fromQuery(() => parseResultCursor(q.after ?? ""));
            return send(
              res,
              200,
              await listJobResults(store, parts[2], {
                limit: q.limit ?? 20,
                ...(q.after !== undefined ? { after: q.after } : {}),
                ...(q.withResult === "true" ? { onlyWithResult: true } : {}),
              }),
            );
          }
          case "exceptions": {
            const q = parseQuery(pageQuerySchema, url);
            if (q.after !== undefined) fromQuery(() => parseResultCursor(q.after ?? ""));
            return send(
              res,
              200,
              await listJobExceptionsPage(
                store,
                parts[2],
                { limit: q.limit ?? 20, ...(q.after !== undefined ? { after: q.after } : {}) },
                env,
              ),
            );
          }
          default:
            return send(res, 404, { error: "not found" });
        }
      }
      case "configs":
        if (parts[2] === undefined) return send(res, 200, await listConfigNames(store));
        if (parts.length > 3) return send(res, 404, { error: "not found" });
        return send(
          res,
          200,
          await readConfigView(store, parts[2], (c) => nextScheduledRun(c, env, new Date())),
        );
      case "stats": {
        const job = url.searchParams.get("job");
        return send(res, 200, await stepStats(store, job ? { jobId: job } : {}));
      }
      case "backlog":
        if (!parts[2]) return send(res, 400, { error: "name a config: /api/backlog/<config>" });
        return send(res, 200, await readBacklog(store, parts[2]));
      case "exceptions": {
        const job = url.searchParams.get("job");
        return send(
          res,
          200,
          await listExceptions(store, { ...(job ? { jobId: job } : {}), ...(config ? { config } : {}) }, env),
        );
      }
      case "workers": {
        const now = new Date();
        if (parts[2] === undefined) {
          const query = workersQuerySchema.safeParse({ all: url.searchParams.get("all") ?? undefined });
          if (!query.success) return send(res, 400, { error: "all must be true or false" });
          const all = query.data.all === "true" || query.data.all === "1";
          return send(res, 200, await listWorkers(store, { now, all }));
        }
        if (parts.length > 3) return send(res, 404, { error: "not found" });
        const id = workerIdSchema.safeParse(parts[2]);
        if (!id.success) return send(res, 400, { error: `bad worker id: ${id.error.issues[0]?.message}` });
        const worker = await readWorker(store, id.data, now);
        if (!worker) return send(res, 404, { error: "no such worker (or it aged out)" });
        return send(res, 200, worker);
      }
      default:
        return send(res, 404, { error: "not found" });
    }
  }

  const server: Server = createServer((req, res) => {
    route(req, res).catch((err: unknown) => {
      if (err instanceof QueryError) send(res, 400, { error: err.message });
      else if (isBadInput(err)) send(res, 404, { error: err.message });
      else send(res, 500, { error: err instanceof Error ? err.message : String(err) });
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(options.port ?? 0, host, () => resolve());
  });
  const address = server.address();
  const port = typeof address === "object" && address ? address.port : 0;
  return {
    url: `http://${host}:${port}/`,
    async stop() {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
