// IdentityGuard read-out on the node: a coloured headline (pass / close / fail) and one line
// per face. The view model comes from lib/identity.js.
import { el, ensureStyle } from "./style.js";

export class IdentityPanel {
  constructor() {
    ensureStyle();
    this.root = el("div", "pp-widget pp-identity");
    this.view = null;
  }

  /** Pixels this panel wants (headline + rows + summary, capped; it scrolls beyond). */
  wantedHeight() {
    if (!this.view) return 0;
    // monospace 11px is about 6.7 px a character; long rows wrap inside the node's width
    const perLine = Math.max(20, Math.floor(((this.root.clientWidth || 280) - 16) / 7));
    const lines = (text) => Math.max(1, Math.ceil(text.length / perLine));
    const rows = this.view.rows.slice(0, 6).reduce((sum, row) => sum + lines(row.text), 0);
    const summary = this.view.summary ? this.view.summary.split("\n").slice(0, 3).reduce((sum, t) => sum + lines(t), 0) : 0;
    // + the DOM widget's own margin (10 px above and below the element)
    return 20 + 12 + 18 + (rows + summary) * 15;
  }

  setView(view) {
    this.view = view;
    this.root.replaceChildren();
    if (!view) return;
    this.root.style.borderLeftColor = view.colour;
    this.root.dataset.status = view.status;
    const headline = el("div", "pp-headline", view.headline);
    headline.style.color = view.colour;
    this.root.append(headline);
    for (const row of view.rows) {
      const line = el("div", "pp-row", row.text);
      line.style.color = row.colour;
      line.dataset.status = row.status;
      this.root.append(line);
    }
    if (view.summary) this.root.append(el("div", "pp-summary", view.summary));
  }

  destroy() {
    this.root.remove();
  }
}
