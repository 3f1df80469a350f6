// Before/after comparer widget: two stacked <img> (after below, before on top, clipped at the
// split). Drag across the picture to move the split; in "hold" mode press and hold to see the
// before image. No ComfyUI import: the entry module hands in the URL builder and the node.
import {
  beforeClipPath,
  clampSplit,
  containRect,
  dividerLeft,
  frameCaption,
  nextMode,
  normalizeMode,
  stepIndex,
} from "../lib/compare.js";
import { el, ensureStyle } from "./style.js";

export class Comparer {
  /**
   * @param {object} options
   * @param {(ref: object) => string} options.urlFor  image reference -> URL
   * @param {object} options.state  persisted {mode, split} (node.properties entry), mutated in place
   * @param {() => void} [options.onChange]  called after the view changed (to redraw the canvas)
   * @param {(error: unknown) => void} [options.onError]  an image failed to load
   */
  constructor({ urlFor, state, onChange = () => {}, onError = () => {} }) {
    ensureStyle();
    this.urlFor = urlFor;
    this.state = state;
    this.state.mode = normalizeMode(state.mode);
    this.state.split = clampSplit(state.split ?? 0.5);
    this.onChange = onChange;
    this.onError = onError;
    this.pairs = [];
    this.index = 0;
    this.held = false;
    this.dragging = false;

    this.root = el("div", "pp-widget pp-compare");
    this.stage = el("div", "pp-stage");
    this.after = el("img", "pp-after");
    this.before = el("img", "pp-before");
    for (const img of [this.after, this.before]) {
      img.alt = "";
      img.draggable = false;
      img.addEventListener("load", () => this.layout());
      img.addEventListener("error", (event) => this.onError(event));
    }
    this.divider = el("div", "pp-divider");
    this.tagBefore = el("span", "pp-tag pp-tag-before", "Before");
    this.tagAfter = el("span", "pp-tag pp-tag-after", "After");
    this.stage.append(this.after, this.before, this.divider, this.tagBefore, this.tagAfter);

    this.bar = el("div", "pp-bar");
    this.splitButton = el("button", "", "Split");
    this.splitButton.title = "Drag across the picture to move the before/after line";
    this.holdButton = el("button", "", "Hold");
    this.holdButton.title = "Press and hold on the picture to see the before image";
    this.prevButton = el("button", "", "\u25c0");
    this.nextButton = el("button", "", "\u25b6");
    this.caption = el("span", "pp-caption");
    this.bar.append(this.splitButton, this.holdButton, this.prevButton, this.nextButton, this.caption);
    this.root.append(this.stage, this.bar);

    this.splitButton.addEventListener("click", () => this.setMode("split"));
    this.holdButton.addEventListener("click", () => this.setMode("hold"));
    this.prevButton.addEventListener("click", () => this.show(stepIndex(this.index, -1, this.pairs.length)));
    this.nextButton.addEventListener("click", () => this.show(stepIndex(this.index, 1, this.pairs.length)));
    this.bindPointer();
    this.bindKeys();
    if (typeof ResizeObserver === "function") {
      this.resizeObserver = new ResizeObserver(() => this.layout());
      this.resizeObserver.observe(this.stage);
    }
  }

  bindPointer() {
    const stop = (event) => event.stopPropagation();
    // Keep the canvas from dragging the node or panning while the user works the comparer.
    for (const type of ["pointerdown", "pointermove", "pointerup", "mousedown", "mousemove", "mouseup", "click", "dblclick"]) {
      this.bar.addEventListener(type, stop);
    }
    this.stage.addEventListener("pointerdown", (event) => {
      event.stopPropagation();
      event.preventDefault();
      try {
        this.stage.setPointerCapture(event.pointerId);
      } catch {
        // pointer capture is a nicety (drag outside the stage); without it dragging still works
      }
      if (this.state.mode === "hold") {
        this.held = true;
        this.layout();
      } else {
        this.dragging = true;
        this.moveTo(event.clientX);
      }
    });
    this.stage.addEventListener("pointermove", (event) => {
      if (this.dragging) {
        event.stopPropagation();
        this.moveTo(event.clientX);
      }
    });
    const release = (event) => {
      if (!this.dragging && !this.held) return;
      event.stopPropagation();
      this.dragging = false;
      this.held = false;
      this.layout();
    };
    this.stage.addEventListener("pointerup", release);
    this.stage.addEventListener("pointercancel", release);
    this.stage.addEventListener("lostpointercapture", release);
    this.stage.addEventListener("mousedown", stop);
    this.stage.addEventListener("dblclick", stop);
  }

  /** Lightroom's key: hold backslash over the picture to see the before image, in either mode. */
  bindKeys() {
    this.hovered = false;
    this.keyHeld = false;
    this.stage.addEventListener("pointerenter", () => (this.hovered = true));
    this.stage.addEventListener("pointerleave", () => {
      this.hovered = false;
      if (this.keyHeld) this.setKeyHeld(false);
    });
    this.onKeyDown = (event) => {
      if (event.key !== "\\" || !this.hovered || event.repeat) return;
      const target = event.target;
      if (target && (target.isContentEditable || /^(INPUT|TEXTAREA|SELECT)$/.test(target.tagName ?? ""))) return;
      event.preventDefault();
      this.setKeyHeld(true);
    };
    this.onKeyUp = (event) => {
      if (event.key === "\\" && this.keyHeld) this.setKeyHeld(false);
    };
    globalThis.addEventListener?.("keydown", this.onKeyDown, true);
    globalThis.addEventListener?.("keyup", this.onKeyUp, true);
  }

  setKeyHeld(held) {
    this.keyHeld = held;
    this.layout();
  }

  /** The drawn picture inside the stage, in the stage's own (unzoomed) pixels. */
  pictureRect() {
    const img = this.after.naturalWidth ? this.after : this.before;
    return containRect(img.naturalWidth, img.naturalHeight, this.stage.clientWidth, this.stage.clientHeight);
  }

  moveTo(clientX) {
    const bounds = this.stage.getBoundingClientRect();
    if (!(bounds.width > 0) || !(this.stage.clientWidth > 0)) return;
    // The canvas zoom scales the element with a CSS transform: map screen x to layout pixels.
    const x = ((clientX - bounds.left) / bounds.width) * this.stage.clientWidth;
    const rect = this.pictureRect();
    this.state.split = clampSplit(rect.width > 0 ? (x - rect.left) / rect.width : 0.5);
    this.layout();
  }

  setMode(mode) {
    this.state.mode = normalizeMode(mode);
    this.held = false;
    this.layout();
  }

  toggleMode() {
    this.setMode(nextMode(this.state.mode));
  }

  /** New before/after pairs from a run. */
  setPairs(pairs, bust = Date.now()) {
    this.pairs = Array.isArray(pairs) ? pairs : [];
    this.bust = bust;
    this.show(Math.min(this.index, Math.max(0, this.pairs.length - 1)));
  }

  show(index) {
    this.index = stepIndex(index, 0, this.pairs.length);
    const pair = this.pairs[this.index];
    if (pair) {
      this.after.src = this.urlFor(pair.after, this.bust);
      this.before.src = this.urlFor(pair.before, this.bust);
    }
    this.layout();
  }

  layout() {
    // the backslash key shows the whole before image whatever the mode
    const mode = this.keyHeld ? "hold" : this.state.mode;
    const held = this.held || this.keyHeld;
    const rect = this.pictureRect();
    this.before.style.clipPath = beforeClipPath(mode, this.state.split, held, rect, this.stage.clientWidth);
    this.divider.style.display = mode === "split" ? "" : "none";
    this.divider.style.left = `${dividerLeft(this.state.split, rect).toFixed(1)}px`;
    // labels sit on the picture's own corners, not the (letterboxed) stage's
    this.tagBefore.style.left = `${(rect.left + 6).toFixed(1)}px`;
    this.tagAfter.style.right = `${(this.stage.clientWidth - rect.left - rect.width + 6).toFixed(1)}px`;
    this.tagBefore.style.top = this.tagAfter.style.top = `${(rect.top + 6).toFixed(1)}px`;
    this.stage.classList.toggle("pp-hold", mode === "hold");
    this.tagBefore.style.display = mode === "split" || held ? "" : "none";
    this.tagAfter.style.display = mode === "split" || !held ? "" : "none";
    this.splitButton.classList.toggle("pp-on", this.state.mode === "split");
    this.holdButton.classList.toggle("pp-on", this.state.mode === "hold");
    const many = this.pairs.length > 1;
    this.prevButton.style.display = many ? "" : "none";
    this.nextButton.style.display = many ? "" : "none";
    this.caption.textContent = frameCaption(this.index, this.pairs.length);
    this.root.dataset.mode = this.state.mode;
    this.root.dataset.showing = mode === "hold" ? (held ? "before" : "after") : "split";
    this.root.dataset.split = this.state.split.toFixed(3);
    this.root.dataset.frames = String(this.pairs.length);
    this.onChange();
  }

  destroy() {
    globalThis.removeEventListener?.("keydown", this.onKeyDown, true);
    globalThis.removeEventListener?.("keyup", this.onKeyUp, true);
    this.resizeObserver?.disconnect();
    this.root.remove();
  }
}
