import { readConfigFile } from "../../config/config-file.js";
import { saveConfig } from "../../store/configs.js";
import { configHash } from "../../config/schema.js";
import type { CommandContext } from "../context.js";
import { withCommandStore } from "../open-store.js";
import { printJson } from "../output.js";

export interface ConfigApplyFlags {
  json?: boolean;
  mongo?: string;
}

/** `chunkrelay config apply <file>`: validates a config file and upserts it. */
export async function applyConfigFile(
  ctx: CommandContext,
  file: string,
  opts: ConfigApplyFlags,
): Promise<void> {
  const raw = await readConfigFile(file);
  await withCommandStore(opts.mongo, ctx.env, async (store) => {
    const applied = await saveConfig(store, raw, new Date());
    process.stderr.write(`config '${applied.name}' applied (hash ${configHash(applied)})\n`);
    printJson(opts.json, applied);
  });
}
