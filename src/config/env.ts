/** Environment variables chunkrelay reads, parsed once with zod. */
import { z } from "zod";
import { BadInputError } from "../common/errors.js";

export const envSchema = z.object({
  /** MongoDB connection string; its path names the database (default `chunkrelay`). */
  MONGODB_URI: z
    .string()
    .regex(/^mongodb(\+srv)?:\/\//, "a mongodb:// or mongodb+srv:// URI")
    .optional(),
  /** Prefix of chunkrelay's collection names. Default: `batch_`. */
  CHUNKRELAY_PREFIX: z
    .string()
    .regex(/^[A-Za-z0-9_]*$/, "letters, digits and _")
    .default("batch_"),
  /** Lease of a chunk or a planning step, renewed while it works, in ms. Default: 10000. */
  CHUNKRELAY_LEASE_MS: z.coerce.number().int().min(100).max(600_000).default(10_000),
  /**
   * Local runs: how often a step that failed for a transient reason (the database away, a network
   * error) is tried before the run stops with a resume hint. Default: 8 (with the default delay,
   * about a minute of waiting).
   */
  CHUNKRELAY_STEP_TRIES: z.coerce.number().int().min(1).max(100).default(8),
  /** Local runs: the first delay between those tries, doubled each time up to 30 s. Default: 500. */
  CHUNKRELAY_STEP_RETRY_MS: z.coerce.number().int().min(10).max(60_000).default(500),
});

export type Env = z.infer<typeof envSchema>;

/** Parses environment variables with `schema`; a bad one is bad input naming the variable. */
function parseEnv<S extends z.ZodType>(schema: S, env: Record<string, string | undefined>): z.infer<S> {
  const parsed = schema.safeParse(env);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    // Bad input: retrying cannot fix the environment (exit 2; a task fails without retries).
    throw new BadInputError(`environment variable ${issue?.path.join(".")} is invalid: ${issue?.message}`);
  }
  return parsed.data;
}

export function readEnv(env: Record<string, string | undefined> = process.env): Env {
  return parseEnv(envSchema, env);
}

/**
 * The status page's token, parsed only where the page is served: a bad value must not stop
 * commands (or task runs) that never read it.
 */
const statusEnvSchema = z.object({
  /**
   * The bearer token `chunkrelay serve` requires (its --token wins). Default: none (no token is
   * asked for; fine on 127.0.0.1). Set but empty is refused: it would turn authentication off
   * without anyone having decided so.
   */
  CHUNKRELAY_STATUS_TOKEN: z
    .string()
    .refine((t) => t.trim() !== "", "empty: set a token, or unset the variable to serve without one")
    .refine((t) => !/[\p{Cc}\s]/u.test(t), "holds a space or a control character: set the bare token")
    .optional(),
});

export function readStatusToken(env: Record<string, string | undefined> = process.env): string | undefined {
  return parseEnv(statusEnvSchema, env).CHUNKRELAY_STATUS_TOKEN;
}

/**
 * The local runner's callback listener (configs with `completion: "callback"`), parsed only when a
 * run opens its first callback: a bad value must not stop runs that never use one.
 */
const callbackEnvSchema = z.object({
  /** Interface the listener binds. Default: 127.0.0.1 (set 0.0.0.0 for a service on another host). */
  CHUNKRELAY_CALLBACK_HOST: z.string().min(1).default("127.0.0.1"),
  /** Its TCP port. Default: 0 (any free port; fine when the service runs on this machine). */
  CHUNKRELAY_CALLBACK_PORT: z.coerce.number().int().min(0).max(65_535).default(0),
  /** The base URL the service calls, when it reaches the listener through a proxy. Default: http://HOST:PORT. */
  CHUNKRELAY_CALLBACK_URL: z.url({ protocol: /^https?$/, error: "an http:// or https:// URL" }).optional(),
  /**
   * The key callback tokens are signed with (HMAC-SHA256), at least 32 characters. Default: a random
   * key per run, so callbacks of attempts sent before a restart are refused and those attempts
   * time out and go again; set it to keep them valid across restarts.
   */
  CHUNKRELAY_CALLBACK_SECRET: z.string().min(32, "at least 32 characters").optional(),
});

export type CallbackEnv = z.infer<typeof callbackEnvSchema>;

export function readCallbackEnv(env: Record<string, string | undefined> = process.env): CallbackEnv {
  return parseEnv(callbackEnvSchema, env);
}
