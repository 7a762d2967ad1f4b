/**
 * The `chunkrelay` command line: commander parses the commands and zod the option values; each
 * command's action is in `commands/<name>.ts`, loaded only when that command runs (so `--help` and
 * a usage error load neither the driver nor the config schema). Progress and logs go to stderr;
 * `--json` prints one JSON document as the last stdout line. Exit codes: 0 done, 1 the job or
 * command failed, 2 bad usage or bad config, 3 interrupted (the message says how to resume).
 */
import { Command, CommanderError, Option } from "commander";
import { isBadInput } from "../common/errors.js";
import type { BacklogFlags } from "./commands/backlog.js";
import type { BatchServiceFlags } from "./commands/batch-service.js";
import type { ConfigApplyFlags } from "./commands/config-apply.js";
import type { DeleteFlags } from "./commands/delete.js";
import type { DemoFlags } from "./commands/demo.js";
import type { ExceptionsListFlags } from "./commands/exceptions-list.js";
import type { ExceptionsRequeueFlags } from "./commands/exceptions-requeue.js";
import type { ExceptionsResolveFlags } from "./commands/exceptions-resolve.js";
import type { ExceptionsShowFlags } from "./commands/exceptions-show.js";
import type { JobsFlags } from "./commands/jobs.js";
import type { ResultsFlags } from "./commands/results.js";
import type { RunChunkFlags } from "./commands/run-chunk.js";
import type { ListenFlags } from "./commands/listen.js";
import type { MongoFlags } from "./commands/mongo.js";
import type { ResumeFlags } from "./commands/resume.js";
import type { RunFlags } from "./commands/run.js";
import type { ScheduleFlags } from "./commands/schedule.js";
import type { ServeFlags } from "./commands/serve.js";
import type { StatsFlags } from "./commands/stats.js";
import type { StatusFlags } from "./commands/status.js";
import type { WhereFlags } from "./commands/where.js";
import type { CommandContext } from "./context.js";
import { CliError, EXIT } from "./exit.js";
import {
  mongoOption,
  msArg,
  nonNegativeIntArg,
  portArg,
  positiveIntArg,
  positiveNumberArg,
  rateArg,
} from "./options.js";
import { forTerminal, hideUriPasswords as hideGivenUriPasswords } from "../common/terminal-text.js";

export { EXIT } from "./exit.js";

export function buildProgram(
  env: Record<string, string | undefined>,
  setExit: (code: number) => void,
  hideUriPasswords: (text: string) => string = (text) => hideGivenUriPasswords(text, [env.MONGODB_URI]),
): Command {
  const ctx: CommandContext = { env, setExit, hideUriPasswords };
  const program = new Command("chunkrelay")
    .description("Feed MongoDB records to a REST batch service in chunks, with back-pressure.")
    .exitOverride()
    .showHelpAfterError()
    .configureOutput({ writeErr: (s) => process.stderr.write(hideUriPasswords(s)) });

  program
    .command("run")
    .description("Run a job of a config in-process (the same steps the Trigger.dev tasks run).")
    .argument("<config>", "config name (its _id in batch_config)")
    .option("--job-id <id>", "job id; give an existing one to resume that job")
    .option("--description <text>", "what this job is for")
    .option(
      "--mode <mode>",
      "full (every matching record, the default), incremental (after the watermark), backfill (--from/--to), sample (--sample-every/--sample-first)",
    )
    .option("--from <key>", "backfill: first order-key value included (read in the key's stored type)")
    .option("--to <key>", "backfill: last order-key value included")
    .option("--again", "backfill: start a new pass over a window earlier backfill jobs already took")
    .option("--max-records <n>", "most records one job takes (incremental, backfill)", positiveIntArg)
    .option("--max-weight <w>", "most total weight one job takes (incremental, backfill)", positiveNumberArg)
    .option("--max-chunks <n>", "most chunks one job takes (incremental, backfill)", positiveIntArg)
    .option("--iterations <n>", "run up to n consecutive jobs (incremental, backfill)", positiveIntArg)
    .option("--sample-every <k>", "sample: every k-th record", positiveIntArg)
    .option(
      "--sample-offset <r>",
      "sample: with --sample-every k, start at position r (0..k-1)",
      nonNegativeIntArg,
    )
    .option("--sample-first <n>", "sample: the first n records", positiveIntArg)
    .option("--json", "print the job summary as JSON on the last stdout line")
    .addOption(mongoOption())
    .action(async (configName: string, opts: RunFlags) => {
      const { runJob } = await import("./commands/run.js");
      await runJob(ctx, configName, opts);
    });

  program
    .command("resume")
    .description("Continue a job where it stopped (after a crash, a kill or Ctrl-C).")
    .argument("<jobId>", "the job id")
    .option("--accept-config-change", "continue although the config changed since the job started (recorded)")
    .option("--json", "print the job summary as JSON on the last stdout line")
    .addOption(mongoOption())
    .action(async (jobId: string, opts: ResumeFlags) => {
      const { resumeJob } = await import("./commands/resume.js");
      await resumeJob(ctx, jobId, opts);
    });

  program
    .command("schedule")
    .description(
      "Run the scheduled incremental job of a config (or of every config with a schedule) now, in-process — for cron on a plain server. With --sync, create or update the Trigger.dev schedules of configs that have their own schedule.cron.",
    )
    .argument("[config]", "config name; default: every config with a schedule")
    .option("--sync", "create/update the imperative Trigger.dev schedules (needs TRIGGER_SECRET_KEY)")
    .option("--json", "print the summaries as JSON on the last stdout line")
    .addOption(mongoOption())
    .action(async (configName: string | undefined, opts: ScheduleFlags) => {
      const { runSchedules } = await import("./commands/schedule.js");
      await runSchedules(ctx, configName, opts);
    });

  const config = program.command("config").description("Manage batch configs.");
  config
    .command("apply")
    .description("Validate a config file (JSON or Extended JSON) and upsert it into batch_config.")
    .argument("<file>", "path of the config file")
    .option("--json", "print the stored config as JSON")
    .addOption(mongoOption())
    .action(async (file: string, opts: ConfigApplyFlags) => {
      const { applyConfigFile } = await import("./commands/config-apply.js");
      await applyConfigFile(ctx, file, opts);
    });
  config
    .command("schema")
    .description("Print the JSON Schema of a config (every field with its default).")
    .action(async () => {
      const { printConfigSchema } = await import("./commands/config-schema.js");
      printConfigSchema();
    });

  program
    .command("status")
    .description("Show a job: times, config and drift, counts, rate, step statistics and its chunks.")
    .argument("<jobId>", "the job id")
    .option("--chunks", "list each chunk: status, attempts, records processed/failed, config hash, times")
    .option("--json", "print the report as JSON on the last stdout line")
    .addOption(mongoOption())
    .action(async (jobId: string, opts: StatusFlags) => {
      const { showJobStatus } = await import("./commands/status.js");
      await showJobStatus(ctx, jobId, opts);
    });

  program
    .command("listen")
    .description(
      'Run a job for every message of a Kafka jobs topic ({"config": …, "mode": …}), each once (keyed by topic/partition/offset), committing after the job is opened.',
    )
    .requiredOption("--topic <topic>", "the jobs topic")
    .option("--brokers <list>", "bootstrap brokers host:port[,host:port] (default: KAFKA_BROKERS)")
    .option("--group <id>", "consumer group of the listeners", "chunkrelay-listen")
    .option("--dead-letter-topic <topic>", "where messages that can never start a job are produced")
    .option("--max-messages <n>", "stop after n messages (default: run until Ctrl-C)", positiveIntArg)
    .option(
      "--instance-id <id>",
      "static group membership: restarted under the same id, the listener takes its partitions back at once (default: none)",
    )
    .option("--timeout-ms <ms>", "timeout of one request to a broker", positiveIntArg, 10_000)
    .addOption(mongoOption())
    .action(async (opts: ListenFlags) => {
      const { listenForJobMessages } = await import("./commands/listen.js");
      await listenForJobMessages(ctx, opts);
    });

  program
    .command("jobs")
    .description("List jobs, newest first: config, mode, status, records, exceptions, duration.")
    .option("--config <name>", "only this config's jobs")
    .option("--limit <n>", "how many", positiveIntArg, 50)
    .option("--json", "print the list as JSON on the last stdout line")
    .addOption(mongoOption())
    .action(async (opts: JobsFlags) => {
      const { printJobs } = await import("./commands/jobs.js");
      await printJobs(ctx, opts);
    });

  program
    .command("workers")
    .description(
      "List the processes that run pipeline steps: name, kind, host, pid, heartbeat, chunks and records handled, state.",
    )
    .option(
      "--all",
      "also stale and stopped workers (until they age out, 10 minutes after their last heartbeat)",
    )
    .option("--json", "print the list as JSON on the last stdout line")
    .addOption(mongoOption())
    .action(async (opts: import("./commands/workers.js").WorkersFlags) => {
      const { printWorkers } = await import("./commands/workers.js");
      await printWorkers(ctx, opts);
    });

  program
    .command("stats")
    .description(
      "Per-step statistics (runs, successes, failures, p50/p95/max), for a job or a config or overall.",
    )
    .option("--job <id>", "only this job")
    .option("--config <name>", "only this config's jobs")
    .option("--json", "print the statistics as JSON on the last stdout line")
    .addOption(mongoOption())
    .action(async (opts: StatsFlags) => {
      const { printStepStats } = await import("./commands/stats.js");
      await printStepStats(ctx, opts);
    });

  program
    .command("where")
    .description("Lineage of a record: every job and chunk that included it, attempts, times, config hashes.")
    .argument("<recordId>", "the record's _id (24-hex is read as an ObjectId, digits as a number)")
    .option("--type <type>", "read the id as string, number or objectId")
    .option("--config <name>", "only this config's jobs")
    .option("--json", "print the lineage as JSON on the last stdout line")
    .addOption(mongoOption())
    .action(async (text: string, opts: WhereFlags) => {
      const { printRecordLineage } = await import("./commands/where.js");
      await printRecordLineage(ctx, text, opts);
    });

  program
    .command("run-chunk")
    .description(
      "Send one chunk of a finished job again as a new attempt (all its records, or --only-failed), then run the job until it is done.",
    )
    .argument("<jobId>", "the job id")
    .argument("<chunk>", "the chunk number (see `status <jobId> --chunks`)")
    .option(
      "--only-failed",
      "only the records not processed (failed or set aside; resolved exceptions are left out)",
    )
    .option("--json", "print the job's summary as JSON on the last stdout line")
    .addOption(mongoOption())
    .action(async (jobId: string, chunk: string, opts: RunChunkFlags) => {
      const { runChunkCommand } = await import("./commands/run-chunk.js");
      await runChunkCommand(ctx, jobId, chunk, opts);
    });

  program
    .command("results")
    .description(
      "Each record of a job with its status and the value the batch service returned for it, in record-id order.",
    )
    .argument("<jobId>", "the job id")
    .option("--with-result", "only records that carry a value")
    .option("--limit <n>", "records per page (at most 1000)", positiveIntArg, 100)
    .option("--after <cursor>", "the page after this cursor (printed as `more:` / `next`)")
    .option("--json", "print the page as JSON on the last stdout line ({rows, next})")
    .option("--ndjson", "export every record, one JSON line each (streamed; ignores --limit)")
    .addOption(mongoOption())
    .action(async (jobId: string, opts: ResultsFlags) => {
      const { printJobResults } = await import("./commands/results.js");
      await printJobResults(ctx, jobId, opts);
    });

  program
    .command("serve")
    .description(
      "Serve the status page and its JSON API (read-only). Prints its URL as the first stdout line.",
    )
    .option("--port <n>", "TCP port; 0 picks a free one", portArg, 3100)
    .option("--host <address>", "interface to bind", "127.0.0.1")
    .option("--token <token>", "require this bearer token (default: $CHUNKRELAY_STATUS_TOKEN, else none)")
    .addOption(mongoOption())
    .action(async (opts: ServeFlags) => {
      const { serveStatusPage } = await import("./commands/serve.js");
      await serveStatusPage(ctx, opts);
    });

  program
    .command("backlog")
    .description(
      "Matching records of a config not yet covered by a completed job (past its watermark), and their weight.",
    )
    .argument("<config>", "config name")
    .option("--json", "print the backlog as JSON on the last stdout line")
    .addOption(mongoOption())
    .action(async (configName: string, opts: BacklogFlags) => {
      const { printBacklog } = await import("./commands/backlog.js");
      await printBacklog(ctx, configName, opts);
    });

  const exceptions = program.command("exceptions").description("Records set aside for a human.");
  exceptions
    .command("list")
    .description("List exceptions, newest first.")
    .option("--job <id>", "only this job")
    .option("--config <name>", "only this config")
    .option("--unresolved", "only those without a resolution")
    .option("--json", "print them as JSON on the last stdout line")
    .addOption(mongoOption())
    .action(async (opts: ExceptionsListFlags) => {
      const { printExceptions } = await import("./commands/exceptions-list.js");
      await printExceptions(ctx, opts);
    });
  exceptions
    .command("show")
    .description("Show one exception: the record, its chunk, attempts, reason and resolution.")
    .argument("<jobId>", "the job")
    .argument("<recordId>", "the record's _id")
    .option("--type <type>", "read the id as string, number or objectId")
    .addOption(mongoOption())
    .action(async (jobId: string, text: string, opts: ExceptionsShowFlags) => {
      const { printException } = await import("./commands/exceptions-show.js");
      await printException(ctx, jobId, text, opts);
    });
  exceptions
    .command("requeue")
    .description("Send the unresolved exceptions of a job again, as a new job of the same config.")
    .argument("<jobId>", "the job whose exceptions to requeue")
    .option("--job-id <id>", "id of the new job (give it again to resume that job)")
    .option("--json", "print the new job's summary as JSON on the last stdout line")
    .addOption(mongoOption())
    .action(async (fromJob: string, opts: ExceptionsRequeueFlags) => {
      const { requeueExceptions } = await import("./commands/exceptions-requeue.js");
      await requeueExceptions(ctx, fromJob, opts);
    });
  exceptions
    .command("resolve")
    .description(
      "Mark an exception resolved (or, with --all, every unresolved one of the job), with a note saying what was done.",
    )
    .argument("<jobId>", "the job")
    .argument("[recordId]", "the record's _id (omit with --all)")
    .requiredOption("--note <text>", "what was done about it")
    .option("--all", "resolve every unresolved exception of the job")
    .option("--type <type>", "read the id as string, number or objectId")
    .addOption(mongoOption())
    .action(async (jobId: string, text: string | undefined, opts: ExceptionsResolveFlags) => {
      const { markExceptionsResolved } = await import("./commands/exceptions-resolve.js");
      await markExceptionsResolved(ctx, jobId, text, opts);
    });

  program
    .command("delete")
    .description(
      "Delete every document of a job from all chunkrelay collections (only counts without --yes).",
    )
    .argument("<jobId>", "the job id")
    .option("--yes", "really delete")
    .option("--json", "print what was (or would be) deleted as JSON")
    .addOption(mongoOption())
    .action(async (jobId: string, opts: DeleteFlags) => {
      const { deleteJobDocuments } = await import("./commands/delete.js");
      await deleteJobDocuments(ctx, jobId, opts);
    });

  program
    .command("batch-service")
    .description("Run the reference batch service (the service side of the contract). Prints its URL first.")
    .option("--port <n>", "TCP port; 0 picks a free one", portArg, 3000)
    .option("--host <address>", "interface to bind (0.0.0.0 inside a container)", "127.0.0.1")
    .option("--latency-ms <n>", "processing time per chunk", msArg, 20)
    .option("--fail-rate <r>", "fraction of records reported failed (0..1)", rateArg, 0)
    .option("--error-rate <r>", "fault: fraction of requests answered 500", rateArg, 0)
    .option("--throttle-rate <r>", "fault: fraction answered 429 with Retry-After", rateArg, 0)
    .option("--reject-rate <r>", "fault: fraction answered 400 (chunk rejected)", rateArg, 0)
    .option("--slow-rate <r>", "fault: fraction answered after --slow-ms", rateArg, 0)
    .option("--slow-ms <n>", "delay of a slow reply", msArg, 1000)
    .option(
      "--drop-rate <r>",
      "fault: fraction accepted, then the connection is cut without a reply",
      rateArg,
      0,
    )
    .option("--stall-rate <r>", "fault: fraction of chunks accepted but never processed", rateArg, 0)
    .addOption(
      new Option(
        "--completion <mode>",
        "how it tells a chunk is done: status (writes batch_details), response (in the reply), callback (POSTs callback.url)",
      )
        .choices(["status", "response", "callback"])
        .default("status"),
    )
    .option("--results", "return a value per processed record ({fields, bytes, digest} of what it received)")
    .addOption(mongoOption())
    .action(async (opts: BatchServiceFlags) => {
      const { serveBatchService } = await import("./commands/batch-service.js");
      await serveBatchService(ctx, opts);
    });

  program
    .command("demo")
    .description(
      "The main job on embedded defaults: MongoDB, sample records, the reference service, a full run.",
    )
    .option("--records <n>", "sample records to seed", positiveIntArg, 10_000)
    .option("--chunk-size <n>", "records per chunk", positiveIntArg, 500)
    .option("--max-in-flight <n>", "chunks in flight at once", positiveIntArg, 1)
    .option("--latency-ms <n>", "reference service processing time per chunk", msArg, 20)
    .option("--json", "print the job summary as JSON on the last stdout line")
    .action(async (opts: DemoFlags) => {
      const { runDemoJob } = await import("./commands/demo.js");
      await runDemoJob(ctx, opts);
    });

  program
    .command("mongo")
    .description("Serve the embedded MongoDB engine (for machines without mongod). Prints the URI first.")
    .option("--port <n>", "TCP port; 0 picks a free one", portArg, 27017)
    .option("--host <address>", "interface to bind", "127.0.0.1")
    .option(
      "--dir <path>",
      "load data from here on start and save it here on clean stop (default: memory only)",
    )
    .action(async (opts: MongoFlags) => {
      const { serveEmbeddedMongo } = await import("./commands/mongo.js");
      await serveEmbeddedMongo(opts);
    });

  return program;
}

export async function main(
  argv: string[],
  env: Record<string, string | undefined> = process.env,
): Promise<number> {
  let code: number = EXIT.ok;
  // Every connection string this invocation was given: their credentials are hidden in all it
  // prints, whatever the error (a usage error, a driver error, commander's own messages).
  // Every argument shaped like a connection string counts, not only --mongo's: a mistyped flag
  // (`--mongo-uri=…`) is echoed by commander's own error.
  const uris = [
    env.MONGODB_URI,
    ...argv.map((a) => a.replace(/^--?[A-Za-z-]+=/, "")).filter((a) => /mongo|:\/|:[^@\s]*@/i.test(a)),
  ];
  const hideUriPasswords = (text: string) => hideGivenUriPasswords(text, uris);
  const program = buildProgram(
    env,
    (c) => {
      code = c;
    },
    hideUriPasswords,
  );
  try {
    await program.parseAsync(argv, { from: "user" });
    return code;
  } catch (err) {
    if (err instanceof CommanderError) return err.exitCode === 0 ? EXIT.ok : EXIT.usage;
    const message = forTerminal(hideUriPasswords(err instanceof Error ? err.message : String(err)), {
      keepNewlines: true,
    });
    process.stderr.write(`chunkrelay: ${message}\n`);
    if (err instanceof CliError) return err.exitCode;
    // A ConfigError is bad input too (isBadInput knows it by name, so the config schema is not
    // loaded here).
    return isBadInput(err) ? EXIT.usage : EXIT.failed;
  }
}
