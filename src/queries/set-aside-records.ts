/** Records set aside for a human: listing them and showing one (resolving is in src/admin). */
import {
  listSetAsideRecords,
  listSetAsideRecordsPage,
  readSetAsideRecord,
} from "../store/set-aside-records.js";
import { parseResultCursor, resultCursorOf } from "./results.js";
import { readSecretsByConfig } from "../store/configs.js";
import { REDACT_SCAN_CHARS, redactAndCut } from "../config/redact.js";
import { BadInputError } from "../common/errors.js";
import type { ExceptionDoc, Store } from "../store/store.js";

/**
 * An exception's reason may hold the service's text, redacted when written; it is redacted again
 * as it is read, with the secrets of its config read from `env`, in case the secret or the
 * redaction changed since.
 */
async function redactReasons(
  store: Store,
  docs: ExceptionDoc[],
  env: Record<string, string | undefined>,
): Promise<ExceptionDoc[]> {
  const secrets = await readSecretsByConfig(
    store,
    docs.map((d) => d.config),
    env,
  );
  return docs.map((d) => ({
    ...d,
    reason: redactAndCut(d.reason, secrets.get(d.config) ?? [], REDACT_SCAN_CHARS),
  }));
}

export async function listExceptions(
  store: Store,
  filter: { jobId?: string; config?: string; unresolved?: boolean; limit?: number },
  env: Record<string, string | undefined> = process.env,
): Promise<ExceptionDoc[]> {
  const docs = await listSetAsideRecords(store, filter, filter.limit ?? 100);
  return redactReasons(store, docs, env);
}

export async function showException(
  store: Store,
  jobId: string,
  recordId: unknown,
  env: Record<string, string | undefined> = process.env,
): Promise<ExceptionDoc> {
  const doc = await readSetAsideRecord(store, jobId, recordId);
  if (!doc) throw new BadInputError(`no exception for record ${JSON.stringify(recordId)} in job '${jobId}'`);
  const [redacted] = await redactReasons(store, [doc], env);
  return redacted ?? doc;
}

/** A page of a job's exceptions, reasons redacted; `next` is the cursor of the page after. */
export async function listJobExceptionsPage(
  store: Store,
  jobId: string,
  options: { after?: string; limit?: number },
  env: Record<string, string | undefined> = process.env,
): Promise<{ rows: ExceptionDoc[]; next?: string }> {
  const limit = options.limit ?? 50;
  const after = options.after === undefined ? undefined : { id: parseResultCursor(options.after) };
  const docs = await listSetAsideRecordsPage(store, jobId, { after, limit: limit + 1 });
  const rows = await redactReasons(store, docs.slice(0, limit), env);
  const last = rows[rows.length - 1];
  return { rows, ...(docs.length > limit && last ? { next: resultCursorOf(last.recordId) } : {}) };
}
