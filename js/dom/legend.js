// FaceParse legend: one colour chip per region with a checkbox. Three modes:
//   masks  - the node sent a mask image per region (and the plain frame): the overlay is
//            composited here and chips switch regions on and off at once, no re-run;
//   widget - the node has a `regions` text widget: chips add or remove a region there, and
//            the next run paints the preview (and makes the MASK) with exactly those regions;
//   legend - neither: the chips are a colour key for ComfyUI's own preview.
import {
  canToggle,
  chipRows,
  paintRegion,
  textColourOn,
  toggleHidden,
  toggleRegionInList,
  visibleRegions,
  widgetLegend,
} from "../lib/regions.js";
import { el, ensureStyle } from "./style.js";

const OVERLAY_OPACITY = 0.5;

function loadImage(url) {
  return new Promise((resolve, reject) => {
    const img = new Image();
    img.onload = () => resolve(img);
    img.onerror = () => reject(new Error(`could not load ${url}`));
    img.src = url;
  });
}

function pixelsOf(img, width, height) {
  const canvas = document.createElement("canvas");
  canvas.width = width;
  canvas.height = height;
  const ctx = canvas.getContext("2d", { willReadFrequently: true });
  ctx.drawImage(img, 0, 0, width, height);
  return ctx.getImageData(0, 0, width, height).data;
}

function safeGet(control) {
  try {
    return String(control?.get() ?? "");
  } catch {
    return "";
  }
}

export class RegionLegend {
  /**
   * @param {object} options
   * @param {(ref: object, bust?: unknown) => string} options.urlFor
   * @param {object} options.state  persisted {hidden: [names]} (node.properties entry)
   * @param {() => void} [options.onChange]
   * @param {{get: () => string, set: (text: string) => void} | null} [options.regionsControl]
   *        the node's `regions` widget, for the widget mode
   */
  constructor({ urlFor, state, onChange = () => {}, regionsControl = null }) {
    ensureStyle();
    this.urlFor = urlFor;
    this.state = state;
    this.onChange = onChange;
    this.legend = [];
    this.toggleable = false;
    this.regionsControl = regionsControl;
    this.root = el("div", "pp-widget pp-regions");
    this.stage = el("div", "pp-stage");
    this.stage.style.cursor = "default";
    this.canvas = el("canvas");
    this.stage.append(this.canvas);
    this.chips = el("div", "pp-legend");
    this.note = el("div", "pp-note");
    this.root.append(this.stage, this.chips, this.note);
    for (const type of ["pointerdown", "mousedown", "click", "dblclick"]) {
      this.root.addEventListener(type, (event) => event.stopPropagation());
    }
    this.base = null;
    this.masks = new Map();
    this.generation = 0;
  }

  /** Whether the widget shows the composited picture itself (then ComfyUI's preview is redundant). */
  get showsPicture() {
    return this.toggleable && !!this.base;
  }

  async setLegend(legend, baseRef, bust = Date.now()) {
    this.legend = legend;
    this.toggleable = canToggle(legend) && !!baseRef;
    this.renderChips();
    this.stage.style.display = this.toggleable ? "" : "none";
    this.note.textContent = this.noteText();
    this.base = null;
    this.masks = new Map();
    const generation = ++this.generation;
    if (!this.toggleable) {
      this.onChange();
      return;
    }
    try {
      const base = await loadImage(this.urlFor(baseRef, bust));
      const masks = await Promise.all(legend.map((entry) => loadImage(this.urlFor(entry.mask, bust))));
      if (generation !== this.generation) return; // a newer run arrived meanwhile
      const { naturalWidth: width, naturalHeight: height } = base;
      this.base = { img: base, width, height };
      legend.forEach((entry, i) => this.masks.set(entry.name, pixelsOf(masks[i], width, height)));
      this.composite();
    } catch (error) {
      console.warn("[Portrait Polish] region masks could not be loaded; showing the legend only", error);
      this.toggleable = false;
      this.stage.style.display = "none";
      this.renderChips();
      this.note.textContent = this.noteText();
    }
    this.onChange();
  }

  noteText() {
    if (this.mode === "masks") return "Click a region to show or hide it.";
    if (this.mode === "widget") return "Click a region to add or remove it from 'regions'; run again to update the preview and mask.";
    return this.legend.length ? "Region colours of the overlay preview." : "No regions found.";
  }

  get mode() {
    if (this.toggleable) return "masks";
    return this.regionsControl ? "widget" : "legend";
  }

  renderChips() {
    this.root.dataset.mode = this.mode;
    if (this.mode === "widget") {
      this.renderWidgetChips();
      return;
    }
    const hidden = this.state.hidden ?? [];
    this.chips.replaceChildren();
    for (const entry of this.legend) {
      const chip = el("label", "pp-chip");
      chip.style.background = entry.colour;
      chip.style.color = textColourOn(entry.colour);
      chip.dataset.region = entry.name;
      const off = hidden.includes(entry.name);
      chip.classList.toggle("pp-off", this.toggleable && off);
      if (this.toggleable) {
        const box = el("input");
        box.type = "checkbox";
        box.checked = !off;
        box.addEventListener("change", () => this.toggle(entry.name));
        chip.append(box);
      }
      chip.append(document.createTextNode(entry.label));
      this.chips.append(chip);
    }
  }

  renderWidgetChips() {
    this.chips.replaceChildren();
    const text = safeGet(this.regionsControl);
    for (const entry of widgetLegend(this.legend, text)) {
      const chip = el("label", "pp-chip");
      chip.style.background = entry.colour;
      chip.style.color = textColourOn(entry.colour);
      chip.dataset.region = entry.name;
      chip.classList.toggle("pp-off", !entry.on);
      chip.title = entry.on ? `Remove ${entry.label} from regions` : `Add ${entry.label} to regions`;
      const box = el("input");
      box.type = "checkbox";
      box.checked = entry.on;
      box.addEventListener("change", () => {
        this.regionsControl.set(toggleRegionInList(safeGet(this.regionsControl), entry.name));
        this.renderWidgetChips();
        this.onChange();
      });
      chip.append(box, document.createTextNode(entry.label));
      this.chips.append(chip);
    }
  }

  toggle(name) {
    this.state.hidden = toggleHidden(this.state.hidden, name);
    this.renderChips();
    this.composite();
    this.onChange();
  }

  composite() {
    if (!this.base) return;
    const { img, width, height } = this.base;
    this.canvas.width = width;
    this.canvas.height = height;
    const ctx = this.canvas.getContext("2d", { willReadFrequently: true });
    ctx.drawImage(img, 0, 0);
    const frame = ctx.getImageData(0, 0, width, height);
    for (const entry of visibleRegions(this.legend, this.state.hidden)) {
      const mask = this.masks.get(entry.name);
      if (mask) paintRegion(frame.data, mask, entry.colour, OVERLAY_OPACITY);
    }
    ctx.putImageData(frame, 0, 0);
  }

  wantedHeight() {
    const width = this.root.clientWidth || 300;
    const labels = this.mode === "widget" ? widgetLegend(this.legend, "").map((e) => e.label) : this.legend.map((e) => e.label);
    const rows = Math.max(1, chipRows(labels, width, this.mode !== "legend"));
    const noteLines = Math.max(1, Math.ceil((this.note.textContent.length * 6.2) / width));
    return (this.toggleable ? 200 : 0) + rows * 22 + noteLines * 15 + 12 + 20; // + DOM widget margins
  }

  destroy() {
    this.root.remove();
  }
}
