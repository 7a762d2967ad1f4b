/** Exit codes of every command: 0 done, 1 failed, 2 bad usage or config, 3 interrupted. */
export const EXIT = { ok: 0, failed: 1, usage: 2, interrupted: 3 } as const;

/** An error whose message is for the user, with the exit code it maps to. */
export class CliError extends Error {
  constructor(
    message: string,
    readonly exitCode: number,
  ) {
    super(message);
  }
}
