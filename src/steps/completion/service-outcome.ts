/**
 * The outcome of a chunk attempt as a service tells it in completion modes "response" (the body of
 * its 2xx reply) and "callback" (the body it POSTs to the callback URL): parsed with zod once,
 * checked against the records the attempt carried, and written to `batch_details` with one
 * command. An outcome that does not match the request changes nothing and ends the attempt with a
 * reason that says what was wrong.
 */
import { BSON, EJSON } from "bson";
import { z } from "zod";
import { compareBson } from "../../common/bson-order.js";
import { recordAttemptResults } from "../../store/records.js";
import type { AttemptRef, StepDeps } from "../handover.js";

/** The most of a service's per-record error text kept (it ends up in an exception's reason). */
export const RECORD_ERROR_CHARS = 2000;

const recordResultSchema = z.object({
  id: z.unknown(),
  status: z.enum(["processed", "failed"]),
  error: z.string().optional(),
  /** The value the service returns for the record (any JSON / Extended JSON value). */
  result: z.unknown().optional(),
});

/**
 * `{"status":"processed"}`: every record of the attempt is processed. `{"results":[…]}`: one entry
 * per record of the attempt, its id in the same Extended JSON as the request. `token` is the
 * callback's token (checked by the callback listener, ignored here). Other fields are ignored.
 */
export const serviceOutcomeSchema = z.union([
  z.object({ status: z.literal("processed"), token: z.string().optional() }),
  z.object({ results: z.array(recordResultSchema), token: z.string().optional() }),
]);

export type ServiceOutcome = z.infer<typeof serviceOutcomeSchema>;

/** A record's result value as kept (`result`), or why it was not (`resultError`). */
export type RecordValue = { id: unknown; result: unknown } | { id: unknown; resultError: string };

/** What an outcome meant for the attempt's records (all of them, in the attempt's own id values). */
export type AttemptResults =
  | {
      kind: "matched";
      processed: unknown[];
      failed: Array<{ id: unknown; error: string }>;
      /** The records that came with a `result` (processed or failed), each kept or refused. */
      values: RecordValue[];
    }
  | { kind: "mismatch"; reason: string };

const EXAMPLE = '{"status":"processed"} or {"results":[{"id":…,"status":"processed"|"failed","result":…}]}';

/** How many bytes a value takes as a BSON field (what storing it beside the record costs). */
export function resultBytes(value: unknown): number {
  return BSON.calculateObjectSize({ result: value }) - BSON.calculateObjectSize({});
}

/** A result value as it will be kept, or the error that replaces it when it is over the cap. */
export function keepResult(id: unknown, value: unknown, maxBytes: number): RecordValue {
  const bytes = resultBytes(value);
  return bytes <= maxBytes
    ? { id, result: value }
    : {
        id,
        resultError: `result refused: ${bytes} bytes of BSON, over the cap of ${maxBytes} (config results.maxBytes); the record keeps its status, its value is not kept`,
      };
}

/** Parses an outcome from a reply's text (Extended JSON) or a callback's already-parsed body. */
export function parseServiceOutcome(body: unknown): ServiceOutcome | { error: string } {
  let value: unknown = body;
  if (typeof body === "string") {
    if (body.trim() === "") return { error: `the reply has no body; expected ${EXAMPLE}` };
    try {
      value = EJSON.parse(body, { relaxed: true });
    } catch (err) {
      return { error: `the body is not JSON (${(err as Error).message}); expected ${EXAMPLE}` };
    }
  } else if (body !== null && typeof body === "object") {
    // A callback's body came through JSON.parse: its ids may still be Extended JSON wrappers.
    try {
      value = EJSON.deserialize(body, { relaxed: true });
    } catch (err) {
      return { error: `the body holds invalid Extended JSON (${(err as Error).message})` };
    }
  }
  if (value !== null && typeof value === "object" && "status" in value && "results" in value) {
    // Contradictory (found by review): all processed, and a list that may say otherwise.
    return { error: `the body has both "status" and "results"; send one of them: ${EXAMPLE}` };
  }
  const parsed = serviceOutcomeSchema.safeParse(value);
  if (parsed.success) {
    if ("results" in parsed.data) {
      for (const r of parsed.data.results) {
        let problem = r.result === undefined ? undefined : resultProblem(r.result);
        if (problem === undefined && r.result !== undefined) {
          try {
            resultBytes(r.result);
          } catch (err) {
            problem = `it cannot be stored (${(err as Error).message})`;
          }
        }
        if (problem)
          return {
            error: `the result of record ${EJSON.stringify(r.id, { relaxed: true }).slice(0, 60)} is malformed: ${problem}`,
          };
      }
    }
    return parsed.data;
  }
  const issue = parsed.error.issues[0];
  return { error: `the body is not an outcome (${issue?.message ?? "invalid"}); expected ${EXAMPLE}` };
}

/** How deep a result may nest (MongoDB refuses documents nested beyond 100 levels). */
const MAX_RESULT_DEPTH = 50;

/**
 * Why a result value cannot be stored as given, or undefined. Field names starting with `$`
 * (operators, or Extended JSON the parser did not know) or holding `.` or NUL are refused rather
 * than stored under a name queries cannot reach.
 */
export function resultProblem(value: unknown, depth = 0): string | undefined {
  if (depth > MAX_RESULT_DEPTH) return `nested deeper than ${MAX_RESULT_DEPTH} levels`;
  if (Array.isArray(value)) {
    for (const v of value) {
      const p = resultProblem(v, depth + 1);
      if (p) return p;
    }
    return undefined;
  }
  if (value === null || typeof value !== "object") return undefined;
  // BSON values (ObjectId, Decimal128, Binary, …: instances of the bson package's classes, as
  // Extended JSON parses them) and dates are stored as they are. A plain object that only says
  // `_bsontype` is not one (found by review: it made the byte count throw).
  if (value instanceof Date || value instanceof RegExp) return undefined;
  if (Object.getPrototypeOf(value) !== Object.prototype) {
    return "_bsontype" in value ? undefined : "not a JSON value";
  }
  if ("_bsontype" in value)
    return "field name '_bsontype' is reserved (BSON types are written as Extended JSON)";
  for (const [k, v] of Object.entries(value)) {
    if (k.startsWith("$")) return `field name '${k.slice(0, 40)}' starts with '$' (not valid Extended JSON)`;
    if (k.includes(".") || k.includes("\0")) return `field name '${k.slice(0, 40)}' holds '.' or a NUL`;
    const p = resultProblem(v, depth + 1);
    if (p) return p;
  }
  return undefined;
}

const show = (ids: unknown[]) =>
  ids
    .slice(0, 3)
    .map((id) => EJSON.stringify(id, { relaxed: true }).slice(0, 60))
    .join(", ") + (ids.length > 3 ? ", …" : "");

/**
 * Checks an outcome against the attempt's record ids: every id once, no other. Ids compare as
 * MongoDB compares them (`compareBson`: 5, 5.0 and NumberLong(5) are one id), so a service that
 * echoes an id in another numeric type still matches. The result carries the attempt's own id
 * values, so the write matches the stored records exactly.
 */
export function matchServiceOutcome(
  ids: readonly unknown[],
  outcome: ServiceOutcome,
  /** The cap on one result value (`resultMaxBytes(config)`). */
  maxBytes: number,
): AttemptResults {
  if ("status" in outcome) return { kind: "matched", processed: [...ids], failed: [], values: [] };
  const sent = [...ids].sort(compareBson);
  const told = [...outcome.results].sort((a, b) => compareBson(a.id, b.id));
  const processed: unknown[] = [];
  const failed: Array<{ id: unknown; error: string }> = [];
  const values: RecordValue[] = [];
  const unknown: unknown[] = [];
  const duplicate: unknown[] = [];
  const missing: unknown[] = [];
  let i = 0;
  let j = 0;
  while (i < sent.length || j < told.length) {
    const s = sent[i];
    const t = told[j];
    const c = i >= sent.length ? 1 : j >= told.length ? -1 : compareBson(s, t?.id);
    if (c < 0) {
      missing.push(s);
      i++;
    } else if (c > 0) {
      // An id the attempt did not carry, or the same id again.
      if (i > 0 && compareBson(sent[i - 1], t?.id) === 0) duplicate.push(t?.id);
      else unknown.push(t?.id);
      j++;
    } else if (t) {
      if (t.status === "processed") processed.push(s);
      else failed.push({ id: s, error: (t.error ?? "failed (no error given)").slice(0, RECORD_ERROR_CHARS) });
      if (t.result !== undefined) values.push(keepResult(s, t.result, maxBytes));
      i++;
      j++;
    }
  }
  if (unknown.length + duplicate.length + missing.length === 0)
    return { kind: "matched", processed, failed, values };
  const parts = [
    unknown.length > 0 ? `${unknown.length} id(s) not in the request (${show(unknown)})` : "",
    duplicate.length > 0 ? `${duplicate.length} id(s) given twice (${show(duplicate)})` : "",
    missing.length > 0 ? `${missing.length} of the ${sent.length} id(s) sent missing (${show(missing)})` : "",
  ].filter(Boolean);
  return { kind: "mismatch", reason: `the outcome does not match the request: ${parts.join("; ")}` };
}

/**
 * How an attempt ended by the service's word, after its results were written. `moved` is how many
 * of the attempt's records the write moved: fewer than the attempt's means some were not `sent`
 * any more (a redelivery after a crash found them written; a service also wrote statuses), and
 * the records must be counted before the attempt ends.
 */
export type AttemptVerdict =
  | { kind: "allProcessed"; moved: number }
  | { kind: "recordsFailed"; failed: number; moved: number }
  | { kind: "badReply"; reason: string };

/**
 * Parses, checks and records an attempt's outcome: one `batch_details` write when it matches,
 * nothing when it does not. The write is fenced like a service's own report (only records `sent`
 * under this attempt move), so a late or repeated outcome never overwrites a newer one.
 */
export async function applyServiceOutcome(
  deps: Pick<StepDeps, "store" | "now">,
  ref: AttemptRef & { chunk: number },
  ids: readonly unknown[],
  /** A reply's text, or a callback's parsed body. */
  body: unknown,
  /** The cap on one result value (`resultMaxBytes(config)`). */
  maxBytes: number,
): Promise<AttemptVerdict> {
  const parsed = parseServiceOutcome(body);
  if ("error" in parsed) return { kind: "badReply", reason: parsed.error };
  const results = matchServiceOutcome(ids, parsed, maxBytes);
  if (results.kind === "mismatch") return { kind: "badReply", reason: results.reason };
  // The attempt's records are exactly those `sent` under it (`ids` were read by that mark).
  const wholeAttempt =
    results.failed.length === 0 && results.values.length === 0 && results.processed.length === ids.length;
  const moved = await recordAttemptResults(deps.store, ref, results, deps.now(), wholeAttempt);
  return results.failed.length === 0
    ? { kind: "allProcessed", moved }
    : { kind: "recordsFailed", failed: results.failed.length, moved };
}
