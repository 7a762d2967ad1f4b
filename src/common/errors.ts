/**
 * The two kinds of failure every step distinguishes. Bad input (an unknown config or job, an
 * invalid config, a missing secret) is never retried: the task fails at once with a message
 * saying what to fix. Everything else (the database is away, a bug) may be retried.
 */
export class BadInputError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "BadInputError";
  }
}

export const isBadInput = (err: unknown): err is BadInputError =>
  err instanceof BadInputError || (err instanceof Error && err.name === "ConfigError");
