/** Which job an initializer run without a `jobId` works on: its tag, or its run id — never random. */
import { describe, expect, it } from "vitest";
import { jobIdSchema } from "../../../src/config/schema.js";
import { BadInputError } from "../../../src/common/errors.js";
import { MAX_TAG_LENGTH, chooseRunJobId } from "../../../src/steps/initialize/run-job-id.js";

const createdAt = new Date("2026-12-04T15:04:05.678Z");

describe("chooseRunJobId", () => {
  it("leaves a payload that names its job (or is no initializer payload) alone", () => {
    expect(chooseRunJobId({ config: "orders", jobId: "j1" }, { id: "run_1" })).toEqual({ kind: "given" });
    expect(chooseRunJobId("x", { id: "run_1" })).toEqual({ kind: "given" });
    expect(chooseRunJobId({ config: "bad name!" }, { id: "run_1" })).toEqual({ kind: "given" });
    expect(chooseRunJobId(null, { id: "run_1" })).toEqual({ kind: "given" });
  });

  it("derives the same id for every attempt of a run, and another for another run", () => {
    const a = chooseRunJobId({ config: "orders" }, { id: "run_abc", createdAt, tags: [] });
    const again = chooseRunJobId({ config: "orders" }, { id: "run_abc", createdAt, tags: ["other"] });
    const b = chooseRunJobId({ config: "orders" }, { id: "run_abd", createdAt, tags: [] });
    expect(a).toMatchObject({
      kind: "derived",
      jobId: expect.stringMatching(/^orders-20261204T150405-[0-9a-f]{6}$/),
    });
    expect(again).toEqual(a);
    expect(b.kind === "derived" && a.kind === "derived" && b.jobId !== a.jobId).toBe(true);
  });

  it("continues the job of the run's job tag (a replay copies the tags)", () => {
    expect(
      chooseRunJobId({ config: "orders" }, { id: "run_new", tags: ["config:orders", "job:orders-1"] }),
    ).toEqual({
      kind: "tagged",
      jobId: "orders-1",
    });
  });

  it("keeps the id and its tag within Trigger.dev's 128 characters for the longest config names", () => {
    const config = `c${"x".repeat(119)}`;
    const chosen = chooseRunJobId({ config }, { id: "run_1", createdAt });
    expect(chosen.kind).toBe("derived");
    if (chosen.kind !== "derived") return;
    expect(chosen.tag.length).toBe(MAX_TAG_LENGTH - 1);
    expect(jobIdSchema.safeParse(chosen.jobId).success).toBe(true);
    // What a replay reads back from that tag is the same id.
    expect(chooseRunJobId({ config }, { id: "run_2", tags: [chosen.tag] })).toEqual({
      kind: "tagged",
      jobId: chosen.jobId,
    });
  });

  it("fails at once, giving the payload to use, when the run cannot carry the tag or has two", () => {
    const full = Array.from({ length: 10 }, (_, i) => `t${i}`);
    expect(() => chooseRunJobId({ config: "orders" }, { id: "run_1", createdAt, tags: full })).toThrow(
      BadInputError,
    );
    expect(() => chooseRunJobId({ config: "orders" }, { id: "run_1", createdAt, tags: full })).toThrow(
      /\{"config":"orders","jobId":"orders-20261204T150405-[0-9a-f]{6}"\}/,
    );
    // A tag of the full 128 characters may be a longer job id cut short: never guessed from.
    const cut = `job:${"j".repeat(124)}`;
    expect(() => chooseRunJobId({ config: "orders" }, { id: "run_1", tags: [cut] })).toThrow(/cut short/);
    expect(() => chooseRunJobId({ config: "orders" }, { id: "run_1", tags: ["job:a", "job:b"] })).toThrow(
      /\{"config":"orders","jobId":"a"\}/,
    );
  });
});
