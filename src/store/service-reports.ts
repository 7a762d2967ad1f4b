/**
 * What the reference batch service (`src/service/`, a separate program) writes into chunkrelay's
 * collections: its reports on the records of a delivery.
 */
import type { Store } from "./store.js";

/**
 * Reports records of a chunk attempt processed or failed. Only `sent` records of this attempt
 * move (`attempts` is the attempt that last sent the record): a status goes forward, never back,
 * and a report arriving after the record went out again under a newer attempt changes nothing.
 * `attempt` records which attempt the report is about.
 */
export async function reportRecords(
  store: Store,
  report: {
    jobId: string;
    attempt: number;
    recordIds: readonly unknown[];
    at: Date;
    outcome: { status: "processed" } | { status: "failed"; error: string };
  },
): Promise<void> {
  const { outcome } = report;
  await store.details.updateMany(
    {
      jobId: report.jobId,
      recordId: { $in: [...report.recordIds] },
      status: "sent",
      attempts: report.attempt,
    },
    {
      $set: {
        status: outcome.status,
        attempt: report.attempt,
        processedAt: report.at,
        ...(outcome.status === "failed" ? { error: outcome.error } : {}),
      },
    },
  );
}

/**
 * Reports records processed, each with the value the service returns for it (`result`), fenced
 * as `reportRecords` is. chunkrelay keeps a value up to the config's `results.maxBytes` and
 * replaces a larger one with `resultError` when the attempt's records are all reported.
 */
export async function reportRecordValues(
  store: Store,
  report: {
    jobId: string;
    attempt: number;
    values: ReadonlyArray<{ id: unknown; result: unknown }>;
    at: Date;
  },
): Promise<void> {
  if (report.values.length === 0) return;
  await store.details.bulkWrite(
    report.values.map((v) => ({
      updateOne: {
        filter: { jobId: report.jobId, recordId: v.id, status: "sent", attempts: report.attempt },
        update: {
          $set: { status: "processed", attempt: report.attempt, processedAt: report.at, result: v.result },
        },
      },
    })),
    { ordered: false },
  );
}
