/**
 * The unresolved exceptions of an earlier job, in record-id order: set-aside records sent again
 * after a fix. Records of a collection are read from it when their chunk is sent (so they go out
 * with their fixed fields); records of a file or topic take the fields stored with the earlier job.
 */
import { type BatchConfig, carriesData } from "../config/schema.js";
import { EJSON } from "bson";
import { readStoredRecordData } from "../store/records.js";
import {
  countUnresolvedInWindow,
  findLastUnresolvedRecord,
  openUnresolvedRecords,
} from "../store/set-aside-records.js";
import type { Store } from "../store/store.js";
import { type Source, type SourceRecord, generatorBatches } from "./source.js";

export function exceptionsSource(store: Store, config: BatchConfig, fromJob: string): Source {
  const fromFile = carriesData(config.source);
  return {
    description: `exceptions of job ${fromJob}`,
    async lastRecord(window) {
      const doc = await findLastUnresolvedRecord(store, fromJob, window);
      return doc ? { id: doc.recordId, key: doc.recordId } : undefined;
    },
    read(window, batchSize) {
      const cursor = openUnresolvedRecords(store, fromJob, window, batchSize);
      async function* batches() {
        while (await cursor.hasNext()) {
          const docs = cursor.readBufferedDocuments();
          const records: SourceRecord[] = docs.map((d) => ({ id: d.recordId, key: d.recordId, weight: 0 }));
          if (fromFile && records.length > 0) {
            // One indexed query per batch: the fields the earlier job stored for these records.
            const stored = await readStoredRecordData(
              store,
              fromJob,
              records.map((r) => r.id),
            );
            const byId = new Map(stored.map((d) => [EJSON.stringify({ v: d.recordId }), d.data]));
            for (const r of records) {
              const data = byId.get(EJSON.stringify({ v: r.id }));
              if (data) r.data = data;
            }
          }
          yield records;
        }
      }
      return generatorBatches(batches(), () => cursor.close());
    },
    async count(from) {
      return { records: await countUnresolvedInWindow(store, fromJob, from ? { from } : {}) };
    },
    close: () => Promise.resolve(),
  };
}
