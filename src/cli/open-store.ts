import { readEnv } from "../config/env.js";
import { type Store } from "../store/store.js";
import { withMongo } from "../store/connection.js";
import { CliError, EXIT } from "./exit.js";

/** The connection string of a command: its `--mongo` flag, else `MONGODB_URI`. */
export function mongoUri(flag: string | undefined, env: Record<string, string | undefined>): string {
  const uri = flag ?? readEnv(env).MONGODB_URI;
  if (!uri) {
    throw new CliError(
      "no MongoDB given: set MONGODB_URI or pass --mongo <uri> (for a local server: `npx chunkrelay mongo`; to try everything at once: `npm start`)",
      EXIT.usage,
    );
  }
  return uri;
}

/** Runs `fn` with the store of the command's database, closing the connection afterwards. */
export function withCommandStore<T>(
  flag: string | undefined,
  env: Record<string, string | undefined>,
  fn: (store: Store) => Promise<T>,
): Promise<T> {
  return withMongo(mongoUri(flag, env), fn);
}
