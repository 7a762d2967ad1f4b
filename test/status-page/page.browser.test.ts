/**
 * End to end in a browser: Debian's chromium (driven by playwright-core) on the status page's
 * three views while real jobs run — the job list (progress changing, filters, paging), a job's
 * own URL (charts, chunk detail, results and exceptions paged, a reload keeping the view) and a
 * config's URL (lanes, windows, backlog, next run) — and proof that hostile values from outside
 * stay text. A screenshot of each view is kept in test-output/screenshots/ (test-output/ is
 * gitignored; CI keeps it as the run's artifacts). Run with `npm run test:browser` (needs
 * /usr/bin/chromium: `apt-get install chromium`).
 */
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import type { Browser, Page } from "playwright-core";
import { launchChromium } from "../support/browser.js";
import { seededRandom } from "../simulation/scheduler.js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { saveConfig } from "../../src/store/configs.js";
import { runJobLocally } from "../../src/runtimes/local/local-runner.js";
import { type BatchService, startBatchService } from "../../src/service/batch-service.js";
import { type StatusServer, startStatusServer } from "../../src/status-page/server.js";
import { type Store } from "../../src/store/store.js";
import { uriWithDatabase } from "../../src/store/connection.js";
import { registerWorker } from "../../src/store/workers.js";
import { startFakeService, usePipelineStore } from "../support/pipeline.js";

const SHOTS = join(import.meta.dirname, "../../test-output/screenshots");
const HOSTILE = "<img src=x onerror=\"document.title='pwned'\">";
const { t, cleanups, store: currentStore } = usePipelineStore("browser");
let store: Store;
let browser: Browser;
let service: BatchService;
let status: StatusServer;

beforeAll(async () => {
  store = currentStore();
  mkdirSync(SHOTS, { recursive: true });
  await store.db
    .collection("browser_src")
    .insertMany(Array.from({ length: 3000 }, (_, i) => ({ _id: i as never })));
  service = await startBatchService({
    mongoUri: uriWithDatabase(t.uri, t.db().databaseName),
    latencyMs: 150,
    results: true,
    failRate: 0.004,
    random: seededRandom(3),
  });
  await saveConfig(
    store,
    {
      name: "browser",
      description: "the browser test's config",
      source: { collection: "browser_src" },
      chunking: { maxRecords: 100 },
      target: { url: service.url },
      retry: { maxAttempts: 1 },
      watch: { pollIntervalMs: 20 },
      schedule: { cron: "15 1 * * *", timezone: "UTC" },
    },
    new Date(),
  );
  status = await startStatusServer({ store, token: "page-token" });
  browser = await launchChromium();
});

afterAll(async () => {
  await browser?.close();
  await status?.stop();
  await service?.stop();
});

const open = async (path: string): Promise<Page> => {
  const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
  await page.goto(new URL(path, status.url).toString());
  return page;
};
const shot = (page: Page, name: string) =>
  page.screenshot({ path: join(SHOTS, `${name}.png`), fullPage: true });

describe("status page", () => {
  it("the job list: a running job's progress changes, then its end; filters and paging live in the URL", async () => {
    const run = runJobLocally({ store, config: "browser", jobId: "browser-job" });
    const page = await open("/?token=page-token");
    const row = page.locator('tr.job[data-job="browser-job"]');
    await row.waitFor({ timeout: 15_000 });
    const readPct = async () => Number((await row.locator(".pct").innerText()).replace("%", ""));
    const first = await readPct();
    let later = first;
    for (let i = 0; i < 120 && later <= first; i++) {
      await page.waitForTimeout(250);
      later = await readPct();
    }
    expect(later).toBeGreaterThan(first);
    await page.locator("#workers tr.worker.state-live").first().waitFor({ timeout: 10_000 });
    const summary = await run;
    expect(summary.status).toBe("failed"); // a few records failed their one attempt
    await row.locator(".status-failed").waitFor({ timeout: 10_000 });
    expect(await readPct()).toBe(100);
    await shot(page, "job-list");

    // More jobs (samples), then filters and pages: each a URL of its own.
    for (let i = 0; i < 3; i++)
      await runJobLocally({
        store,
        config: "browser",
        jobId: `browser-sample-${i}`,
        request: { mode: "sample", sampleFirst: 100 },
      });
    await page.selectOption("#f-mode", "sample");
    await Promise.all([page.waitForURL(/mode=sample/), page.click("#f-apply")]);
    expect(page.url()).toContain("token=page-token");
    await page.locator('tr.job[data-job="browser-sample-2"]').waitFor({ timeout: 10_000 });
    expect(await page.locator("tr.job").count()).toBe(3);
    await page.goto(new URL("/?token=page-token&mode=sample&limit=2", status.url).toString());
    await page.locator("#jobs-older").waitFor({ timeout: 10_000 });
    expect(await page.locator("tr.job").allInnerTexts()).toHaveLength(2);
    await Promise.all([page.waitForURL(/before=/), page.click("#jobs-older")]);
    await page.locator('tr.job[data-job="browser-sample-0"]').waitFor({ timeout: 10_000 });
    expect(await page.locator("tr.job").count()).toBe(1);
    await page.reload();
    await page.locator('tr.job[data-job="browser-sample-0"]').waitFor({ timeout: 10_000 });
    await shot(page, "job-list-filtered");
    await page.close();
  }, 120_000);

  it("a job's own URL: charts, the chunk grid with detail, results and exceptions paged; a reload keeps it", async () => {
    const page = await open("/jobs/browser-job?token=page-token");
    await page.locator("#chunks .chunk").first().waitFor({ timeout: 15_000 });
    expect(await page.locator("#chunks .chunk").count()).toBe(30);
    expect(await page.locator("#chart-rate rect").count()).toBeGreaterThan(0);
    expect(await page.locator("#chart-rtt rect").count()).toBeGreaterThan(0);
    const window = await page.locator("#window").innerText();
    expect(window).toContain("mode full");
    expect(window).toMatch(/partitioning size_\d+: order _id; chunks of ≤\d+ records/);
    await page.locator('#chunks .chunk[data-chunk="5"]').click();
    await page.locator("#chunk-panel").waitFor();
    expect(await page.locator("#chunk-panel").innerText()).toMatch(
      /chunk 5 (processed|failed), attempt 1, 100 records/,
    );
    expect(await page.locator('#chunks .chunk[data-chunk="5"]').getAttribute("title")).toMatch(/^chunk 5: /);
    // Results, 20 a page, in record-id order; next and previous.
    await page.locator("#results tr.row").first().waitFor();
    expect(await page.locator("#results tr.row").count()).toBe(20);
    expect(await page.locator("#results tr.row").first().innerText()).toMatch(
      /^0\s+1\s+processed\s+1\s+\{"fields":0,"bytes":\d+,"digest":"[0-9a-f]{16}"\}/,
    );
    await page.click("#results-next");
    await page.locator("#results-pager", { hasText: "page 2" }).waitFor();
    expect(await page.locator("#results tr.row").first().innerText()).toMatch(/^20\s/);
    await page.click("#results-prev");
    await page.locator("#results-pager", { hasText: "page 1" }).waitFor();
    const exceptions = await page.locator("#exceptions tr.row").count();
    expect(exceptions).toBeGreaterThan(0);
    expect(await page.locator("#exceptions").innerText()).toContain("simulated failure");
    await shot(page, "job");
    await page.reload();
    await page.locator("#chunks .chunk").first().waitFor({ timeout: 15_000 });
    expect(await page.locator("#job-title").innerText()).toContain("browser-job");
    await page.click("#job-config");
    await page.waitForURL(/\/configs\/browser\?token=page-token$/);
    await page.close();
  }, 60_000);

  it("a config's URL: lanes and watermark, windows along the order key, backlog, next run", async () => {
    const page = await open("/configs/browser?token=page-token");
    await page.locator("#lanes tr.lane").first().waitFor({ timeout: 15_000 });
    expect(await page.locator("#lanes").innerText()).toContain("browser (full and incremental)");
    expect(await page.locator("#schedule").innerText()).toMatch(
      /scheduled 15 1 \* \* \* \(UTC\), 1 iteration\(s\); next run \d{4}-\d\d-\d\d 01:15:00 UTC/,
    );
    expect(await page.locator("#backlog").innerText()).toMatch(/backlog: \d+ record\(s\) past the watermark/);
    expect(await page.locator("#window-strips svg.windows rect").count()).toBeGreaterThan(0);
    expect(await page.locator("#recent tr.recent").count()).toBe(4);
    await shot(page, "config");
    await page.click("#config-jobs");
    await page.waitForURL(/\?config=browser/);
    await page.close();
  }, 60_000);

  it("shows values from outside as text, never as markup, in every view", async () => {
    const now = new Date();
    await registerWorker(
      store,
      {
        id: "web:1:aaaaaa",
        name: HOSTILE,
        kind: "listen",
        host: "web",
        pid: 1,
        startedAt: now,
        heartbeatMs: 15_000,
      },
      now,
    );
    await store.db.collection("hostile_src").insertMany([{ _id: "a" }, { _id: "b" }] as never[]);
    const fake = await startFakeService(store, (req) => ({
      status: 200,
      body: JSON.stringify({
        results: req.body.records.map((r) =>
          r.id === "a"
            ? { id: r.id, status: "processed", result: { html: HOSTILE } }
            : { id: r.id, status: "failed", error: HOSTILE },
        ),
      }),
    }));
    cleanups.push(() => fake.stop());
    await saveConfig(
      store,
      {
        name: "hostile",
        description: HOSTILE,
        source: { collection: "hostile_src" },
        target: { url: fake.url },
        completion: "response",
        retry: { maxAttempts: 1 },
      },
      now,
    );
    await runJobLocally({ store, config: "hostile", jobId: "hostile-job", description: HOSTILE });
    for (const [path, selector] of [
      ["/?token=page-token", "#workers tr.worker"],
      ["/jobs/hostile-job?token=page-token", "#results tr.row"],
      ["/configs/hostile?token=page-token", "#config-title"],
    ] as const) {
      const page = await open(path);
      await page.locator(selector).first().waitFor({ timeout: 10_000 });
      await page.waitForTimeout(300); // two refreshes of the view: anything injected would have run
      expect(await page.title(), path).toBe("chunkrelay status");
      expect(await page.locator("#view img").count(), path).toBe(0);
      expect(await page.locator("#view").innerText()).toContain("onerror");
      await page.close();
    }
  }, 60_000);
});
