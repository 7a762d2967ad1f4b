/**
 * Text from outside — a service's error, a record's error, a note, a description — printed for a
 * person: control characters are shown escaped (`\x1b`, `\r`, …), so a hostile service cannot
 * clear the screen, retitle the terminal or hide lines behind a carriage return.
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
    } else {
      out += ch;
    }
  }
  return out;
}
