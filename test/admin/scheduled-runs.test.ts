/**
 * Scheduled incremental runs: which configs a scheduled run covers (declarative cron vs a
 * config's own cron), job ids from the scheduled time (a replay resumes, never duplicates), the
 * scheduler's timestamps never used as a watermark, and the imperative schedules synced.
 */
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { saveConfig } from "../../src/store/configs.js";
import { BadInputError, isBadInput } from "../../src/common/errors.js";
import type { InitializePayload } from "../../src/steps/initialize/payload.js";
import { runJobLocally } from "../../src/runtimes/local/local-runner.js";
import {
  NIGHTLY_TASK_ID,
  type SkippedConfig,
  allScheduledConfigs,
  scheduledConfigs,
  startScheduledJobs,
  syncConfigSchedules,
} from "../../src/admin/scheduled-runs.js";
import type { Store } from "../../src/store/store.js";
import { startFakeService, usePipelineStore } from "../support/pipeline.js";
import { onFerretDB } from "../support/server-kind.js";

// FerretDB 1.x reads a whole collection for every query not on _id alone, so each record costs
// far more there: a tenth of the records and a tenth of the cap — still three capped jobs.
const SCALE = onFerretDB() ? 10 : 1;
const N = 5000 / SCALE;
const CAP = 2000 / SCALE;

const { store: currentStore } = usePipelineStore("schedule");
let store: Store;
let url: string;
let stopService: () => Promise<void> = () => Promise.resolve();
afterAll(() => stopService());
beforeAll(async () => {
  store = currentStore();
  await store.db.collection("sch_src").insertMany(Array.from({ length: N }, (_, i) => ({ _id: i as never })));
  // Stopped after all tests (the store's clean-ups run after each one).
  const s = await startFakeService(store, () => ({ status: 202, report: "processed" }));
  stopService = () => s.stop();
  url = s.url;
  const base = {
    source: { collection: "sch_src" },
    target: { url },
    watch: { pollIntervalMs: 10 },
    maxInFlight: 4,
  };
  await saveConfig(
    store,
    { name: "sch-night", ...base, schedule: { iterations: 3 }, workload: { maxRecords: CAP } },
    new Date(),
  );
  await saveConfig(
    store,
    { name: "sch-own", ...base, schedule: { cron: "30 4 * * 1-5", timezone: "Europe/Berlin" } },
    new Date(),
  );
  await saveConfig(store, { name: "sch-none", ...base }, new Date());
});

describe("scheduled runs", () => {
  it("cover configs without their own cron, or the one named by the schedule", async () => {
    expect((await scheduledConfigs(store)).map((c) => c.name)).toEqual(["sch-night"]);
    expect((await scheduledConfigs(store, "sch-own")).map((c) => c.name)).toEqual(["sch-own"]);
    await expect(scheduledConfigs(store, "sch-none")).rejects.toThrow(BadInputError);
  });

  it("start jobs named by the scheduled time, taking what the watermark says, resumed on replay", async () => {
    const night = new Date("2026-11-20T02:00:00.123Z");
    // The scheduler's previous timestamp is far in the past; it plays no part.
    const started: InitializePayload[] = [];
    const payloads = await startScheduledJobs(store, { timestamp: night }, (p) => {
      started.push(...p);
      return Promise.resolve();
    });
    expect(payloads).toEqual([
      {
        config: "sch-night",
        jobId: "sch-night-scheduled-20261120T0200Z",
        mode: "incremental",
        iterations: 3,
        description: "scheduled incremental run of 2026-11-20T02:00:00.123Z",
      },
    ]);
    expect(started).toEqual(payloads);
    const { config, jobId, description, ...request } = payloads[0] as InitializePayload;
    const run = () =>
      runJobLocally({
        store,
        config,
        ...(jobId ? { jobId } : {}),
        ...(description ? { description } : {}),
        request,
      });
    const first = await run();
    // Capped at 2,000 per job by the config's workload: three jobs took 5,000.
    expect(first.jobs?.map((j) => [j.jobId, j.records])).toEqual([
      ["sch-night-scheduled-20261120T0200Z", CAP],
      ["sch-night-scheduled-20261120T0200Z.2", CAP],
      ["sch-night-scheduled-20261120T0200Z.3", N - 2 * CAP],
    ]);
    // A replay of the same scheduled run resumes the same (finished) chain: no new job, nothing sent.
    const sentBefore = await store.details.countDocuments({ status: { $ne: "pending" } });
    const replay = await run();
    expect(replay).toMatchObject({
      jobId: "sch-night-scheduled-20261120T0200Z",
      status: "succeeded",
      records: N,
    });
    expect(replay.jobs?.map((j) => j.jobId)).toEqual(first.jobs?.map((j) => j.jobId));
    expect(await store.jobs.countDocuments({ config: "sch-night" })).toBe(3);
    expect(await store.details.countDocuments({ status: { $ne: "pending" } })).toBe(sentBefore);
    // The next night takes only what arrived since.
    await store.db
      .collection("sch_src")
      .insertMany(Array.from({ length: 10 }, (_, i) => ({ _id: (N + i) as never })));
    const next = await startScheduledJobs(store, { timestamp: new Date("2026-11-21T02:00:00Z") }, () =>
      Promise.resolve(),
    );
    const nextRun = await runJobLocally({
      store,
      config: "sch-night",
      jobId: next[0]?.jobId,
      request: { mode: "incremental" },
    });
    expect(nextRun).toMatchObject({ records: 10 });
  });

  it("sync one imperative schedule per config with its own cron, and deactivate stale ones", async () => {
    const created: unknown[] = [];
    const deactivated: string[] = [];
    const existing = [
      { id: "sched_sch-own", task: NIGHTLY_TASK_ID, active: true, deduplicationKey: "chunkrelay:sch-own" },
      { id: "sched_gone", task: NIGHTLY_TASK_ID, active: true, deduplicationKey: "chunkrelay:sch-gone" },
      { id: "sched_theirs", task: NIGHTLY_TASK_ID, active: true, deduplicationKey: "someone-else" },
      { id: "sched_off", task: NIGHTLY_TASK_ID, active: false, deduplicationKey: "chunkrelay:sch-old" },
    ];
    const { synced, deactivated: stale } = await syncConfigSchedules(store, {
      create: (o) => {
        created.push(o);
        return Promise.resolve({ id: `sched_${o.externalId}` });
      },
      list: async function* () {
        await Promise.resolve();
        yield* existing;
      },
      deactivate: (id) => {
        deactivated.push(id);
        return Promise.resolve();
      },
    });
    expect(deactivated).toEqual(["sched_gone"]);
    expect(stale).toEqual([{ scheduleId: "sched_gone", config: "sch-gone" }]);
    expect(created).toEqual([
      {
        task: NIGHTLY_TASK_ID,
        cron: "30 4 * * 1-5",
        timezone: "Europe/Berlin",
        externalId: "sch-own",
        deduplicationKey: "chunkrelay:sch-own",
      },
    ]);
    expect(synced).toEqual([
      { config: "sch-own", cron: "30 4 * * 1-5", timezone: "Europe/Berlin", scheduleId: "sched_sch-own" },
    ]);
  });

  it("skip a stored config that no longer passes validation, with a warning naming it and the fix", async () => {
    // Written around `config apply` (or valid under an older chunkrelay): straight into batch_config.
    const base = { source: { collection: "sch_src" }, target: { url }, updatedAt: new Date() };
    const broken = [
      { _id: "sch-broken", ...base, schedule: {}, maxInFlight: 0 },
      { _id: "sch-broken-cron", ...base, schedule: { cron: "0 0 15W * *" } },
      { _id: "sch-\u001b[2J-hostile", ...base, schedule: {}, source: { collection: "sch_src", colour: 1 } },
    ];
    await store.configs.insertMany(broken);
    try {
      const skipped: SkippedConfig[] = [];
      const onSkip = (s: SkippedConfig) => {
        skipped.push(s);
      };
      // The declarative (nightly) run: the valid config still runs.
      expect((await scheduledConfigs(store, undefined, onSkip)).map((c) => c.name)).toEqual(["sch-night"]);
      expect(skipped.map((s) => s.config)).toEqual([
        "sch-\u001b[2J-hostile",
        "sch-broken",
        "sch-broken-cron",
      ]);
      const byName = new Map(skipped.map((s) => [s.config, s.message]));
      expect(byName.get("sch-broken")).toMatch(
        /^config 'sch-broken' in batch_config no longer passes validation and was skipped \(the other configs still run\); fix its file and store it again with `npx chunkrelay config apply <file>`:\n {2}- maxInFlight: /,
      );
      expect(byName.get("sch-broken-cron")).toMatch(
        /schedule\.cron: day of month '15W': W \(nearest weekday\)/,
      );
      expect(byName.get("sch-\u001b[2J-hostile")).toMatch(/unknown field\(s\) 'colour'/);

      // A local `chunkrelay schedule` (all configs with a schedule), with the default warning.
      const warn = vi.spyOn(console, "warn").mockImplementation(() => undefined);
      try {
        expect((await allScheduledConfigs(store)).map((c) => c.name)).toEqual(["sch-night", "sch-own"]);
        const warnings = warn.mock.calls.map((c) => String(c[0]));
        expect(warnings).toHaveLength(3);
        expect(warnings.join("\n")).toContain(
          "warning: config 'sch-broken' in batch_config no longer passes",
        );
        // A hostile name is shown escaped, never sent to the terminal as is.
        expect(warnings.join("\n")).toContain("sch-\\x1b[2J-hostile");
        expect(warnings.join("\n")).not.toContain("\u001b");
      } finally {
        warn.mockRestore();
      }

      // The scheduled task starts the valid configs' jobs.
      const started = await startScheduledJobs(
        store,
        { timestamp: new Date("2026-11-22T02:00:00Z") },
        () => Promise.resolve(),
        () => undefined,
      );
      expect(started.map((p) => p.config)).toEqual(["sch-night"]);

      // Naming the broken config itself is still refused as bad input (exit 2), with its problem.
      const named = await scheduledConfigs(store, "sch-broken").catch((err: unknown) => err);
      expect(isBadInput(named)).toBe(true);
      expect(String((named as Error).message)).toContain("maxInFlight");

      // Sync: the broken config's schedule is neither updated nor deactivated, and is reported.
      const created: string[] = [];
      const deactivated: string[] = [];
      const result = await syncConfigSchedules(
        store,
        {
          create: (o) => {
            created.push(o.externalId);
            return Promise.resolve({ id: `sched_${o.externalId}` });
          },
          list: async function* () {
            await Promise.resolve();
            yield {
              id: "sched_own",
              task: NIGHTLY_TASK_ID,
              active: true,
              deduplicationKey: "chunkrelay:sch-own",
            };
            yield {
              id: "sched_broken",
              task: NIGHTLY_TASK_ID,
              active: true,
              deduplicationKey: "chunkrelay:sch-broken-cron",
            };
          },
          deactivate: (id) => {
            deactivated.push(id);
            return Promise.resolve();
          },
        },
        () => undefined,
      );
      expect(created).toEqual(["sch-own"]);
      expect(deactivated).toEqual([]);
      expect(result.skipped.map((s) => s.config)).toEqual(["sch-broken-cron"]);
    } finally {
      await store.configs.deleteMany({ _id: { $in: broken.map((b) => b._id) } });
    }
  });
});
