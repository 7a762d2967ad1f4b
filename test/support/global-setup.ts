import type { TestProject } from "vitest/node";
import { pickMongoServer } from "../../src/store/mongo-server.js";

declare module "vitest" {
  export interface ProvidedContext {
    mongoUri: string;
    mongoKind: string;
  }
}

export default async function setup(project: TestProject) {
  const server = await pickMongoServer();
  process.stderr.write(`\n[chunkrelay tests] MongoDB server: ${server.kind} — ${server.detail}\n\n`);
  project.provide("mongoUri", server.uri);
  project.provide("mongoKind", server.kind);
  return async () => {
    await server.stop();
  };
}
