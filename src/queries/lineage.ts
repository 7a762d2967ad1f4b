/**
 * Lineage: every job and chunk that included a record, with its attempts, when it was sent and
 * processed, the outcome, and the config hash of the job and of the chunk's last attempt.
 */
import { listChunkConfigHashes } from "../store/chunks.js";
import { listJobConfigs } from "../store/jobs.js";
import { listRecordLineage } from "../store/records.js";
import { listSetAsideReasons } from "../store/set-aside-records.js";
import { ObjectId } from "bson";
import { readSecretsByConfig } from "../store/configs.js";
import { redactAndCut } from "../config/redact.js";
import type { Store } from "../store/store.js";

/** A record's `error` is shown up to this long. */
const SHOWN_ERROR_CHARS = 2000;

export interface RecordLineage {
  jobId: string;
  config: string;
  jobConfigHash: string;
  chunk: number;
  chunkConfigHash?: string;
  status: string;
  attempts: number;
  sentAt?: Date;
  processedAt?: Date;
  error?: string;
  exception?: string;
  /** The value the service returned for the record in this job (completion "response"/"callback", or written in "status"). */
  result?: unknown;
  /** Why a returned value was not kept. */
  resultError?: string;
}

/**
 * Reads a record id typed on the command line: `--type` when given, else a 24-hex string is an
 * ObjectId, an integer a number, anything else a string.
 */
export function parseRecordId(text: string, type?: "string" | "number" | "objectId"): unknown {
  switch (type) {
    case "string":
      return text;
    case "number": {
      const n = Number(text);
      if (!Number.isFinite(n)) throw new Error(`'${text}' is not a number`);
      return n;
    }
    case "objectId":
      if (!ObjectId.isValid(text) || text.length !== 24)
        throw new Error(`'${text}' is not a 24-hex ObjectId`);
      return new ObjectId(text);
    case undefined:
      if (/^[0-9a-fA-F]{24}$/.test(text)) return new ObjectId(text);
      if (/^-?\d+$/.test(text)) return Number(text);
      return text;
    default: {
      const never: never = type;
      return never;
    }
  }
}

/**
 * A record's `error` is written by the batch service straight into `batch_details`, so it is
 * redacted here, with the secrets of the job's config read from `env` (those the reader has).
 * An exception's reason was redacted when written; it is redacted again in case the secret or
 * the redaction changed since.
 */
export async function whereIsRecord(
  store: Store,
  recordId: unknown,
  config?: string,
  env: Record<string, string | undefined> = process.env,
): Promise<RecordLineage[]> {
  const details = await listRecordLineage(store, recordId);
  if (details.length === 0) return [];
  const jobIds = [...new Set(details.map((d) => d.jobId))];
  const [jobs, chunks, exceptions] = await Promise.all([
    listJobConfigs(store, jobIds),
    listChunkConfigHashes(store, details),
    listSetAsideReasons(store, recordId, jobIds),
  ]);
  const jobById = new Map(jobs.map((j) => [j._id, j]));
  const secretsByConfig = await readSecretsByConfig(
    store,
    jobs.map((j) => j.config),
    env,
  );
  return details
    .map((d) => {
      const job = jobById.get(d.jobId);
      const chunk = chunks.find((c) => c.jobId === d.jobId && c.chunk === d.chunk);
      const ex = exceptions.find((e) => e.jobId === d.jobId);
      const secrets = (job && secretsByConfig.get(job.config)) ?? [];
      return {
        jobId: d.jobId,
        config: job?.config ?? "?",
        jobConfigHash: job?.configHash ?? "?",
        chunk: d.chunk,
        ...(chunk?.configHash ? { chunkConfigHash: chunk.configHash } : {}),
        status: d.status,
        attempts: d.attempts,
        ...(d.sentAt ? { sentAt: d.sentAt } : {}),
        ...(d.processedAt ? { processedAt: d.processedAt } : {}),
        ...(d.error ? { error: redactAndCut(String(d.error), secrets, SHOWN_ERROR_CHARS) } : {}),
        ...(ex ? { exception: redactAndCut(ex.reason, secrets, SHOWN_ERROR_CHARS) } : {}),
        ...(d.result !== undefined ? { result: d.result } : {}),
        ...(d.resultError ? { resultError: d.resultError } : {}),
      };
    })
    .filter((l) => !config || l.config === config)
    .sort((a, b) => (a.sentAt?.getTime() ?? 0) - (b.sentAt?.getTime() ?? 0));
}
