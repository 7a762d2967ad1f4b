/**
 * One collection: its documents (a Map keyed by `_id`, in insertion order) and its indexes
 * (B+ trees ordered like MongoDB's BSON order), with the unique-key checks and the small query
 * planner that lets equality/range/sort queries walk an index instead of scanning.
 */
import sortedBtree from "sorted-btree";
import { MaxKey, MinKey } from "bson";
import { CommandError, fail } from "./errors.js";
import {
  type FieldBounds,
  type Matcher,
  type SortSpec,
  compileFilter,
  extractBounds,
  sortDocuments,
} from "./query.js";
import {
  type BsonDocument,
  bsonTypeName,
  compareValues,
  flattenArrays,
  formatValue,
  isNumeric,
  isPlainObject,
  keyOf,
  toNumber,
  valuesAtPath,
} from "./values.js";

// sorted-btree is CommonJS with `exports.default`. Node's ESM loader hands over module.exports
// (the class is `.default`); vite's interop (vitest) hands over `exports.default` itself.
const loaded = sortedBtree as unknown;
const BTree = (typeof loaded === "function" ? loaded : sortedBtree.default) as typeof sortedBtree.default;
type BTree<K, V> = InstanceType<typeof sortedBtree.default<K, V>>;

const MIN_KEY = new MinKey();
const MAX_KEY = new MaxKey();
// Document keys (keyOf) are never empty and start below U+FFFF, so these bracket every entry.
const MIN_ID = "";
const MAX_ID = "\uffff";

type IndexKey = unknown[];

export interface IndexSpec {
  v: number;
  key: BsonDocument;
  name: string;
  unique?: boolean;
  sparse?: boolean;
  partialFilterExpression?: BsonDocument;
  expireAfterSeconds?: number;
}

export class Index {
  readonly fields: Array<[string, 1 | -1]>;
  readonly paths: string[][];
  readonly tree: BTree<IndexKey, string>;
  readonly partial?: Matcher;
  multikey = false;

  constructor(readonly spec: IndexSpec) {
    this.fields = Object.entries(spec.key).map(([f, d]) => {
      if (typeof d === "string") {
        fail("CannotCreateIndex", `Index type '${d}' is not supported by the embedded engine`);
      }
      if (!isNumeric(d) || toNumber(d) === 0) {
        fail("CannotCreateIndex", `Values in the index key pattern can't be 0: ${f}: ${String(d)}`);
      }
      return [f, toNumber(d) > 0 ? 1 : -1];
    });
    this.paths = this.fields.map(([f]) => f.split("."));
    const dirs = this.fields.map(([, d]) => d);
    this.tree = new BTree<IndexKey, string>(undefined, (a, b) => {
      for (let i = 0; i < dirs.length; i++) {
        const c = compareValues(a[i], b[i]);
        if (c !== 0) return c * (dirs[i] as number);
      }
      const x = a[dirs.length] as string;
      const y = b[dirs.length] as string;
      return x < y ? -1 : x > y ? 1 : 0;
    });
    if (spec.partialFilterExpression) this.partial = compileFilter(spec.partialFilterExpression);
  }

  get name(): string {
    return this.spec.name;
  }

  get unique(): boolean {
    return this.spec.unique === true;
  }

  /** The key tuples (without the id) this document contributes; empty when not indexed. */
  keysOf(doc: BsonDocument): unknown[][] {
    if (this.partial && !this.partial(doc)) return [];
    let arrayField: number | undefined;
    let present = false;
    const perField = this.paths.map((path, i) => {
      const found = valuesAtPath(doc, path);
      if (found.length > 0) present = true;
      let vals: unknown[];
      if (found.length === 0) vals = [null];
      else if (found.length === 1 && !Array.isArray(found[0])) vals = found;
      else {
        vals = flattenArrays(found);
        if (arrayField !== undefined && arrayField !== i) {
          fail(
            "CannotIndexParallelArrays",
            `cannot index parallel arrays [${this.fields[i]?.[0]}] [${this.fields[arrayField]?.[0]}]`,
          );
        }
        arrayField = i;
      }
      return vals;
    });
    if (this.spec.sparse && !present) return [];
    if (arrayField === undefined) return [perField.map((v) => v[0])];
    this.multikey = true;
    const seen = new Set<string>();
    const out: unknown[][] = [];
    for (const el of perField[arrayField] as unknown[]) {
      const tuple = perField.map((v, i) => (i === arrayField ? el : v[0]));
      const k = keyOf(tuple);
      if (!seen.has(k)) {
        seen.add(k);
        out.push(tuple);
      }
    }
    return out;
  }

  /** The id of another document holding this key in a unique index, if any. */
  findConflict(key: unknown[], id: string): string | undefined {
    // Entries sort by key, then id; ids are never empty, so [...key, ""] sits just before them.
    let pair = this.tree.nextHigherPair([...key, MIN_ID]);
    while (pair) {
      const [k, other] = pair;
      for (let i = 0; i < key.length; i++) {
        if (compareValues(k[i], key[i]) !== 0) return undefined;
      }
      if (other !== id) return other;
      pair = this.tree.nextHigherPair(k);
    }
    return undefined;
  }

  add(keys: unknown[][], id: string): void {
    for (const k of keys) this.tree.set([...k, id], id);
  }

  remove(keys: unknown[][], id: string): void {
    for (const k of keys) this.tree.delete([...k, id]);
  }

  /**
   * Ids in index order between the bounds: equality on the first `eq.length` fields, an optional
   * range on the next one. Stops early when the caller stops iterating.
   */
  *scan(eq: unknown[], range: FieldBounds | undefined, reverse: boolean): Generator<string> {
    const n = this.fields.length;
    const k = eq.length;
    const dirs = this.fields.map(([, d]) => d);
    // In tree order a descending field runs from high to low, so its "first" bound is the upper.
    const lo = (i: number) => ((dirs[i] === 1) !== reverse ? range?.lower : range?.upper);
    const hi = (i: number) => ((dirs[i] === 1) !== reverse ? range?.upper : range?.lower);
    const edge = (i: number, first: boolean) => {
      const ascendingInWalk = (dirs[i] === 1) !== reverse;
      return ascendingInWalk === first ? MIN_KEY : MAX_KEY;
    };
    const start: unknown[] = [...eq];
    if (k < n) start.push(lo(k)?.value ?? edge(k, true));
    for (let i = k + 1; i < n; i++) start.push(edge(i, true));
    start.push(reverse ? MAX_ID : MIN_ID);
    const iter = reverse ? this.tree.entriesReversed(start) : this.tree.entries(start);
    const seen = this.multikey ? new Set<string>() : undefined;
    for (const [key, id] of iter) {
      let stop = false;
      for (let i = 0; i < k; i++) {
        if (compareValues(key[i], eq[i]) !== 0) {
          stop = true;
          break;
        }
      }
      if (stop) return;
      if (k < n && range) {
        const end = hi(k);
        if (end) {
          const c = compareValues(key[k], end.value) * (dirs[k] as number) * (reverse ? -1 : 1);
          if (c > 0 || (c === 0 && !end.inclusive)) return;
        }
      }
      if (seen) {
        if (seen.has(id)) continue;
        seen.add(id);
      }
      yield id;
    }
  }
}

export interface FindOptions {
  sort?: SortSpec | undefined;
  skip?: number | undefined;
  limit?: number | undefined;
}

/** Work counters, like explain's executionStats, summed over an engine's lifetime. */
export interface QueryStats {
  documentsExamined: number;
  indexScans: number;
  collectionScans: number;
}
export const newQueryStats = (): QueryStats => ({ documentsExamined: 0, indexScans: 0, collectionScans: 0 });

/**
 * Whether two documents' key tuples for one index are the same entries: equal in number and,
 * value by value, equal as the index orders them (and of the same BSON type, so an entry's stored
 * value is always the document's).
 */
function sameKeys(a: unknown[][], b: unknown[][]): boolean {
  if (a.length !== b.length) return false;
  for (let t = 0; t < a.length; t++) {
    const x = a[t] as unknown[];
    const y = b[t] as unknown[];
    if (x.length !== y.length) return false;
    for (let i = 0; i < x.length; i++) {
      if (compareValues(x[i], y[i]) !== 0 || bsonTypeName(x[i]) !== bsonTypeName(y[i])) return false;
    }
  }
  return true;
}

export class Collection {
  readonly docs = new Map<string, BsonDocument>();
  readonly indexes: Index[] = [];

  constructor(
    readonly db: string,
    readonly name: string,
    private readonly stats: QueryStats = newQueryStats(),
  ) {
    this.indexes.push(new Index({ v: 2, key: { _id: 1 }, name: "_id_" }));
  }

  get ns(): string {
    return `${this.db}.${this.name}`;
  }

  getIndex(name: string): Index | undefined {
    return this.indexes.find((i) => i.name === name);
  }

  duplicateKeyError(index: Index, key: unknown[]): CommandError {
    const keyValue: BsonDocument = {};
    index.fields.forEach(([f], i) => {
      keyValue[f] = key[i];
    });
    const shown = index.fields.map(([f], i) => `${f}: ${formatValue(key[i])}`).join(", ");
    return new CommandError(
      "DuplicateKey",
      `E11000 duplicate key error collection: ${this.ns} index: ${index.name} dup key: { ${shown} }`,
      { keyPattern: index.spec.key, keyValue },
    );
  }

  /** Throws E11000 if `doc` would collide with another document in a unique index. */
  private checkUnique(doc: BsonDocument, id: string, keys: unknown[][][]): void {
    this.indexes.forEach((index, i) => {
      // _id uniqueness is the document map's own (same equality as the index's).
      if (!index.unique || index.name === "_id_") return;
      for (const key of keys[i] as unknown[][]) {
        if (index.findConflict(key, id) !== undefined) throw this.duplicateKeyError(index, key);
      }
    });
  }

  insert(doc: BsonDocument): void {
    const id = keyOf(doc._id);
    const keys = this.indexes.map((ix) => ix.keysOf(doc));
    if (this.docs.has(id)) throw this.duplicateKeyError(this.indexes[0] as Index, [doc._id]);
    this.checkUnique(doc, id, keys);
    this.docs.set(id, doc);
    this.indexes.forEach((ix, i) => ix.add(keys[i] as unknown[][], id));
  }

  /**
   * Replaces a document. Only the indexes whose keys the change touches are updated (an update of
   * one field leaves the others' entries where they are): most updates change one or two fields,
   * and moving every entry of every index was most of an update's cost.
   */
  replace(before: BsonDocument, after: BsonDocument): void {
    const id = keyOf(before._id);
    const oldKeys = this.indexes.map((ix) => ix.keysOf(before));
    const newKeys = this.indexes.map((ix) => ix.keysOf(after));
    const changed = this.indexes.map(
      (_, i) => !sameKeys(oldKeys[i] as unknown[][], newKeys[i] as unknown[][]),
    );
    this.indexes.forEach((ix, i) => {
      if (changed[i]) ix.remove(oldKeys[i] as unknown[][], id);
    });
    try {
      // An index whose keys did not change cannot gain a conflict.
      this.checkUnique(
        after,
        id,
        newKeys.map((k, i) => (changed[i] ? k : [])),
      );
    } catch (err) {
      this.indexes.forEach((ix, i) => {
        if (changed[i]) ix.add(oldKeys[i] as unknown[][], id);
      });
      throw err;
    }
    this.indexes.forEach((ix, i) => {
      if (changed[i]) ix.add(newKeys[i] as unknown[][], id);
    });
    this.docs.set(id, after);
  }

  remove(doc: BsonDocument): void {
    const id = keyOf(doc._id);
    this.indexes.forEach((ix) => ix.remove(ix.keysOf(doc), id));
    this.docs.delete(id);
  }

  /** Builds a new index over the existing documents; fails without side effects on duplicates. */
  addIndex(spec: IndexSpec): void {
    const index = new Index(spec);
    for (const [id, doc] of this.docs) {
      const keys = index.keysOf(doc);
      if (index.unique) {
        for (const key of keys) {
          if (index.findConflict(key, id) !== undefined) {
            const dup = this.duplicateKeyError(index, key);
            throw new CommandError(
              "DuplicateKey",
              `Index build failed: ${this.ns} :: caused by :: ${dup.message}`,
              dup.extra,
            );
          }
        }
      }
      index.add(keys, id);
    }
    this.indexes.push(index);
  }

  dropIndex(name: string): void {
    const i = this.indexes.findIndex((ix) => ix.name === name);
    if (i > 0) this.indexes.splice(i, 1);
  }

  /**
   * Picks the index that serves the filter best: most leading equality fields, then a range on
   * the next field, then whether it yields the requested sort order. Partial and sparse indexes
   * are left out because they may not hold every matching document.
   */
  private plan(filter: unknown, sort: SortSpec | undefined) {
    const bounds = extractBounds(filter);
    let best:
      | {
          index: Index;
          eq: unknown[];
          inValues?: unknown[] | undefined;
          range?: FieldBounds | undefined;
          sorted: boolean;
          reverse: boolean;
          score: number;
        }
      | undefined;
    for (const index of this.indexes) {
      if (index.partial || index.spec.sparse) continue;
      const eq: unknown[] = [];
      for (const [f] of index.fields) {
        const b = bounds.get(f);
        if (!b?.eq || (index.multikey && Array.isArray(b.eq.value))) break;
        eq.push(b.eq.value);
      }
      const next = index.fields[eq.length];
      const nb = next ? bounds.get(next[0]) : undefined;
      const inValues = nb?.in && !(index.multikey && nb.in.some(Array.isArray)) ? nb.in : undefined;
      const range = !inValues && nb && (nb.lower || nb.upper) ? nb : undefined;
      let sorted = false;
      let reverse = false;
      if (sort && !index.multikey && !inValues) {
        const rest = sort.filter(([p]) => !index.fields.slice(0, eq.length).some(([f]) => f === p));
        const tail = index.fields.slice(eq.length, eq.length + rest.length);
        if (rest.length === 0) sorted = true;
        else if (tail.length === rest.length && tail.every(([f], i) => f === rest[i]?.[0])) {
          const same = tail.every(([, d], i) => d === rest[i]?.[1]);
          const opposite = tail.every(([, d], i) => d === -(rest[i]?.[1] ?? 0));
          if (same || opposite) {
            sorted = true;
            reverse = opposite && !same;
          }
        }
      }
      const score = eq.length * 4 + (inValues ? 3 : 0) + (range ? 2 : 0) + (sorted ? 1 : 0);
      if (score > 0 && (!best || score > best.score)) {
        best = { index, eq, inValues, range, sorted, reverse, score };
      }
    }
    return best;
  }

  /** Matching documents (stored form), in the requested order, with skip and limit applied. */
  find(filter: unknown, options: FindOptions = {}): BsonDocument[] {
    const matcher = compileFilter(filter);
    const skip = options.skip ?? 0;
    const limit = options.limit && options.limit > 0 ? options.limit : Infinity;
    const sort = options.sort?.length ? options.sort : undefined;
    const plan = sort?.[0]?.[0] === "$natural" ? undefined : this.plan(filter, sort);
    if (plan) this.stats.indexScans++;
    else this.stats.collectionScans++;
    const candidates = plan
      ? this.idsToDocs(
          plan.inValues
            ? this.scanEach(plan.index, plan.eq, plan.inValues)
            : plan.index.scan(plan.eq, plan.range, plan.reverse),
        )
      : this.docs.values();
    if (sort && !plan?.sorted) {
      const all: BsonDocument[] = [];
      for (const doc of candidates) {
        this.stats.documentsExamined++;
        if (matcher(doc)) all.push(doc);
      }
      return sortDocuments(all, sort).slice(skip, skip + limit);
    }
    const out: BsonDocument[] = [];
    let skipped = 0;
    for (const doc of candidates) {
      this.stats.documentsExamined++;
      if (!matcher(doc)) continue;
      if (skipped < skip) {
        skipped++;
        continue;
      }
      out.push(doc);
      if (out.length >= limit) break;
    }
    return out;
  }

  /** `$in` on an index field: one point scan per distinct value, each document once. */
  private *scanEach(index: Index, eq: unknown[], values: unknown[]): Generator<string> {
    const seen = new Set<string>();
    const distinct = new Map(values.map((v) => [keyOf(v), v]));
    for (const v of distinct.values()) {
      for (const id of index.scan([...eq, v], undefined, false)) {
        if (!seen.has(id)) {
          seen.add(id);
          yield id;
        }
      }
    }
  }

  private *idsToDocs(ids: Iterable<string>): Generator<BsonDocument> {
    for (const id of ids) {
      const doc = this.docs.get(id);
      if (doc) yield doc;
    }
  }

  listIndexSpecs(): IndexSpec[] {
    return this.indexes.map((ix) => ix.spec);
  }
}

export const isIndexKeyDoc = (v: unknown): v is BsonDocument => isPlainObject(v) && Object.keys(v).length > 0;
