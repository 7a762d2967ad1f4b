/** Reading and writing configs in `batch_config`, always through the schema. */
import { BadInputError, isBadInput } from "../shared/errors.js";
import type { Store } from "../store/store.js";
import { type BatchConfig, hasControlCharacter, parseConfig } from "./schema.js";

export async function loadConfig(store: Store, name: string): Promise<BatchConfig> {
  const doc = await store.configs.findOne({ _id: name });
  if (!doc) {
    throw new BadInputError(
      `config '${name}' not found in ${store.names.config}; add it with \`npx chunkrelay config apply <file>\``,
    );
  }
  return parseConfig(doc);
}

/** Validates and upserts a config; nothing is written when it is invalid. */
export async function applyConfig(store: Store, raw: unknown, now: Date): Promise<BatchConfig> {
  const config = parseConfig(raw);
  const { name, ...rest } = config;
  await store.configs.replaceOne({ _id: name }, { _id: name, ...rest, updatedAt: now }, { upsert: true });
  return config;
}

/** The secret values a config's headers take from the environment (to keep them out of text). */
export function secretValues(config: BatchConfig, env: Record<string, string | undefined>): string[] {
  return Object.values(config.target.headers)
    .map((spec) => ("env" in spec ? env[spec.env] : undefined))
    .filter((v): v is string => typeof v === "string" && v.length >= 4);
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
  return loadConfig(store, name).then(
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

/** The header values to send: literal values as they are, secrets from the environment. */
export function resolveHeaders(
  config: BatchConfig,
  env: Record<string, string | undefined>,
): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [name, spec] of Object.entries(config.target.headers)) {
    if ("value" in spec) {
      out[name] = spec.value;
      continue;
    }
    const secret = env[spec.env];
    if (secret === undefined || secret === "") {
      throw new BadInputError(
        `config '${config.name}': header ${name} takes its value from the environment variable ${spec.env}, which is not set; set it where the runner or worker runs`,
      );
    }
    if (hasControlCharacter(secret)) {
      throw new BadInputError(
        `config '${config.name}': the environment variable ${spec.env} (header ${name}) holds a control character (CR, LF, …); set it to the bare value`,
      );
    }
    out[name] = `${spec.prefix}${secret}`;
  }
  return out;
}
