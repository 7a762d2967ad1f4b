/**
 * Hostile or mistyped Trigger.dev payloads — what a user types into the dashboard's Test page, or
 * a replay of an edited run — are refused the way the CLI refuses bad flags: the run fails at once
 * without retries (AbortTaskRunError), the message names the field, and nothing is written (no
 * job, no lock, no lane, no statistics row). A generated corpus over every field of the three
 * task payloads, run through the task bodies in a mock task context against the test database.
 */
// First: the stand-in platform registers what the SDK takes when it loads.
import { type FakeTriggerApi, executeRun, startFakeTriggerApi } from "../support/trigger-platform.js";
import { AbortTaskRunError } from "@trigger.dev/sdk";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { saveConfig } from "../../src/store/configs.js";
import { Store } from "../../src/store/store.js";
import { insertJob } from "../../src/store/jobs.js";
import { runBatchDataInitializer } from "../../src/tasks/batch-data-initializer.js";
import { runBatchDataServer } from "../../src/tasks/batch-data-server.js";
import { runChunkProcessWatcher } from "../../src/tasks/chunk-process-watcher.js";
import { storeSnapshot, useTestDatabase, useWorkerDatabase } from "../support/db.js";

const t = useTestDatabase("bad_payloads");
useWorkerDatabase(t);
let store: Store;

beforeAll(async () => {
  store = new Store(t.db());
  await store.ensureIndexes();
  await store.db
    .collection("payload_src")
    .insertMany(Array.from({ length: 30 }, (_, i) => ({ _id: i as never, n: i, at: new Date(1e12 + i) })));
  const now = new Date();
  for (const [name, orderBy] of [
    ["payloads", "n"],
    ["payloads_dates", "at"],
  ] as const) {
    await saveConfig(
      store,
      {
        name,
        source: { collection: "payload_src", orderBy },
        target: { url: "http://127.0.0.1:9/never-called" },
      },
      now,
    );
  }
  // A finished job of another config, for requeues that name the wrong config.
  await insertJob(store, {
    _id: "other-config-job",
    config: "elsewhere",
    configHash: "0",
    mode: "full",
    window: { to: null },
    partitioning: { orderBy: "_id", chunking: {} },
    status: "succeeded",
    planning: { done: true, nextChunk: 1, records: 0, weight: 0, scanned: 0 },
    triggeredBy: "test",
    createdAt: now,
    startedAt: now,
    updatedAt: now,
  } as never);
});

interface Case {
  what: string;
  payload: unknown;
  /** A word the refusal must contain (the field, or the reason). */
  says: string;
}

const long = (n: number) => "a".repeat(n);
const parsed = (json: string): unknown => JSON.parse(json);

/** Bad values of each initializer field, applied to a valid payload of a mode. */
const INIT_FIELDS: Array<[field: string, values: unknown[], says: string]> = [
  ["config", ["", 12, null, true, [], {}, "a b", "../x", "$where", "a\nb", long(121), "-x"], "config"],
  ["jobId", ["", 7, null, false, [], {}, "a b", "x/y", "$x", "a\r\nb", long(201), ".x", "é"], "jobId"],
  ["mode", ["fulll", "FULL", 1, null, [], {}, ""], "mode"],
  ["again", ["yes", 1, null, {}], "again"],
  ["maxRecords", [0, -1, 1.5, "10", null, {}, -0.5], "maxRecords"],
  ["maxWeight", [0, -3, "5", null, {}], "maxWeight"],
  ["maxChunks", [0, -1, 2.5, "2", null], "maxChunks"],
  ["iterations", [0, -1, 1.5, 1001, "2", null], "iterations"],
  ["sampleEvery", [0, -2, 1.5, "3", null], "sampleEvery"],
  ["sampleOffset", [-1, 0.5, "1", null], "sampleOffset"],
  ["sampleFirst", [0, -5, 2.5, "5", null], "sampleFirst"],
  ["fromJob", ["", 5, null, "a b", long(201)], "fromJob"],
  ["description", [5, null, {}, [], long(2001)], "description"],
  ["acceptConfigChange", ["true", 1, null, {}], "acceptConfigChange"],
  [
    "iteration",
    [
      1,
      "2",
      null,
      { index: 1, of: 3, firstJob: "j" },
      { index: 2, of: 1.5, firstJob: "j" },
      { index: 2, of: 3 },
    ],
    "iteration",
  ],
  ["unknownField", [1, "x", null], "unknownField"],
];

const BASES: Array<Record<string, unknown>> = [
  { config: "payloads" },
  { config: "payloads", mode: "incremental", maxRecords: 5 },
  { config: "payloads", mode: "backfill", from: 3, to: 9 },
  { config: "payloads", mode: "sample", sampleEvery: 3 },
];

function initializerCases(): Case[] {
  const cases: Case[] = [];
  for (const [field, values, says] of INIT_FIELDS) {
    for (const value of values) {
      // Each bad value on a base where the field is otherwise meaningful (or as an extra).
      const base =
        field === "again"
          ? (BASES[2] as Record<string, unknown>)
          : field.startsWith("sample")
            ? (BASES[3] as Record<string, unknown>)
            : (BASES[1] as Record<string, unknown>);
      cases.push({
        what: `${field}=${JSON.stringify(value)?.slice(0, 40)}`,
        payload: { ...base, [field]: value },
        says,
      });
    }
  }
  // Fields valid alone, wrong together, and requests refused after parsing.
  const combos: Case[] = [
    { what: "not an object (null)", payload: null, says: "payload" },
    { what: "not an object (number)", payload: 42, says: "payload" },
    { what: "not an object (string)", payload: "payloads", says: "payload" },
    { what: "not an object (array)", payload: [{ config: "payloads" }], says: "payload" },
    { what: "empty object", payload: {}, says: "config" },
    { what: "config unknown", payload: { config: "nope" }, says: "config 'nope' not found" },
    {
      what: "__proto__ key",
      payload: parsed('{"config":"payloads","__proto__":{"mode":"full"}}'),
      says: "__proto__",
    },
    { what: "constructor key", payload: { config: "payloads", constructor: { x: 1 } }, says: "constructor" },
    { what: "window in full mode", payload: { config: "payloads", from: 1 }, says: "from" },
    { what: "again in full mode", payload: { config: "payloads", again: true }, says: "again" },
    { what: "backfill without window", payload: { config: "payloads", mode: "backfill" }, says: "window" },
    {
      what: "backfill from > to",
      payload: { config: "payloads", mode: "backfill", from: 9, to: 3 },
      says: "empty",
    },
    {
      what: "backfill null bound",
      payload: { config: "payloads", mode: "backfill", from: null },
      says: "from",
    },
    { what: "caps in full mode", payload: { config: "payloads", maxRecords: 5 }, says: "maxRecords" },
    { what: "iterations in full mode", payload: { config: "payloads", iterations: 3 }, says: "iterations" },
    {
      what: "caps in sample mode",
      payload: { config: "payloads", mode: "sample", sampleFirst: 2, maxChunks: 1 },
      says: "maxRecords",
    },
    { what: "sample without size", payload: { config: "payloads", mode: "sample" }, says: "sampleEvery" },
    {
      what: "sample with both sizes",
      payload: { config: "payloads", mode: "sample", sampleEvery: 2, sampleFirst: 2 },
      says: "sampleEvery",
    },
    {
      what: "sampleOffset ≥ sampleEvery",
      payload: { config: "payloads", mode: "sample", sampleEvery: 2, sampleOffset: 2 },
      says: "sampleOffset",
    },
    {
      what: "sampleOffset without sampleEvery",
      payload: { config: "payloads", mode: "sample", sampleFirst: 2, sampleOffset: 1 },
      says: "sampleOffset",
    },
    {
      what: "sampleEvery outside sample",
      payload: { config: "payloads", mode: "incremental", sampleEvery: 2 },
      says: "sampleEvery",
    },
    { what: "fromJob outside exceptions", payload: { config: "payloads", fromJob: "x" }, says: "fromJob" },
    {
      what: "exceptions without fromJob",
      payload: { config: "payloads", mode: "exceptions" },
      says: "fromJob",
    },
    {
      what: "exceptions of an unknown job",
      payload: { config: "payloads", mode: "exceptions", fromJob: "nope" },
      says: "not found",
    },
    {
      what: "exceptions of another config's job",
      payload: { config: "payloads", mode: "exceptions", fromJob: "other-config-job" },
      says: "belongs to config",
    },
    {
      what: "weight cap without weightField",
      payload: { config: "payloads", mode: "incremental", maxWeight: 5 },
      says: "weightField",
    },
    {
      what: "backfill bound of the wrong type",
      payload: { config: "payloads_dates", mode: "backfill", from: "not a date" },
      says: "from",
    },
    {
      what: "backfill bound an invalid date",
      payload: { config: "payloads_dates", mode: "backfill", from: { $date: "2026-02-30T00:00:00Z" } },
      says: "from",
    },
  ];
  return [...cases, ...combos];
}

function serverCases(): Case[] {
  return [
    { what: "null", payload: null, says: "server payload" },
    { what: "empty", payload: {}, says: "server payload" },
    { what: "jobId empty", payload: { jobId: "" }, says: "server payload" },
    { what: "jobId number", payload: { jobId: 5 }, says: "server payload" },
    { what: "jobId with a slash", payload: { jobId: "a/b" }, says: "server payload" },
    { what: "jobId too long", payload: { jobId: long(201) }, says: "server payload" },
    { what: "unknown field", payload: { jobId: "x", extra: 1 }, says: "server payload" },
    { what: "misnamed field", payload: { job: "x" }, says: "server payload" },
    { what: "unknown job", payload: { jobId: "no-such-job" }, says: "not found" },
    { what: "__proto__ key", payload: parsed('{"jobId":"x","__proto__":{"a":1}}'), says: "server payload" },
  ];
}

function watcherCases(): Case[] {
  const base = { jobId: "no-such-job", chunk: 1, attempt: 1 };
  const cases: Case[] = [
    { what: "null", payload: null, says: "watcher payload" },
    { what: "empty", payload: {}, says: "watcher payload" },
    { what: "unknown job", payload: base, says: "not found" },
    { what: "unknown field", payload: { ...base, extra: true }, says: "watcher payload" },
  ];
  for (const [field, values] of [
    ["jobId", ["", 3, null, "a b", long(201)]],
    ["chunk", [0, -1, 1.5, "1", null]],
    ["attempt", [0, -2, 2.5, "1", null]],
    ["round", [-1, 0.5, "0", null]],
  ] as const) {
    for (const value of values)
      cases.push({
        what: `${field}=${JSON.stringify(value).slice(0, 30)}`,
        payload: { ...base, [field]: value },
        says: "watcher payload",
      });
  }
  return cases;
}

type Body = (payload: unknown, ctx: { run: { id: string } }) => Promise<unknown>;

let api: FakeTriggerApi;
beforeAll(async () => {
  api = await startFakeTriggerApi();
});
afterAll(async () => {
  await api?.close();
});

/** Runs the body as a run started from the dashboard with this payload (the SDK's calls answered). */
async function refusal(task: string, body: Body, payload: unknown): Promise<unknown> {
  const { result, error } = await executeRun(api.startRun(task, payload), body);
  return error ?? { accepted: result };
}

describe("hostile task payloads", () => {
  const all: Array<[task: string, body: Body, c: Case]> = [
    ...initializerCases().map(
      (c) => ["batchDataInitializer", runBatchDataInitializer, c] as [string, Body, Case],
    ),
    ...serverCases().map((c) => ["batchDataServer", runBatchDataServer, c] as [string, Body, Case]),
    ...watcherCases().map((c) => ["chunkProcessWatcher", runChunkProcessWatcher, c] as [string, Body, Case]),
  ];

  it("the corpus is large enough to mean something", () => {
    expect(all.length).toBeGreaterThanOrEqual(150);
  });

  it("each is refused at once, naming the problem, with nothing written", async () => {
    const before = await storeSnapshot(store);
    const problems: string[] = [];
    for (const [task, body, c] of all) {
      const outcome = await refusal(task, body, c.payload);
      if (!(outcome instanceof AbortTaskRunError)) {
        problems.push(
          `${task} ${c.what}: not refused without retry: ${String((outcome as Error).message ?? JSON.stringify(outcome))}`,
        );
        continue;
      }
      if (!outcome.message.toLowerCase().includes(c.says.toLowerCase()))
        problems.push(`${task} ${c.what}: the refusal does not say '${c.says}': ${outcome.message}`);
      const after = await storeSnapshot(store);
      if (after !== before) {
        problems.push(`${task} ${c.what}: the database changed`);
        break; // later comparisons would all differ
      }
    }
    expect(problems).toEqual([]);
  }, 120_000);
});
