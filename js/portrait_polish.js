// Portrait Polish canvas extras for the ComfyUI front-end:
//   - before/after comparer on the retouch nodes' own previews (drag the split, or hold),
//   - FaceParse region legend: chips switch regions in the node's `regions` (next run), or at
//     once in the browser when the node sends a mask per region,
//   - IdentityGuard score and pass/fail, colour-coded, on the node after each run,
//   - a thin coloured bracket per widget group,
//   - canvas right-click "Load Portrait Polish example workflow".
// Everything is wrapped: if the front-end's API moves, the nodes keep working without extras.
// Served once, by WEB_DIRECTORY="./js" in the pack's __init__.py.
import { app } from "../../scripts/app.js";
import { api } from "../../scripts/api.js";
import { Comparer } from "./dom/comparer.js";
import { IdentityPanel } from "./dom/identity_panel.js";
import { RegionLegend } from "./dom/legend.js";
import { comparePairs } from "./lib/compare.js";
import { GROUP_COLOURS, groupRuns, inputOptionsByName } from "./lib/groups.js";
import { identityView } from "./lib/identity.js";
import { normalizeHidden, regionLegend } from "./lib/regions.js";
import { normalizeRef, outputList, viewPath } from "./lib/refs.js";
import { MENU_TITLE, addMenuEntry, packFolderFromUrl, templateEntries, templatePath, workflowFormat } from "./lib/templates.js";

const EXTENSION = "PortraitPolish.CanvasExtras";
const NODE_PREFIX = "PortraitPolish";
const PACK_FOLDER = packFolderFromUrl(import.meta.url);
const DEFAULT_PREVIEW = "$$canvas-image-preview";
const WIDGET_NAMES = {
  comparer: "$$pp-compare",
  identity: "$$pp-identity",
  regions: "$$pp-regions",
};
const COMPARE_MIN_HEIGHT = 180;

function warn(what, error) {
  console.warn(`[Portrait Polish] ${what}; the node still works without this extra.`, error);
}

/** Runs `fn`, logs a warning instead of throwing: a broken extra must never break the graph. */
function safely(what, fn) {
  try {
    return fn();
  } catch (error) {
    warn(what, error);
    return undefined;
  }
}

function urlFor(ref, bust) {
  const path = viewPath(ref, bust);
  if (!path) return "";
  return typeof api?.apiURL === "function" ? api.apiURL(path) : path;
}

function isOurNode(nodeData) {
  const name = String(nodeData?.name ?? "");
  const module = String(nodeData?.python_module ?? "");
  return name.startsWith(NODE_PREFIX) || (!!PACK_FOLDER && module.endsWith(`.${PACK_FOLDER}`));
}

/** Our per-node state: widgets we added and what they show. */
function extras(node) {
  if (!node.__portraitPolish) {
    node.properties = node.properties ?? {};
    const saved = node.properties.portrait_polish;
    node.properties.portrait_polish = {
      mode: saved?.mode,
      split: saved?.split,
      hidden: normalizeHidden(saved?.hidden),
    };
    node.__portraitPolish = { comparer: null, identity: null, regions: null, widgets: {} };
  }
  return node.__portraitPolish;
}

function redraw(node) {
  safely("redraw", () => (node.graph ?? app.graph)?.setDirtyCanvas?.(true, true));
}

/** Grows the node (never shrinks it) so every widget gets at least its minimum height. */
function fitNode(node, extraHeight = 0) {
  const wanted = node.computeSize?.();
  if (!wanted || !node.size) return;
  const width = Math.max(node.size[0], wanted[0], 300);
  const height = Math.max(node.size[1], wanted[1] + extraHeight);
  if (width !== node.size[0] || height !== node.size[1]) node.setSize?.([width, height]);
}

function removeDefaultPreview(node) {
  const index = node.widgets?.findIndex((widget) => widget.name === DEFAULT_PREVIEW) ?? -1;
  if (index >= 0) {
    node.widgets[index].onRemove?.();
    node.widgets.splice(index, 1);
  }
}

function addPanel(node, name, element, getMinHeight, getMaxHeight = undefined) {
  if (typeof node.addDOMWidget !== "function") return null;
  const widget = node.addDOMWidget(name, "portrait_polish", element, {
    serialize: false,
    getMinHeight,
    ...(getMaxHeight ? { getMaxHeight } : {}),
  });
  // Not part of the workflow's widgets_values nor of the prompt: saved graphs stay identical.
  widget.serialize = false;
  if (widget.options) widget.options.serialize = false;
  extras(node).widgets[name] = widget;
  return widget;
}

function removePanel(node, key) {
  const state = extras(node);
  const name = WIDGET_NAMES[key];
  const index = node.widgets?.findIndex((widget) => widget.name === name) ?? -1;
  if (index >= 0) {
    node.widgets[index].onRemove?.();
    node.widgets.splice(index, 1);
  }
  state[key]?.destroy?.();
  state[key] = null;
  delete state.widgets[name];
}

// ---------------------------------------------------------------- IdentityGuard read-out

function showIdentity(node, output) {
  const view = identityView(output);
  const state = extras(node);
  if (!view) {
    if (state.identity) removePanel(node, "identity"); // the extras show the latest run only
    return;
  }
  if (!state.identity) {
    const panel = new IdentityPanel();
    const height = () => panel.wantedHeight();
    if (!addPanel(node, WIDGET_NAMES.identity, panel.root, height, height)) return;
    state.identity = panel;
  }
  state.identity.setView(view);
  fitNode(node);
}

// ---------------------------------------------------------------- FaceParse legend

/** get/set for the node's `regions` text widget (null when it has none, e.g. it became an input). */
function regionsControl(node) {
  const widget = node.widgets?.find((item) => item.name === "regions" && typeof item.value === "string");
  if (!widget) return null;
  return {
    get: () => widget.value,
    set: (text) => {
      widget.value = text;
      widget.callback?.(text);
      node.graph?.change?.();
      redraw(node);
    },
  };
}

function showRegions(node, output) {
  const legend = regionLegend(output);
  const state = extras(node);
  if (!legend.length) {
    if (state.regions) removePanel(node, "regions");
    return;
  }
  if (!state.regions) {
    const widget = new RegionLegend({
      urlFor,
      state: node.properties.portrait_polish,
      regionsControl: regionsControl(node),
      onChange: () => {
        fitNode(node);
        redraw(node);
      },
    });
    const height = () => widget.wantedHeight();
    // the legend grows only when it shows the composited picture itself
    if (!addPanel(node, WIDGET_NAMES.regions, widget.root, height, () => (widget.showsPicture ? 4096 : height()))) return;
    state.regions = widget;
  }
  const base = normalizeRef(outputList(output, "portrait_polish_regions_base")[0]);
  state.regions.setLegend(legend, base).catch((error) => warn("region legend", error));
  fitNode(node);
}

// ---------------------------------------------------------------- before/after comparer

function showCompare(node, output) {
  const pairs = comparePairs(output);
  const state = extras(node);
  if (!pairs.length) {
    if (state.comparer) {
      removePanel(node, "comparer");
      node.imgs = undefined; // ComfyUI's own preview takes over again
    }
    return;
  }
  let created = false;
  if (!state.comparer) {
    const comparer = new Comparer({
      urlFor,
      state: node.properties.portrait_polish,
      onChange: () => redraw(node),
      onError: (event) => {
        if (!extras(node).comparer) return; // the other image of the pair already failed
        // Fall back to ComfyUI's own preview of the "after" images.
        warn("a before/after preview image did not load", event?.target?.src);
        removePanel(node, "comparer");
        node.imgs = undefined;
        redraw(node);
      },
    });
    if (!addPanel(node, WIDGET_NAMES.comparer, comparer.root, () => COMPARE_MIN_HEIGHT)) return;
    state.comparer = comparer;
    created = true;
  }
  removeDefaultPreview(node);
  state.comparer.setPairs(pairs);
  // ComfyUI's node menu (Open / Save / Copy Image) works on node.imgs: give it the "after" image.
  node.imgs = [state.comparer.after];
  node.imageIndex = 0;
  fitNode(node, created ? 120 : 0);
}

// ---------------------------------------------------------------- one entry for a node's UI output

const OUR_KEYS = ["portrait_polish_compare", "portrait_polish_identity", "portrait_polish_regions"];

function outputKey(output) {
  try {
    return JSON.stringify(OUR_KEYS.map((key) => output?.[key] ?? null));
  } catch {
    return String(Math.random());
  }
}

function showOutput(node, output) {
  extras(node).lastOutputKey = outputKey(output);
  safely("identity read-out", () => showIdentity(node, output));
  safely("region legend", () => showRegions(node, output));
  safely("before/after comparer", () => showCompare(node, output));
  redraw(node);
}

/**
 * ComfyUI keeps each node's last UI output (app.nodeOutputs) and puts it back when a workflow
 * tab is shown again, without calling onExecuted: show our extras for it then too.
 */
function restoreFromStore(node) {
  const output = app.nodeOutputs?.[String(node.id)];
  // this runs on every frame: only look inside an output object not seen before
  if (!output || node.__ppSeenOutput === output) return;
  node.__ppSeenOutput = output;
  if (!OUR_KEYS.some((key) => key in output)) return;
  if (extras(node).lastOutputKey === outputKey(output)) return;
  showOutput(node, output);
}

/** Does one of our widgets show the node's picture (so ComfyUI's own preview would repeat it)? */
function ownsPreview(node) {
  const state = node.__portraitPolish;
  return !!state && (!!state.comparer || !!state.regions?.showsPicture);
}

// ---------------------------------------------------------------- widget group brackets

function drawGroupBrackets(node, ctx) {
  if (node.flags?.collapsed || !node.widgets?.length) return;
  const runs = node.__ppGroupRuns;
  if (!runs?.length) return;
  const height = globalThis.LiteGraph?.NODE_WIDGET_HEIGHT ?? 20;
  for (const run of runs) {
    const first = node.widgets[run.first];
    const last = node.widgets[run.last];
    const top = first?.y ?? first?.last_y;
    const bottom = (last?.y ?? last?.last_y) + (last?.computedHeight ?? height);
    if (!Number.isFinite(top) || !Number.isFinite(bottom) || bottom <= top) continue;
    const span = bottom - top - 4;
    ctx.save();
    ctx.globalAlpha = 0.85;
    ctx.fillStyle = run.colour ?? GROUP_COLOURS.Other;
    ctx.fillRect(2, top + 2, 3, span);
    ctx.font = "8px sans-serif";
    if (ctx.measureText(run.group).width + 4 <= span) {
      // the group's name, written upwards in the node's left margin beside its widgets
      ctx.translate(11, top + 2 + span / 2);
      ctx.rotate(-Math.PI / 2);
      ctx.textAlign = "center";
      ctx.textBaseline = "middle";
      ctx.globalAlpha = 0.75;
      ctx.fillText(run.group, 0, 0);
    }
    ctx.restore();
  }
}

function computeGroupRuns(node, optionsByName) {
  const names = (node.widgets ?? []).map((widget) => widget.name);
  node.__ppGroupRuns = groupRuns(names, optionsByName, (name) => name.startsWith("$$pp-"), node.type ?? node.comfyClass);
}

// ---------------------------------------------------------------- example workflows menu

let templates = [];
let templatesLoaded = false;
let templatesFetchedAt = 0;

async function refreshTemplates() {
  if (!PACK_FOLDER || Date.now() - templatesFetchedAt < 10000) return;
  templatesFetchedAt = Date.now();
  const response = await api.fetchApi("/workflow_templates");
  if (!response.ok) throw new Error(`GET /workflow_templates: HTTP ${response.status}`);
  const listed = templateEntries(await response.json(), PACK_FOLDER);
  // ComfyUI lists the JSON files of every folder it calls a workflow folder (example_workflows,
  // workflows, ...) but serves only the first one found: keep the entries it can serve.
  const servable = await Promise.all(
    listed.map((entry) =>
      api
        .fetchApi(templatePath(PACK_FOLDER, entry.name), { method: "HEAD" })
        .then((head) => head.ok)
        .catch(() => false),
    ),
  );
  templates = listed.filter((_, index) => servable[index]);
  templatesLoaded = true;
}

function notify(severity, summary, detail) {
  const toast = app.extensionManager?.toast;
  if (toast?.add) toast.add({ severity, summary, detail, life: 6000 });
  else if (severity === "error") console.error(`[Portrait Polish] ${summary}: ${detail}`);
}

async function loadTemplate(entry) {
  try {
    const response = await api.fetchApi(templatePath(PACK_FOLDER, entry.name));
    if (!response.ok) throw new Error(`HTTP ${response.status}`);
    const json = await response.json();
    const format = workflowFormat(json);
    if (format === "ui") await app.loadGraphData(json, true, true, entry.name);
    else if (format === "api" && typeof app.loadApiJson === "function") await app.loadApiJson(json, `${entry.name}.json`);
    else throw new Error("not a ComfyUI workflow file");
  } catch (error) {
    notify("error", "Could not load the example workflow", `${entry.name}: ${error?.message ?? error}`);
  }
}

function menuEntry() {
  safely("refreshing the example list", () => refreshTemplates().catch((error) => warn("example workflow list", error)));
  const options = templates.length
    ? templates.map((entry) => ({ content: entry.label, callback: () => void loadTemplate(entry) }))
    : [{ content: templatesLoaded ? "(no example workflows found)" : "(loading\u2026 open the menu again)", disabled: true }];
  return { content: MENU_TITLE, has_submenu: true, submenu: { options } };
}

// A newer front-end calls getCanvasMenuItems; 1.2x builds the menu in getCanvasMenuOptions.
// Whichever runs first for one right-click adds the entry; the other sees it was added.
let lastMenuBuild = 0;
function claimMenuBuild() {
  const now = Date.now();
  if (now - lastMenuBuild < 250) return false;
  lastMenuBuild = now;
  return true;
}

function patchLegacyCanvasMenu() {
  const Canvas = globalThis.LGraphCanvas ?? globalThis.LiteGraph?.LGraphCanvas;
  const original = Canvas?.prototype?.getCanvasMenuOptions;
  if (typeof original !== "function") return;
  Canvas.prototype.getCanvasMenuOptions = function (...args) {
    const options = original.apply(this, args);
    safely("canvas menu", () => {
      if (claimMenuBuild()) addMenuEntry(options, menuEntry());
    });
    return options;
  };
}

// ---------------------------------------------------------------- registration

safely("registering the extension", () =>
  app.registerExtension({
    name: EXTENSION,

    async setup() {
      safely("canvas menu", patchLegacyCanvasMenu);
      await refreshTemplates().catch((error) => warn("example workflow list", error));
    },

    getCanvasMenuItems() {
      return safely("canvas menu", () => (claimMenuBuild() ? [null, menuEntry()] : [])) ?? [];
    },

    async beforeRegisterNodeDef(nodeType, nodeData) {
      if (!isOurNode(nodeData)) return;
      const optionsByName = safely("widget groups", () => inputOptionsByName(nodeData)) ?? {};
      const proto = nodeType.prototype;

      const onNodeCreated = proto.onNodeCreated;
      proto.onNodeCreated = function (...args) {
        const result = onNodeCreated?.apply(this, args);
        safely("widget groups", () => computeGroupRuns(this, optionsByName));
        return result;
      };

      const onConfigure = proto.onConfigure;
      proto.onConfigure = function (...args) {
        const result = onConfigure?.apply(this, args);
        // a loaded workflow may have other widgets (an older pack version): group them afresh
        safely("widget groups", () => computeGroupRuns(this, optionsByName));
        return result;
      };

      const onExecuted = proto.onExecuted;
      proto.onExecuted = function (output, ...rest) {
        const result = onExecuted?.apply(this, [output, ...rest]);
        safely("node output", () => showOutput(this, output));
        return result;
      };

      const onDrawBackground = proto.onDrawBackground;
      proto.onDrawBackground = function (...args) {
        safely("restoring the extras", () => restoreFromStore(this));
        if (safely("preview", () => ownsPreview(this))) {
          safely("preview", () => removeDefaultPreview(this));
          return undefined;
        }
        return onDrawBackground?.apply(this, args);
      };

      const onDrawForeground = proto.onDrawForeground;
      proto.onDrawForeground = function (ctx, ...rest) {
        const result = onDrawForeground?.apply(this, [ctx, ...rest]);
        safely("widget groups", () => drawGroupBrackets(this, ctx));
        return result;
      };
    },
  }),
);
