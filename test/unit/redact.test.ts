/**
 * Redaction survives the ways a service may echo a secret back: every generated transformation of
 * a few secrets, embedded in surrounding text, comes out with no trace of eight or more of the
 * secret's characters in any of its forms, and the text around it is kept.
 */
import { describe, expect, it } from "vitest";
import { SECRET_PREFIX_CHARS, redactSecrets, secretForms } from "../../src/lib/config/load.js";
import { seededRandom } from "../support/random.js";

const SECRETS = ["s3cr3t-Token-4f9a2b7c1d", "p@ss/w0rd+x=&y?z", "Zm9vYmFyYmF6cXV4MTIz"];

/** Every way the test echoes a secret: encodings, cases, truncations. */
function transformations(secret: string): string[] {
  const bytes = Buffer.from(secret, "utf8");
  const whole = [
    secret,
    secret.toUpperCase(),
    secret.toLowerCase(),
    encodeURIComponent(secret),
    encodeURIComponent(secret).toLowerCase(),
    bytes.toString("base64"),
    bytes.toString("base64url"),
    bytes.toString("base64").replace(/=+$/, ""),
    bytes.toString("hex"),
    bytes.toString("hex").toUpperCase(),
  ];
  const out = [...whole];
  for (const w of whole) {
    for (let n = SECRET_PREFIX_CHARS; n < w.length; n += 3) out.push(w.slice(0, n));
  }
  return out;
}

/** True when `text` still holds SECRET_PREFIX_CHARS or more characters of a form of `secret`. */
function leaks(text: string, secret: string): string | undefined {
  const lower = text.toLowerCase();
  for (const form of secretForms(secret)) {
    const piece = form.slice(0, SECRET_PREFIX_CHARS);
    if (lower.includes(piece)) return piece;
  }
  return undefined;
}

describe("redactSecrets", () => {
  it("removes a secret in every generated form, whatever surrounds it", () => {
    const rand = seededRandom(11);
    let cases = 0;
    for (const secret of SECRETS) {
      for (const echo of transformations(secret)) {
        const before = ["HTTP 400: ", "token=", '{"auth":"Bearer ', ""][Math.floor(rand() * 4)] ?? "";
        const after = [" is not valid", '"}', "&next=1", ""][Math.floor(rand() * 4)] ?? "";
        const text = `${before}${echo}${after}`;
        const out = redactSecrets(text, SECRETS);
        expect(leaks(out, secret), `${text} → ${out}`).toBeUndefined();
        expect(out).toContain("***");
        expect(out.startsWith(before) && out.endsWith(after), `${text} → ${out}`).toBe(true);
        cases++;
      }
    }
    expect(cases).toBeGreaterThan(100);
  });

  it("leaves text without a secret alone, and redacts short secrets whole", () => {
    expect(redactSecrets("HTTP 503: busy, retry later", SECRETS)).toBe("HTTP 503: busy, retry later");
    expect(redactSecrets("key abcd and ABCD here", ["abcd"])).toBe("key *** and *** here");
    expect(redactSecrets("anything", [])).toBe("anything");
  });
});
