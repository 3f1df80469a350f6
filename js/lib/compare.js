// Before/after comparer: data shaping and geometry (pure; the DOM lives in js/dom/).
import { normalizeRef, outputList } from "./refs.js";

export const COMPARE_KEY = "portrait_polish_compare";
export const MODES = Object.freeze(["split", "hold"]);

/**
 * The before/after pairs of a node's UI output, in frame order. Entries without a usable
 * before AND after reference are dropped (the node then just shows ComfyUI's own preview).
 */
export function comparePairs(output) {
  const pairs = [];
  for (const entry of outputList(output, COMPARE_KEY)) {
    if (!entry || typeof entry !== "object") continue;
    const before = normalizeRef(entry.before);
    const after = normalizeRef(entry.after);
    if (before && after) pairs.push({ before, after, label: typeof entry.label === "string" ? entry.label : "" });
  }
  return pairs;
}

/** Does this UI output carry anything for the comparer? */
export function hasCompare(output) {
  return comparePairs(output).length > 0;
}

/** A split position kept inside 0..1 (NaN and non-numbers -> 0.5, the middle). */
export function clampSplit(value) {
  const number = Number(value);
  if (!Number.isFinite(number)) return 0.5;
  return Math.min(1, Math.max(0, number));
}

/** Split position (0..1) of a pointer at `clientX` over the drawn image `rect` ({left, width}). */
export function splitFromPointer(clientX, rect) {
  if (!rect || !(rect.width > 0)) return 0.5;
  return clampSplit((clientX - rect.left) / rect.width);
}

/**
 * Where an image of `imageWidth` x `imageHeight` lands when fitted ("contain") into a box:
 * {left, top, width, height} in box pixels. Used to keep the divider on the picture itself.
 */
export function containRect(imageWidth, imageHeight, boxWidth, boxHeight) {
  if (!(imageWidth > 0 && imageHeight > 0 && boxWidth > 0 && boxHeight > 0)) {
    return { left: 0, top: 0, width: Math.max(0, boxWidth || 0), height: Math.max(0, boxHeight || 0) };
  }
  const scale = Math.min(boxWidth / imageWidth, boxHeight / imageHeight);
  const width = imageWidth * scale;
  const height = imageHeight * scale;
  return { left: (boxWidth - width) / 2, top: (boxHeight - height) / 2, width, height };
}

/**
 * CSS clip-path for the "before" image, which lies exactly over the "after" image in a box
 * `boxWidth` wide where the picture itself occupies `rect` (see containRect): before is shown
 * left of the split line on the picture. In hold mode it is either all shown (held) or hidden.
 */
export function beforeClipPath(mode, split, held, rect, boxWidth) {
  if (mode === "hold") return held ? "inset(0px 0px 0px 0px)" : "inset(0px 100% 0px 0px)";
  const box = Number(boxWidth) > 0 ? Number(boxWidth) : 0;
  const left = rect && Number.isFinite(rect.left) ? rect.left : 0;
  const width = rect && rect.width > 0 ? rect.width : box;
  const right = Math.max(0, box - (left + clampSplit(split) * width));
  return `inset(0px ${right.toFixed(1)}px 0px 0px)`;
}

/** Divider x in box pixels for a split on the picture `rect`. */
export function dividerLeft(split, rect) {
  if (!rect) return 0;
  return rect.left + clampSplit(split) * rect.width;
}

/** Index stepped by `delta` and wrapped into 0..count-1 (0 when there is nothing). */
export function stepIndex(index, delta, count) {
  if (!(count > 0)) return 0;
  const next = (Math.trunc(Number(index) || 0) + Math.trunc(Number(delta) || 0)) % count;
  return next < 0 ? next + count : next;
}

/** "frame 2/4" style caption, or "" for a single frame. */
export function frameCaption(index, count) {
  if (!(count > 1)) return "";
  return `frame ${stepIndex(index, 0, count) + 1}/${count}`;
}

/** The mode after a toggle, and a safe default for unknown values. */
export function nextMode(mode) {
  return mode === "split" ? "hold" : "split";
}

export function normalizeMode(mode) {
  return MODES.includes(mode) ? mode : "split";
}
