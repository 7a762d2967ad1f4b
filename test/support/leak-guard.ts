/**
 * Fails a test file that leaves TCP servers or sockets open (an unclosed MongoClient, HTTP server
 * or embedded engine): such leaks hang CI runs and hide missing `close()` calls in the code.
 */
import { afterAll, beforeAll } from "vitest";

const WATCHED = new Set(["TCPServerWrap", "TCPSocketWrap", "PipeServerWrap"]);

function openHandles(): Map<string, number> {
  const counts = new Map<string, number>();
  for (const kind of process.getActiveResourcesInfo()) {
    if (WATCHED.has(kind)) counts.set(kind, (counts.get(kind) ?? 0) + 1);
  }
  return counts;
}

let baseline = new Map<string, number>();

beforeAll(() => {
  baseline = openHandles();
});

afterAll(async () => {
  const deadline = Date.now() + 2_000;
  for (;;) {
    const leaked = [...openHandles()].filter(([kind, n]) => n > (baseline.get(kind) ?? 0));
    if (leaked.length === 0) return;
    if (Date.now() > deadline) {
      throw new Error(
        `leak guard: this test file left ${leaked.map(([k, n]) => `${n - (baseline.get(k) ?? 0)} ${k}`).join(", ")} open; close every client and server it starts`,
      );
    }
    await new Promise((r) => setTimeout(r, 50));
  }
});
