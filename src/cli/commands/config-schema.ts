import { configJsonSchema } from "../../config/schema.js";

/** `chunkrelay config schema`: the JSON Schema of a config. */
export function printConfigSchema(): void {
  process.stdout.write(`${JSON.stringify(configJsonSchema(), null, 2)}\n`);
}
