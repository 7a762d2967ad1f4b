/** Calls `handler` on SIGINT or SIGTERM; the returned function removes the handlers. */
export function onSignal(handler: (signal: NodeJS.Signals) => void): () => void {
  const on = (signal: NodeJS.Signals) => handler(signal);
  process.on("SIGINT", on);
  process.on("SIGTERM", on);
  return () => {
    process.off("SIGINT", on);
    process.off("SIGTERM", on);
  };
}

/** Resolves with the first SIGINT or SIGTERM the process receives. */
export const untilSignal = () =>
  new Promise<NodeJS.Signals>((resolve) => {
    const dispose = onSignal((s) => {
      dispose();
      resolve(s);
    });
  });
