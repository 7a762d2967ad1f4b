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
