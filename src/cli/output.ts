import { EJSON } from "bson";
import { forTerminal, jsonForTerminal } from "../common/terminal-text.js";

/**
 * Human-readable output, with whatever came from outside in it (ids, keys, descriptions, a
 * service's errors) made inert for the terminal; our own newlines are kept.
 */
export function writeForTerminal(text: string): boolean {
  return process.stdout.write(forTerminal(text, { keepNewlines: true }));
}

/** With `--json`, prints `value` as relaxed Extended JSON on one stdout line and says so. */
export function printJson(json: boolean | undefined, value: unknown): boolean {
  if (json) process.stdout.write(`${jsonForTerminal(EJSON.stringify(value, { relaxed: true }))}\n`);
  return json === true;
}

/** Warnings (retries, failed chunks) go to stderr; routine progress is the progress display's. */
export const stderrLogger = {
  info: () => undefined,
  warn: (message: string) => process.stderr.write(`warning: ${forTerminal(message)}\n`),
};
