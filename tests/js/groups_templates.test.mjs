import assert from "node:assert/strict";
import { test } from "node:test";

import { GROUP_COLOURS, NODE_GROUPS, groupColour, groupOf, groupRuns, inputOptionsByName } from "../../js/lib/groups.js";
import {
  MENU_TITLE,
  addMenuEntry,
  packFolderFromUrl,
  templateEntries,
  templateLabel,
  templatePath,
  workflowFormat,
} from "../../js/lib/templates.js";

test("widget names fall into the groups a retoucher expects", () => {
  assert.equal(groupOf("strength"), "Strength");
  assert.equal(groupOf("pore_preservation"), "Detail");
  assert.equal(groupOf("blemish_radius"), "Detail");
  assert.equal(groupOf("mask_feather"), "Regions");
  assert.equal(groupOf("protect_regions"), "Regions");
  assert.equal(groupOf("max_whiteness"), "Colour");
  assert.equal(groupOf("sclera_brightness"), "Colour");
  assert.equal(groupOf("threshold"), "Identity");
  assert.equal(groupOf("on_fail"), "Identity");
  assert.equal(groupOf("model_name"), "Model");
  assert.equal(groupOf("tile_size"), "Model");
  assert.equal(groupOf("seed"), "Other");
  // FaceParse's widgets
  assert.equal(groupOf("faces"), "Faces");
  assert.equal(groupOf("max_faces"), "Faces");
  assert.equal(groupOf("min_face_size"), "Faces");
  assert.equal(groupOf("confidence"), "Faces");
  assert.equal(groupOf("edge_softness"), "Regions");
  assert.equal(groupOf("bisenet_model"), "Model");
  // Upscale's widgets: the output size apart from the model and its memory settings
  assert.equal(groupOf("model_name"), "Model");
  assert.equal(groupOf("scale_mode"), "Size");
  assert.equal(groupOf("factor"), "Size");
  assert.equal(groupOf("long_edge"), "Size", "not Regions, though it says 'edge'");
  assert.equal(groupOf("tile"), "Model");
  assert.equal(groupOf("overlap"), "Model");
  assert.equal(groupOf("strength", { group: "Detail" }), "Detail", "the node definition's own group wins");
});

test("inputOptionsByName reads /object_info input specs", () => {
  const options = inputOptionsByName({
    input: {
      required: { image: ["IMAGE"], strength: ["FLOAT", { default: 0.5, group: "Strength" }], mode: [["a", "b"], {}] },
      optional: { mask: ["MASK", { tooltip: "t" }] },
      hidden: { unique_id: "UNIQUE_ID" },
    },
  });
  assert.deepEqual(Object.keys(options), ["image", "strength", "mode", "mask"]);
  assert.equal(options.strength.group, "Strength");
  assert.deepEqual(options.image, {});
  assert.deepEqual(inputOptionsByName(undefined), {});
});

test("groupRuns marks consecutive widgets of one group; previews and single groups are left alone", () => {
  const runs = groupRuns(["strength", "pore_radius", "blemish_size", "mask_feather", "protect_regions", "$$canvas-image-preview"]);
  assert.deepEqual(
    runs.map(({ group, first, last }) => [group, first, last]),
    [
      ["Strength", 0, 0],
      ["Detail", 1, 2],
      ["Regions", 3, 4],
    ],
  );
  assert.equal(runs[1].colour, GROUP_COLOURS.Detail);
  assert.deepEqual(groupRuns(["strength", "amount"]), [], "one group: nothing worth marking");
  const skipped = groupRuns(["strength", "$$pp-compare", "threshold"], {}, (name) => name.startsWith("$$pp-"));
  assert.deepEqual(
    skipped.map((run) => [run.group, run.first, run.last]),
    [
      ["Strength", 0, 0],
      ["Identity", 2, 2],
    ],
  );
});

test("the pack folder comes from the module URL ComfyUI serves", () => {
  assert.equal(packFolderFromUrl("http://127.0.0.1:8188/extensions/portrait_polish/portrait_polish.js"), "portrait_polish");
  assert.equal(packFolderFromUrl("https://host/comfy/extensions/comfyui-portrait-polish/lib/x.js"), "comfyui-portrait-polish");
  assert.equal(packFolderFromUrl("http://h/extensions/my%20pack/a.js"), "my pack");
  assert.equal(packFolderFromUrl("file:///work/main/js/portrait_polish.js"), null);
});

test("template entries: only this pack's, sorted, de-duplicated, labelled", () => {
  const listing = {
    portrait_polish: ["portrait_full", "batch_headless-api", "portrait_full", "", "../x"],
    some_other_pack: ["theirs"],
  };
  assert.deepEqual(templateEntries(listing, "portrait_polish"), [
    { name: "batch_headless-api", label: "Batch headless api" },
    { name: "portrait_full", label: "Portrait full" },
  ]);
  assert.deepEqual(templateEntries(listing, "missing"), []);
  assert.deepEqual(templateEntries(null, "portrait_polish"), []);
  assert.deepEqual(templateEntries({ portrait_polish: "nope" }, "portrait_polish"), []);
  assert.equal(templateLabel("  skin__only "), "Skin only");
  assert.equal(templatePath("portrait_polish", "portrait full"), "/workflow_templates/portrait_polish/portrait%20full.json");
});

test("workflow files are told apart: UI format, API format, other", () => {
  assert.equal(workflowFormat({ nodes: [], links: [], version: 0.4 }), "ui");
  assert.equal(workflowFormat({ 1: { class_type: "LoadImage", inputs: {} }, 2: { class_type: "SaveImage", inputs: {} } }), "api");
  assert.equal(workflowFormat({ 1: { inputs: {} } }), "unknown");
  assert.equal(workflowFormat([]), "unknown");
  assert.equal(workflowFormat(null), "unknown");
});

test("the menu entry is added once, after a separator", () => {
  const options = [{ content: "Add Node" }];
  const entry = { content: MENU_TITLE, has_submenu: true, submenu: { options: [] } };
  addMenuEntry(options, entry);
  addMenuEntry(options, entry);
  assert.deepEqual(options, [{ content: "Add Node" }, null, entry]);
  assert.equal(addMenuEntry(undefined, entry), undefined);
});

test("the pack's nodes group their widgets into contiguous runs, one bracket per group", () => {
  // widget order as the nodes declare them (INPUT_TYPES)
  const smooth = ["strength", "texture", "heal_blemishes", "heal_strength", "heal_brown_spots", "keep_mark_size", "keep_mark_contrast", "dodge_burn", "shine_reduction", "include_neck"];
  const runs = groupRuns(smooth, {}, () => false, "PortraitPolishTextureSafeSmooth");
  assert.deepEqual(
    runs.map((run) => [run.group, run.first, run.last]),
    [
      ["Strength", 0, 0],
      ["Detail", 1, 1],
      ["Healing", 2, 4],
      ["Keep marks", 5, 6],
      ["Tone", 7, 8],
      ["Regions", 9, 9],
    ],
  );
  const eyes = ["whites", "iris_clarity", "iris_saturation", "limbal_ring", "catchlight", "under_eye"];
  assert.deepEqual(
    groupRuns(eyes, {}, () => false, "PortraitPolishEyeEnhance").map((run) => run.group),
    ["Whites", "Iris", "Under eye"],
  );
  // the table covers only its node; elsewhere the name rules apply
  assert.equal(groupOf("texture", {}, "PortraitPolishTextureSafeSmooth"), "Detail");
  assert.equal(groupOf("catchlight", {}, "SomeOtherNode"), "Other");
  assert.equal(groupOf("strength", { group: "Mine" }, "PortraitPolishTeethWhiten"), "Mine", "the node's own option still wins");
  for (const table of Object.values(NODE_GROUPS)) for (const group of Object.values(table)) assert.match(groupColour(group), /^#[0-9a-f]{6}$/);
  assert.equal(groupColour("Healing"), groupColour("Healing"), "stable colour per group name");
  assert.equal(groupColour("Strength"), GROUP_COLOURS.Strength);
});
