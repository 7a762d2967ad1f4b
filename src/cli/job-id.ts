import { jobIdSchema } from "../config/schema.js";
import { CliError, EXIT } from "./exit.js";
import { forTerminal } from "../common/terminal-text.js";

/**
 * A `--job-id` flag, checked before the command does anything: an empty or malformed id is never
 * dropped or used. Checked by the command rather than by commander, so that `--help` does not
 * load the config schema.
 */
export function checkJobIdFlag(value: string): string {
  const parsed = jobIdSchema.safeParse(value);
  if (!parsed.success) {
    const shown = value.length > 60 ? `${value.slice(0, 60)}… (${value.length} characters)` : value;
    throw new CliError(
      `--job-id '${forTerminal(shown)}' is not a job id: ${parsed.error.issues[0]?.message ?? "invalid"}`,
      EXIT.usage,
    );
  }
  return parsed.data;
}
