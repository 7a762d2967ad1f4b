/**
 * The simulated batch service: a `PostChunk` whose every decision comes from the seed. It accepts,
 * answers 409 to a key it knows, fails with 5xx, throttles with Retry-After, rejects, hangs past
 * the client's timeout, loses its reply after accepting, never reports, reports late, twice, in
 * parts, and sends `failed` reports about an old attempt in the legacy form (no attempt fence in
 * the filter). In completion "response" mode it answers with the outcome instead of reporting
 * (the same outcome again to a known key), in "callback" mode it calls back once it is done —
 * late, twice, never — and in both modes it sometimes gives an outcome that does not match the
 * request. It keeps a ledger of what it accepted and what its reports recorded, which the
 * invariants are checked against.
 */
import { EJSON } from "bson";
import type { CompletionMode } from "../../src/config/schema.js";
import type { SimCallbacks } from "./callbacks.js";
import type { DeliveryOutcome, DeliveryRequest, PostChunk } from "../../src/steps/dispatch/post-chunk.js";
import type { Store } from "../../src/store/store.js";
import type { Actor, Scheduler } from "./scheduler.js";

export interface ServiceFaults {
  error: number;
  throttle: number;
  reject: number;
  hang: number;
  lostReply: number;
  neverReport: number;
  slowReport: number;
  failRecord: number;
  duplicateReport: number;
  staleFailedReport: number;
  /** Completion "response"/"callback": an outcome that does not match the request. */
  badOutcome: number;
}

interface Outcome {
  id: unknown;
  failed: boolean;
}

export interface Acceptance {
  key: string;
  jobId: string;
  chunk: number;
  attempt: number;
  records: string[];
  step: number;
}

const idOf = (v: unknown) => EJSON.stringify({ v }, { relaxed: false });

export class SimService {
  readonly actor: Actor;
  /** First body seen per key (record ids), and every acceptance of a new key. */
  readonly keyRecords = new Map<string, string[]>();
  readonly acceptances: Acceptance[] = [];
  /** Per `jobId|recordId`: the step at which a report of ours first recorded it processed. */
  readonly recordedProcessed = new Map<string, { attempt: number; step: number }>();
  readonly violations: string[] = [];
  /** Per `jobId|recordId|attempt`: the service said (or reported) the record processed. */
  readonly saidProcessed = new Set<string>();
  /** Completion "response": each accepted key's outcome, given again to the same key. */
  private readonly answers = new Map<string, Outcome[]>();
  requests = 0;

  private readonly store: Store;

  constructor(
    private readonly sched: Scheduler,
    storeFor: (actor: Actor) => Store,
    private readonly faults: ServiceFaults,
    private readonly timing: { chunkTimeoutMs: number },
    private readonly completion: CompletionMode,
    private readonly callbacks: SimCallbacks,
  ) {
    this.actor = sched.actor("service", { crashable: false, daemon: false });
    this.store = storeFor(this.actor);
  }

  /** The client `caller` posts with: the request and the reply are steps of the caller's. */
  postFor(caller: Actor): PostChunk {
    return (req) => this.post(req, caller);
  }

  private async post(req: DeliveryRequest, caller: Actor): Promise<DeliveryOutcome> {
    const key = req.headers["idempotency-key"] ?? "";
    const body = EJSON.parse(req.body, { relaxed: true }) as {
      jobId: string;
      chunk: number;
      attempt: number;
      records: Array<{ id: unknown }>;
      callback?: { url: string; token?: string };
    };
    // The request reaches the service: one atomic step.
    await this.sched.gate(`POST ${key}`, caller);
    this.requests++;
    const r = this.sched.random;
    const f = this.faults;
    const ids = body.records.map((x) => idOf(x.id)).sort();
    if (key !== `${body.jobId}:${body.chunk}:${body.attempt}`) {
      this.violations.push(
        `request under key ${key} carries job ${body.jobId} chunk ${body.chunk} attempt ${body.attempt}`,
      );
    }
    const known = this.keyRecords.get(key);
    if (known && known.join() !== ids.join()) {
      this.violations.push(`key ${key} carried ${known.length} records first, then ${ids.length} other ones`);
    }
    const reply = async (outcome: DeliveryOutcome, delayMs = 1 + Math.floor(r() * 20)) => {
      await this.sched.sleep(delayMs, caller);
      return outcome;
    };
    const roll = r();
    if (!known) {
      if (roll < f.error) return reply({ kind: "retry", reason: "HTTP 503: busy" });
      if (roll < f.error + f.throttle)
        return reply({ kind: "retry", reason: "HTTP 429", retryAfterMs: Math.floor(r() * 800) });
      if (roll < f.error + f.throttle + f.reject)
        return reply({ kind: "rejected", status: 400, reason: "HTTP 400: bad chunk" });
      this.keyRecords.set(key, ids);
      this.acceptances.push({
        key,
        jobId: body.jobId,
        chunk: body.chunk,
        attempt: body.attempt,
        records: ids.map((i) => `${body.jobId}|${i}`),
        step: this.sched.steps,
      });
      switch (this.completion) {
        case "status":
          this.sched.spawn(this.actor, () => this.process(body));
          break;
        case "response":
          this.answers.set(key, this.decide(body));
          break;
        case "callback":
          if (!body.callback) this.violations.push(`request under key ${key} carries no callback`);
          else this.sched.spawn(this.actor, () => this.callBack(body, body.callback?.url ?? ""));
          break;
        default: {
          const never: never = this.completion;
          throw new Error(`unknown completion ${String(never)}`);
        }
      }
    }
    const fate = r();
    if (fate < f.hang)
      return reply({ kind: "retry", reason: `timed out after ${req.timeoutMs} ms` }, req.timeoutMs);
    if (fate < f.hang + f.lostReply) return reply({ kind: "retry", reason: "could not deliver: ECONNRESET" });
    if (this.completion === "response") {
      const outcomes = this.answers.get(key) ?? [];
      // The work takes a while before the answer; an answer past the client's timeout is a hang.
      return reply(
        { kind: "accepted", status: known ? 409 : 200, body: this.outcomeBody(outcomes) },
        5 + Math.floor(r() * 200),
      );
    }
    return reply(known ? { kind: "accepted", status: 409 } : { kind: "accepted", status: 202 });
  }

  /** Each record's fate for an attempt; the processed ones are what the service said processed. */
  private decide(body: { jobId: string; attempt: number; records: Array<{ id: unknown }> }): Outcome[] {
    const outcomes = body.records.map((rec) => ({
      id: rec.id,
      failed: this.sched.random() < this.faults.failRecord,
    }));
    for (const o of outcomes)
      if (!o.failed) this.saidProcessed.add(`${body.jobId}|${idOf(o.id)}|${body.attempt}`);
    return outcomes;
  }

  /** An outcome as the service sends it: right, or (badOutcome) not matching the request. */
  private outcomeBody(outcomes: Outcome[], token?: string): string {
    const r = this.sched.random;
    let results = outcomes.map((o) => ({ id: o.id, status: o.failed ? "failed" : "processed" }));
    if (r() < this.faults.badOutcome) {
      const how = Math.floor(r() * 4);
      if (how === 0) results = results.slice(1);
      else if (how === 1) results = [...results, { id: "never-sent", status: "processed" }];
      else if (how === 2 && results[0]) results = [...results, results[0]];
      else return "<html>done</html>";
    } else if (outcomes.every((o) => !o.failed) && r() < 0.5) {
      return EJSON.stringify({ ...(token ? { token } : {}), status: "processed" }, { relaxed: true });
    }
    return EJSON.stringify({ ...(token ? { token } : {}), results }, { relaxed: true });
  }

  /** Completion "callback": works on the chunk, then calls back the ways services do. */
  private async callBack(
    body: { jobId: string; attempt: number; records: Array<{ id: unknown }>; callback?: { token?: string } },
    url: string,
  ) {
    const r = this.sched.random;
    const f = this.faults;
    const outcomes = this.decide(body);
    if (r() < f.neverReport) return;
    const slow = r() < f.slowReport;
    await this.sched.sleep(
      slow ? this.timing.chunkTimeoutMs * (0.5 + r()) : 5 + Math.floor(r() * 300),
      this.actor,
    );
    const text = this.outcomeBody(outcomes, body.callback?.token);
    // A callback carries JSON: the channel hands the watcher the parsed body, or the raw text
    // when it was not JSON.
    let parsed: unknown = text;
    try {
      parsed = JSON.parse(text);
    } catch {
      // not JSON: handed on as text
    }
    this.callbacks.complete(url, parsed);
    if (r() < f.duplicateReport) {
      await this.sched.sleep(Math.floor(r() * 2000), this.actor);
      this.callbacks.complete(url, parsed);
    }
  }

  /** Works on an accepted chunk and reports, the ways services do. */
  private async process(body: { jobId: string; attempt: number; records: Array<{ id: unknown }> }) {
    const r = this.sched.random;
    const f = this.faults;
    if (r() < f.neverReport) return;
    const slow = r() < f.slowReport;
    await this.sched.sleep(
      slow ? this.timing.chunkTimeoutMs * (0.5 + r()) : 5 + Math.floor(r() * 300),
      this.actor,
    );
    const outcomes = this.decide(body);
    const parts = outcomes.length > 1 && r() < 0.3 ? 2 : 1;
    const size = Math.ceil(outcomes.length / parts);
    for (let p = 0; p < parts; p++) {
      await this.report(body, outcomes.slice(p * size, (p + 1) * size));
      if (p + 1 < parts) await this.sched.sleep(Math.floor(r() * 200), this.actor);
    }
    if (r() < f.duplicateReport) {
      await this.sched.sleep(Math.floor(r() * 2000), this.actor);
      await this.report(body, outcomes);
    }
    const failed = outcomes.filter((o) => o.failed);
    if (failed.length > 0 && r() < f.staleFailedReport) {
      // Long after: the same failures again, in the legacy form (no attempt in the filter).
      await this.sched.sleep(this.timing.chunkTimeoutMs * r(), this.actor);
      await this.store.details.updateMany(
        { jobId: body.jobId, recordId: { $in: failed.map((o) => o.id) }, status: "sent" },
        { $set: { status: "failed", attempt: body.attempt, error: "late report of an old attempt" } },
      );
    }
  }

  private async report(
    body: { jobId: string; attempt: number },
    outcomes: Array<{ id: unknown; failed: boolean }>,
  ) {
    const ok = outcomes.filter((o) => !o.failed).map((o) => o.id);
    const failed = outcomes.filter((o) => o.failed).map((o) => o.id);
    const fence = { jobId: body.jobId, status: "sent", attempts: body.attempt };
    if (ok.length > 0) {
      await this.store.details.updateMany({ ...fence, recordId: { $in: ok } } as never, {
        $set: { status: "processed", attempt: body.attempt },
      });
      // Which of them this report (or an earlier one) recorded: processed is final.
      const recorded = await this.store.details
        .find(
          { jobId: body.jobId, recordId: { $in: ok }, status: "processed", attempt: body.attempt },
          { projection: { recordId: 1 } },
        )
        .toArray();
      for (const d of recorded) {
        const k = `${body.jobId}|${idOf(d.recordId)}`;
        if (!this.recordedProcessed.has(k))
          this.recordedProcessed.set(k, { attempt: body.attempt, step: this.sched.steps });
      }
    }
    if (failed.length > 0) {
      await this.store.details.updateMany({ ...fence, recordId: { $in: failed } } as never, {
        $set: { status: "failed", attempt: body.attempt, error: "simulated failure" },
      });
    }
  }
}
