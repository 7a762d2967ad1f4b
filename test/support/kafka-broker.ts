/**
 * Global setup of the Kafka lane (vitest.kafka.config.ts): the brokers every `*.kafka.test.ts`
 * talks to, given to tests as `inject("kafkaBrokers")`.
 *
 * KAFKA_BROKERS (comma-separated host:port) when set; otherwise a real single-node Apache Kafka
 * broker started by scripts/kafka/start-broker.sh for this run — in a state dir of its own, so a
 * broker started by hand (`npm run kafka:start`) is neither reused nor stopped — and stopped by
 * scripts/kafka/stop-broker.sh at teardown.
 */
import { spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import type { TestProject } from "vitest/node";

declare module "vitest" {
  export interface ProvidedContext {
    /** Bootstrap brokers, `host:port`. */
    kafkaBrokers: string[];
  }
}

/** Runs a script of scripts/kafka; its progress and errors (stderr) go straight to the terminal. */
function runScript(name: string, env: NodeJS.ProcessEnv): Promise<string> {
  return new Promise((done, fail) => {
    const child = spawn("bash", [join(scripts, name)], { env, stdio: ["ignore", "pipe", "inherit"] });
    let stdout = "";
    child.stdout.setEncoding("utf8").on("data", (chunk: string) => (stdout += chunk));
    child.on("error", fail);
    child.on("close", (code) => {
      if (code === 0) done(stdout);
      else fail(new Error(`scripts/kafka/${name} exited with ${code} (its output is above)`));
    });
  });
}

/** The broker's pid from the state file, for a last-resort kill when teardown never ran. */
function recordedPid(stateDir: string): number | undefined {
  try {
    const match = /^KAFKA_PID=(\d+)$/m.exec(readFileSync(join(stateDir, "broker.env"), "utf8"));
    return match ? Number(match[1]) : undefined;
  } catch {
    return undefined;
  }
}

const scripts = resolve(fileURLToPath(new URL("../../scripts/kafka/", import.meta.url)));

export default async function setup(project: TestProject) {
  const given = process.env.KAFKA_BROKERS?.trim();
  if (given) {
    const brokers = given.split(",").map((b) => b.trim());
    process.stderr.write(`[chunkrelay tests] Kafka: KAFKA_BROKERS=${brokers.join(",")}\n`);
    project.provide("kafkaBrokers", brokers);
    return;
  }

  const stateDir = await mkdtemp(join(tmpdir(), "chunkrelay-kafka-lane-"));
  const env = { ...process.env, KAFKA_STATE_DIR: stateDir };
  const started = Date.now();
  let stdout: string;
  try {
    stdout = await runScript("start-broker.sh", env);
  } catch (error) {
    await rm(stateDir, { recursive: true, force: true });
    throw error;
  }
  const line = stdout.split("\n").find((l) => l.startsWith("KAFKA_BROKERS="));
  if (!line) throw new Error(`scripts/kafka/start-broker.sh printed no KAFKA_BROKERS=:\n${stdout}`);
  const brokers = line.slice("KAFKA_BROKERS=".length).split(",");
  process.stderr.write(
    `[chunkrelay tests] Kafka: broker ${brokers.join(",")} started by scripts/kafka/start-broker.sh in ${((Date.now() - started) / 1000).toFixed(1)} s\n`,
  );
  project.provide("kafkaBrokers", brokers);

  // An interrupted run (Ctrl-C) may skip teardown: the broker must not outlive it.
  const pid = recordedPid(stateDir);
  const killOnExit = () => {
    if (pid !== undefined) {
      try {
        process.kill(pid, "SIGKILL");
      } catch {
        // already gone
      }
    }
  };
  process.once("exit", killOnExit);

  return async () => {
    await runScript("stop-broker.sh", env);
    process.off("exit", killOnExit);
    await rm(stateDir, { recursive: true, force: true });
  };
}
