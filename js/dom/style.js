// One <style> element for every Portrait Polish widget (class names all start with "pp-").
const STYLE_ID = "portrait-polish-style";

const CSS = `
.pp-widget { box-sizing: border-box; width: 100%; height: 100%; display: flex; flex-direction: column; gap: 4px;
  font: 12px/1.3 system-ui, sans-serif; color: var(--fg-color, #ddd); overflow: hidden; }
.pp-stage { position: relative; flex: 1 1 auto; min-height: 60px; overflow: hidden; border-radius: 4px;
  background: var(--comfy-input-bg, #222); touch-action: none; user-select: none; cursor: ew-resize; }
.pp-stage.pp-hold { cursor: pointer; }
.pp-stage img, .pp-stage canvas { position: absolute; inset: 0; width: 100%; height: 100%; object-fit: contain;
  pointer-events: none; -webkit-user-drag: none; }
.pp-divider { position: absolute; top: 0; bottom: 0; width: 2px; margin-left: -1px; background: #fff;
  box-shadow: 0 0 3px #000; pointer-events: none; }
.pp-divider::after { content: ""; position: absolute; top: 50%; left: -6px; width: 12px; height: 24px; margin-top: -12px;
  border-radius: 6px; background: #fff; box-shadow: 0 0 3px #000; }
.pp-tag { position: absolute; top: 6px; padding: 1px 6px; border-radius: 3px; background: rgba(0,0,0,.6); color: #fff;
  font-size: 11px; pointer-events: none; }
.pp-tag-before { left: 6px; } .pp-tag-after { right: 6px; }
.pp-bar { display: flex; align-items: center; gap: 6px; flex: 0 0 auto; flex-wrap: wrap; }
.pp-bar button { font: inherit; color: inherit; background: var(--comfy-input-bg, #333); border: 1px solid var(--border-color, #555);
  border-radius: 3px; padding: 1px 7px; cursor: pointer; }
.pp-bar button.pp-on { background: var(--p-primary-color, #2b6de0); color: #fff; border-color: transparent; }
.pp-bar .pp-caption { opacity: .75; margin-left: auto; }
.pp-identity { padding: 4px 6px; border-radius: 4px; border-left: 5px solid #888; background: var(--comfy-input-bg, #222);
  overflow: auto; }
.pp-identity .pp-headline { font-weight: 600; }
.pp-identity .pp-row { font-family: ui-monospace, monospace; font-size: 11px; white-space: pre-wrap; }
.pp-identity .pp-summary { opacity: .8; white-space: pre-wrap; font-size: 11px; }
.pp-legend { display: flex; flex-wrap: wrap; gap: 3px; flex: 0 0 auto; }
.pp-chip { display: inline-flex; align-items: center; gap: 3px; padding: 1px 6px; border-radius: 10px; font-size: 11px;
  cursor: pointer; border: 1px solid rgba(0,0,0,.4); }
.pp-chip.pp-off { opacity: .35; text-decoration: line-through; }
.pp-chip input { margin: 0; width: 11px; height: 11px; }
.pp-note { opacity: .65; font-size: 11px; }
`;

export function ensureStyle(doc = globalThis.document) {
  if (!doc || doc.getElementById(STYLE_ID)) return;
  const style = doc.createElement("style");
  style.id = STYLE_ID;
  style.textContent = CSS;
  doc.head.appendChild(style);
}

/** document.createElement with a class and optional text. */
export function el(tag, className = "", text = "") {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text) node.textContent = text;
  return node;
}
