/**
 * Keeping the secrets of a config's headers out of text that comes from outside — a batch
 * service's replies, the errors it writes into `batch_details` — wherever that text is stored or
 * printed. A service may echo a secret back altered: URL-encoded (in part, or twice), as base64 of
 * a longer string (`Bearer …`, `user:…`), hex, with JSON or HTML escapes, in another case, split
 * by whitespace, or only in part. Every run of SECRET_WINDOW_CHARS or more of the secret's
 * characters, in any of those forms, becomes `***` where it stands; a text that still holds one
 * after that is replaced whole by REDACTED_TEXT.
 *
 * How: each text is read in a few views — as is, decoded (percent, JSON, HTML escapes, repeated),
 * decoded without whitespace and control characters — all case-folded, each character knowing
 * the span of the original text it came from. Every window of SECRET_WINDOW_CHARS characters of
 * every form of every secret, read the same way, is looked up in a set while sliding over each
 * view, so the cost grows with the text's length, not with its length times the secrets'.
 * Base64 and hex runs are also decoded (at every alignment) and read the same way.
 */

/**
 * The shortest run of a secret's characters (code points) redacted on its own; a shorter secret is
 * redacted only whole.
 */
export const SECRET_WINDOW_CHARS = 8;

/** What a text becomes when a secret is still in it after its matches are redacted. */
export const REDACTED_TEXT = "[redacted: this text contained a secret from the config's headers]";

/**
 * `redactAndCut` redacts at most this much of a text: enough for anything kept, and a bound on
 * the time and memory a huge text from outside can cost.
 */
export const REDACT_SCAN_CHARS = 4000;

/**
 * At a scan's end a secret may be cut to fewer than SECRET_WINDOW_CHARS characters, which no match
 * finds; redaction before it can shrink the text and bring it into the part kept. So this much of
 * a scanned text's end is dropped: 7 characters of 4 UTF-8 bytes each, every byte escaped twice
 * (`%25XX`), take 140.
 */
const SCAN_END_CHARS = 200;

/** Escapes within escapes (`%2541`, `\u002541`) are decoded up to this depth. */
const DECODE_PASSES = 4;

/** Runs shorter than this are not decoded: they cannot hold a window of a secret. */
const BASE64_RUN_CHARS = 6;
const HEX_RUN_CHARS = 8;

/** One character of a view, and the span of the original text it stands for. */
interface Piece {
  text: string;
  start: number;
  end: number;
  /** A byte ≥ 0x80 of an escape, not yet joined with the rest of its UTF-8 character. */
  byte?: number;
}

/**
 * A view of a text: for each of its UTF-16 units the span of the original it stands for, and
 * where each of its code points starts (and, last, its length): windows count code points.
 */
interface View {
  text: string;
  starts: number[];
  ends: number[];
  points: number[];
}

type ViewKind = "raw" | "decoded" | "squeezed";
const VIEW_KINDS: readonly ViewKind[] = ["raw", "decoded", "squeezed"];

/**
 * The windows of one length of secrets' forms in one view. `filter` has a bit set for the hash of
 * each window's first characters (`hashAt`): most positions of a text are passed over on it, without
 * cutting out a string to look up.
 */
interface WindowSet {
  size: number;
  set: Set<string>;
  filter: Uint8Array;
}

/** Windows of secrets' forms, per view. */
type Windows = Record<ViewKind, WindowSet[]>;

const FILTER_BITS = 16;

/**
 * A hash of the first (up to) 4 UTF-16 units of `text` from `at`, for a window of `size` code
 * points (which has at least that many units).
 */
function hashAt(text: string, at: number, size: number): number {
  let h = 0;
  for (let k = 0; k < Math.min(4, size); k++) h = (Math.imul(h, 0x9e3779b1) + text.charCodeAt(at + k)) | 0;
  return (Math.imul(h, 0x85ebca6b) >>> (32 - FILTER_BITS)) & ((1 << FILTER_BITS) - 1);
}

/**
 * base64 of a secret inside a longer string depends on the secret's byte offset mod 3. For each
 * offset, in both alphabets, the characters that depend on the secret's bits alone, and the
 * partial last character and padding for when the secret ends the string.
 */
function base64Forms(bytes: Buffer): string[] {
  const out: string[] = [];
  for (const pad of [0, 1, 2]) {
    const padded = Buffer.concat([Buffer.alloc(pad), bytes]);
    // Characters are 6 bits; the first ones hold bits of the pad.
    const first = Math.ceil((8 * pad) / 6);
    out.push(padded.toString("base64").slice(first), padded.toString("base64url").slice(first));
  }
  return out;
}

/**
 * The forms a secret may come back in, before case-folding and decoding: as is, URL-encoded,
 * hex, and base64 at each byte alignment in both alphabets.
 */
export function secretForms(secret: string): string[] {
  const bytes = Buffer.from(secret, "utf8");
  const forms = [secret, bytes.toString("hex"), ...base64Forms(bytes)];
  try {
    forms.push(encodeURIComponent(secret));
  } catch {
    // A lone surrogate cannot be URL-encoded; the other forms stand.
  }
  return [...new Set(forms)].filter((f) => f.length > 0);
}

function splitCodePoints(text: string): Piece[] {
  const out: Piece[] = [];
  let at = 0;
  for (const ch of text) {
    out.push({ text: ch, start: at, end: at + ch.length });
    at += ch.length;
  }
  return out;
}

/** Bytes as pieces, each spanning its own index: what decoded base64 or hex is read as. */
function splitBytes(bytes: Buffer): Piece[] {
  const out: Piece[] = [];
  for (let j = 0; j < bytes.length; j++) {
    const b = bytes[j] ?? 0;
    out.push({ text: String.fromCharCode(b), start: j, end: j + 1, ...(b >= 0x80 ? { byte: b } : {}) });
  }
  return joinUtf8(out);
}

function utf8Length(lead: number): number {
  if (lead >= 0xc2 && lead <= 0xdf) return 2;
  if (lead >= 0xe0 && lead <= 0xef) return 3;
  if (lead >= 0xf0 && lead <= 0xf4) return 4;
  return 0;
}

/**
 * Joins runs of escaped bytes into the UTF-8 characters they encode. A byte that starts or
 * continues no valid character stays a byte (its Latin-1 character): a later pass may complete it.
 */
function joinUtf8(pieces: Piece[]): Piece[] {
  if (!pieces.some((p) => p.byte !== undefined)) return pieces;
  const out: Piece[] = [];
  for (let i = 0; i < pieces.length; i++) {
    const lead = pieces[i];
    if (lead === undefined) break;
    const n = lead.byte === undefined ? 0 : utf8Length(lead.byte);
    const run = pieces.slice(i, i + n);
    const joined =
      n > 0 && run.length === n && run.slice(1).every((p) => p.byte !== undefined && p.byte < 0xc0)
        ? Buffer.from(run.map((p) => p.byte ?? 0)).toString("utf8")
        : undefined;
    if (joined === undefined || joined.includes("\ufffd")) {
      out.push(lead);
      continue;
    }
    out.push({ text: joined, start: lead.start, end: run[n - 1]?.end ?? lead.end });
    i += n - 1;
  }
  return out;
}

function readHex(pieces: readonly Piece[], from: number, digits: number): number | undefined {
  let hex = "";
  for (let k = from; k < from + digits; k++) {
    const t = pieces[k]?.text;
    if (t === undefined || !/^[0-9a-fA-F]$/.test(t)) return undefined;
    hex += t;
  }
  return parseInt(hex, 16);
}

const BACKSLASH_ESCAPES = new Map([
  ["/", "/"],
  ['"', '"'],
  ["'", "'"],
  ["\\", "\\"],
  ["b", "\b"],
  ["f", "\f"],
  ["n", "\n"],
  ["r", "\r"],
  ["t", "\t"],
]);

const NAMED_ENTITIES = new Map([
  ["amp", "&"],
  ["lt", "<"],
  ["gt", ">"],
  ["quot", '"'],
  ["apos", "'"],
  ["sol", "/"],
  ["colon", ":"],
  ["equals", "="],
  ["plus", "+"],
  ["percnt", "%"],
  ["num", "#"],
  ["nbsp", " "],
]);

function decodeEntity(name: string): string | undefined {
  const code = /^#x([0-9a-f]{1,6})$/i.exec(name)?.[1] ?? /^#(\d{1,7})$/.exec(name)?.[1];
  if (code !== undefined) {
    const cp = name[1] === "x" || name[1] === "X" ? parseInt(code, 16) : Number(code);
    return cp <= 0x10ffff ? String.fromCodePoint(cp) : undefined;
  }
  return NAMED_ENTITIES.get(name.toLowerCase());
}

/** The escape starting at `pieces[i]` (percent, backslash or HTML entity), decoded, and its length in pieces. */
function readEscape(pieces: readonly Piece[], i: number): { piece: Piece; length: number } | undefined {
  const at = pieces[i];
  if (at === undefined || (at.text !== "%" && at.text !== "\\" && at.text !== "&")) return undefined;
  const decoded = (length: number, text: string, byte?: number) => ({
    piece: {
      text,
      start: at.start,
      end: pieces[i + length - 1]?.end ?? at.end,
      ...(byte !== undefined && byte >= 0x80 ? { byte } : {}),
    },
    length,
  });
  if (at.text === "%") {
    const v = readHex(pieces, i + 1, 2);
    return v === undefined ? undefined : decoded(3, String.fromCharCode(v), v);
  }
  if (at.text === "\\") {
    const kind = pieces[i + 1]?.text;
    if (kind === "u") {
      const unit = readHex(pieces, i + 2, 4);
      if (unit === undefined) return undefined;
      if (unit >= 0xd800 && unit < 0xdc00 && pieces[i + 6]?.text === "\\" && pieces[i + 7]?.text === "u") {
        const low = readHex(pieces, i + 8, 4);
        if (low !== undefined && low >= 0xdc00 && low < 0xe000)
          return decoded(12, String.fromCharCode(unit, low));
      }
      return decoded(6, String.fromCharCode(unit));
    }
    if (kind === "x") {
      const v = readHex(pieces, i + 2, 2);
      return v === undefined ? undefined : decoded(4, String.fromCharCode(v), v);
    }
    const simple = kind === undefined ? undefined : BACKSLASH_ESCAPES.get(kind);
    return simple === undefined ? undefined : decoded(2, simple);
  }
  if (at.text === "&") {
    let name = "";
    for (let k = i + 1; k < pieces.length && k <= i + 10; k++) {
      const t = pieces[k]?.text ?? "";
      if (t === ";") {
        const text = decodeEntity(name);
        return text === undefined ? undefined : decoded(k - i + 1, text);
      }
      name += t;
    }
  }
  return undefined;
}

/** Decodes every escape once; undefined when there was none. */
function decodeOnce(pieces: readonly Piece[]): Piece[] | undefined {
  const out: Piece[] = [];
  let changed = false;
  for (let i = 0; i < pieces.length;) {
    const escape = readEscape(pieces, i);
    if (escape) {
      out.push(escape.piece);
      i += escape.length;
      changed = true;
    } else {
      const p = pieces[i];
      if (p) out.push(p);
      i++;
    }
  }
  return changed ? joinUtf8(out) : undefined;
}

function decodeAll(pieces: Piece[]): Piece[] {
  let current = pieces;
  for (let pass = 0; pass < DECODE_PASSES; pass++) {
    const next = decodeOnce(current);
    if (!next) break;
    current = next;
  }
  return current;
}

const INVISIBLE = /^[\s\p{Cc}\p{Cf}]+$/u;

/** Printable ASCII, the bulk of any text, is told visible and folded without a regex or a call. */
const ASCII_FOLDED = Array.from({ length: 0x7f }, (_, c) => String.fromCharCode(c).toLowerCase());

const isHighSurrogate = (unit: number) => unit >= 0xd800 && unit < 0xdc00;

function buildView(pieces: readonly Piece[], fold: boolean, squeeze: boolean): View {
  const parts: string[] = [];
  const starts: number[] = [];
  const ends: number[] = [];
  const points: number[] = [];
  for (const p of pieces) {
    const c = p.text.length === 1 ? p.text.charCodeAt(0) : -1;
    const printable = c > 0x20 && c < 0x7f;
    if (squeeze && !printable && INVISIBLE.test(p.text)) continue;
    const t = !fold ? p.text : printable ? (ASCII_FOLDED[c] ?? p.text) : p.text.toLowerCase();
    parts.push(t);
    for (let k = 0; k < t.length; k++) {
      const unit = t.charCodeAt(k);
      // The low half of a surrogate pair starts no code point.
      if (!(unit >= 0xdc00 && unit < 0xe000 && k > 0 && isHighSurrogate(t.charCodeAt(k - 1))))
        points.push(starts.length);
      starts.push(p.start);
      ends.push(p.end);
    }
  }
  points.push(starts.length);
  return { text: parts.join(""), starts, ends, points };
}

function buildViews(pieces: Piece[]): Record<ViewKind, View> {
  const decoded = decodeAll(pieces);
  return {
    raw: buildView(pieces, true, false),
    decoded: buildView(decoded, true, false),
    squeezed: buildView(decoded, true, true),
  };
}

function collectWindows(secrets: readonly string[]): Windows {
  const windows: Windows = { raw: [], decoded: [], squeezed: [] };
  for (const secret of secrets) {
    for (const form of secretForms(secret)) {
      const views = buildViews(splitCodePoints(form));
      for (const kind of VIEW_KINDS) {
        const { text, points } = views[kind];
        const size = Math.min(SECRET_WINDOW_CHARS, points.length - 1);
        // Without whitespace, a short secret would match across words of ordinary text.
        if (size === 0 || (kind === "squeezed" && size < SECRET_WINDOW_CHARS)) continue;
        let entry = windows[kind].find((w) => w.size === size);
        if (!entry) {
          entry = { size, set: new Set(), filter: new Uint8Array(1 << FILTER_BITS) };
          windows[kind].push(entry);
        }
        for (let c = 0; c + size < points.length; c++) {
          const from = points[c] ?? 0;
          entry.set.add(text.slice(from, points[c + size]));
          entry.filter[hashAt(text, from, size)] = 1;
        }
      }
    }
  }
  return windows;
}

let cachedWindows: { key: string; windows: Windows } | undefined;

/** The windows of the last secrets asked for are kept: a caller redacts many texts with the same ones. */
function windowsOf(secrets: readonly string[]): Windows {
  const key = JSON.stringify(secrets);
  if (cachedWindows?.key !== key) cachedWindows = { key, windows: collectWindows(secrets) };
  return cachedWindows.windows;
}

type Mark = (start: number, end: number) => void;

/** Marks, in the coordinates of the pieces' spans, every window of a secret found in any view. */
function matchViews(pieces: Piece[], windows: Windows, mark: Mark): void {
  const views = buildViews(pieces);
  for (const kind of VIEW_KINDS) {
    const { text, starts, ends, points } = views[kind];
    for (const { size, set, filter } of windows[kind]) {
      for (let c = 0; c + size < points.length; c++) {
        const from = points[c] ?? 0;
        const to = points[c + size] ?? text.length;
        if (filter[hashAt(text, from, size)] === 1 && set.has(text.slice(from, to)))
          mark(starts[from] ?? 0, ends[to - 1] ?? 0);
      }
    }
  }
}

/**
 * Decodes each base64 and hex run of the text (decoded, without whitespace, case kept) at every
 * alignment and looks for secrets in what it holds; the characters of the run that carry the
 * bytes found are marked. This finds base64 and hex of a secret altered first (case-folded, put
 * in a longer string, split over lines).
 */
function matchEncodedRuns(pieces: Piece[], windows: Windows, mark: Mark): void {
  const view = buildView(decodeAll(pieces), false, true);
  const tryRun = (from: number, to: number, encoding: "base64" | "hex") => {
    const bytes = Buffer.from(view.text.slice(from, to), encoding);
    if (bytes.length === 0) return;
    // The characters holding bytes [first, last]: base64 packs 6 bits a character, hex 4.
    const firstChar = (j: number) => from + (encoding === "hex" ? 2 * j : Math.floor((8 * j) / 6));
    const lastChar = (j: number) => from + (encoding === "hex" ? 2 * j + 1 : Math.floor((8 * j + 7) / 6));
    matchViews(splitBytes(bytes), windows, (start, end) => {
      const a = Math.min(firstChar(start), to - 1);
      const b = Math.min(lastChar(end - 1), to - 1);
      mark(view.starts[a] ?? 0, view.ends[b] ?? 0);
    });
  };
  for (const m of view.text.matchAll(/[A-Za-z0-9+/_-]+/g)) {
    const end = m.index + m[0].length;
    if (m[0].length < BASE64_RUN_CHARS) continue;
    for (let k = 0; k < 4; k++) tryRun(m.index + k, end, "base64");
  }
  for (const m of view.text.matchAll(/[0-9a-fA-F]+/g)) {
    const end = m.index + m[0].length;
    if (m[0].length < HEX_RUN_CHARS) continue;
    for (let k = 0; k < 2; k++) tryRun(m.index + k, end, "hex");
  }
}

/** Where secrets are in `text`, as a difference array over its positions; undefined when nowhere. */
function findSecrets(text: string, windows: Windows): Int32Array | undefined {
  const diff = new Int32Array(text.length + 1);
  let found = false;
  const mark: Mark = (start, end) => {
    if (end <= start) return;
    diff[start] = (diff[start] ?? 0) + 1;
    diff[end] = (diff[end] ?? 0) - 1;
    found = true;
  };
  const pieces = splitCodePoints(text);
  matchViews(pieces, windows, mark);
  matchEncodedRuns(pieces, windows, mark);
  return found ? diff : undefined;
}

/**
 * Replaces each run of a text holding a secret (module comment) by `***`. The result is checked
 * again, and a text in which a secret is still found is replaced whole by REDACTED_TEXT: an echo
 * no span could be drawn around does not get through.
 */
export function redactSecrets(text: string, secrets: readonly string[]): string {
  if (secrets.length === 0 || text.length === 0) return text;
  const windows = windowsOf(secrets);
  const diff = findSecrets(text, windows);
  if (!diff) return text;
  let out = "";
  let depth = 0;
  let copiedTo = 0;
  let inSpan = false;
  for (let i = 0; i < text.length; i++) {
    depth += diff[i] ?? 0;
    if (depth > 0 && !inSpan) {
      out += `${text.slice(copiedTo, i)}***`;
      inSpan = true;
    } else if (depth === 0 && inSpan) {
      copiedTo = i;
      inSpan = false;
    }
  }
  if (!inSpan) out += text.slice(copiedTo);
  return findSecrets(out, windows) ? REDACTED_TEXT : out;
}

/**
 * Redacts, then cuts to `maxChars`. Cutting first could leave fewer than SECRET_WINDOW_CHARS of a
 * secret at the end, or cut an encoding of it so it no longer matches. A text longer than
 * `scanChars` (default REDACT_SCAN_CHARS) is redacted only that far, and the end of that is
 * dropped (SCAN_END_CHARS).
 */
export function redactAndCut(
  text: string,
  secrets: readonly string[],
  maxChars: number,
  // How far to read: at least maxChars + SCAN_END_CHARS, or the kept text could be shorter than
  // asked. Redaction costs time per character read, so short cuts read less.
  scanChars = REDACT_SCAN_CHARS,
): string {
  const scan = Math.max(scanChars, maxChars + SCAN_END_CHARS);
  if (text.length <= scan) return redactSecrets(text, secrets).slice(0, maxChars);
  const redacted = redactSecrets(text.slice(0, scan), secrets);
  if (redacted === REDACTED_TEXT) return redacted.slice(0, maxChars);
  return redacted.slice(0, Math.min(maxChars, Math.max(0, redacted.length - SCAN_END_CHARS)));
}
