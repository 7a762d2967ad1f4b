/**
 * Optional persistence for the embedded engine (`--dir`): on a clean stop every collection is
 * written as a file of concatenated BSON documents plus a small metadata file with its indexes;
 * on start they are read back and the indexes rebuilt. Files are written to a temporary name and
 * renamed, so a crash mid-save leaves the previous snapshot intact.
 */
import {
  closeSync,
  existsSync,
  mkdirSync,
  openSync,
  readFileSync,
  readdirSync,
  renameSync,
  rmSync,
  writeSync,
} from "node:fs";
import { join } from "node:path";
import { deserialize, serialize } from "bson";
import { serializeDocument } from "./wire.js";
import { Collection, type IndexSpec } from "./collection.js";
import type { Engine } from "./engine.js";
import { markWrapped } from "./query.js";
import { normalizeDocument } from "./values.js";

const DATA = ".bson";
const META = ".meta.bson";
const FLUSH_BYTES = 4 * 1024 * 1024;

export function saveEngine(engine: Engine, dir: string): void {
  mkdirSync(dir, { recursive: true });
  const tmp = join(dir, `.saving-${process.pid}`);
  rmSync(tmp, { recursive: true, force: true });
  mkdirSync(tmp);
  for (const [db, colls] of engine.databases) {
    if (colls.size === 0) continue;
    const dbDir = join(tmp, encodeURIComponent(db));
    mkdirSync(dbDir);
    for (const [name, coll] of colls) {
      const base = join(dbDir, encodeURIComponent(name));
      const fd = openSync(base + DATA, "w");
      try {
        let pending: Buffer[] = [];
        let size = 0;
        for (const doc of coll.docs.values()) {
          const buf = serializeDocument(doc);
          pending.push(buf);
          size += buf.length;
          if (size >= FLUSH_BYTES) {
            writeSync(fd, Buffer.concat(pending, size));
            pending = [];
            size = 0;
          }
        }
        if (size > 0) writeSync(fd, Buffer.concat(pending, size));
      } finally {
        closeSync(fd);
      }
      const meta = serialize({ indexes: coll.listIndexSpecs().slice(1) });
      const mfd = openSync(base + META, "w");
      writeSync(mfd, meta);
      closeSync(mfd);
    }
  }
  const old = join(dir, "data");
  const retired = join(dir, `.retired-${process.pid}`);
  if (existsSync(old)) renameSync(old, retired);
  renameSync(tmp, old);
  rmSync(retired, { recursive: true, force: true });
}

export function loadEngine(engine: Engine, dir: string): number {
  const root = join(dir, "data");
  if (!existsSync(root)) return 0;
  let count = 0;
  for (const dbEntry of readdirSync(root)) {
    const db = decodeURIComponent(dbEntry);
    const colls = new Map<string, Collection>();
    engine.databases.set(db, colls);
    for (const file of readdirSync(join(root, dbEntry))) {
      if (!file.endsWith(META)) continue;
      const base = file.slice(0, -META.length);
      const name = decodeURIComponent(base);
      const coll = new Collection(db, name, engine.queryStats);
      const meta = deserialize(readFileSync(join(root, dbEntry, file)), { promoteValues: false }) as {
        indexes: IndexSpec[];
      };
      const specs = meta.indexes.map((s) => normalizeDocument(s).doc);
      for (const spec of specs) coll.addIndex(spec);
      const data = readFileSync(join(root, dbEntry, base + DATA));
      let at = 0;
      while (at < data.length) {
        const size = data.readInt32LE(at);
        const raw = deserialize(data.subarray(at, at + size), { promoteValues: false });
        const { doc, wrappers } = normalizeDocument(raw);
        if (wrappers) markWrapped(doc);
        coll.insert(doc);
        at += size;
        count++;
      }
      colls.set(name, coll);
    }
  }
  return count;
}
