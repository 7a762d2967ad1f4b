/**
 * Shows a running job's progress: a live bar (cli-progress) when stderr is a terminal, plain log
 * lines otherwise (CI logs, pipes). Progress goes to stderr so stdout stays for `--json`.
 */
import cliProgress from "cli-progress";
import type { JobProgress } from "../../queries/progress.js";

export interface ProgressDisplay {
  update(p: JobProgress): void;
  stop(): void;
}

const rate = (p: JobProgress) => {
  const secs = (Date.now() - p.startedAt.getTime()) / 1000;
  return secs > 0 ? Math.round((p.processedRecords + p.failedRecords) / secs) : 0;
};

export function createProgressDisplay(stream: NodeJS.WriteStream = process.stderr): ProgressDisplay {
  if (stream.isTTY) {
    const bar = new cliProgress.SingleBar(
      {
        stream,
        format:
          "{bar} {percentage}% | {value}/{total} records | chunks {doneChunks}/{totalChunks} ({inFlight} in flight) | {rate} rec/s | ETA {eta_formatted}",
        hideCursor: true,
        etaBuffer: 50,
      },
      cliProgress.Presets.shades_classic,
    );
    let started = false;
    return {
      update(p) {
        const payload = {
          doneChunks: p.doneChunks,
          totalChunks: p.totalChunks,
          inFlight: p.inFlightChunks,
          rate: rate(p),
        };
        if (!started) {
          bar.start(Math.max(1, p.totalRecords), 0, payload);
          started = true;
        }
        bar.setTotal(Math.max(1, p.totalRecords));
        bar.update(p.processedRecords + p.failedRecords, payload);
      },
      stop() {
        if (started) bar.stop();
      },
    };
  }
  let lastLine = "";
  let lastAt = 0;
  return {
    update(p) {
      const line = `job ${p.jobId}: ${p.processedRecords + p.failedRecords}/${p.totalRecords} records, ${p.doneChunks}/${p.totalChunks} chunks, ${rate(p)} rec/s${p.planningDone ? "" : " (planning)"}`;
      // One line per finished chunk, or every 5 s at most while nothing changes.
      const changed = line.replace(/, \d+ rec\/s.*/, "") !== lastLine.replace(/, \d+ rec\/s.*/, "");
      if (changed || Date.now() - lastAt > 5000) {
        stream.write(`${line}\n`);
        lastLine = line;
        lastAt = Date.now();
      }
    },
    stop() {},
  };
}
