import { describe, expect, it } from "vitest";
import {
  forTerminal,
  hideUriPasswords,
  jsonForTerminal,
  uriCredentialOf,
} from "../../src/common/terminal-text.js";

/** Any character a terminal acts on instead of showing: C0, DEL, C1, bidi overrides/isolates. */
function isActive(c: number): boolean {
  return (
    c < 0x20 ||
    (c >= 0x7f && c <= 0x9f) ||
    c === 0x061c ||
    c === 0x200e ||
    c === 0x200f ||
    (c >= 0x202a && c <= 0x202e) ||
    (c >= 0x2066 && c <= 0x2069) ||
    c === 0x2028 ||
    c === 0x2029
  );
}
const hasActive = (text: string) => [...text].some((ch) => isActive(ch.codePointAt(0) ?? 0));

describe("forTerminal", () => {
  it("escapes every C0, DEL and C1 control and every bidi format character, and nothing else", () => {
    for (let c = 0; c < 0x3000; c++) {
      const ch = String.fromCodePoint(c);
      const shown = forTerminal(`a${ch}b`);
      if (isActive(c)) {
        expect(shown, `U+${c.toString(16)}`).not.toContain(ch);
        expect(shown.startsWith("a\\") && shown.endsWith("b"), shown).toBe(true);
      } else {
        expect(shown).toBe(`a${ch}b`);
      }
    }
  });

  it("shows a right-to-left override as \\u202e, keeps newlines only when asked, is idempotent", () => {
    expect(forTerminal("invoice\u202Etxt.exe")).toBe("invoice\\u202etxt.exe");
    expect(forTerminal("a\nb")).toBe("a\\nb");
    expect(forTerminal("a\nb", { keepNewlines: true })).toBe("a\nb");
    const hostile = "\u001b[2J\u001b]0;owned\u0007\u009b31m\r\u202e";
    expect(forTerminal(forTerminal(hostile))).toBe(forTerminal(hostile));
  });
});

describe("jsonForTerminal", () => {
  it("writes C1 controls and bidi characters as \\u escapes: the same JSON value, inert text", () => {
    const value = { id: "a\u009b2J\u202eb\u2028c\u007f" };
    const json = jsonForTerminal(JSON.stringify(value));
    expect(hasActive(json)).toBe(false);
    expect(JSON.parse(json)).toEqual(value);
  });
});

describe("hideUriPasswords", () => {
  const cases = [
    "mongodb://user:PASSWORD123@localhost:1/x",
    "mongdb://user:PASSWORD123@localhost:1/x",
    "mongodb:/user:PASSWORD123@localhost/x",
    "mongodb:user:PASSWORD123@localhost/x",
    "user:PASSWORD123@localhost:27017/db",
    "mongodb+srv://user:PASS@WORD123@cluster.example.net",
    "mongdb://u:p@sPASSWORD123@h",
    "mongodb://user:my%20PASSWORD123@h",
  ];
  it.each(cases)("never shows the password of %s, given or not", (uri) => {
    const text = `could not connect to '${uri}': something failed`;
    expect(hideUriPasswords(text)).not.toContain("PASSWORD123");
    expect(hideUriPasswords(text, [uri])).not.toContain("PASSWORD123");
  });

  it("hides a given URI's credential wherever it appears, even with a space in it", () => {
    const uri = "mongodb://user:my PASSWORD123@h/x";
    expect(uriCredentialOf(uri)).toBe("my PASSWORD123");
    expect(hideUriPasswords(`the server said: auth failed for my PASSWORD123`, [uri])).not.toContain(
      "PASSWORD123",
    );
    expect(uriCredentialOf("mongodb://APIKEY123@h")).toBe("APIKEY123");
    expect(uriCredentialOf("mongodb://h:27017/x")).toBeUndefined();
  });

  it("leaves text without credentials alone", () => {
    for (const text of ["chunkrelay: job x-1 not found", "mail ops@example.com", "at 12:30 (retrying)"]) {
      expect(hideUriPasswords(text, ["mongodb://h:27017/x"])).toBe(text);
    }
  });
});
