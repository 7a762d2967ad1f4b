/** Reading and writing configs in `batch_config`, always through the schema. */
import { BadInputError } from "../errors.js";
import type { Store } from "../store/store.js";
import { type BatchConfig, parseConfig } from "./schema.js";

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
    out[name] = `${spec.prefix}${secret}`;
  }
  return out;
}
