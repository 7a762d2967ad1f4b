/**
 * The job of an initializer run started without a `jobId` (the dashboard's Test page, an API
 * trigger). A retry of the run keeps its run id and a replay copies its tags, so the id is read
 * from the run's `job:` tag when it has one and otherwise derived from the run id — never
 * random, so neither a retry nor a replay starts a second job (or claims a second window).
 */
import { createHash } from "node:crypto";
import { configNameSchema, jobIdSchema } from "../../config/schema.js";
import { BadInputError } from "../../common/errors.js";

/** Trigger.dev's limits: at most 10 tags on a run, each at most 128 characters. */
export const MAX_RUN_TAGS = 10;
export const MAX_TAG_LENGTH = 128;
const JOB_TAG = "job:";

export type RunJobId =
  /** The payload names its job, or is not an initializer payload at all: nothing to choose. */
  | { kind: "given" }
  /** Found on the run's `job:` tag: a replay (or a retry) of a run that chose it. */
  | { kind: "tagged"; jobId: string }
  /** Chosen now from the run id; the run must carry the tag before the job is created. */
  | { kind: "derived"; jobId: string; tag: string };

const jobTagsOf = (tags: readonly string[]) =>
  tags.filter((t) => t.startsWith(JOB_TAG)).map((t) => t.slice(JOB_TAG.length));

/** How to give the job explicitly: the payload with its jobId, as JSON. */
export const payloadWithJobId = (payload: Record<string, unknown>, jobId: string) =>
  JSON.stringify({ ...payload, jobId });

/** Pure: which job an initializer run works on. */
export function chooseRunJobId(
  payload: unknown,
  run: { id: string; createdAt?: Date | undefined; tags?: readonly string[] | undefined },
): RunJobId {
  if (payload === null || typeof payload !== "object" || Array.isArray(payload)) return { kind: "given" };
  const p = payload as Record<string, unknown>;
  const config = configNameSchema.safeParse(p.config);
  // A payload with a jobId resumes that job; an invalid one is refused by the payload schema.
  if (p.jobId !== undefined || !config.success) return { kind: "given" };
  const tags = run.tags ?? [];
  // A tag of the full 128 characters may be a longer job id cut short: which job it names is
  // unknown, and guessing would start a job under the cut id.
  const cut = tags.find((t) => t.startsWith(JOB_TAG) && t.length >= MAX_TAG_LENGTH);
  if (cut !== undefined) {
    throw new BadInputError(
      `this run's tag '${cut}' may name a job id cut short at Trigger.dev's 128 characters; trigger batch-data-initializer with the job given in the payload ("jobId")`,
    );
  }
  const tagged = [...new Set(jobTagsOf(tags))].filter((id) => jobIdSchema.safeParse(id).success);
  if (tagged.length > 1) {
    throw new BadInputError(
      `this run carries ${tagged.length} job tags (${tagged.map((t) => JOB_TAG + t).join(", ")}), so which job it continues is unclear; trigger batch-data-initializer with the job given, e.g. ${payloadWithJobId(p, tagged[0] as string)}`,
    );
  }
  if (tagged.length === 1) return { kind: "tagged", jobId: tagged[0] as string };
  // <config>-<UTC time the run was created>-<6 hex of the run id>, its tag shorter than 128
  // characters (a tag of the full length reads as possibly cut short, above).
  const at = run.createdAt ?? new Date();
  const stamp = at.toISOString().replace(/[-:]/g, "").replace(/\..*$/, "");
  const suffix = createHash("sha256").update(run.id).digest("hex").slice(0, 6);
  const room = MAX_TAG_LENGTH - 1 - JOB_TAG.length - stamp.length - suffix.length - 2;
  const jobId = `${config.data.slice(0, room)}-${stamp}-${suffix}`;
  if (tags.length >= MAX_RUN_TAGS) {
    throw new BadInputError(
      `this run already has ${tags.length} tags, Trigger.dev's limit, so it cannot carry the job tag that makes a replay continue its job; trigger batch-data-initializer with fewer tags, or with the job given: ${payloadWithJobId(p, jobId)}`,
    );
  }
  return { kind: "derived", jobId, tag: JOB_TAG + jobId };
}
