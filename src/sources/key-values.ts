/**
 * Order-key values typed on the command line (`--from`, `--to`) are read in the type the order
 * key is stored in — the type of the newest matching record's key — so `--from 2026-01-01` is a
 * date for a date key, a string for a string key, and an ObjectId (of that time) for an ObjectId
 * key. A value that cannot be read in that type is refused with a message saying what would be.
 */
import { findSourceRecordAt } from "../store/source-collection.js";
import { type Document, ObjectId } from "bson";
import { type BatchConfig, isFileSource } from "../config/schema.js";
import { parseKafkaBound } from "./kafka-source.js";
import { readPath } from "../common/bson-order.js";
import { BadInputError } from "../common/errors.js";
import { refusedAsBadInput } from "./mongo-source.js";
import type { Store } from "../store/store.js";

export type KeyType = "string" | "number" | "date" | "objectId";

export function keyTypeOf(value: unknown): KeyType | undefined {
  if (typeof value === "string") return "string";
  if (typeof value === "number" || typeof value === "bigint") return "number";
  if (value instanceof Date) return "date";
  const bsonType = (value as { _bsontype?: string } | null)?._bsontype;
  if (bsonType === "ObjectId") return "objectId";
  if (bsonType === "Int32" || bsonType === "Long" || bsonType === "Double" || bsonType === "Decimal128")
    return "number";
  return undefined;
}

const ISO_DATE = /^\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?(Z|[+-]\d{2}:?\d{2})?)?$/;

function parseDate(text: string): Date | undefined {
  if (!ISO_DATE.test(text)) return undefined;
  // A date without a zone is UTC (new Date would read a date-time without a zone as local time).
  const withZone = /(Z|[+-]\d{2}:?\d{2})$/.test(text) || !text.includes(":") ? text : `${text}Z`;
  const d = new Date(withZone.replace(" ", "T"));
  return Number.isNaN(d.getTime()) ? undefined : d;
}

/** Reads `text` as a value of `type`; throws BadInputError saying what was expected. */
export function parseKeyAs(type: KeyType, text: string, what: string): unknown {
  switch (type) {
    case "string":
      return text;
    case "number": {
      const n = Number(text);
      if (text.trim() === "" || !Number.isFinite(n)) {
        throw new BadInputError(`${what} '${text}' is not a number, and the order key holds numbers`);
      }
      return n;
    }
    case "date": {
      const d = parseDate(text);
      if (!d) {
        throw new BadInputError(
          `${what} '${text}' is not a date; the order key holds dates: write 2026-01-31 or 2026-01-31T12:00:00Z`,
        );
      }
      return d;
    }
    case "objectId": {
      if (/^[0-9a-fA-F]{24}$/.test(text)) return new ObjectId(text);
      const d = parseDate(text);
      if (d) return ObjectId.createFromTime(Math.floor(d.getTime() / 1000));
      throw new BadInputError(
        `${what} '${text}' is neither an ObjectId (24 hex digits) nor a date (an ObjectId of that time); the order key holds ObjectIds`,
      );
    }
    default: {
      const never: never = type;
      throw new Error(`unknown key type ${String(never)}`);
    }
  }
}

/** The type of the config's order key, from its newest matching record (files: numbers). */
export async function readKeyType(store: Store, config: BatchConfig): Promise<KeyType | undefined> {
  const source = config.source;
  if (isFileSource(source)) return "number";
  if (source.type === "kafka") return undefined; // positions are offset vectors (parseKafkaBound)
  // A filter the server refuses is bad input here too (exit 2, never retried).
  const doc = await refusedAsBadInput(source.collection, () =>
    findSourceRecordAt(store, source.collection, source.filter as Document, source.orderBy, "last"),
  );
  return doc ? keyTypeOf(readPath(doc, source.orderBy)) : undefined;
}

/**
 * Reads a command-line key in the order key's stored type. With no record to look at, a number
 * stays a number, an ISO date a date, 24 hex digits an ObjectId, anything else a string.
 */
export async function parseKeyArgument(
  store: Store,
  config: BatchConfig,
  text: string,
  what: string,
  side: "from" | "to" = /to$/.test(what) ? "to" : "from",
): Promise<unknown> {
  const source = config.source;
  if (source.type === "kafka") return parseKafkaBound({ name: config.name, source }, text, side, what);
  const type = await readKeyType(store, config);
  if (type) return parseKeyAs(type, text, what);
  if (/^[0-9a-fA-F]{24}$/.test(text)) return new ObjectId(text);
  if (parseDate(text)) return parseDate(text);
  if (text.trim() !== "" && Number.isFinite(Number(text))) return Number(text);
  return text;
}
