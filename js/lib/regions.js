// FaceParse legend: region names, colours, which regions are switched off. Pure.
import { normalizeRef, outputList } from "./refs.js";

export const REGIONS_KEY = "portrait_polish_regions";

// Canonical face regions in FaceParse's order (core/regions.py FACE_REGION_NAMES) and the
// colours FaceParse paints them in (core/parse.py REGION_COLOURS), used for regions the node
// did not list this run and when an entry comes without a colour.
export const FACE_REGION_NAMES = Object.freeze([
  "skin",
  "neck",
  "nose",
  "left_brow",
  "right_brow",
  "left_eye_white",
  "right_eye_white",
  "left_iris",
  "right_iris",
  "upper_lip",
  "lower_lip",
  "mouth_interior",
  "teeth",
  "hair",
]);

export const FALLBACK_COLOURS = Object.freeze({
  skin: "#f0a040",
  neck: "#c07830",
  nose: "#f0e040",
  left_brow: "#8040ff",
  right_brow: "#4080ff",
  left_eye_white: "#40f0f0",
  right_eye_white: "#40f0a0",
  left_iris: "#ff3030",
  right_iris: "#3030ff",
  upper_lip: "#ff3090",
  lower_lip: "#d020d0",
  mouth_interior: "#700020",
  teeth: "#30ff30",
  hair: "#804010",
  person: "#a0a0a0",
  background: "#202020",
});

// Region groups users type in FaceParse's `regions` widget (core/regions.py REGION_GROUPS).
export const REGION_GROUPS = Object.freeze({
  face: ["skin", "nose", "left_brow", "right_brow", "left_eye_white", "right_eye_white", "left_iris", "right_iris", "upper_lip", "lower_lip", "mouth_interior"],
  eyes: ["left_eye_white", "right_eye_white", "left_iris", "right_iris"],
  mouth: ["upper_lip", "lower_lip", "mouth_interior"],
  brows: ["left_brow", "right_brow"],
  eye_whites: ["left_eye_white", "right_eye_white"],
  irises: ["left_iris", "right_iris"],
  left_eye: ["left_eye_white", "left_iris"],
  right_eye: ["right_eye_white", "right_iris"],
  lips: ["upper_lip", "lower_lip"],
});
const SPARE_COLOURS = ["#e6194b", "#3cb44b", "#4363d8", "#f58231", "#911eb4", "#46f0f0", "#f032e6", "#bcf60c"];

const HEX = /^#([0-9a-f]{6})$/i;
const SHORT_HEX = /^#([0-9a-f]{3})$/i;

/** "#abc" / "#AABBCC" -> "#aabbcc"; null for anything else. */
export function normalizeColour(value) {
  if (typeof value !== "string") return null;
  const text = value.trim();
  if (HEX.test(text)) return text.toLowerCase();
  const short = SHORT_HEX.exec(text);
  if (short) return `#${[...short[1]].map((c) => c + c).join("")}`.toLowerCase();
  return null;
}

/** "#rrggbb" -> [r, g, b] (0..255). */
export function hexToRgb(colour) {
  const clean = normalizeColour(colour) ?? "#000000";
  return [1, 3, 5].map((start) => parseInt(clean.slice(start, start + 2), 16));
}

/** Black or white text, whichever reads on the colour chip (WCAG relative luminance). */
export function textColourOn(colour) {
  const [r, g, b] = hexToRgb(colour).map((v) => {
    const c = v / 255;
    return c <= 0.04045 ? c / 12.92 : ((c + 0.055) / 1.055) ** 2.4;
  });
  return 0.2126 * r + 0.7152 * g + 0.0722 * b > 0.4 ? "#000000" : "#ffffff";
}

/** "left_eye_white" -> "Left eye white". */
export function regionLabel(name) {
  const words = String(name ?? "").replace(/[_-]+/g, " ").trim();
  return words ? words[0].toUpperCase() + words.slice(1) : "?";
}

/**
 * The legend entries from FaceParse's UI output: [{name, label, colour, mask}] in the node's
 * order, duplicates dropped. `mask` is an image reference (a per-region mask preview) when the
 * node sends one; with masks the canvas can switch regions on and off itself.
 */
export function regionLegend(output) {
  const seen = new Set();
  const legend = [];
  let spare = 0;
  for (const entry of outputList(output, REGIONS_KEY)) {
    const name = typeof entry === "string" ? entry : entry && typeof entry.name === "string" ? entry.name : "";
    if (!name || seen.has(name)) continue;
    seen.add(name);
    const colour =
      normalizeColour(entry && entry.color) ??
      normalizeColour(entry && entry.colour) ??
      FALLBACK_COLOURS[name] ??
      SPARE_COLOURS[spare++ % SPARE_COLOURS.length];
    const mask = entry && typeof entry === "object" ? normalizeRef(entry.mask) : null;
    legend.push({ name, label: regionLabel(name), colour, mask });
  }
  return legend;
}

/** Can regions be toggled in the browser (every entry has its own mask image)? */
export function canToggle(legend) {
  return legend.length > 0 && legend.every((entry) => entry.mask !== null);
}

/** The hidden-region list kept in node.properties, cleaned to a sorted array of strings. */
export function normalizeHidden(value) {
  if (!Array.isArray(value)) return [];
  return [...new Set(value.filter((item) => typeof item === "string" && item))].sort();
}

/** Hidden list after clicking `name` (shown <-> hidden). */
export function toggleHidden(hidden, name) {
  const set = new Set(normalizeHidden(hidden));
  if (set.has(name)) set.delete(name);
  else set.add(name);
  return [...set].sort();
}

/** Legend entries that are switched on. */
export function visibleRegions(legend, hidden) {
  const off = new Set(normalizeHidden(hidden));
  return legend.filter((entry) => !off.has(entry.name));
}

/** "all" / "none" buttons: the hidden list that shows every region or none. */
export function hideAll(legend) {
  return normalizeHidden(legend.map((entry) => entry.name));
}

/**
 * Paints one region into an RGBA pixel buffer in place: `mask` is the region's mask image
 * pixels (RGBA, the mask value in the red channel, or in alpha when the PNG has one),
 * `colour` "#rrggbb", `opacity` 0..1. Straight "over" compositing onto `target`.
 */
export function paintRegion(target, mask, colour, opacity = 0.5) {
  const [r, g, b] = hexToRgb(colour);
  const length = Math.min(target.length, mask.length);
  for (let i = 0; i + 3 < length; i += 4) {
    const coverage = Math.min(mask[i], mask[i + 3]) / 255;
    const a = coverage * opacity;
    if (a <= 0) continue;
    target[i] = Math.round(target[i] * (1 - a) + r * a);
    target[i + 1] = Math.round(target[i + 1] * (1 - a) + g * a);
    target[i + 2] = Math.round(target[i + 2] * (1 - a) + b * a);
  }
  return target;
}

function regionKey(name) {
  return String(name).trim().toLowerCase().replace(/[\s-]+/g, "_");
}

/**
 * The region names a `regions` text selects, groups expanded ("face, hair" -> skin, nose, ...,
 * hair), in canonical order, then any names this module does not know (kept, never dropped).
 */
export function parseRegionList(text) {
  const chosen = new Set();
  const unknown = [];
  for (const part of String(text ?? "").split(/[,+]/)) {
    const key = regionKey(part);
    if (!key) continue;
    const members = REGION_GROUPS[key] ?? (FACE_REGION_NAMES.includes(key) || key in FALLBACK_COLOURS ? [key] : null);
    if (members) members.forEach((member) => chosen.add(member));
    else if (!unknown.includes(key)) unknown.push(key);
  }
  const known = Object.keys(FALLBACK_COLOURS).filter((name) => chosen.has(name));
  return [...known, ...unknown];
}

/** Region names written back compactly: whole groups by their group name, largest groups first. */
export function formatRegionList(names) {
  const remaining = new Set(names);
  const parts = [];
  const groups = Object.entries(REGION_GROUPS).sort((a, b) => b[1].length - a[1].length);
  for (const [group, members] of groups) {
    if (members.every((member) => remaining.has(member))) {
      parts.push({ text: group, order: FACE_REGION_NAMES.indexOf(members[0]) });
      members.forEach((member) => remaining.delete(member));
    }
  }
  const order = Object.keys(FALLBACK_COLOURS);
  for (const name of remaining) {
    const index = order.indexOf(name);
    parts.push({ text: name, order: index >= 0 ? index : order.length + parts.length });
  }
  parts.sort((a, b) => a.order - b.order);
  return parts.map((part) => part.text).join(", ");
}

/** The `regions` text with `name` switched on or off. */
export function toggleRegionInList(text, name) {
  const names = parseRegionList(text);
  const next = names.includes(name) ? names.filter((item) => item !== name) : [...names, name];
  return formatRegionList(next);
}

/**
 * Chips for the "regions widget" mode (FaceParse sent no masks): every canonical face region,
 * on when the node's `regions` text selects it, coloured like FaceParse paints it.
 */
export function widgetLegend(legend, regionsText) {
  const served = new Map(legend.map((entry) => [entry.name, entry]));
  const on = new Set(parseRegionList(regionsText));
  return FACE_REGION_NAMES.map((name) => ({
    name,
    label: regionLabel(name),
    colour: served.get(name)?.colour ?? FALLBACK_COLOURS[name],
    mask: null,
    on: on.has(name),
  }));
}

/**
 * Rows the legend chips wrap into at `width` px (11 px text: ~6.2 px a character, plus the
 * checkbox, padding and gap), to size the widget before the browser lays it out.
 */
export function chipRows(labels, width, withCheckbox = true) {
  const available = Math.max(60, Number(width) || 300);
  let rows = 0;
  let used = 0;
  for (const label of labels) {
    const chip = Math.min(available, 6.2 * String(label).length + (withCheckbox ? 30 : 16) + 3);
    if (rows === 0 || used + chip > available) {
      rows += 1;
      used = chip;
    } else {
      used += chip;
    }
  }
  return rows;
}
