/**
 * Jobs triggered by messages (`chunkrelay listen`): a consumer of a jobs topic, in a consumer group,
 * that reads `{ "config": …, "mode": …, … }` (an initializer payload, the same one the dashboard
 * takes) and runs each job in-process. Each message starts its job once: the job id is derived from
 * the message's topic/partition/offset (unless the payload names one), so a message read again —
 * after a crash before its offset was committed, or by a second listener after a rebalance — opens
 * the same job and resumes it instead of starting another. The offset is committed once the job is
 * opened (claimed and planned), never before: a crash in between leaves the message to be read again.
 *
 * A message that can never start a job (not JSON, not a valid payload, a config that does not
 * exist) is logged and committed past — it would fail the same way every time — and produced to
 * the dead-letter topic when one is given.
 */
import { createHash } from "node:crypto";
import { Consumer, type Message } from "@platformatic/kafka";
import { isBadInput } from "../../common/errors.js";
import { initializePayloadSchema } from "../../steps/initialize/payload.js";
import type { Logger } from "../../steps/handover.js";
import { KafkaProducer, explainKafkaError } from "../../sources/kafka-client.js";

export interface ListenOptions {
  brokers: string[];
  topic: string;
  groupId: string;
  clientId: string;
  /** Request timeout, in ms. */
  timeoutMs: number;
  /** Where refused messages go (besides the log). Default: nowhere. */
  deadLetterTopic?: string;
  /**
   * Static group membership (Kafka's group.instance.id): a listener restarted under the same id
   * takes its partitions back at once instead of after the dead one's session times out. Give each
   * listener its own. Default: none (dynamic membership).
   */
  instanceId?: string;
  /** Stop after this many messages were handled (jobs run or messages refused). Default: never. */
  maxMessages?: number;
  signal: AbortSignal;
  log: Logger;
  /**
   * Runs one job to its end; calls `onOpened` once the job exists (claimed, planned), before it
   * sends anything more. Rejects with a BadInputError when the job can never run.
   */
  runJob(payload: RunPayload, onOpened: () => Promise<void>): Promise<{ status: string }>;
  /**
   * Jobs a message of this topic opened that are not finished yet (a listener died running them
   * after their offsets were committed), by job id prefix.
   */
  listOpenJobs(prefix: string): Promise<string[]>;
  /** Runs an open job (and the rest of its chain) to its end. */
  resumeJob(jobId: string): Promise<{ status: string }>;
  /** Told after each message. */
  onMessage?: (outcome: ListenOutcome) => void;
}

export type RunPayload = Record<string, unknown> & { config: string; jobId: string };

export interface ListenOutcome {
  message: string;
  jobId?: string;
  status: "ran" | "refused";
  jobStatus?: string;
  reason?: string;
}

/** What the job ids of a topic's messages start with: the topic, or its hash when too long. */
export function jobIdPrefixForTopic(topic: string): string {
  // 40 characters leave room for the partition, the offset and a chain's `.n` within 200.
  return topic.length <= 160
    ? `${topic}:`
    : `msg-${createHash("sha256").update(topic).digest("hex").slice(0, 16)}:`;
}

/** The job id a message starts: `<topic>:<partition>:<offset>`. */
export function jobIdForMessage(topic: string, partition: number, offset: bigint): string {
  return `${jobIdPrefixForTopic(topic)}${partition}:${offset}`;
}

/** The first job of the chain a job id belongs to (`t:0:5.3` → `t:0:5`). */
const chainRoot = (jobId: string): string => jobId.replace(/\.\d+$/, "");

/** A message as a payload with its job id, or why it is refused. */
export function payloadOfMessage(
  message: Pick<Message, "topic" | "partition" | "offset" | "value">,
): { payload: RunPayload } | { refused: string } {
  let raw: unknown;
  try {
    raw = JSON.parse(message.value.toString("utf8"));
  } catch (err) {
    return { refused: `not JSON (${(err as Error).message})` };
  }
  if (raw === null || typeof raw !== "object" || Array.isArray(raw)) {
    return { refused: 'not a JSON object like {"config": "orders", "mode": "incremental"}' };
  }
  // A job id the payload names is put under the topic's prefix, so a listener that starts later
  // finds the job (it resumes the unfinished jobs of its topic by that prefix).
  const prefix = jobIdPrefixForTopic(message.topic);
  const named = (raw as { jobId?: unknown }).jobId;
  const withId = {
    ...(raw as Record<string, unknown>),
    jobId:
      typeof named === "string"
        ? named.startsWith(prefix)
          ? named
          : `${prefix}${named}`
        : jobIdForMessage(message.topic, message.partition, message.offset),
  };
  const checked = initializePayloadSchema.safeParse(withId);
  if (!checked.success) {
    return {
      refused: `not a job payload: ${checked.error.issues.map((i) => `${i.path.join(".") || "payload"}: ${i.message}`).join("; ")}`,
    };
  }
  return { payload: withId as RunPayload };
}

/** Consumes the jobs topic until stopped (or `maxMessages`); returns how many messages it handled. */
export async function listenForJobs(options: ListenOptions): Promise<number> {
  const endpoint = { brokers: options.brokers, clientId: options.clientId, timeoutMs: options.timeoutMs };
  const consumer = new Consumer({
    clientId: options.clientId,
    bootstrapBrokers: options.brokers,
    groupId: options.groupId,
    timeout: options.timeoutMs,
    connectTimeout: options.timeoutMs,
    autocreateTopics: false,
    // A job may run for hours between two messages: the group must not drop this member meanwhile
    // (the consumer heartbeats in the background; the session only ends when the process does).
    sessionTimeout: 30_000,
    heartbeatInterval: 3_000,
    ...(options.instanceId ? { groupInstanceId: options.instanceId } : {}),
  });
  const deadLetters = options.deadLetterTopic ? new KafkaProducer(endpoint) : undefined;
  let handled = 0;
  try {
    // A message's offset is committed once its job is opened: a listener that died after that
    // left the job to whoever listens next. Finish those first (their leases expired, or expire
    // while this waits: a job another listener still runs is shared safely under the leases).
    const open = [
      ...new Set((await options.listOpenJobs(jobIdPrefixForTopic(options.topic))).map(chainRoot)),
    ];
    for (const jobId of open) {
      if (options.signal.aborted) break;
      options.log.warn(
        `resuming job ${jobId}, opened by an earlier listener that stopped before it finished`,
        {},
      );
      try {
        const result = await options.resumeJob(jobId);
        options.onMessage?.({ message: "(resumed)", jobId, status: "ran", jobStatus: result.status });
      } catch (err) {
        // A job that can never run as it is (its config refused, a message of its source that is
        // not JSON) must not keep the listener from the messages after it; it stays for a human
        // (`chunkrelay status`, then `resume` once fixed) and is tried again at the next start.
        if (!isBadInput(err)) throw err;
        const reason = err instanceof Error ? err.message : String(err);
        options.log.warn(`job ${jobId} cannot go on: ${reason}`, {});
        options.onMessage?.({ message: "(resumed)", jobId, status: "refused", reason });
      }
    }
    let stream: Awaited<ReturnType<typeof consumer.consume>>;
    try {
      stream = await consumer.consume({
        topics: [options.topic],
        mode: "committed",
        fallbackMode: "earliest",
        autocommit: false,
      });
    } catch (err) {
      throw explainKafkaError(err, endpoint, options.topic);
    }
    const stop = () => void stream.close().catch(() => undefined);
    options.signal.addEventListener("abort", stop, { once: true });
    try {
      for await (const message of stream as AsyncIterable<Message>) {
        if (options.signal.aborted) break;
        const at = `${message.topic}/${message.partition}/${message.offset}`;
        const parsed = payloadOfMessage(message);
        if ("refused" in parsed) {
          options.log.warn(`jobs message ${at} refused: ${parsed.refused}`, {});
          await deadLetters?.send(options.deadLetterTopic as string, [
            {
              key: at,
              value: { message: at, reason: parsed.refused, value: message.value.toString("utf8") },
            },
          ]);
          await message.commit();
          options.onMessage?.({ message: at, status: "refused", reason: parsed.refused });
        } else {
          const { payload } = parsed;
          let committed = false;
          const commit = async () => {
            if (committed) return;
            await message.commit();
            committed = true;
          };
          try {
            const result = await options.runJob(payload, commit);
            await commit();
            options.onMessage?.({
              message: at,
              jobId: payload.jobId,
              status: "ran",
              jobStatus: result.status,
            });
          } catch (err) {
            if (!isBadInput(err)) throw err; // an outage: stop; the message is read again later
            const reason = err instanceof Error ? err.message : String(err);
            options.log.warn(`jobs message ${at} (job ${payload.jobId}) refused: ${reason}`, {});
            await deadLetters?.send(options.deadLetterTopic as string, [
              {
                key: at,
                value: { message: at, jobId: payload.jobId, reason, value: message.value.toString("utf8") },
              },
            ]);
            await commit();
            options.onMessage?.({ message: at, jobId: payload.jobId, status: "refused", reason });
          }
        }
        handled++;
        if (options.maxMessages !== undefined && handled >= options.maxMessages) break;
      }
    } finally {
      options.signal.removeEventListener("abort", stop);
      await stream.close().catch(() => undefined);
    }
  } finally {
    // Leaves the group at once (its partitions go to the other listeners without a session timeout).
    await consumer.close().catch(() => undefined);
    await deadLetters?.close();
  }
  return handled;
}
