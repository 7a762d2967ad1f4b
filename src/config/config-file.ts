/**
 * Reading a config file: refused, never repaired. A file too large or nested too deep is refused
 * before it is parsed (a 20 MB filter, 1,500 levels of nesting); bytes that are not UTF-8 are
 * refused rather than turned into U+FFFD; a UTF-8 byte-order mark is skipped, as editors write it.
 * Extended JSON is checked as written, before bson converts it (`extendedJsonProblem`).
 */
import { readFile } from "node:fs/promises";
import { EJSON } from "bson";
import { BadInputError } from "../common/errors.js";
import { extendedJsonProblem } from "./extended-json-check.js";
import { MAX_FILTER_DEPTH } from "./filter-check.js";

/** The largest config file read (a config is a few kilobytes; MongoDB documents stop at 16 MB). */
export const MAX_CONFIG_FILE_BYTES = 1024 * 1024;

/** Deepest nesting of arrays and objects in a config file (a filter's own limit plus the config's). */
const MAX_FILE_DEPTH = MAX_FILTER_DEPTH + 5;

/** The deepest nesting of `{`/`[` outside strings: checked before parsing, which recurses. */
function nestingDepth(text: string): number {
  let depth = 0;
  let deepest = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (inString) {
      if (c === "\\") i++;
      else if (c === '"') inString = false;
    } else if (c === '"') inString = true;
    else if (c === "{" || c === "[") deepest = Math.max(deepest, ++depth);
    else if (c === "}" || c === "]") depth--;
  }
  return deepest;
}

export async function readConfigFile(file: string): Promise<unknown> {
  let bytes: Buffer;
  try {
    bytes = await readFile(file);
  } catch (err) {
    throw new BadInputError(`cannot read config file ${file}: ${(err as Error).message}`);
  }
  if (bytes.length > MAX_CONFIG_FILE_BYTES) {
    throw new BadInputError(
      `config file ${file} is ${(bytes.length / 1024 / 1024).toFixed(1)} MB; the most is ${MAX_CONFIG_FILE_BYTES / 1024 / 1024} MB (a long list of ids belongs in the source collection, not the filter)`,
    );
  }
  let text: string;
  try {
    text = new TextDecoder("utf-8", { fatal: true, ignoreBOM: false }).decode(bytes);
  } catch {
    throw new BadInputError(`config file ${file} is not valid UTF-8; save it as UTF-8`);
  }
  const depth = nestingDepth(text);
  if (depth > MAX_FILE_DEPTH) {
    throw new BadInputError(`config file ${file} nests ${depth} levels deep; the most is ${MAX_FILE_DEPTH}`);
  }
  return parseConfigText(text, `config file ${file}`);
}

/**
 * A config's text as a value: parsed as plain JSON, checked as Extended JSON (`extendedJsonProblem`)
 * and only then converted by bson's EJSON, so nothing it would repair gets through.
 */
export function parseConfigText(text: string, what = "the config"): unknown {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (err) {
    throw new BadInputError(`${what} is not valid (Extended) JSON: ${(err as Error).message}`);
  }
  const problem = extendedJsonProblem(raw);
  if (problem !== undefined) throw new BadInputError(`${what} holds invalid Extended JSON:\n  - ${problem}`);
  try {
    return EJSON.parse(text, { relaxed: true });
  } catch (err) {
    throw new BadInputError(`${what} is not valid (Extended) JSON: ${(err as Error).message}`);
  }
}

// ---------------------------------------------------------------------------------------------
// Extended JSON, checked before it is converted. bson's EJSON.parse repairs what it reads: an
// object with a string `$regex` becomes a regular expression whatever else it holds (a `$nin`
// beside it is dropped), `{"$date": "2026-02-30"}` becomes March 2, `{"$numberInt": "12abc"}`
// becomes 12, `{"$numberLong": "9007199254740993"}` loses its last digit, `{"$undefined": true}`
// becomes null. So the plain JSON is checked first: against the Extended JSON specification
// (mongodb/specifications extended-json.md: an object holding a type wrapper's key "must contain
// exactly the keys of the type wrapper", each value of the type it names) and against what bson
// 7's EJSON.parse takes for a wrapper (extended_json.ts `deserializeValue`: any key of
// WRAPPER_KEYS or `$regex` with a non-null value, whatever else the object holds; `$ref` + `$id`
// DBRefs, which it reorders).
// ---------------------------------------------------------------------------------------------
