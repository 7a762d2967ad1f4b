/**
 * End to end in a browser: Debian's chromium (driven by playwright-core) opens the status page
 * while a real job runs and sees its progress change, on the job list and on the job's own page;
 * a screenshot of the running job is kept in test-output/screenshots/running-job.png
 * (test-output/ is gitignored: artifacts of the last run, not sources).
 * Run with `npm run test:browser` (needs /usr/bin/chromium: `apt-get install chromium`).
 */
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { type Browser, chromium } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { saveConfig } from "../../src/store/configs.js";
import { runJobLocally } from "../../src/runtimes/local/local-runner.js";
import { type BatchService, startBatchService } from "../../src/service/batch-service.js";
import { type StatusServer, startStatusServer } from "../../src/status-page/server.js";
import { type Store } from "../../src/store/store.js";
import { uriWithDatabase } from "../../src/store/connection.js";
import { registerWorker } from "../../src/store/workers.js";
import { usePipelineStore } from "../support/pipeline.js";

const CHROMIUM = process.env.CHROMIUM_PATH ?? "/usr/bin/chromium";
const OUT = join(import.meta.dirname, "../../test-output/screenshots");
const { t, store: currentStore } = usePipelineStore("browser");
let store: Store;
let browser: Browser;
let service: BatchService;
let status: StatusServer;

beforeAll(async () => {
  store = currentStore();
  await store.db
    .collection("browser_src")
    .insertMany(Array.from({ length: 3000 }, (_, i) => ({ _id: i as never })));
  service = await startBatchService({
    mongoUri: uriWithDatabase(t.uri, t.db().databaseName),
    latencyMs: 150,
  });
  await saveConfig(
    store,
    {
      name: "browser",
      source: { collection: "browser_src" },
      chunking: { maxRecords: 100 },
      target: { url: service.url },
      watch: { pollIntervalMs: 20 },
    },
    new Date(),
  );
  status = await startStatusServer({ store, token: "page-token" });
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: [
      "--headless",
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
    ],
  });
});

afterAll(async () => {
  await browser?.close();
  await status?.stop();
  await service?.stop();
});

describe("status page", () => {
  it("shows a running job's progress changing, then its end", async () => {
    const run = runJobLocally({ store, config: "browser", jobId: "browser-job" });
    const page = await browser.newPage({ viewport: { width: 1200, height: 900 } });
    await page.goto(`${status.url}?token=page-token`);
    const row = page.locator('tr.job[data-job="browser-job"]');
    await row.waitFor({ timeout: 15_000 });
    const readPct = async () => Number((await row.locator(".pct").innerText()).replace("%", ""));
    const first = await readPct();
    let later = first;
    for (let i = 0; i < 60 && later <= first; i++) {
      await page.waitForTimeout(250);
      later = await readPct();
    }
    expect(later).toBeGreaterThan(first);
    // The run's own worker, live while it runs.
    await page.locator("#workers tr.worker.state-live").first().waitFor({ timeout: 10_000 });
    // The job's own page, through its link (the token travels with it).
    await row.locator('a[href^="/jobs/"]').click();
    await page.waitForURL(/\/jobs\/browser-job\?token=page-token$/);
    await page.locator("#chunks .chunk").first().waitFor({ timeout: 10_000 });
    expect(await page.locator("#chunks .chunk").count()).toBe(30);
    // The job's window and partitioning, in words.
    const window = await page.locator("#window").innerText();
    expect(window).toContain("mode full");
    expect(window).toContain("lane browser #1");
    expect(window).toMatch(/partitioning size_\d+: order _id; chunks of ≤\d+ records/);
    mkdirSync(OUT, { recursive: true });
    await page.screenshot({ path: join(OUT, "running-job.png"), fullPage: true });
    const summary = await run;
    expect(summary.status).toBe("succeeded");
    await page.goBack();
    await page.locator("tr.job .status-succeeded").first().waitFor({ timeout: 10_000 });
    expect(await readPct()).toBe(100);
    await page.close();
  }, 120_000);

  it("shows a worker's name as text, never as markup", async () => {
    const now = new Date();
    const name = '<img src=x onerror="document.title=1">';
    await registerWorker(
      store,
      { id: "web:1:aaaaaa", name, kind: "listen", host: "web", pid: 1, startedAt: now, heartbeatMs: 15_000 },
      now,
    );
    const page = await browser.newPage();
    await page.goto(`${status.url}?token=page-token`);
    const cell = page.locator("#workers tr.worker td", { hasText: "onerror" }).first();
    await cell.waitFor({ timeout: 10_000 });
    expect(await cell.innerText()).toBe(name);
    expect(await page.locator("#workers img").count()).toBe(0);
    await page.close();
  }, 60_000);
});
