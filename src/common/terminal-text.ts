/**
 * Unicode format characters that reorder or hide what a terminal shows: bidirectional overrides
 * and isolates (U+202E makes "exe.txt" read as "txt.exe"), marks, line and paragraph separators.
 */
function isInvisibleControl(c: number): boolean {
  return (
    c === 0x200e ||
    c === 0x200f ||
    (c >= 0x202a && c <= 0x202e) ||
    (c >= 0x2066 && c <= 0x2069) ||
    c === 0x2028 ||
    c === 0x2029 ||
    c === 0x061c
  );
}

/**
 * Text from outside — a service's error, a record's error or id, a note, a description — printed
 * for a person: control characters (C0, DEL, C1) and bidirectional format characters are shown
 * escaped (`\x1b`, `\r`, `\u202e`, …), so a hostile service cannot clear the screen, retitle the
 * terminal, hide lines behind a carriage return or reverse the text around it.
 */
export function forTerminal(text: string, options: { keepNewlines?: boolean } = {}): string {
  let out = "";
  for (const ch of text) {
    const c = ch.codePointAt(0) ?? 0;
    if (c === 0x0a && options.keepNewlines) {
      out += ch;
    } else if (c < 0x20 || (c >= 0x7f && c <= 0x9f)) {
      out +=
        c === 0x0a
          ? "\\n"
          : c === 0x0d
            ? "\\r"
            : c === 0x09
              ? "\\t"
              : `\\x${c.toString(16).padStart(2, "0")}`;
    } else if (isInvisibleControl(c)) {
      out += `\\u${c.toString(16).padStart(4, "0")}`;
    } else {
      out += ch;
    }
  }
  return out;
}

/**
 * The part of something given as a MongoDB connection string that may hold a credential: from
 * after the scheme (or the start) to its last '@'. Lenient on purpose — it runs on strings the
 * driver refused (`mongdb://…`, `mongodb:/u:pw@h`, `u:pw@h`), whose password must not be echoed
 * either.
 */
export function uriCredentialOf(uri: string): string | undefined {
  const rest = uri.replace(/^[A-Za-z][A-Za-z0-9+.-]*:\/*/, "");
  const at = rest.lastIndexOf("@");
  if (at <= 0) return undefined;
  const auth = rest.slice(0, at);
  const colon = auth.indexOf(":");
  // Without a ':' the whole user part may be the credential (an API key as user name).
  const secret = colon >= 0 ? auth.slice(colon + 1) : auth;
  return secret.length > 0 ? secret : undefined;
}

/**
 * A connection string's password never reaches the terminal, whatever is wrong with the URI:
 * `user:password@` is shown as `user:***@` with or without `//`, and the credentials of the URIs
 * this process was given (flag, environment) are hidden wherever they appear, in any text.
 */
export function hideUriPasswords(text: string, uris: readonly (string | undefined)[] = []): string {
  // The given credentials first: the pattern below rewrites text around '@' and could leave the
  // tail of a password holding an '@' where an exact search no longer finds it.
  let out = text;
  for (const uri of uris) {
    if (!uri) continue;
    const secret = uriCredentialOf(uri);
    if (!secret) continue;
    const forms = new Set([secret]);
    try {
      forms.add(decodeURIComponent(secret));
    } catch {
      // not percent-encoded text: its raw form is hidden
    }
    for (const form of forms) if (form.length > 0) out = out.split(form).join("***");
  }
  // Then anything shaped like `user:password@`, given or not; greedy up to the last '@' of a
  // word, so a password holding '@' is hidden whole.
  return out.replace(/([^\s:/@'"`]*):[^\s'"`]*@/g, "$1:***@");
}

/**
 * JSON printed where a person may read it: JSON.stringify leaves DEL, C1 controls and the
 * bidirectional format characters raw, so they are written as `\u` escapes — the same JSON value
 * for a program reading it, inert for a terminal.
 */
export function jsonForTerminal(json: string): string {
  return json.replace(
    /[\u007f-\u009f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069\u2028\u2029]/g,
    (ch) => `\\u${(ch.codePointAt(0) ?? 0).toString(16).padStart(4, "0")}`,
  );
}
