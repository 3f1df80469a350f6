import assert from "node:assert/strict";
import { test } from "node:test";

import {
  FACE_REGION_NAMES,
  FALLBACK_COLOURS,
  chipRows,
  formatRegionList,
  parseRegionList,
  toggleRegionInList,
  widgetLegend,
  canToggle,
  hexToRgb,
  hideAll,
  normalizeColour,
  normalizeHidden,
  paintRegion,
  regionLabel,
  regionLegend,
  textColourOn,
  toggleHidden,
  visibleRegions,
} from "../../js/lib/regions.js";

const ref = (filename) => ({ filename, subfolder: "", type: "temp" });

test("regionLegend follows FaceParse's order, colours and labels", () => {
  const legend = regionLegend({
    images: [ref("overlay.png")],
    portrait_polish_regions: [
      { name: "skin", color: "#F2A07B" },
      { name: "left_eye_white", color: "#7fd3ff" },
      { name: "teeth", color: "#fff" },
    ],
  });
  assert.deepEqual(
    legend.map((entry) => [entry.name, entry.label, entry.colour, entry.mask]),
    [
      ["skin", "Skin", "#f2a07b", null],
      ["left_eye_white", "Left eye white", "#7fd3ff", null],
      ["teeth", "Teeth", "#ffffff", null],
    ],
  );
  assert.equal(canToggle(legend), false, "without per-region masks the chips are a legend only");
});

test("regionLegend tolerates missing colours, duplicates, plain names and junk", () => {
  const legend = regionLegend({
    portrait_polish_regions: ["hair", { name: "hair" }, { name: "nose", color: "red" }, { name: "" }, null, 7, { name: "tattoo" }],
  });
  assert.deepEqual(
    legend.map((entry) => entry.name),
    ["hair", "nose", "tattoo"],
  );
  assert.equal(legend[0].colour, FALLBACK_COLOURS.hair);
  assert.equal(legend[1].colour, FALLBACK_COLOURS.nose, "a colour that is not #rgb/#rrggbb is replaced");
  assert.match(legend[2].colour, /^#[0-9a-f]{6}$/, "an unknown region still gets a colour");
  assert.deepEqual(regionLegend({}), []);
  assert.deepEqual(regionLegend(null), []);
});

test("with a mask per region the legend can switch regions on and off", () => {
  const legend = regionLegend({
    portrait_polish_regions: [
      { name: "skin", color: "#f2a07b", mask: ref("skin.png") },
      { name: "teeth", color: "#fff6a8", mask: ref("teeth.png") },
    ],
  });
  assert.equal(canToggle(legend), true);
  let hidden = toggleHidden([], "teeth");
  assert.deepEqual(hidden, ["teeth"]);
  assert.deepEqual(
    visibleRegions(legend, hidden).map((entry) => entry.name),
    ["skin"],
  );
  hidden = toggleHidden(hidden, "teeth");
  assert.deepEqual(hidden, []);
  assert.deepEqual(hideAll(legend), ["skin", "teeth"]);
  assert.deepEqual(visibleRegions(legend, hideAll(legend)), []);
  assert.deepEqual(normalizeHidden(["b", "a", "a", 3, null, ""]), ["a", "b"]);
  assert.deepEqual(normalizeHidden("skin"), []);
});

test("colour helpers", () => {
  assert.equal(normalizeColour(" #ABC "), "#aabbcc");
  assert.equal(normalizeColour("#12345"), null);
  assert.equal(normalizeColour(undefined), null);
  assert.deepEqual(hexToRgb("#ff8000"), [255, 128, 0]);
  assert.equal(textColourOn("#ffffff"), "#000000");
  assert.equal(textColourOn("#fff6a8"), "#000000", "teeth yellow takes dark text");
  assert.equal(textColourOn("#2b6de0"), "#ffffff", "iris blue takes light text");
  assert.equal(regionLabel("mouth_interior"), "Mouth interior");
  assert.equal(regionLabel(""), "?");
});

test("paintRegion blends the colour by mask coverage and leaves uncovered pixels exact", () => {
  // two pixels: the first fully inside the mask, the second outside
  const target = new Uint8ClampedArray([100, 100, 100, 255, 10, 20, 30, 255]);
  const mask = new Uint8ClampedArray([255, 255, 255, 255, 0, 0, 0, 255]);
  paintRegion(target, mask, "#ff0000", 0.5);
  assert.deepEqual([...target.slice(0, 4)], [178, 50, 50, 255]);
  assert.deepEqual([...target.slice(4)], [10, 20, 30, 255], "outside the mask: unchanged");

  // half coverage (grey 128 mask) gives a quarter blend at opacity 0.5
  const grey = new Uint8ClampedArray([0, 0, 0, 255]);
  paintRegion(grey, new Uint8ClampedArray([128, 128, 128, 255]), "#ffffff", 0.5);
  assert.equal(grey[0], Math.round((255 * 128) / 255 / 2));

  // a mask carried in alpha (white RGB, alpha = coverage) works the same
  const viaAlpha = new Uint8ClampedArray([0, 0, 0, 255]);
  paintRegion(viaAlpha, new Uint8ClampedArray([255, 255, 255, 0]), "#ffffff", 1);
  assert.deepEqual([...viaAlpha], [0, 0, 0, 255], "alpha 0 means not covered");
});

test("FaceParse's regions text: groups expand, toggles write back compactly", () => {
  assert.deepEqual(parseRegionList("lips"), ["upper_lip", "lower_lip"]);
  assert.deepEqual(parseRegionList(" Left-Iris + teeth, , hair"), ["left_iris", "teeth", "hair"]);
  assert.equal(parseRegionList("face").length, 11);
  assert.deepEqual(parseRegionList("skin, my_region"), ["skin", "my_region"], "unknown names are kept, not dropped");
  assert.equal(toggleRegionInList("face", "skin"), "nose, brows, eyes, mouth");
  assert.equal(toggleRegionInList("face", "hair"), "face, hair");
  assert.equal(toggleRegionInList("eyes, lips", "teeth"), "eyes, lips, teeth");
  assert.equal(toggleRegionInList("left_iris", "right_iris"), "irises");
  assert.equal(toggleRegionInList("teeth", "teeth"), "");
  assert.equal(formatRegionList([...FACE_REGION_NAMES]), "face, neck, teeth, hair");
  // round trip: what we write parses back to the same set
  const text = toggleRegionInList("face, hair", "left_brow");
  assert.deepEqual(new Set(parseRegionList(text)), new Set(parseRegionList("face, hair").filter((n) => n !== "left_brow")));
});

test("widgetLegend lists every face region, on where the regions text selects it", () => {
  const chips = widgetLegend([{ name: "skin", colour: "#123456" }], "skin, teeth");
  assert.deepEqual(chips.map((chip) => chip.name), [...FACE_REGION_NAMES]);
  assert.equal(chips.find((chip) => chip.name === "skin").colour, "#123456", "the node's own colour wins");
  assert.equal(chips.find((chip) => chip.name === "teeth").colour, FALLBACK_COLOURS.teeth);
  assert.deepEqual(chips.filter((chip) => chip.on).map((chip) => chip.name), ["skin", "teeth"]);
});

test("chipRows wraps chips like the browser will", () => {
  assert.equal(chipRows([], 300), 0);
  assert.equal(chipRows(["Skin"], 300), 1);
  assert.equal(chipRows(["Skin", "Nose"], 60), 2, "a narrow node puts one chip a row");
  const wide = chipRows(FACE_REGION_NAMES, 2000);
  const narrow = chipRows(FACE_REGION_NAMES, 270);
  assert.equal(wide, 1);
  assert.ok(narrow > wide && narrow <= FACE_REGION_NAMES.length);
});
