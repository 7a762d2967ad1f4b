/** Configs in `batch_config`, read and written only through the schema. */
import { EJSON } from "bson";
import { secretValues } from "../config/headers.js";
import { type BatchConfig, parseConfig } from "../config/schema.js";
import { BadInputError, isBadInput } from "../common/errors.js";
import type { ConfigDoc, Store } from "./store.js";

/**
 * The config named, parsed by the schema: a stored document is never used unchecked (it may
 * have been written by hand, or by an older version). Missing is bad input, not a failure.
 */
export async function readConfig(store: Store, name: string): Promise<BatchConfig> {
  const doc = await store.configs.findOne({ _id: name });
  if (!doc) {
    throw new BadInputError(
      `config '${name}' not found in ${store.names.config}; add it with \`npx chunkrelay config apply <file>\``,
    );
  }
  return parseConfigDoc(doc);
}

/**
 * A stored config document, parsed by the schema. A source filter is stored as canonical
 * Extended JSON text (`saveConfig`): its operators are `$`-prefixed field names, which MongoDB
 * stores but not every implementation does (FerretDB 1.x refuses them). A filter stored as a
 * document (by an earlier chunkrelay, or by hand) is read as it is.
 */
export function parseConfigDoc(doc: unknown): BatchConfig {
  if (typeof doc === "object" && doc !== null && "source" in doc) {
    const source = (doc as { source?: unknown }).source;
    if (
      typeof source === "object" &&
      source !== null &&
      typeof (source as { filter?: unknown }).filter === "string"
    ) {
      const text = (source as { filter: string }).filter;
      let filter: unknown;
      try {
        filter = EJSON.parse(text, { relaxed: false });
      } catch (err) {
        throw new BadInputError(
          `the stored source.filter is not Extended JSON (${err instanceof Error ? err.message : String(err)}); apply the config again with \`npx chunkrelay config apply <file>\``,
        );
      }
      return parseConfig({ ...doc, source: { ...source, filter } });
    }
  }
  return parseConfig(doc);
}

/** Validates and upserts a config; nothing is written when it is invalid. */
export async function saveConfig(store: Store, raw: unknown, now: Date): Promise<BatchConfig> {
  const config = parseConfig(raw);
  const { name, ...rest } = config;
  const stored =
    "filter" in rest.source && rest.source.filter !== undefined
      ? {
          ...rest,
          source: { ...rest.source, filter: EJSON.stringify(rest.source.filter, { relaxed: false }) },
        }
      : rest;
  await store.configs.replaceOne(
    { _id: name },
    { _id: name, ...stored, updatedAt: now },
    {
      upsert: true,
    },
  );
  return config;
}

/**
 * The secrets of a config by name, to redact text with; none when the config is gone or invalid.
 * Any other failure (the database is away) is thrown: text is not let through unredacted for it.
 */
export async function readSecretValues(
  store: Store,
  name: string,
  env: Record<string, string | undefined>,
): Promise<string[]> {
  return readConfig(store, name).then(
    (config) => secretValues(config, env),
    (err: unknown) => {
      if (isBadInput(err)) return [];
      throw err;
    },
  );
}

/** `readSecretValues` for each config named, once each. */
export async function readSecretsByConfig(
  store: Store,
  names: Iterable<string>,
  env: Record<string, string | undefined>,
): Promise<Map<string, string[]>> {
  const unique = [...new Set(names)];
  const secrets = await Promise.all(unique.map((name) => readSecretValues(store, name, env)));
  return new Map(unique.map((name, i) => [name, secrets[i] ?? []]));
}

/**
 * The stored configs with a schedule (with `cronOnly`, only those naming a cron), unparsed and
 * streamed in name order: the caller parses each and decides what an invalid one means.
 */
export function streamScheduledConfigDocs(store: Store, cronOnly = false): AsyncIterable<ConfigDoc> {
  return store.configs
    .find(cronOnly ? { "schedule.cron": { $exists: true } } : { schedule: { $exists: true } })
    .sort({ _id: 1 });
}

/** Every config's name, sorted (the status page's filter). */
export async function listConfigNames(store: Store): Promise<string[]> {
  const docs = await store.configs.find({}, { projection: { _id: 1 }, sort: { _id: 1 } }).toArray();
  return docs.map((d) => d._id);
}
