/**
 * A config's request headers: the values to send, and the secrets among them (to keep out of
 * any text that is stored, logged or printed). Reading and saving configs is the store's
 * (`src/store/configs.ts`).
 */
import { BadInputError } from "../common/errors.js";
import { type BatchConfig, hasControlCharacter } from "./schema.js";

/** The secret values a config's headers take from the environment (to keep them out of text). */
export function secretValues(config: BatchConfig, env: Record<string, string | undefined>): string[] {
  return Object.values(config.target.headers)
    .map((spec) => ("env" in spec ? env[spec.env] : undefined))
    .filter((v): v is string => typeof v === "string" && v.length >= 4);
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
