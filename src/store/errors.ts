/**
 * How the driver reports that a write hit a unique index. Several decisions rest on it (a claim
 * lost to another runner, a record already planned, a lane seq already taken), so it is read in
 * one place: a single write's `MongoServerError` with code 11000, or a bulk write whose every
 * error is one (a bulk write with any other error is a real failure).
 */
import { MongoBulkWriteError, MongoServerError } from "mongodb";

const DUPLICATE_KEY = 11000;

/** True when `err` is a duplicate-key error and nothing else went wrong. */
export function isDuplicateKey(err: unknown): boolean {
  if (err instanceof MongoBulkWriteError) {
    const errors = Array.isArray(err.writeErrors) ? err.writeErrors : [err.writeErrors];
    return errors.length > 0 && errors.every((e: { code?: number }) => e.code === DUPLICATE_KEY);
  }
  return typeof err === "object" && err !== null && (err as { code?: unknown }).code === DUPLICATE_KEY;
}

/** The server's error code, name and message when `err` is a server's refusal; else undefined. */
export function serverRefusal(
  err: unknown,
): { code: number; codeName?: string; message: string } | undefined {
  if (!(err instanceof MongoServerError) || typeof err.code !== "number") return undefined;
  return { code: err.code, ...(err.codeName ? { codeName: err.codeName } : {}), message: err.message };
}
