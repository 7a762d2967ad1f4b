/**
 * Records of an NDJSON or CSV file, in file order. A record's id and order key are its record
 * number (1 = the first record; blank NDJSON lines and the CSV header do not count), so a file
 * that only grows at the end keeps its numbers and incremental jobs take what was appended. The
 * file is streamed; nothing holds more than one batch. Reading a window later in the file still
 * parses the records before it (a file has no index), which is a sequential read, not a query.
 */
import { createReadStream } from "node:fs";
import { access } from "node:fs/promises";
import { createInterface } from "node:readline";
import { type Document, EJSON } from "bson";
import { parse } from "csv-parse";
import type { SourceConfig } from "../config/schema.js";
import { readPath } from "../common/bson-order.js";
import { BadInputError } from "../common/errors.js";
import { weightOf } from "../planning/chunking.js";
import { isInside } from "../planning/cuts.js";
import { type Source, type SourceRecord, type Window, generatorBatches, pickFields } from "./source.js";

type FileSourceConfig = Extract<SourceConfig, { type: "ndjson" | "csv" }>;

/** Every record of the file with its number, parsed. */
async function* fileRecords(source: FileSourceConfig): AsyncGenerator<{ no: number; doc: Document }> {
  try {
    await access(source.path);
  } catch {
    throw new BadInputError(
      `source file ${source.path} cannot be read; check source.path (relative to ${process.cwd()})`,
    );
  }
  const stream = createReadStream(source.path);
  try {
    if (source.type === "ndjson") {
      const lines = createInterface({ input: stream, crlfDelay: Infinity });
      let line = 0;
      let no = 0;
      for await (const text of lines) {
        line++;
        if (text.trim() === "") continue;
        let doc: unknown;
        try {
          doc = EJSON.parse(text, { relaxed: true });
        } catch (err) {
          throw new BadInputError(`${source.path} line ${line}: not JSON (${(err as Error).message})`);
        }
        if (doc === null || typeof doc !== "object" || Array.isArray(doc)) {
          throw new BadInputError(`${source.path} line ${line}: a record must be a JSON object`);
        }
        yield { no: ++no, doc: doc };
      }
    } else {
      const parser = stream.pipe(
        parse({ columns: true, delimiter: source.delimiter, cast: true, skip_empty_lines: true, bom: true }),
      );
      let no = 0;
      try {
        for await (const doc of parser) yield { no: ++no, doc: doc as Document };
      } catch (err) {
        throw new BadInputError(`${source.path}: ${(err as Error).message}`);
      }
    }
  } finally {
    stream.destroy();
  }
}

export function fileSource(source: FileSourceConfig): Source {
  const toRecord = (no: number, doc: Document): SourceRecord => ({
    id: no,
    key: no,
    weight: source.weightField ? weightOf(Number(readPath(doc, source.weightField))) : 0,
    data: pickFields(doc, source.fields),
  });
  async function* inWindow(window: Window): AsyncGenerator<{ no: number; doc: Document }> {
    for await (const r of fileRecords(source)) {
      const at = { key: r.no, id: r.no };
      if (window.to && !isInside(at, undefined, window.to)) return;
      if (isInside(at, window.from, window.to)) yield r;
    }
  }
  return {
    description: `${source.type} file ${source.path}`,
    async lastRecord(window) {
      let last: number | undefined;
      for await (const r of inWindow(window)) last = r.no;
      return last === undefined ? undefined : { id: last, key: last };
    },
    read(window, batchSize) {
      async function* batches() {
        let batch: SourceRecord[] = [];
        for await (const r of inWindow(window)) {
          batch.push(toRecord(r.no, r.doc));
          if (batch.length >= batchSize) {
            yield batch;
            batch = [];
          }
        }
        if (batch.length > 0) yield batch;
      }
      return generatorBatches(batches());
    },
    async count(from) {
      let records = 0;
      let weight = 0;
      for await (const r of inWindow(from ? { from } : {})) {
        records++;
        weight += toRecord(r.no, r.doc).weight;
      }
      return source.weightField ? { records, weight } : { records };
    },
    close: () => Promise.resolve(),
  };
}
