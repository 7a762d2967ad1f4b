import { readEnv } from "../../config/env.js";
import { startBatchService } from "../../service/batch-service.js";
import { redactUri } from "../../store/connection.js";
import type { CommandContext } from "../context.js";
import { mongoUri } from "../open-store.js";
import { untilSignal } from "../signals.js";

export interface BatchServiceFlags {
  port: number;
  host: string;
  latencyMs: number;
  failRate: number;
  errorRate: number;
  throttleRate: number;
  rejectRate: number;
  slowRate: number;
  slowMs: number;
  dropRate: number;
  stallRate: number;
  completion: "status" | "response" | "callback";
  results?: boolean;
  mongo?: string;
}

/** `chunkrelay batch-service`: the reference batch service, until Ctrl-C. */
export async function serveBatchService(ctx: CommandContext, opts: BatchServiceFlags): Promise<void> {
  const uri = mongoUri(opts.mongo, ctx.env);
  const service = await startBatchService({
    mongoUri: uri,
    port: opts.port,
    host: opts.host,
    latencyMs: opts.latencyMs,
    failRate: opts.failRate,
    faults: {
      error: opts.errorRate,
      throttle: opts.throttleRate,
      reject: opts.rejectRate,
      slow: opts.slowRate,
      slowMs: opts.slowMs,
      drop: opts.dropRate,
      stall: opts.stallRate,
    },
    prefix: readEnv(ctx.env).CHUNKRELAY_PREFIX,
    completion: opts.completion,
    results: opts.results ?? false,
  });
  process.stdout.write(`${service.url}\n`);
  process.stderr.write(
    `reference batch service on ${service.url}, updating ${redactUri(uri)}; stop with Ctrl-C\n`,
  );
  await untilSignal();
  await service.stop();
}
