/** Reading and writing configs in `batch_config`, always through the schema. */
import { BadInputError } from "../errors.js";
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

/** Replaces every occurrence of a secret in a text by ***. */
export function redactSecrets(text: string, secrets: readonly string[]): string {
  let out = text;
  for (const s of secrets) out = out.split(s).join("***");
  return out;
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
