/** The config page's strip: where each recent window lies along the order key (`spansAlongKey`). */
import { describe, expect, it } from "vitest";
import { spansAlongKey } from "../../src/queries/config-view.js";

describe("spansAlongKey", () => {
  it("places numeric windows linearly, open ends in the outer tenths, empty windows nowhere", () => {
    const spans = spansAlongKey([
      { to: { key: 10, id: 10 } },
      { from: { key: 10, id: 10 }, to: { key: 30, id: 30 } },
      { from: { key: 30, id: 30 } },
      { to: null },
    ]);
    expect(spans).toEqual([{ from: 0, to: 0.1 }, { from: 0.1, to: 0.9 }, { from: 0.9, to: 1 }, undefined]);
  });

  it("places keys that are not numbers by their order", () => {
    const spans = spansAlongKey([
      { from: { key: "a", id: 1 }, to: { key: "m", id: 2 } },
      { from: { key: "m", id: 2 }, to: { key: "z", id: 3 } },
    ]);
    expect(spans).toEqual([
      { from: 0, to: 0.5 },
      { from: 0.5, to: 1 },
    ]);
  });

  it("fills the strip with one window, whichever side is open", () => {
    expect(spansAlongKey([{ to: { key: 5, id: 5 } }])).toEqual([{ from: 0, to: 1 }]);
    expect(spansAlongKey([{ from: { key: 5, id: 5 } }])).toEqual([{ from: 0, to: 1 }]);
    expect(spansAlongKey([{ to: { key: 5, id: 5 } }, { from: { key: 5, id: 5 } }])).toEqual([
      { from: 0, to: 0.5 },
      { from: 0.5, to: 1 },
    ]);
  });
});
