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

/** The shortest piece of a secret that is redacted on its own (a truncated echo). */
export const SECRET_PREFIX_CHARS = 8;

/**
 * The forms a secret may come back in from a service that echoes it: as is, URL-encoded, base64
 * (standard and URL-safe, with or without padding) and hex. Case is ignored when matching.
 */
export function secretForms(secret: string): string[] {
  const bytes = Buffer.from(secret, "utf8");
  const forms = [
    secret,
    encodeURIComponent(secret),
    bytes.toString("base64"),
    bytes.toString("base64").replace(/=+$/, ""),
    bytes.toString("base64url"),
    bytes.toString("hex"),
  ];
  return [...new Set(forms.map((f) => f.toLowerCase()))];
}

/**
 * Replaces a secret in a text by ***: in any of its forms (`secretForms`), in any case, and any
 * run of at least SECRET_PREFIX_CHARS characters that starts like one of them (a truncated
 * echo). Shorter secrets are redacted whole.
 */
export function redactSecrets(text: string, secrets: readonly string[]): string {
  if (secrets.length === 0 || text.length === 0) return text;
  const lower = text.toLowerCase();
  const spans: Array<[number, number]> = [];
  for (const secret of secrets) {
    for (const form of secretForms(secret)) {
      const probe = form.slice(0, Math.min(SECRET_PREFIX_CHARS, form.length));
      if (probe.length === 0) continue;
      for (let at = lower.indexOf(probe); at >= 0; at = lower.indexOf(probe, at + 1)) {
        let end = at + probe.length;
        while (end < lower.length && end - at < form.length && lower[end] === form[end - at]) end++;
        spans.push([at, end]);
      }
    }
  }
  if (spans.length === 0) return text;
  spans.sort((a, b) => a[0] - b[0]);
  let out = "";
  let pos = 0;
  for (const [start, end] of spans) {
    if (end <= pos) continue;
    if (start > pos) out += text.slice(pos, start);
    if (start >= pos) out += "***";
    pos = end;
  }
  return out + text.slice(pos);
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
