/** What every command action is given by the program that parsed its arguments. */
export interface CommandContext {
  env: Record<string, string | undefined>;
  /** Sets the process's exit code (the last call wins). */
  setExit: (code: number) => void;
  /** Hides the credentials of every connection string this invocation was given. */
  hideUriPasswords: (text: string) => string;
}
