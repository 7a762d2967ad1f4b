/**
 * The server the package's tests talk to when run on their own (`npm test` in this package):
 * `MONGODB_URI` when set — the compatibility tests then check a real mongod the same way — else
 * the engine itself. The repository's root test run provides `mongoUri` through its own setup.
 */
import type { TestProject } from "vitest/node";
import { startEmbeddedMongo } from "../../src/index.js";

declare module "vitest" {
  export interface ProvidedContext {
    mongoUri: string;
    /** Which server: "FerretDB" in the repository's FerretDB lane; other values name others. */
    mongoKind: string;
  }
}

export default async function setup(project: TestProject) {
  if (process.env.MONGODB_URI) {
    project.provide("mongoUri", process.env.MONGODB_URI);
    project.provide("mongoKind", "MONGODB_URI");
    return;
  }
  const server = await startEmbeddedMongo();
  project.provide("mongoUri", server.uri);
  project.provide("mongoKind", "embedded engine");
  return async () => {
    await server.stop();
  };
}
