import {
  type SkippedConfig,
  allScheduledConfigs,
  scheduledConfigs,
  scheduledJobPayload,
  syncConfigSchedules,
  warnSkippedConfig,
} from "../../admin/scheduled-runs.js";
import type { JobSummary } from "../../runtimes/local/local-runner.js";
import { withMongo } from "../../store/connection.js";
import type { CommandContext } from "../context.js";
import { CliError, EXIT } from "../exit.js";
import { mongoUri } from "../open-store.js";
import { printJson } from "../output.js";
import { exitCodeFor, runJobInProcess } from "../run-job.js";

export interface ScheduleFlags {
  sync?: boolean;
  json?: boolean;
  mongo?: string;
}

/**
 * `chunkrelay schedule [config]`: the scheduled incremental runs now, in-process; with `--sync`,
 * the Trigger.dev schedules of configs with a cron of their own brought up to date instead.
 */
export async function runSchedules(
  ctx: CommandContext,
  configName: string | undefined,
  opts: ScheduleFlags,
): Promise<void> {
  const { env, setExit } = ctx;
  const uri = mongoUri(opts.mongo, env);
  if (opts.sync) {
    if (!env.TRIGGER_SECRET_KEY) {
      throw new CliError(
        "--sync needs TRIGGER_SECRET_KEY (the project's secret API key) in the environment",
        EXIT.usage,
      );
    }
    const { schedules } = await import("@trigger.dev/sdk");
    await withMongo(uri, async (store) => {
      const result = await syncConfigSchedules(store, {
        create: (o) => schedules.create(o),
        list: () => schedules.list(),
        deactivate: (id) => schedules.deactivate(id),
      });
      for (const s of result.synced) {
        process.stderr.write(`config ${s.config}: schedule ${s.scheduleId} at '${s.cron}' ${s.timezone}\n`);
      }
      for (const d of result.deactivated) {
        process.stderr.write(
          `config ${d.config}: schedule ${d.scheduleId} deactivated (no cron of its own now)\n`,
        );
      }
      printJson(opts.json, result);
      if (result.skipped.length > 0) setExit(EXIT.usage);
    });
    return;
  }
  // A stored config that no longer validates is skipped (the others still run) and warned
  // about; the exit code then says something needs fixing (2), unless a run did worse.
  let skipped = 0;
  const onSkip = (s: SkippedConfig) => {
    skipped++;
    warnSkippedConfig(s);
  };
  const configs = await withMongo(uri, async (store) =>
    configName ? scheduledConfigs(store, configName, onSkip) : allScheduledConfigs(store, onSkip),
  );
  if (configs.length === 0 && skipped === 0) process.stderr.write("no config has a schedule\n");
  const summaries: JobSummary[] = [];
  let worst: number = skipped > 0 ? EXIT.usage : EXIT.ok;
  for (const c of configs) {
    const payload = scheduledJobPayload(c, new Date());
    const { config: _c, jobId, description, ...request } = payload;
    process.stderr.write(`config ${c.name}: scheduled incremental run\n`);
    const summary = await runJobInProcess(ctx, uri, c.name, {
      ...(jobId ? { jobId } : {}),
      ...(description ? { description } : {}),
      ready: request,
    });
    summaries.push(summary);
    const code = exitCodeFor(summary);
    // Interrupted wins (the rest did not run); else failed; else ok.
    worst =
      code === EXIT.interrupted || worst === EXIT.interrupted ? EXIT.interrupted : Math.max(worst, code);
    if (code === EXIT.interrupted) break;
  }
  setExit(worst);
  printJson(opts.json, summaries);
}
