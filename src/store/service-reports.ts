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
