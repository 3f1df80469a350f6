// Widget grouping: which widgets of a Portrait Polish node belong together ("Strength",
// "Mask", "Detail"...). Only metadata and layout arithmetic here (pure); the entry module
// draws a thin bracket per group in the node's left margin. Widgets are never reordered or
// added, so saved workflows (widgets_values is positional) load the same with or without
// this extension.

export const GROUP_COLOURS = Object.freeze({
  Strength: "#d4a017",
  Regions: "#4fb0e8",
  Faces: "#e07b39",
  Size: "#c9a0dc",
  Detail: "#9acd32",
  Colour: "#e0457b",
  Identity: "#2e9e4f",
  Model: "#9a8cff",
  Other: "#777777",
});

// Whole widget names first (names too short or too common for the word rules below).
const EXACT = Object.freeze({
  factor: "Size",
  scale: "Size",
  scale_mode: "Size",
  scale_by: "Size",
  long_edge: "Size",
  width: "Size",
  height: "Size",
  resolution: "Size",
});

// Ordered: the first rule with a word that occurs in the widget name wins.
const RULES = [
  ["Identity", ["identity", "similarity", "threshold", "on_fail", "action", "embedding", "embedder"]],
  ["Faces", ["faces", "face_index", "min_face", "confidence", "detector"]],
  ["Model", ["model", "backend", "device", "precision", "dtype", "tile", "overlap", "upscale"]],
  ["Regions", ["region", "mask", "feather", "dilate", "erode", "expand", "grow", "protect", "padding", "include", "exclude", "edge", "refine"]],
  ["Colour", ["white", "yellow", "colour", "color", "hue", "saturation", "bright", "contrast", "clarity", "redness", "sclera", "iris", "tone", "warm", "luminance", "vein"]],
  ["Detail", ["pore", "texture", "detail", "radius", "sigma", "frequency", "blemish", "freckle", "mole", "heal", "smooth", "grain", "sharp"]],
  ["Strength", ["strength", "amount", "intensity", "opacity", "mix", "blend"]],
];

// The pack's own nodes, widget by widget (checked against their INPUT_TYPES; a widget not
// listed here falls to the name rules, so a new input still lands somewhere sensible).
export const NODE_GROUPS = Object.freeze({
  PortraitPolishTextureSafeSmooth: {
    strength: "Strength",
    texture: "Detail",
    heal_blemishes: "Healing",
    heal_strength: "Healing",
    heal_brown_spots: "Healing",
    keep_mark_size: "Keep marks",
    keep_mark_contrast: "Keep marks",
    dodge_burn: "Tone",
    shine_reduction: "Tone",
    include_neck: "Regions",
  },
  PortraitPolishTeethWhiten: { strength: "Strength", brighten: "Strength", natural_cap: "Limits" },
  PortraitPolishEyeEnhance: {
    whites: "Whites",
    iris_clarity: "Iris",
    iris_saturation: "Iris",
    limbal_ring: "Iris",
    catchlight: "Iris",
    under_eye: "Under eye",
  },
});

const SPARE_COLOURS = ["#e6b422", "#38b0a0", "#d0668a", "#8fbf3f", "#b28dff", "#ff9f59"];

/** A group's bracket colour: the fixed ones above, else a stable pick by its name. */
export function groupColour(group) {
  if (Object.hasOwn(GROUP_COLOURS, group)) return GROUP_COLOURS[group];
  let hash = 0;
  for (const char of String(group)) hash = (hash * 31 + char.codePointAt(0)) >>> 0;
  return SPARE_COLOURS[hash % SPARE_COLOURS.length];
}

/**
 * The group of one widget: the node definition's own `group` option wins (a node can say
 * `("FLOAT", {..., "group": "Detail"})` in INPUT_TYPES), then this pack's table for the node,
 * then the name rules, then "Other".
 */
export function groupOf(widgetName, inputOptions, nodeType = "") {
  if (inputOptions && typeof inputOptions.group === "string" && inputOptions.group.trim()) return inputOptions.group.trim();
  const table = Object.hasOwn(NODE_GROUPS, nodeType) ? NODE_GROUPS[nodeType] : null;
  if (table && Object.hasOwn(table, widgetName)) return table[widgetName];
  const name = String(widgetName ?? "").toLowerCase();
  if (Object.hasOwn(EXACT, name)) return EXACT[name];
  for (const [group, words] of RULES) if (words.some((word) => name.includes(word))) return group;
  return "Other";
}

/** Options dict of every input of an /object_info node definition, by input name. */
export function inputOptionsByName(nodeData) {
  const out = {};
  const input = nodeData && nodeData.input;
  if (!input || typeof input !== "object") return out;
  for (const section of ["required", "optional"]) {
    const entries = input[section];
    if (!entries || typeof entries !== "object") continue;
    for (const [name, spec] of Object.entries(entries)) {
      out[name] = Array.isArray(spec) && spec[1] && typeof spec[1] === "object" ? spec[1] : {};
    }
  }
  return out;
}

/**
 * Runs of consecutive widgets in one group: [{group, colour, first, last}] with widget indices.
 * Widgets whose name starts with "$$" or that `skip` rejects (previews, our own read-outs) end a run
 * and belong to none. Empty when everything falls into one group (nothing worth marking).
 */
export function groupRuns(widgetNames, optionsByName = {}, skip = () => false, nodeType = "") {
  const runs = [];
  let current = null;
  widgetNames.forEach((name, index) => {
    if (typeof name !== "string" || name.startsWith("$$") || skip(name, index)) {
      current = null;
      return;
    }
    const group = groupOf(name, optionsByName[name], nodeType);
    if (current && current.group === group && current.last === index - 1) {
      current.last = index;
    } else {
      current = { group, colour: groupColour(group), first: index, last: index };
      runs.push(current);
    }
  });
  const distinct = new Set(runs.map((run) => run.group));
  return distinct.size > 1 ? runs : [];
}
