/** A hand-over that does nothing: benchmarks of one step must not start the next. */
import type { HandOver } from "../src/steps/handover.js";

export const recordingOnly = (): HandOver => ({
  initialize: () => Promise.resolve(),
  serve: () => Promise.resolve(),
  watch: () => Promise.resolve(),
});
