import assert from "node:assert/strict";
import { test } from "node:test";

import {
  beforeClipPath,
  clampSplit,
  comparePairs,
  containRect,
  dividerLeft,
  frameCaption,
  hasCompare,
  nextMode,
  normalizeMode,
  splitFromPointer,
  stepIndex,
} from "../../js/lib/compare.js";
import { normalizeRef, outputList, sameRef, viewPath } from "../../js/lib/refs.js";

const ref = (filename, type = "temp", subfolder = "") => ({ filename, subfolder, type });

// The exact shape nodes/preview.py compare_ui() returns.
const COMPARE_UI = {
  images: [ref("portrait_polish_abc_0_after.png"), ref("portrait_polish_abc_1_after.png")],
  portrait_polish_compare: [
    { before: ref("portrait_polish_abc_0_before.png"), after: ref("portrait_polish_abc_0_after.png") },
    { before: ref("portrait_polish_abc_1_before.png"), after: ref("portrait_polish_abc_1_after.png") },
  ],
};

test("comparePairs keeps compare_ui's pairs in frame order", () => {
  const pairs = comparePairs(COMPARE_UI);
  assert.equal(pairs.length, 2);
  assert.deepEqual(pairs[0].before, ref("portrait_polish_abc_0_before.png"));
  assert.deepEqual(pairs[1].after, ref("portrait_polish_abc_1_after.png"));
  assert.ok(hasCompare(COMPARE_UI));
});

test("comparePairs tolerates missing keys and broken entries", () => {
  assert.deepEqual(comparePairs(undefined), []);
  assert.deepEqual(comparePairs({}), []);
  assert.deepEqual(comparePairs({ images: COMPARE_UI.images }), [], "a plain preview gets no comparer");
  const pairs = comparePairs({
    portrait_polish_compare: [
      null,
      "junk",
      { before: ref("a.png") },
      { before: ref("../../etc/passwd"), after: ref("b.png") },
      { before: ref("c.png"), after: ref("d.png", "bogus") },
    ],
  });
  assert.equal(pairs.length, 1, "only the complete, safe pair survives");
  assert.equal(pairs[0].after.type, "temp", "an unknown type falls back to temp");
  // a single object instead of a list (what a hand-written node might send)
  assert.equal(comparePairs({ portrait_polish_compare: { before: ref("x.png"), after: ref("y.png") } }).length, 1);
  assert.equal(hasCompare({ portrait_polish_compare: [] }), false);
});

test("refs: normalize, view path, equality", () => {
  assert.equal(normalizeRef({ filename: "" }), null);
  assert.equal(normalizeRef({ filename: "a/b.png" }), null, "a filename never carries a path");
  assert.equal(normalizeRef({ filename: "a.png", subfolder: "x/../../y" }), null);
  assert.deepEqual(normalizeRef({ filename: "a.png", type: "output", subfolder: "pp" }), ref("a.png", "output", "pp"));
  assert.equal(viewPath(ref("my file.png", "output", "sub dir")), "/view?filename=my+file.png&subfolder=sub+dir&type=output");
  assert.equal(viewPath(ref("a.png"), 42), "/view?filename=a.png&subfolder=&type=temp&rand=42");
  assert.equal(viewPath({}), null);
  assert.ok(sameRef(ref("a.png"), { filename: "a.png", type: "temp" }));
  assert.ok(!sameRef(ref("a.png"), ref("a.png", "output")));
  assert.deepEqual(outputList({ k: 1 }, "k"), [1]);
  assert.deepEqual(outputList({ k: [1, 2] }, "k"), [1, 2]);
  assert.deepEqual(outputList(null, "k"), []);
});

test("split is clamped to 0..1 and follows the pointer over the picture", () => {
  assert.equal(clampSplit(-3), 0);
  assert.equal(clampSplit(7), 1);
  assert.equal(clampSplit("0.25"), 0.25);
  assert.equal(clampSplit(NaN), 0.5);
  assert.equal(clampSplit(undefined), 0.5);
  assert.equal(splitFromPointer(150, { left: 100, width: 200 }), 0.25);
  assert.equal(splitFromPointer(50, { left: 100, width: 200 }), 0);
  assert.equal(splitFromPointer(400, { left: 100, width: 200 }), 1);
  assert.equal(splitFromPointer(150, { left: 100, width: 0 }), 0.5);
});

test("containRect letterboxes like object-fit: contain", () => {
  // a portrait 400x800 picture in a 300x200 box: 100x200, centred horizontally
  assert.deepEqual(containRect(400, 800, 300, 200), { left: 100, top: 0, width: 100, height: 200 });
  // a landscape 1600x900 picture in a 320x320 box: 320x180, centred vertically
  assert.deepEqual(containRect(1600, 900, 320, 320), { left: 0, top: 70, width: 320, height: 180 });
  // before an image has loaded: the whole box
  assert.deepEqual(containRect(0, 0, 300, 200), { left: 0, top: 0, width: 300, height: 200 });
});

test("the before image is clipped exactly at the divider on the picture", () => {
  const rect = containRect(400, 800, 300, 200); // picture spans x = 100..200
  assert.equal(dividerLeft(0.5, rect), 150);
  assert.equal(beforeClipPath("split", 0.5, false, rect, 300), "inset(0px 150.0px 0px 0px)");
  assert.equal(beforeClipPath("split", 0, false, rect, 300), "inset(0px 200.0px 0px 0px)", "split 0 shows no before");
  assert.equal(beforeClipPath("split", 1, false, rect, 300), "inset(0px 100.0px 0px 0px)", "split 1 shows all of it");
  assert.equal(beforeClipPath("hold", 0.3, true, rect, 300), "inset(0px 0px 0px 0px)");
  assert.equal(beforeClipPath("hold", 0.3, false, rect, 300), "inset(0px 100% 0px 0px)");
});

test("frame stepping wraps; modes are normalized", () => {
  assert.equal(stepIndex(0, -1, 3), 2);
  assert.equal(stepIndex(2, 1, 3), 0);
  assert.equal(stepIndex(5, 0, 0), 0);
  assert.equal(frameCaption(1, 4), "frame 2/4");
  assert.equal(frameCaption(0, 1), "");
  assert.equal(nextMode("split"), "hold");
  assert.equal(nextMode("hold"), "split");
  assert.equal(normalizeMode("sideways"), "split");
});
