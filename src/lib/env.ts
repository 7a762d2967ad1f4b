/** Environment variables chunkrelay reads, parsed once with zod. */
import { z } from "zod";

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

export function readEnv(env: Record<string, string | undefined> = process.env): Env {
  const parsed = envSchema.safeParse(env);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new Error(`environment variable ${issue?.path.join(".")} is invalid: ${issue?.message}`);
  }
  return parsed.data;
}
