/**
 * Text the batch service writes straight into the database (a record's `error`), and text stored
 * before a secret could be recognized in it, is redacted as it is read: by `where` (lineage), the
 * job report, the exception listings and the status page's API.
 */
import { request } from "undici";
import { describe, expect, it } from "vitest";
import { saveConfig } from "../../src/store/configs.js";
import { SECRET_WINDOW_CHARS } from "../../src/config/redact.js";
import { listExceptions, showException } from "../../src/queries/set-aside-records.js";
import { jobReport } from "../../src/queries/jobs.js";
import { whereIsRecord } from "../../src/queries/lineage.js";
import { runJobLocally } from "../../src/runtimes/local/local-runner.js";
import { startStatusServer } from "../../src/status-page/server.js";
import { startFakeService, usePipelineStore } from "../support/pipeline.js";

const { store: currentStore, cleanups } = usePipelineStore("redact_read");

const SECRET = "rd-9Kq2Lw7Xv4Np8Zt";
const env = { READ_TOKEN: SECRET };
/** The service's error: base64 of the Authorization header, as a service might log it. */
const serviceError = `credentials ${Buffer.from(`Bearer ${SECRET}`).toString("base64")} are not valid`;

/** The first window of the secret, or of its base64 at the offset used, found in `text`. */
function leakIn(text: string): string | undefined {
  const lower = text.toLowerCase();
  const forms = [
    SECRET,
    Buffer.from(`Bearer ${SECRET}`).toString("base64").slice(10),
    encodeURIComponent(SECRET),
  ];
  for (const form of forms.map((f) => f.toLowerCase())) {
    for (let i = 0; i + SECRET_WINDOW_CHARS <= form.length; i++) {
      const w = form.slice(i, i + SECRET_WINDOW_CHARS);
      if (lower.includes(w)) return w;
    }
  }
  return undefined;
}

describe("redaction on read", () => {
  it("keeps a secret the service wrote into the database out of where, status, exceptions and the API", async () => {
    const store = currentStore();
    await store.db
      .collection("read_src")
      .insertMany(Array.from({ length: 5 }, (_, i) => ({ _id: i as never })));
    // The service fails every record, writing its own error text into batch_details.
    const fake = await startFakeService(store, async (req) => {
      await store.details.updateMany(
        { jobId: req.body.jobId, recordId: { $in: req.body.records.map((r) => r.id) } },
        { $set: { status: "failed", processedAt: new Date(), error: serviceError } },
      );
      return { status: 202 };
    });
    cleanups.push(() => fake.stop());
    await saveConfig(
      store,
      {
        name: "read",
        source: { collection: "read_src" },
        target: { url: fake.url, headers: { Authorization: { env: "READ_TOKEN", prefix: "Bearer " } } },
        retry: { maxAttempts: 1 },
        watch: { pollIntervalMs: 10 },
      },
      new Date(),
    );
    const summary = await runJobLocally({ store, config: "read", jobId: "read-job", env });
    expect(summary.status).toBe("failed");
    // What the service wrote is as it wrote it; what chunkrelay wrote was redacted then.
    expect((await store.details.findOne({ jobId: "read-job", recordId: 0 }))?.error).toBe(serviceError);
    expect(leakIn(JSON.stringify(await store.exceptions.find({}).toArray()))).toBeUndefined();
    // Text stored before a secret could be recognized in it (or under another secret).
    await store.chunks.updateMany({ jobId: "read-job" }, { $set: { lastError: `old reply: ${SECRET}` } });
    await store.exceptions.updateMany(
      { jobId: "read-job" },
      { $set: { reason: `old reason ${encodeURIComponent(SECRET)}` } },
    );

    const lineage = await whereIsRecord(store, 0, undefined, env);
    expect(lineage[0]?.error).toMatch(/^credentials .*\*\*\*.* are not valid$/);
    expect(lineage[0]?.exception).toBe("old reason ***");
    const report = await jobReport(store, "read-job", env);
    expect(report.chunks[0]?.lastError).toBe("old reply: ***");
    const listed = await listExceptions(store, { jobId: "read-job" }, env);
    expect(listed.map((e) => e.reason)).toEqual(Array(5).fill("old reason ***"));
    expect((await showException(store, "read-job", 3, env)).reason).toBe("old reason ***");
    const shown = [lineage, report, listed].map((x) => JSON.stringify(x)).join("\n");
    expect(leakIn(shown)).toBeUndefined();

    const server = await startStatusServer({ store, env });
    cleanups.push(() => server.stop());
    for (const path of ["api/jobs/read-job", "api/jobs/read-job/chunks", "api/exceptions?job=read-job"]) {
      const res = await request(`${server.url}${path}`);
      const body = await res.body.text();
      expect(res.statusCode, path).toBe(200);
      expect(body, path).toContain("***");
      expect(leakIn(body), path).toBeUndefined();
    }

    // Without the secret in the reader's environment there is nothing to recognize it by.
    expect((await whereIsRecord(store, 0, undefined, {}))[0]?.error).toBe(serviceError);
  }, 60_000);
});
