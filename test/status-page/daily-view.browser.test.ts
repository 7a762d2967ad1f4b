/**
 * The status page's views in a browser (Debian's chromium, driven by playwright-core): the job
 * list filtered and paged through its URL, a job's own URL opened directly and reloaded (charts,
 * chunk detail, results and exceptions a page at a time), the config page, and hostile text from
 * outside shown as text, never run. A screenshot of each view is kept in
 * test-output/screenshots/views-<view>.png (test-output/ is gitignored: artifacts of the last run).
 * Run with `npm run test:browser` (needs /usr/bin/chromium: `apt-get install chromium`).
 */
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import type { Browser, Page } from "playwright-core";
import { launchChromium } from "../support/browser.js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { saveConfig } from "../../src/store/configs.js";
import { runJobLocally } from "../../src/runtimes/local/local-runner.js";
import { type StatusServer, startStatusServer } from "../../src/status-page/server.js";
import type { JobDoc, Store } from "../../src/store/store.js";
import { startFakeService, usePipelineStore } from "../support/pipeline.js";

const OUT = join(import.meta.dirname, "../../test-output/screenshots");
const TOKEN = "view-token";
/** Runs script if it is ever put in the page as markup. */
const HOSTILE = '<img src=x onerror="window.__pwned=1">';
const HOSTILE_JOB = `evil${HOSTILE}`;

const { store: currentStore } = usePipelineStore("browser_views");
let store: Store;
let browser: Browser;
let status: StatusServer;
let stopFake: () => Promise<void> = () => Promise.resolve();

beforeAll(async () => {
  store = currentStore();
  await store.db
    .collection("views_src")
    .insertMany(Array.from({ length: 100 }, (_, i) => ({ _id: i, v: i })) as never[]);
  // Records 10–39 fail (30 exceptions: two pages of 20); the others get a value each.
  const fake = await startFakeService(store, (req) => ({
    status: 200,
    body: JSON.stringify({
      results: req.body.records.map((r) => {
        const id = r.id as number;
        return id >= 10 && id < 40
          ? { id, status: "failed", error: `record ${id} refused` }
          : { id, status: "processed", result: { doubled: id * 2 } };
      }),
    }),
  }));
  stopFake = () => fake.stop();
  await saveConfig(
    store,
    {
      name: "views",
      description: `views ${HOSTILE}`,
      source: { collection: "views_src", fields: ["v"] },
      chunking: { maxRecords: 10 },
      target: { url: fake.url },
      completion: "response",
      retry: { maxAttempts: 1 },
      schedule: { cron: "15 4 * * *", timezone: "UTC" },
    },
    new Date(),
  );
  await runJobLocally({
    store,
    config: "views",
    jobId: "views-1",
    request: { mode: "incremental", maxRecords: 60 },
  });
  await runJobLocally({ store, config: "views", jobId: "views-2", request: { mode: "incremental" } });
  // Older finished jobs for the list to page through, and one whose every text is hostile.
  const { lane: _lane, ...base } = (await store.jobs.findOne({ _id: "views-1" })) as JobDoc;
  const t0 = base.createdAt.getTime() - 3_600_000;
  await store.jobs.insertMany(
    Array.from({ length: 12 }, (_, i) => ({
      ...base,
      _id: `views-old-${String(i).padStart(2, "0")}`,
      claimKey: `job:views-old-${i}`,
      status: i % 2 === 0 ? ("failed" as const) : ("succeeded" as const),
      createdAt: new Date(t0 - i * 60_000),
    })),
  );
  await store.jobs.insertOne({
    ...base,
    _id: HOSTILE_JOB,
    claimKey: `job:${HOSTILE_JOB}`,
    description: HOSTILE,
    lastError: HOSTILE,
    createdAt: new Date(t0 + 60_000),
  });
  const chunk = await store.chunks.findOne({ jobId: "views-1", chunk: 2 }, { projection: { _id: 0 } });
  await store.chunks.insertOne({
    ...(chunk as NonNullable<typeof chunk>),
    jobId: HOSTILE_JOB,
    lastError: HOSTILE,
  });
  await store.details.insertOne({
    jobId: HOSTILE_JOB,
    recordId: HOSTILE,
    chunk: 2,
    status: "failed",
    attempts: 1,
    result: { html: HOSTILE },
    error: HOSTILE,
  });
  await store.exceptions.insertOne({
    jobId: HOSTILE_JOB,
    config: "views",
    recordId: HOSTILE,
    chunk: 2,
    attempts: 1,
    reason: HOSTILE,
    createdAt: new Date(),
  });
  status = await startStatusServer({ store, token: TOKEN });
  mkdirSync(OUT, { recursive: true });
  browser = await launchChromium();
});

afterAll(async () => {
  await browser?.close();
  await status?.stop();
  await stopFake();
});

const open = async (path: string): Promise<Page> => {
  const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
  await page.goto(new URL(path, status.url).toString());
  return page;
};
const shoot = (page: Page, view: string) =>
  page.screenshot({ path: join(OUT, `views-${view}.png`), fullPage: true });
const jobIds = async (page: Page) =>
  Promise.all((await page.locator("#jobs tr.job").all()).map((row) => row.getAttribute("data-job")));
/**
 * Waits until the first cell of a table's first row reads `text`. Polled from here: the page's
 * Content-Security-Policy refuses the string evaluation a page-side wait would need.
 */
const firstCellIs = (page: Page, table: string, text: string) =>
  expect.poll(() => page.locator(`#${table} tr.row td`).first().innerText(), { timeout: 10_000 }).toBe(text);

describe("status page views", () => {
  it("filters and pages the job list through its URL", async () => {
    const page = await open(`/?config=views&limit=5&token=${TOKEN}`);
    await page.locator("#jobs tr.job").nth(4).waitFor({ timeout: 10_000 });
    const first = await jobIds(page);
    expect(first.slice(0, 2)).toEqual(["views-2", "views-1"]);
    await shoot(page, "jobs");
    // The next page: a new URL carrying the cursor and the token.
    await page.locator("#jobs-older").click();
    await page.waitForURL(/before=/);
    expect(page.url()).toContain(`token=${TOKEN}`);
    await expect
      .poll(() => page.locator("#jobs tr.job").first().getAttribute("data-job"), { timeout: 10_000 })
      .not.toBe(first[0]);
    const second = await jobIds(page);
    expect(second).toHaveLength(5);
    expect(second.filter((id) => first.includes(id))).toEqual([]);
    // A filter is a form: its submission is the list's URL with the filter in the query.
    await page.selectOption("#f-status", "failed");
    await page.locator("#f-apply").click();
    await page.waitForURL(/status=failed/);
    await page.locator("#jobs tr.job").first().waitFor({ timeout: 10_000 });
    const statuses = await page.locator("#jobs tr.job td.status-failed").count();
    expect(statuses).toBe(await page.locator("#jobs tr.job").count());
    expect(page.url()).toContain("config=views");
    await page.close();
  });

  it("opens a job at its URL, keeps it on reload, and shows charts, chunk detail, results and exceptions", async () => {
    const page = await open(`/jobs/views-1?token=${TOKEN}`);
    await page.locator("#chart-rate rect").first().waitFor({ timeout: 10_000 });
    await page.reload();
    await page.locator("#chart-rate rect").first().waitFor({ timeout: 10_000 });
    expect(await page.locator("#job-title").innerText()).toContain("views-1");
    expect(await page.locator("#chart-rtt rect").count()).toBeGreaterThan(0);
    // A chunk: its state on hover (title), its detail on click.
    const chunk = page.locator('#chunks .chunk[data-chunk="2"]');
    expect(await chunk.getAttribute("title")).toMatch(/^chunk 2: failed, attempt 1, 10 records$/);
    await chunk.click();
    const panel = page.locator("#chunk-panel");
    await panel.waitFor();
    expect(await panel.innerText()).toMatch(/chunk 2[\s\S]*failed[\s\S]*config [0-9a-f]+, sent/);
    // Results: 60 records, 20 a page.
    const firstCell = (table: string) => page.locator(`#${table} tr.row td`).first();
    await page.locator("#results tr.row").first().waitFor();
    expect(await firstCell("results").innerText()).toBe("0");
    await page.locator("#results-next").click();
    await firstCellIs(page, "results", "20");
    await page.locator("#results-prev").click();
    await firstCellIs(page, "results", "0");
    // Exceptions: records 10–39, 20 a page.
    expect(await firstCell("exceptions").innerText()).toBe("10");
    await page.locator("#exceptions-next").click();
    await firstCellIs(page, "exceptions", "30");
    expect(await page.locator("#exceptions tr.row").count()).toBe(10);
    expect(await page.locator("#exceptions-next").count()).toBe(0);
    await shoot(page, "job");
    // The job's config, through its link: drawn in place (history.pushState), not reloaded.
    await page.evaluate("window.__samePage = 1");
    await page.locator("#job-config").click();
    await page.waitForURL(/\/configs\/views\?token=/);
    await page.locator("#lanes tr.lane").first().waitFor({ timeout: 10_000 });
    expect(await page.locator("#schedule").innerText()).toMatch(
      /scheduled 15 4 \* \* \* \(UTC\).*next run \d{4}-\d\d-\d\d 04:15:00 UTC/,
    );
    expect(await page.locator("#backlog").innerText()).toMatch(/backlog: \d+ record/);
    expect(await page.locator("svg.windows rect.window").count()).toBeGreaterThanOrEqual(2);
    expect(await page.locator("#recent tr.recent").count()).toBeGreaterThanOrEqual(2);
    await shoot(page, "config");
    // And on to this config's jobs; back and forward redraw the views the addresses name.
    await page.locator("#config-jobs").click();
    await page.waitForURL(/\/\?config=views&token=/);
    await page.locator("#jobs tr.job").first().waitFor({ timeout: 10_000 });
    await page.goBack();
    await page.waitForURL(/\/configs\/views\?token=/);
    await page.locator("#config-title").waitFor({ timeout: 10_000 });
    await page.goBack();
    await page.waitForURL(/\/jobs\/views-1\?token=/);
    await page.locator("#job-title", { hasText: "views-1" }).waitFor({ timeout: 10_000 });
    expect(await page.evaluate("window.__samePage")).toBe(1);
    await page.close();
  });

  it("shows hostile ids, descriptions, errors and results as text; nothing runs", async () => {
    const list = await open(`/?token=${TOKEN}`);
    await list.locator("#jobs td", { hasText: "onerror" }).first().waitFor({ timeout: 10_000 });
    const config = await open(`/configs/views?token=${TOKEN}`);
    await config.locator("#config-title").waitFor({ timeout: 10_000 });
    const job = await open(`/jobs/${encodeURIComponent(HOSTILE_JOB)}?token=${TOKEN}`);
    await job.locator("#results tr.row").first().waitFor({ timeout: 10_000 });
    await job.locator("#exceptions tr.row").first().waitFor({ timeout: 10_000 });
    await job.locator('#chunks .chunk[data-chunk="2"]').click();
    await job.locator("#chunk-panel").waitFor();
    expect(await job.locator("#job-title").innerText()).toContain(HOSTILE_JOB);
    expect(await job.locator("#description").innerText()).toBe(HOSTILE);
    expect(await job.locator("#results").innerText()).toContain(JSON.stringify({ html: HOSTILE }));
    expect(await job.locator("#exceptions").innerText()).toContain(HOSTILE);
    expect(await job.locator("#chunk-panel").innerText()).toContain(HOSTILE);
    for (const page of [list, config, job]) {
      expect(await page.locator("img").count()).toBe(0);
      expect(await page.evaluate("typeof window.__pwned")).toBe("undefined");
    }
    await shoot(job, "hostile-job");
    for (const page of [list, config, job]) await page.close();
  });
});
