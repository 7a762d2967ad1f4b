/**
 * Cuts: points in the order of a config's records, which is (order key, _id) ascending. A job's
 * window is the records above one cut and at or below another; watermarks and planning
 * checkpoints are cuts too. The `_id` tie-break makes every cut exact even when many records
 * share one order key, so consecutive windows never overlap and never leave a gap. Pure: values
 * compare in BSON order (the order MongoDB sorts in), and the query builders only build filters.
 */
import { type Document, EJSON } from "bson";
import { compareBson } from "../common/bson-order.js";

/**
 * - `{ key, id }`: right after the record (key, id).
 * - `{ key, keyIncluded: true }`: after every record whose order key is `key` (a `--to` bound).
 * - `{ key, keyIncluded: false }`: before every record whose order key is `key` (a `--from` bound).
 */
export interface Cut {
  key: unknown;
  id?: unknown;
  keyIncluded?: boolean;
}

/** The cut right after one record. */
export const cutAfter = (record: { key: unknown; id: unknown }): Cut => ({ key: record.key, id: record.id });

/** Orders two cuts; `undefined` is the start, before every record. */
export function compareCuts(a: Cut | undefined, b: Cut | undefined): number {
  if (a === undefined || b === undefined) return a === b ? 0 : a === undefined ? -1 : 1;
  const byKey = compareBson(a.key, b.key);
  if (byKey !== 0) return byKey;
  const rank = (c: Cut) => (c.id !== undefined ? 0 : c.keyIncluded ? 1 : -1);
  const ra = rank(a);
  const rb = rank(b);
  if (ra !== 0 || rb !== 0) return ra - rb;
  return compareBson(a.id, b.id);
}

export const laterCut = (a: Cut | undefined, b: Cut | undefined): Cut | undefined =>
  compareCuts(a, b) >= 0 ? a : b;

/** True when the record lies above `from` and at or below `to` (either may be open). */
export function isInside(record: { key: unknown; id: unknown }, from?: Cut, to?: Cut): boolean {
  const at = cutAfter(record);
  return compareCuts(at, from) > 0 && (to === undefined || compareCuts(at, to) <= 0);
}

/** Filter for the records strictly above a cut, on order key `field`. */
export function aboveCut(field: string, cut: Cut): Document {
  if (cut.id === undefined) return { [field]: cut.keyIncluded ? { $gt: cut.key } : { $gte: cut.key } };
  if (field === "_id") return { _id: { $gt: cut.id } };
  return { $or: [{ [field]: { $gt: cut.key } }, { [field]: cut.key, _id: { $gt: cut.id } }] };
}

/** Filter for the records at or below a cut, on order key `field`. */
export function atOrBelowCut(field: string, cut: Cut): Document {
  if (cut.id === undefined) return { [field]: cut.keyIncluded ? { $lte: cut.key } : { $lt: cut.key } };
  if (field === "_id") return { _id: { $lte: cut.id } };
  return { $or: [{ [field]: { $lt: cut.key } }, { [field]: cut.key, _id: { $lte: cut.id } }] };
}

/** `$and` of the non-empty parts (one part stays as it is; none is `{}`). */
export function allOf(parts: Document[]): Document {
  const kept = parts.filter((p) => Object.keys(p).length > 0);
  return kept.length === 0 ? {} : kept.length === 1 ? (kept[0] as Document) : { $and: kept };
}

/** A key value for a payload that must survive JSON (a Trigger.dev hand-over): Extended JSON. */
export const keyToPayload = (value: unknown): unknown =>
  (EJSON.serialize({ v: value }, { relaxed: false }) as { v: unknown }).v;

/** A key value from a payload as BSON: Extended JSON ({"$date": …}) and BSON values alike. */
export function keyFromPayload(value: unknown): unknown {
  return (EJSON.deserialize(EJSON.serialize({ v: value }, { relaxed: false })) as { v: unknown }).v;
}
