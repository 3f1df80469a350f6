// FaceParse legend: region names, colours, which regions are switched off. Pure.
import { normalizeRef, outputList } from "./refs.js";

export const REGIONS_KEY = "portrait_polish_regions";

// Used when FaceParse sends a region without a colour; one distinct hue per canonical region.
export const FALLBACK_COLOURS = Object.freeze({
  skin: "#f2a07b",
  neck: "#c98b6b",
  nose: "#e0c341",
  left_brow: "#7a4b2a",
  right_brow: "#a0663a",
  left_eye_white: "#7fd3ff",
  right_eye_white: "#4fb0e8",
  left_iris: "#2b6de0",
  right_iris: "#5a3bd6",
  upper_lip: "#e0457b",
  lower_lip: "#c2185b",
  mouth_interior: "#7b1f3a",
  teeth: "#fff6a8",
  hair: "#6b8e23",
  person: "#3cb371",
  background: "#444444",
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
