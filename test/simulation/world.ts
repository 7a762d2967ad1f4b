/**
 * One simulated history: a scenario drawn from the seed (full, incremental with concurrent
 * runners, backfill, iterations, requeue; `maxInFlight` 1 to 3; local runners or Trigger.dev
 * runs), the real step functions run by actors under the seeded scheduler, crashes and stalls
 * injected until a fault horizon, then a quiet period in which everything must finish by itself.
 * Afterwards the invariants (`invariants.ts`) are checked against the database and the service's
 * ledger.
 */
import { saveConfig } from "../../src/store/configs.js";
import { dispatchJob } from "../../src/steps/dispatch/dispatch.js";
import { isBadInput } from "../../src/common/errors.js";
import type { HandOver, StepDeps, WatchPayload } from "../../src/steps/handover.js";
import { healStalledJobs } from "../../src/jobs/heal-stalled-jobs.js";
import { releaseLeases } from "../../src/jobs/lease.js";
import { initializeJob } from "../../src/steps/initialize/initialize.js";
import { resumeJob } from "../../src/runtimes/local/local-runner.js";
import { Store } from "../../src/store/store.js";
import { watchChunk } from "../../src/steps/watch/watch.js";
import { EngineDatabase } from "./engine-store.js";
import { REFUSED_CONFIG, checkInvariants } from "./invariants.js";
import { type Actor, type FaultPlan, Scheduler } from "./scheduler.js";
import { type ServiceFaults, SimService } from "./service.js";
import { buildStepDeps } from "../../src/runtimes/step-deps.js";
import type { CompletionMode } from "../../src/config/schema.js";
import { SimCallbacks } from "./callbacks.js";
import { runChunkAgain } from "../../src/steps/rerun/rerun-chunk.js";
import { startWorker, tallyOfDispatch, tallyOfWatch } from "../../src/runtimes/worker-registry.js";

export type ScenarioKind = "full" | "incremental" | "backfill" | "iterations" | "requeue";

export interface Scenario {
  kind: ScenarioKind;
  runner: "local" | "trigger";
  records: number;
  chunkSize: number;
  maxInFlight: number;
  maxAttempts: number;
  maxDeliveryTries: number;
  /** Records per planning group: small, so planning interleaves with serving and crashes. */
  planningBatch: number;
  /** Initializer requests started at the beginning (concurrent runners). */
  requests: Array<Record<string, unknown>>;
  /** Records a writer adds while jobs run (incremental). */
  arriving: number;
  /** How many of `requests` are full runs of REFUSED_CONFIG (refused, and must leave nothing). */
  refusals: number;
  faults: FaultPlan;
  service: ServiceFaults;
  /** How the service tells a chunk is done (the config's `completion`). */
  completion: CompletionMode;
  /**
   * Chunks a user runs again on demand (`run-chunk`) while the history runs, at most; one more
   * is run once everything is done, when this is above 0.
   */
  reruns: number;
}

export const TIMING = {
  leaseMs: 1_000,
  pollIntervalMs: 150,
  chunkTimeoutMs: 3_000,
  targetTimeoutMs: 800,
  healEveryMs: 1_500,
  healStaleAfterMs: 4_000,
};

const START = Date.UTC(2026, 0, 1);
const CONFIG = "sim";

function pick<T>(r: () => number, items: readonly T[]): T {
  return items[Math.floor(r() * items.length)] as T;
}

/** The scenario of a seed (drawn from its own stream, so it does not depend on the history). */
export function scenarioOf(seed: number, random: () => number): Scenario {
  const r = random;
  const kind = pick(r, ["full", "incremental", "incremental", "backfill", "iterations", "requeue"] as const);
  const runner = r() < 0.5 ? "local" : "trigger";
  const records = 4 + Math.floor(r() * 20);
  const chunkSize = 2 + Math.floor(r() * 5);
  const maxInFlight = 1 + Math.floor(r() * 3);
  const calm = r() < 0.2;
  const faults: FaultPlan = {
    crash: calm ? 0 : 0.004 + r() * 0.01,
    stall: calm ? 0 : r() * 0.006,
    stallMaxMs: 6 * TIMING.leaseMs,
    untilMs: 6_000 + Math.floor(r() * 20_000),
    maxCrashes: 2 + Math.floor(r() * 8),
  };
  const noisy = r();
  const service: ServiceFaults = {
    error: noisy * 0.15,
    throttle: noisy * 0.05,
    reject: kind === "requeue" ? 0.1 : noisy * 0.02,
    hang: noisy * 0.06,
    lostReply: noisy * 0.08,
    neverReport: noisy * 0.04,
    slowReport: noisy * 0.08,
    failRecord: kind === "requeue" ? 0.25 : noisy * 0.1,
    duplicateReport: noisy * 0.2,
    staleFailedReport: 0.5 * noisy,
    badOutcome: noisy * 0.05,
  };
  const id = (n: number) => `sim${seed}-${n}`;
  let requests: Array<Record<string, unknown>>;
  switch (kind) {
    case "full":
      requests = [{ config: CONFIG, jobId: id(1) }];
      break;
    case "incremental":
      requests = Array.from({ length: 1 + Math.floor(r() * 3) }, (_, i) => ({
        config: CONFIG,
        jobId: id(i + 1),
        mode: "incremental",
        ...(r() < 0.5 ? { maxRecords: 3 + Math.floor(r() * 10) } : {}),
      }));
      break;
    case "backfill": {
      const from = Math.floor(r() * 5);
      const to = from + 3 + Math.floor(r() * 10);
      requests = Array.from({ length: 1 + Math.floor(r() * 2) }, (_, i) => ({
        config: CONFIG,
        jobId: id(i + 1),
        mode: "backfill",
        from,
        to,
        ...(r() < 0.5 ? { maxRecords: 2 + Math.floor(r() * 6) } : {}),
      }));
      break;
    }
    case "iterations":
      requests = [
        {
          config: CONFIG,
          jobId: id(1),
          mode: "incremental",
          maxRecords: 3 + Math.floor(r() * 8),
          iterations: 2 + Math.floor(r() * 3),
        },
      ];
      break;
    case "requeue":
      requests = [{ config: CONFIG, jobId: id(1) }];
      break;
    default: {
      const never: never = kind;
      throw new Error(`unknown scenario ${String(never)}`);
    }
  }
  // Drawn last, so the rest of a seed's scenario is what it was before refusals were added.
  const refusals = r() < 0.25 ? 1 + Math.floor(r() * 2) : 0;
  for (let i = 0; i < refusals; i++)
    requests.push({ config: REFUSED_CONFIG, jobId: id(90 + i), mode: "full" });
  // Drawn after everything else, so each seed keeps the rest of the scenario it had before.
  const completion = pick(r, ["status", "status", "response", "callback"] as const);
  // Drawn after that, for the same reason.
  const reruns = r() < 0.5 ? 1 + Math.floor(r() * 3) : 0;
  return {
    kind,
    runner,
    records,
    refusals,
    chunkSize,
    maxInFlight,
    maxAttempts: 1 + Math.floor(r() * 3),
    maxDeliveryTries: 3 + Math.floor(r() * 5),
    planningBatch: 1 + Math.floor(r() * 8),
    requests,
    arriving: kind === "incremental" || kind === "iterations" ? Math.floor(r() * 15) : 0,
    faults,
    service,
    completion,
    reruns,
  };
}

export interface SeedResult {
  seed: number;
  scenario: Scenario;
  end: "finished" | "deadline" | "steps" | "stuck";
  violations: string[];
  trace: string[];
  steps: number;
  crashes: number;
  stalls: number;
  /** Interrupted local runs that released their leases. */
  releases: number;
  jobs: number;
  records: number;
  commands: number;
  /** Worker documents the history left (local runners register one per process). */
  workers: number;
}

/** Runs one seed's history and checks it. */
export async function runSeed(seed: number): Promise<SeedResult> {
  const scenarioRandom = new Scheduler(seed ^ 0x5eed, START, noFaults()).random;
  const scenario = scenarioOf(seed, scenarioRandom);
  const sched = new Scheduler(seed, START, scenario.faults);
  const database = new EngineDatabase("sim");
  // Each actor reaches the database through its own handle, whose every call is a step of it.
  const storeFor = (actor: Actor) => new Store(database.db((label) => sched.gate(label, actor)));
  const direct = new Store(database.db(() => Promise.resolve()));
  await direct.ensureIndexes();
  const callbacks = new SimCallbacks(sched);
  const service = new SimService(sched, storeFor, scenario.service, TIMING, scenario.completion, callbacks);
  const world = new World(sched, storeFor, direct, service, scenario, seed, callbacks);
  await world.setUp();
  world.start();
  const end = await sched.run({
    finished: () => world.finished(),
    deadlineMs: scenario.faults.untilMs + 120_000,
    maxSteps: 60_000,
  });
  const violations = [
    ...service.violations,
    ...sched.failures.map(
      (f) => `unexpected error in ${f.actor}: ${(f.error as Error).stack ?? String(f.error)}`,
    ),
    ...world.violations,
  ];
  if (end !== "finished") {
    violations.push(
      `liveness: the history did not finish by itself (${end}): ${await world.describeOpenWork()}`,
    );
  }
  violations.push(...(await checkInvariants(direct, service, scenario, CONFIG, world.crashedRefusal)));
  return {
    seed,
    scenario,
    end,
    violations,
    trace: process.env.SIM_TRACE ? sched.trace : sched.trace.slice(-40),
    steps: sched.steps,
    crashes: sched.crashes,
    stalls: sched.stalls,
    releases: world.releases,
    jobs: await direct.jobs.countDocuments({}),
    records: await direct.details.countDocuments({}),
    commands: database.commands,
    workers: await direct.workers.countDocuments({}),
  };
}

function noFaults(): FaultPlan {
  return { crash: 0, stall: 0, stallMaxMs: 0, untilMs: 0, maxCrashes: 0 };
}

/** What run-chunk may answer a user whose request raced the history: each changes nothing. */
const RERUN_REFUSAL =
  /a chunk is run again only once|still settling|is in flight|no failed or set-aside records|changed while the rerun|all with resolved exceptions|is at attempt \d+, not|a chunk is run again once it has finished|requeue its exceptions once it has finished/;

const watchLimits = { maxPolls: 4, maxRunMs: 5_000 };
/** A Trigger.dev server run hands over to a fresh one after this long (response mode runs long). */
const serveLimits = { maxRunMs: 1_500 };

class World {
  readonly violations: string[] = [];
  private runs = 0;
  /** Every Trigger.dev run started, for dashboard replays. */
  private readonly runLog: Array<{ kind: "init" | "serve" | "watch"; payload: Record<string, unknown> }> = [];
  private readonly platformKeys = new Set<string>();
  private requeued = false;
  /** Reruns started by the user while the history ran, and whether the final one was. */
  private rerunsStarted = 0;
  private finalRerun = false;
  /** Some run of the refused config crashed (between its claim and its release, perhaps). */
  crashedRefusal = false;
  /** Interrupted local runs that released their leases (the simulation's count of them). */
  releases = 0;

  constructor(
    private readonly sched: Scheduler,
    private readonly storeFor: (actor: Actor) => Store,
    private readonly direct: Store,
    private readonly service: SimService,
    private readonly scenario: Scenario,
    private readonly seed: number,
    private readonly callbacks: SimCallbacks,
  ) {}

  async setUp(): Promise<void> {
    const { scenario } = this;
    const src = this.direct.db.collection("src");
    const keyed = scenario.kind === "backfill";
    await src.insertMany(
      Array.from({ length: scenario.records }, (_, i) => ({
        _id: i as never,
        ...(keyed ? { n: Math.floor(i / 2) } : {}),
        v: `r${i}`,
      })),
    );
    await saveConfig(
      this.direct,
      {
        name: CONFIG,
        source: { collection: "src", fields: ["v"], ...(keyed ? { orderBy: "n" } : {}) },
        chunking: { maxRecords: scenario.chunkSize },
        target: { url: "http://service.sim/chunks", timeoutMs: TIMING.targetTimeoutMs },
        maxInFlight: scenario.maxInFlight,
        completion: scenario.completion,
        retry: {
          maxAttempts: scenario.maxAttempts,
          maxDeliveryTries: scenario.maxDeliveryTries,
          backoffMs: 50,
          maxBackoffMs: 400,
        },
        watch: { pollIntervalMs: TIMING.pollIntervalMs, chunkTimeoutMs: TIMING.chunkTimeoutMs },
      },
      new Date(this.sched.now),
    );
    await saveConfig(
      this.direct,
      {
        name: REFUSED_CONFIG,
        source: { collection: "src", orderBy: "missing" },
        target: { url: "http://service.sim/chunks" },
      },
      new Date(this.sched.now),
    );
  }

  /** A refusal this history expects (a run of the refused config); anything else is a finding. */
  private expectedRefusal(payload: Record<string, unknown>, err: Error): boolean {
    return (
      payload.config === REFUSED_CONFIG ||
      /already has an active job|is claimed by job|requeue its exceptions once it has finished/.test(
        err.message,
      ) ||
      (payload.runChunk !== undefined && RERUN_REFUSAL.test(err.message))
    );
  }

  deps(actor: Actor, handOver: HandOver): StepDeps {
    const { sched } = this;
    // Every clock, wait and random number is the scheduler's: nothing real is left over.
    return buildStepDeps({
      store: this.storeFor(actor),
      post: this.service.postFor(actor),
      handOver,
      now: () => new Date(sched.now),
      sleep: (ms) => sched.sleep(ms, actor),
      timer: (ms, signal) => sched.sleep(ms, actor, signal),
      random: sched.random,
      env: {},
      owner: actor.name,
      leaseMs: TIMING.leaseMs,
      planningBatch: this.scenario.planningBatch,
      callbacks: this.callbacks.channelFor(actor),
    });
  }

  start(): void {
    const { scenario, sched } = this;
    for (const request of scenario.requests) {
      if (scenario.runner === "local") this.startLocalProcess(request, false);
      else this.triggerRun("init", request, `init:${String(request.jobId)}`, 0);
    }
    if (scenario.runner === "trigger") {
      const healer = sched.actor("healer", { crashable: false, daemon: true });
      const healerStore = this.storeFor(healer);
      sched.spawn(healer, async () => {
        const handOver = this.platformHandOver();
        for (;;) {
          await sched.sleep(TIMING.healEveryMs, healer);
          await healStalledJobs(
            { store: healerStore, now: () => new Date(sched.now), handOver },
            {
              staleAfterMs: TIMING.healStaleAfterMs,
            },
          );
        }
      });
      // The dashboard: now and then a user replays an earlier run, payload unchanged.
      const dashboard = sched.actor("dashboard", { crashable: false, daemon: true });
      sched.spawn(dashboard, async () => {
        while (sched.now - sched.start < scenario.faults.untilMs) {
          await sched.sleep(500 + Math.floor(sched.random() * 3_000), dashboard);
          const run = this.runLog[Math.floor(sched.random() * this.runLog.length)];
          if (run) this.launch(run.kind, run.payload, 0, 1, "replay");
        }
      });
    }
    if (scenario.reruns > 0) {
      // Now and then the user runs one chunk of a finished job again (or is refused).
      const operator = sched.actor("operator", { crashable: false, daemon: true });
      sched.spawn(operator, async () => {
        while (sched.now - sched.start < scenario.faults.untilMs && this.rerunsStarted < scenario.reruns) {
          await sched.sleep(1_000 + Math.floor(sched.random() * 4_000), operator);
          if (await this.rerunSomeChunk(false)) this.rerunsStarted++;
        }
      });
    }
    if (scenario.arriving > 0) {
      const writer = sched.actor("writer", { crashable: false, daemon: true });
      sched.spawn(writer, async () => {
        const src = this.storeFor(writer).db.collection("src");
        for (let i = 0; i < scenario.arriving; i++) {
          await sched.sleep(Math.floor(sched.random() * 1_500), writer);
          await src.insertOne({ _id: (scenario.records + i) as never, v: `r${scenario.records + i}` });
        }
        // Then the nightly run: one more incremental job takes what arrived.
        const request = { config: CONFIG, jobId: `sim${this.seed}-late`, mode: "incremental" };
        if (scenario.runner === "local") this.startLocalProcess(request, false);
        else this.triggerRun("init", request, `init:${String(request.jobId)}`, 0);
      });
    }
  }

  // ---------------------------------------------------------------------------------------------
  // Trigger.dev: every hand-over is a run of its own (deduplicated by key), retried after a crash
  // or an error (up to 3 attempts), or lost for good — then the healer or a replay picks it up.
  // As on the platform, a run that fails for good clears its idempotency key (a later trigger under
  // the key starts a new run); a run that succeeded keeps it.

  platformHandOver(): HandOver {
    return {
      initialize: (payload, key) => {
        this.triggerRun("init", payload, key, 0);
        return Promise.resolve();
      },
      serve: (payload, key, delayMs) => {
        this.triggerRun("serve", { ...payload }, key, delayMs ?? 0);
        return Promise.resolve();
      },
      watch: (payload, key) => {
        this.triggerRun("watch", { ...payload }, key, 0);
        return Promise.resolve();
      },
    };
  }

  private triggerRun(
    kind: "init" | "serve" | "watch",
    payload: Record<string, unknown>,
    key: string,
    delayMs: number,
  ) {
    if (this.platformKeys.has(key)) return;
    this.platformKeys.add(key);
    // Payloads travel as JSON.
    const sent = JSON.parse(JSON.stringify(payload)) as Record<string, unknown>;
    this.runLog.push({ kind, payload: sent });
    this.launch(kind, sent, delayMs, 1, key, key);
  }

  private launch(
    kind: "init" | "serve" | "watch",
    payload: Record<string, unknown>,
    delayMs: number,
    attempt: number,
    label: string,
    key?: string,
  ): void {
    const { sched } = this;
    const actor = sched.actor(`${kind}#${++this.runs}(${label})`, { crashable: true, daemon: false });
    const fail = () => {
      if (key !== undefined) this.platformKeys.delete(key);
    };
    const retry = () => {
      // Retries exhausted, or the worker is gone: the run failed.
      if (attempt >= 3 || sched.random() < 0.2) return fail();
      this.launch(kind, payload, 200 * 2 ** attempt, attempt + 1, label, key);
    };
    actor.onCrash = () => {
      if (payload.config === REFUSED_CONFIG) this.crashedRefusal = true;
      retry();
    };
    const deps = this.deps(actor, this.platformHandOver());
    sched.spawn(
      actor,
      async () => {
        if (delayMs > 0) await sched.sleep(delayMs, actor);
        switch (kind) {
          case "init":
            return initializeJob(deps, payload);
          case "serve":
            return dispatchJob(deps, payload, serveLimits);
          case "watch":
            return watchChunk(deps, payload, watchLimits);
          default: {
            const never: never = kind;
            throw new Error(`unknown step ${String(never)}`);
          }
        }
      },
      (err) => {
        if (isBadInput(err)) {
          // Refused payloads fail without retry; only expected where a replay races a refusal.
          if (!this.expectedRefusal(payload, err))
            this.violations.push(`${actor.name} refused: ${err.message}`);
          return fail();
        }
        sched.note(`${actor.name} failed: ${(err as Error).message}`);
        retry();
      },
    );
  }

  // ---------------------------------------------------------------------------------------------
  // Local runner: one process runs every step of its job; a crash kills them all and the user
  // runs `chunkrelay resume <jobId>` (the same request with the same job id).

  private startLocalProcess(request: Record<string, unknown>, resume: boolean): void {
    const { sched } = this;
    const jobId = String(request.jobId);
    const actor = sched.actor(`proc#${++this.runs}(${jobId}${resume ? " resume" : ""})`, {
      crashable: true,
      daemon: false,
    });
    const seen = new Set<string>();
    let active = 0;
    let failure: unknown;
    const run = (key: string, delayMs: number, step: () => Promise<unknown>, tries = 1) => {
      if (seen.has(key) && tries === 1) return;
      seen.add(key);
      active++;
      sched.spawn(
        actor,
        async () => {
          try {
            if (delayMs > 0) await sched.sleep(delayMs, actor);
            await step();
          } finally {
            active--;
          }
        },
        (err) => {
          if (isBadInput(err) || tries >= 8) failure ??= err;
          else run(key, Math.min(30_000, 100 * 2 ** tries), step, tries + 1);
        },
      );
    };
    const handOver: HandOver = {
      initialize: (payload, key) => {
        const sent = JSON.parse(JSON.stringify(payload)) as Record<string, unknown>;
        run(key, 0, async () => {
          const r = await initializeJob(deps, sent);
          if (r.resumed) await resumeJob(deps, r.jobId);
        });
        return Promise.resolve();
      },
      serve: (payload, key, delayMs) => {
        run(key, delayMs ?? 0, async () => {
          const result = await dispatchJob(deps, payload);
          // As runJobLocally: chunks a server step finished itself ("response") are counted too.
          const tally = tallyOfDispatch(result);
          if (tally) worker.tally(tally);
        });
        return Promise.resolve();
      },
      watch: (payload: WatchPayload, key) => {
        run(key, 0, async () => {
          const result = await watchChunk(deps, payload, {
            maxPolls: Number.MAX_SAFE_INTEGER,
            maxRunMs: Number.MAX_SAFE_INTEGER,
          });
          // As runJobLocally: the process's worker counts what its watchers finished.
          const tally = tallyOfWatch(result);
          if (tally) worker.tally(tally);
        });
        return Promise.resolve();
      },
    };
    const deps = this.deps(actor, handOver);
    // The process registers as a worker; its writes are steps of it like any other store call
    // (a crash can cut them). Simulated time only: no heartbeat timer, no bound on the stop.
    const worker = startWorker(deps.store, {
      kind: "local",
      id: `sim:${actor.id}:${actor.name}`,
      host: "sim",
      pid: actor.id,
      env: {},
      now: deps.now,
      heartbeatMs: 1_000,
      heartbeatTimer: false,
      tallyEveryMs: 0,
      stopWaitMs: Number.POSITIVE_INFINITY,
    });
    actor.onCrash = () => {
      if (request.config === REFUSED_CONFIG) this.crashedRefusal = true;
      // Half the time the stop was a Ctrl-C: once its steps stopped, the runner gives up its
      // leases (`releaseLeases`, as runJobLocally does), racing whatever else runs meanwhile.
      if (sched.random() < 0.5) {
        const releaser = sched.actor(`${actor.name} releases`, { crashable: true, daemon: false });
        const releaseDeps = { ...this.deps(releaser, handOver), owner: deps.owner };
        sched.spawn(releaser, async () => {
          const chain = (await this.chainOf(jobId)).map((j) => j._id);
          await releaseLeases(releaseDeps, chain.length > 0 ? chain : [jobId]);
          this.releases++;
        });
      }
      // The user notices and resumes, a little later.
      const user = sched.actor("user", { crashable: false, daemon: false });
      sched.spawn(user, async () => {
        await sched.sleep(500 + Math.floor(sched.random() * 3_000), user);
        this.startLocalProcess(request, true);
      });
    };
    sched.spawn(
      actor,
      async () => {
        let init = await initializeJob(deps, request);
        while (init.status === "planning") {
          await sched.sleep(Math.min(TIMING.leaseMs, 1000), actor);
          init = await initializeJob(deps, request);
        }
        if (init.resumed) await resumeJob(deps, init.jobId);
        // Like runJobLocally: wait until nothing runs; a job left unfinished gets one heal.
        for (let checks = 0; ; checks++) {
          while (active > 0) await sched.sleep(100, actor);
          if (failure !== undefined)
            throw failure instanceof Error ? failure : new Error(JSON.stringify(failure));
          const open = await this.openJobsOf(jobId);
          if (open.length === 0) return worker.stop();
          if (checks >= 3) {
            // runJobLocally would stop here ("stopped making progress"); the user resumes.
            actor.onCrash?.();
            return;
          }
          for (const id of open) {
            await resumeJob(deps, id);
            run(`serve:${id}:settle-check${checks}`, 0, () => dispatchJob(deps, { jobId: id }));
          }
          await sched.sleep(50, actor);
        }
      },
      (err) => {
        sched.note(`${actor.name} stopped: ${(err as Error).message}`);
        if (isBadInput(err)) {
          // The CLI exits 2: a refusal is final, nobody resumes it.
          if (!this.expectedRefusal(request, err))
            this.violations.push(`${actor.name} refused: ${err.message}`);
          return;
        }
        actor.onCrash?.();
      },
    );
  }

  /** Every job of a local run's chain (the first job and its iterations). */
  private async chainOf(firstJob: string) {
    return this.direct.jobs
      .find(
        { $or: [{ _id: firstJob }, { "iteration.firstJob": firstJob }] },
        { projection: { status: 1, unsettled: 1 } },
      )
      .toArray();
  }

  /** The unfinished (or unsettled) jobs of a local run's chain. */
  private async openJobsOf(firstJob: string): Promise<string[]> {
    return (await this.chainOf(firstJob))
      .filter((j) => j.status === "planning" || j.status === "running" || j.unsettled === true)
      .map((j) => j._id);
  }

  /** Everything is done: every job finished and settled, chains complete, the requeue run. */
  async finished(): Promise<boolean> {
    const open = await this.direct.jobs.countDocuments({
      $or: [{ status: { $in: ["planning", "running"] } }, { unsettled: true }],
    });
    if (open > 0) return false;
    const chains = await this.direct.jobs
      .find({ status: "succeeded", "iteration.index": { $exists: true }, "totals.records": { $gt: 0 } })
      .toArray();
    for (const job of chains) {
      const it = job.iteration;
      if (!it || it.index >= it.of) continue;
      if ((await this.direct.jobs.countDocuments({ _id: `${it.firstJob}.${it.index + 1}` })) === 0)
        return false;
    }
    if (this.scenario.kind === "requeue" && !this.requeued) {
      // The first job is done: a user requeues its exceptions (once).
      const first = await this.direct.jobs.findOne({ _id: `sim${this.seed}-1` });
      if (!first) return true; // never created (its initializer was lost before it wrote)
      this.requeued = true;
      if ((await this.direct.exceptions.countDocuments({ jobId: first._id })) === 0) return true;
      const request = {
        config: CONFIG,
        jobId: `sim${this.seed}-requeue`,
        mode: "exceptions",
        fromJob: first._id,
      };
      if (this.scenario.runner === "local") this.startLocalProcess(request, false);
      else this.triggerRun("init", request, `init:${request.jobId}`, 0);
      return false;
    }
    if (this.scenario.reruns > 0 && !this.finalRerun) {
      // Everything is done: the user runs one chunk again (a failed one's records if any).
      this.finalRerun = true;
      return !(await this.rerunSomeChunk(true));
    }
    return true;
  }

  /**
   * The user picks a finished job of the scenario's config and one of its chunks and runs it
   * again: locally (`run-chunk`: reopen, then resume the job in a process of its own) or as a
   * server run with `runChunk` in its payload. `preferFailed`: a failed chunk's records if there
   * is one. False when no job had a chunk to pick.
   */
  private async rerunSomeChunk(preferFailed: boolean): Promise<boolean> {
    const { sched } = this;
    const jobs = await this.direct.jobs
      .find({ config: CONFIG, "planning.nextChunk": { $gt: 1 } }, { projection: { planning: 1 } })
      .toArray();
    const job = jobs[Math.floor(sched.random() * jobs.length)];
    if (!job) return false;
    const failed = preferFailed
      ? await this.direct.chunks.findOne({ jobId: job._id, status: "failed" }, { projection: { chunk: 1 } })
      : null;
    const chunk = failed?.chunk ?? 1 + Math.floor(sched.random() * (job.planning.nextChunk - 1));
    const onlyFailed = failed !== null || sched.random() < 0.5;
    const seen = await this.direct.chunks.findOne({ jobId: job._id, chunk }, { projection: { attempt: 1 } });
    sched.note(`user: run-chunk ${job._id} ${chunk}${onlyFailed ? " --only-failed" : ""}`);
    if (this.scenario.runner === "trigger") {
      const payload = { jobId: job._id, runChunk: { chunk, attempt: seen?.attempt ?? 1, onlyFailed } };
      this.triggerRun("serve", payload, `rerun:${job._id}:${chunk}:${seen?.attempt ?? 1}`, 0);
      return true;
    }
    const user = sched.actor(`run-chunk#${++this.runs}(${job._id}:${chunk})`, {
      crashable: true,
      daemon: false,
    });
    const resume = () => this.startLocalProcess({ config: CONFIG, jobId: job._id }, true);
    // Stopped between reopening the job and its chunk: the user resumes the job, as told.
    user.onCrash = resume;
    const none: HandOver = {
      initialize: () => Promise.resolve(),
      serve: () => Promise.resolve(),
      watch: () => Promise.resolve(),
    };
    sched.spawn(
      user,
      async () => {
        await runChunkAgain(this.deps(user, none), job._id, { chunk, ...(onlyFailed ? { onlyFailed } : {}) });
        resume();
      },
      (err) => {
        if (isBadInput(err) && RERUN_REFUSAL.test(err.message)) {
          sched.note(`${user.name} refused: ${err.message}`);
          return;
        }
        this.violations.push(`${user.name} failed: ${(err as Error).message}`);
      },
    );
    return true;
  }

  async describeOpenWork(): Promise<string> {
    const jobs = await this.direct.jobs
      .find({ $or: [{ status: { $in: ["planning", "running"] } }, { unsettled: true }] })
      .toArray();
    const parts: string[] = [];
    for (const j of jobs) {
      const chunks = await this.direct.chunks.find({ jobId: j._id, done: false }).toArray();
      parts.push(
        `job ${j._id} ${j.status}${j.unsettled ? " unsettled" : ""} planning ${JSON.stringify(j.planning)}; open chunks: ${chunks
          .map((c) => `${c.chunk}:${c.status}@${c.attempt}`)
          .join(", ")}`,
      );
    }
    return parts.join(" | ") || "no open job";
  }
}
