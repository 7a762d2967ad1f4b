/** Records set aside for a human: listing them and showing one (resolving is in src/admin). */
import { listSetAsideRecords, readSetAsideRecord } from "../store/set-aside-records.js";
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
