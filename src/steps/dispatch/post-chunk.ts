/**
 * Delivering one chunk attempt to the batch service over HTTP (undici), and classifying the
 * reply by the batch-service contract (README, "The batch-service contract"): accepted (2xx, 409), retry later (5xx, 429/503 with
 * Retry-After, timeouts, connection errors) or rejected (any other 4xx). Reply bodies are read
 * up to a small cap and parsed with zod only for a human-readable reason.
 */
import { request } from "undici";
import { z } from "zod";
import { REDACT_SCAN_CHARS } from "../../config/redact.js";

/**
 * A `reason` holds the service's own text, unredacted and longer than is stored: it goes through
 * `redactOutcome` (serve.ts) before it is kept, logged or printed.
 */
export type DeliveryOutcome =
  | {
      kind: "accepted";
      status: number;
      /** The reply's text, up to `replyLimitBytes` (completion "response" reads the outcome there). */
      body?: string;
      /** The reply was longer than `replyLimitBytes` and `body` holds only its start. */
      truncated?: boolean;
    }
  | { kind: "retry"; reason: string; retryAfterMs?: number | undefined }
  | { kind: "rejected"; status: number; reason: string };

export interface DeliveryRequest {
  url: string;
  body: string;
  headers: Record<string, string>;
  timeoutMs: number;
  /**
   * How much of a reply is read. Default: 64 KiB (enough for an error's text); completion
   * "response" reads the outcome of every record there and asks for more.
   */
  replyLimitBytes?: number;
}

export type PostChunk = (req: DeliveryRequest) => Promise<DeliveryOutcome>;

const MAX_REPLY_BYTES = 64 * 1024;

const replySchema = z
  .object({ error: z.string().optional(), message: z.string().optional(), reason: z.string().optional() })
  .loose();

/**
 * A reason as stored: `HTTP 503: ` and 300 characters of the service's text. It is cut to this only
 * after redaction (`redactOutcome`).
 */
export const STORED_REASON_CHARS = 310;

/**
 * The service's text is kept as far as redaction reads it (REDACT_SCAN_CHARS; with the `HTTP …: `
 * before it, a text cut here is longer than that, so redaction drops the end where a secret may
 * have been cut short).
 */
function reasonFrom(text: string, status: number): string {
  let reason = "";
  try {
    const parsed = replySchema.safeParse(JSON.parse(text));
    if (parsed.success) reason = parsed.data.error ?? parsed.data.message ?? parsed.data.reason ?? "";
  } catch {
    reason = text.trim();
  }
  reason = reason.slice(0, REDACT_SCAN_CHARS);
  return reason ? `HTTP ${status}: ${reason}` : `HTTP ${status}`;
}

/** Retry-After is seconds or an HTTP date; anything else is ignored. */
export function parseRetryAfter(value: string | string[] | undefined, now: number): number | undefined {
  const v = Array.isArray(value) ? value[0] : value;
  if (!v) return undefined;
  if (/^\d+$/.test(v.trim())) return Number(v.trim()) * 1000;
  const at = Date.parse(v);
  return Number.isNaN(at) ? undefined : Math.max(0, at - now);
}

/** Reads at most `limit` bytes of a reply body, then drops the rest. */
async function readCapped(
  body: AsyncIterable<Buffer> & { destroy?: () => void },
  limit: number,
): Promise<{ text: string; truncated: boolean }> {
  const parts: Buffer[] = [];
  let size = 0;
  let truncated = false;
  for await (const chunk of body) {
    const room = limit - size;
    // More than fits, in this piece or in one after the limit was reached exactly.
    if (chunk.length > room) truncated = true;
    if (room <= 0) break;
    parts.push(chunk.subarray(0, room));
    size += Math.min(room, chunk.length);
    if (truncated) break;
  }
  body.destroy?.();
  return { text: Buffer.concat(parts).toString("utf8"), truncated };
}

export function classifyReply(
  status: number,
  text: string,
  retryAfterMs: number | undefined,
  truncated = false,
): DeliveryOutcome {
  if ((status >= 200 && status < 300) || status === 409)
    return { kind: "accepted", status, body: text, ...(truncated ? { truncated } : {}) };
  if (status === 429 || status === 503)
    return { kind: "retry", reason: reasonFrom(text, status), retryAfterMs };
  if (status >= 500) return { kind: "retry", reason: reasonFrom(text, status) };
  if (status >= 400) return { kind: "rejected", status, reason: reasonFrom(text, status) };
  if (status >= 300) {
    // Redirects are not followed (a POST body must not wander to another host), and asking again
    // gets the same answer: the chunk is rejected at once, with the fix in its reason.
    return {
      kind: "rejected",
      status,
      reason: `HTTP ${status}: the batch service redirects; set target.url to the address it redirects to`,
    };
  }
  return { kind: "retry", reason: `unexpected HTTP ${status}` };
}

/**
 * POSTs a chunk with undici; never throws for network trouble, it returns `retry`. `stop` (the
 * local runner's Ctrl-C) aborts the request at once and is rethrown: the step ends there, its
 * chunk lease runs out, and a resume sends the attempt again under the same key.
 */
export async function postChunk(req: DeliveryRequest, stop?: AbortSignal): Promise<DeliveryOutcome> {
  const timeout = AbortSignal.timeout(req.timeoutMs);
  try {
    const res = await request(req.url, {
      method: "POST",
      body: req.body,
      headers: { "content-type": "application/json", ...req.headers },
      headersTimeout: req.timeoutMs,
      bodyTimeout: req.timeoutMs,
      signal: stop ? AbortSignal.any([timeout, stop]) : timeout,
    });
    const { text, truncated } = await readCapped(res.body, req.replyLimitBytes ?? MAX_REPLY_BYTES);
    return classifyReply(
      res.statusCode,
      text,
      parseRetryAfter(res.headers["retry-after"], Date.now()),
      truncated,
    );
  } catch (err) {
    if (stop?.aborted) throw err;
    const e = err as { name?: string; code?: string; message?: string };
    const what =
      e.name === "TimeoutError" || e.code === "UND_ERR_HEADERS_TIMEOUT" || e.code === "UND_ERR_BODY_TIMEOUT"
        ? `timed out after ${req.timeoutMs} ms`
        : (e.code ?? e.message ?? String(err));
    return { kind: "retry", reason: `could not deliver: ${what}` };
  }
}
