/**
 * Redaction survives the ways a service may echo a secret back. A generated set of
 * transformations (cases, full, partial and double percent-encoding, base64 of longer strings at
 * every byte offset, hex, JSON and HTML escapes, whitespace at every position, every piece of eight
 * or more characters) of a set of secrets (random, with symbols, non-ASCII), each embedded in
 * surrounding text, comes out with no window of SECRET_WINDOW_CHARS characters of the secret, and
 * none of the echo's windows that depend on the secret. Text without a secret is left as it is.
 */
import { describe, expect, it } from "vitest";
import { REDACTED_TEXT, SECRET_WINDOW_CHARS, redactAndCut, redactSecrets } from "../../src/config/redact.js";
import { classifyReply } from "../../src/steps/dispatch/post-chunk.js";
import { redactOutcome } from "../../src/steps/dispatch/dispatch.js";
import { seededRandom } from "../support/random.js";

const rand = seededRandom(11);
const pick = <T>(items: readonly T[]): T => items[Math.floor(rand() * items.length)] as T;

function randomSecret(length: number, alphabet: string): string {
  return Array.from({ length }, () => pick([...alphabet])).join("");
}

const ALNUM = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
const SECRETS = [
  "s3cr3t-Token-4f9a2b7c1d",
  "p@ss/w0rd+x=&y?z:%41",
  "Zm9vYmFyYmF6cXV4MTIz",
  "pässwörd-Жук-密码-🔑key",
  ...[8, 11, 16, 29, 40].map((n) => randomSecret(n, ALNUM)),
  ...[9, 14, 25].map((n) => randomSecret(n, `${ALNUM}/+=:@%&?#`)),
];

/** Every run of `size` code points of `text`, lower-cased. */
const windowsOf = (text: string, size = SECRET_WINDOW_CHARS): string[] => {
  const points = [...text.toLowerCase()];
  return Array.from({ length: Math.max(0, points.length - size + 1) }, (_, i) =>
    points.slice(i, i + size).join(""),
  );
};

/**
 * A string of the same UTF-8 byte length as `secret` with other characters, so a transformation
 * of it shows which characters of the transformation of the secret depend on the secret.
 */
function twinOf(secret: string, variant: 0 | 1): string {
  const bySize: Record<number, [string, string]> = {
    1: ["Q", "j"],
    2: ["é", "ж"],
    3: ["中", "文"],
    4: ["😀", "🙂"],
  };
  return [...secret].map((ch) => bySize[Buffer.byteLength(ch)]?.[variant] ?? ch).join("");
}

const percentBytes = (text: string, escape = "%") =>
  [...Buffer.from(text, "utf8")]
    .map((b) => `${escape}${b.toString(16).toUpperCase().padStart(2, "0")}`)
    .join("");

/** Percent-encodes every other character (from `start`), leaving the rest as they are. */
const percentSome = (text: string, start: number) =>
  [...text].map((ch, i) => (i % 2 === start ? percentBytes(ch) : ch)).join("");

const jsonUnicode = (text: string, every: number) =>
  [...text]
    .map((ch, i) =>
      i % every === 0
        ? Array.from(
            { length: ch.length },
            (_, k) => `\\u${ch.charCodeAt(k).toString(16).padStart(4, "0")}`,
          ).join("")
        : ch,
    )
    .join("");

const b64 = (text: string, alphabet: "std" | "stdNoPad" | "url") => {
  const out = Buffer.from(text, "utf8").toString(alphabet === "url" ? "base64url" : "base64");
  return alphabet === "stdNoPad" ? out.replace(/=+$/, "") : out;
};

interface Transformation {
  name: string;
  apply: (secret: string) => string;
}

/** Every transformation of a secret the test echoes (for a secret of `length` code points). */
function transformations(length: number): Transformation[] {
  const out: Transformation[] = [
    { name: "exact", apply: (s) => s },
    { name: "upper", apply: (s) => s.toUpperCase() },
    { name: "lower", apply: (s) => s.toLowerCase() },
    {
      name: "mixed case",
      apply: (s) => [...s].map((ch, i) => (i % 2 ? ch.toUpperCase() : ch.toLowerCase())).join(""),
    },
    { name: "encodeURIComponent", apply: (s) => encodeURIComponent(s) },
    {
      name: "encodeURIComponent, lower-case escapes",
      apply: (s) => encodeURIComponent(s).replace(/%[0-9A-F]{2}/g, (m) => m.toLowerCase()),
    },
    { name: "every byte percent-encoded", apply: (s) => percentBytes(s) },
    { name: "odd characters percent-encoded", apply: (s) => percentSome(s, 1) },
    { name: "even characters percent-encoded", apply: (s) => percentSome(s, 0) },
    { name: "double encodeURIComponent", apply: (s) => encodeURIComponent(encodeURIComponent(s)) },
    { name: "every byte double percent-encoded", apply: (s) => percentBytes(s, "%25") },
    { name: "double, odd characters", apply: (s) => encodeURIComponent(percentSome(s, 1)) },
    { name: "hex", apply: (s) => Buffer.from(s).toString("hex") },
    { name: "HEX", apply: (s) => Buffer.from(s).toString("hex").toUpperCase() },
    { name: "hex of Bearer …", apply: (s) => Buffer.from(`Bearer ${s}`).toString("hex") },
    { name: "hex, odd offset", apply: (s) => `a${Buffer.from(s).toString("hex")}` },
    { name: "hex of the upper-cased secret", apply: (s) => Buffer.from(s.toUpperCase()).toString("hex") },
    { name: "JSON", apply: (s) => JSON.stringify(s).replaceAll("/", "\\/") },
    { name: "JSON, every character \\u", apply: (s) => jsonUnicode(s, 1) },
    { name: "JSON, every third character \\u", apply: (s) => jsonUnicode(s, 3) },
    {
      name: "JSON of JSON",
      apply: (s) => JSON.stringify(JSON.stringify({ token: s }).replaceAll("/", "\\/")),
    },
    {
      name: "HTML entities, every other character",
      apply: (s) => [...s].map((ch, i) => (i % 2 ? `&#${ch.codePointAt(0)};` : ch)).join(""),
    },
    {
      name: "zero-width spaces",
      apply: (s) => [...s].join("\u200b"),
    },
    { name: "base64 of the upper-cased secret", apply: (s) => b64(s.toUpperCase(), "std") },
    {
      name: "base64 split over lines",
      apply: (s) => b64(`Bearer ${s}`, "std").replace(/(.{10})/g, "$1\r\n"),
    },
    { name: "base64, percent-encoded", apply: (s) => encodeURIComponent(b64(`user:${s}`, "std")) },
  ];
  for (const alphabet of ["std", "stdNoPad", "url"] as const) {
    for (const prefix of ["", "B", "Be", "Bea", "Bear", "user:", "Bearer ", "Basic 12"]) {
      for (const suffix of ["", "@host"]) {
        out.push({
          name: `base64 ${alphabet} of '${prefix}' + secret + '${suffix}'`,
          apply: (s) => b64(`${prefix}${s}${suffix}`, alphabet),
        });
      }
    }
  }
  for (let at = 1; at < length; at++) {
    for (const space of ["\n", " ", "\t", "\r\n", "\u0000"]) {
      out.push({
        name: `${JSON.stringify(space)} at ${at}`,
        apply: (s) => [...[...s].slice(0, at), space, ...[...s].slice(at)].join(""),
      });
    }
  }
  for (let n = SECRET_WINDOW_CHARS; n < length; n++) {
    out.push({ name: `prefix of ${n}`, apply: (s) => [...s].slice(0, n).join("") });
    out.push({ name: `suffix of ${n}`, apply: (s) => [...s].slice(-n).join("") });
    const from = Math.floor((length - n) / 2);
    out.push({ name: `middle ${n} from ${from}`, apply: (s) => [...s].slice(from, from + n).join("") });
  }
  return out;
}

/** The windows of an echo that depend on the secret: not found in the same echo of either twin. */
function secretWindows(t: Transformation, secret: string): string[] {
  const common = new Set([
    ...windowsOf(t.apply(twinOf(secret, 0))),
    ...windowsOf(t.apply(twinOf(secret, 1))),
  ]);
  return windowsOf(t.apply(secret)).filter((w) => !common.has(w));
}

/** What of the secret is left in `out`, if anything. */
function leftOf(out: string, secret: string, t: Transformation): string | undefined {
  const lower = out.toLowerCase();
  return [...windowsOf(secret), ...secretWindows(t, secret)].find((w) => lower.includes(w));
}

const BEFORE = ["HTTP 400: ", "token=", '{"auth":"Bearer ', "refused: ", ""];
const AFTER = [" is not valid", '"}', "&next=1", ".", ""];

describe("redactSecrets", () => {
  it("removes every generated transformation of a secret, and keeps the text around it", () => {
    let cases = 0;
    for (const secret of SECRETS) {
      for (const t of transformations([...secret].length)) {
        const before = pick(BEFORE);
        const after = pick(AFTER);
        const text = `${before}${t.apply(secret)}${after}`;
        const out = redactSecrets(text, SECRETS);
        const context = `${t.name} of ${secret}: ${JSON.stringify(text)} → ${JSON.stringify(out)}`;
        expect(secretWindows(t, secret).length, context).toBeGreaterThan(0);
        expect(leftOf(out, secret, t), context).toBeUndefined();
        expect(out, context).toContain("***");
        // Only where whitespace is dropped can a match reach into the text around (`Bearer 3t-…`
        // reads `bearer3t-…`), and by fewer characters than a window.
        const kept = (s: string, end: boolean) =>
          end
            ? s.slice(SECRET_WINDOW_CHARS - 1)
            : s.slice(0, Math.max(0, s.length - SECRET_WINDOW_CHARS + 1));
        expect(out.startsWith(kept(before, false)) && out.endsWith(kept(after, true)), context).toBe(true);
        cases++;
      }
    }
    expect(cases).toBeGreaterThan(2000);
  });

  it("removes a secret echoed several times, in several forms, in one text", () => {
    for (const secret of SECRETS) {
      const ts = transformations([...secret].length);
      const chosen = Array.from({ length: 5 }, () => pick(ts));
      const text = chosen.map((t) => `${pick(BEFORE)}${t.apply(secret)}${pick(AFTER)}`).join(" | ");
      const out = redactSecrets(text, SECRETS);
      for (const t of chosen) expect(leftOf(out, secret, t), `${text} → ${out}`).toBeUndefined();
    }
  });

  it("leaves text without a secret as it is", () => {
    const blob = Buffer.from(Array.from({ length: 3000 }, () => Math.floor(rand() * 256)));
    const texts = [
      "HTTP 503: busy, retry later",
      '{"error":"record 5f1d7a9c2b3e4d5f6a7b8c9d not found","requestId":"0b7c6e3a-2f1d-4c5b-9a8e-7d6c5b4a3f2e"}',
      `payload digest ${"e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"}`,
      `attachment ${blob.toString("base64")} rejected`,
      `key ${blob.toString("hex").slice(0, 400)} unknown`,
      "<html><body><h1>400 Bad Request</h1><p>The server said &quot;no&quot; &amp; closed.</p></body></html>",
      "GET /v1/batch?name=a%20b%2Fc&x=%E2%82%AC failed: \\u0041\\n\\t timeout\r\nretry",
      `${"Lorem ipsum dolor sit amet, consectetur adipiscing elit. ".repeat(100)}`,
    ];
    for (const text of texts) expect(redactSecrets(text, SECRETS)).toBe(text);
    expect(redactSecrets("anything", [])).toBe("anything");
  });

  it("leaves pieces of a secret shorter than eight characters alone", () => {
    for (const secret of SECRETS) {
      const points = [...secret];
      for (let n = 1; n < SECRET_WINDOW_CHARS; n++) {
        for (const from of [0, 1, Math.floor((points.length - n) / 2), points.length - n]) {
          const text = `id (${points.slice(from, from + n).join("")}) unknown`;
          expect(redactSecrets(text, SECRETS)).toBe(text);
        }
      }
    }
  });

  it("redacts a secret shorter than eight characters whole, in each of its forms, and not its pieces", () => {
    expect(redactSecrets("key abcd and ABCD here", ["abcd"])).toBe("key *** and *** here");
    const secret = "k3Y/9";
    for (const echo of [
      secret,
      secret.toUpperCase(),
      encodeURIComponent(secret),
      b64(secret, "std"),
      b64(secret, "url"),
      Buffer.from(secret).toString("hex"),
      b64(`user:${secret}`, "std"),
    ]) {
      const out = redactSecrets(`denied (${echo}) here`, [secret]);
      expect(out, echo).toMatch(/^denied \(.*\*\*\*.*\) here$/);
      expect(out.toLowerCase(), echo).not.toContain(echo.toLowerCase());
    }
    expect(redactSecrets("denied (k3Y/) here", [secret])).toBe("denied (k3Y/) here");
  });

  it("replaces a text whole when a secret is still in it after redaction", () => {
    // One secret holds `***`: redacting the other one in the text makes it.
    const out = redactSecrets("x azzzzzzzzzzb***cd y", ["a***b***cd", "zzzzzzzzzz"]);
    expect(out).toBe(REDACTED_TEXT);
  });
});

describe("cutting a redacted reason", () => {
  it("redacts before the 300-character cut: a secret straddling it leaves nothing", () => {
    const secret = "s3cr3t-Token-4f9a2b7c1d";
    for (let at = 280; at <= 300; at++) {
      const service = `${"x".repeat(at)}${secret}${" and more".repeat(60)}`;
      const outcome = redactOutcome(classifyReply(400, JSON.stringify({ error: service }), undefined), [
        secret,
      ]);
      expect(outcome.kind).toBe("rejected");
      if (outcome.kind === "accepted") continue;
      expect(outcome.reason).toBe(`HTTP 400: ${"x".repeat(at)}***${" and more".repeat(60)}`.slice(0, 310));
    }
  });

  it("redacts base64 of a secret straddling the cut", () => {
    const secret = "s3cr3t-Token-4f9a2b7c1d";
    // base64("Bearer " + secret): "QmVhcmVyI" holds "Bearer " alone; the rest depends on the secret.
    const echo = b64(`Bearer ${secret}`, "std");
    for (let at = 260; at <= 300; at += 4) {
      const text = `${"y".repeat(at)}${echo} then more text`.padEnd(400, ".");
      const outcome = redactOutcome(classifyReply(503, text, undefined), [secret]);
      expect(outcome.kind).toBe("retry");
      if (outcome.kind === "accepted") continue;
      const expected = `HTTP 503: ${"y".repeat(at)}QmVhcmVyI*** then more text`.padEnd(410, ".");
      expect(outcome.reason).toBe(expected.slice(0, 310));
    }
  });

  it("cuts an exception's service text to 500 characters after redacting it", () => {
    const secret = "p@ss/w0rd+x=&y?z:%41";
    for (let at = 490; at <= 500; at++) {
      const text = `${"e".repeat(at)}${encodeURIComponent(secret)} tail`;
      expect(redactAndCut(text, [secret], 500)).toBe(`${"e".repeat(at)}*** tail`.slice(0, 500));
    }
  });

  it("keeps a secret cut short at the end of a huge text out of what is kept", () => {
    const secret = "s3cr3t-Token-4f9a2b7c1d";
    for (let cut = 1; cut < SECRET_WINDOW_CHARS; cut++) {
      // Secrets back to back shrink to one ***: the piece at the scan's end would come first.
      const head = secret.repeat(170);
      const text = `${head}${"y".repeat(4000 - head.length - cut)}${secret}${"z".repeat(5000)}`;
      const out = redactAndCut(text, [secret], 310);
      expect(out.toLowerCase()).not.toContain(secret.slice(0, cut).toLowerCase());
    }
  });
});
