/**
 * Picks the source a job reads. Kept apart from the \`Source\` interface (source.ts) that every
 * kind implements, so the kinds import the interface and this module imports the kinds: no cycle.
 */
import type { BatchConfig } from "../config/schema.js";
import type { Store } from "../store/store.js";
import { exceptionsSource } from "./exceptions-source.js";
import { fileSource } from "./file-source.js";
import { type KafkaSourceOptions, kafkaSource } from "./kafka-source.js";
import { mongoSource } from "./mongo-source.js";
import type { Source } from "./source.js";

/**
 * The source a job of this config reads; `fromJob` reads that job's unresolved exceptions. Close
 * it when done (`withSource`): a Kafka source holds connections once used.
 */
export function openSource(
  store: Store,
  config: BatchConfig,
  fromJob?: string,
  options: KafkaSourceOptions = {},
): Source {
  if (fromJob !== undefined) return exceptionsSource(store, config, fromJob);
  const source = config.source;
  switch (source.type) {
    case undefined:
    case "mongodb":
      return mongoSource(store, { ...source, type: "mongodb" });
    case "ndjson":
    case "csv":
      return fileSource(source);
    case "kafka":
      return kafkaSource({ name: config.name, source }, options);
    default: {
      const never: never = source;
      throw new Error(`unknown source ${JSON.stringify(never)}`);
    }
  }
}
