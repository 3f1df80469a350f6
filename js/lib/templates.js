// "Load Portrait Polish example workflow": the menu entries from GET /workflow_templates and the
// URL of each file. Pure.

/** The pack's folder name from this module's URL (".../extensions/<folder>/..."), or null. */
export function packFolderFromUrl(url) {
  try {
    const path = new URL(String(url), "http://localhost/").pathname;
    const match = /\/extensions\/([^/]+)\//.exec(path);
    return match ? decodeURIComponent(match[1]) : null;
  } catch {
    return null;
  }
}

/** "portrait_retouch-full" -> "Portrait retouch full". */
export function templateLabel(name) {
  const words = String(name ?? "").replace(/[_-]+/g, " ").replace(/\s+/g, " ").trim();
  return words ? words[0].toUpperCase() + words.slice(1) : "";
}

/**
 * This pack's workflows from the /workflow_templates answer ({folder: [names]}): sorted,
 * de-duplicated [{name, label}]. Missing or malformed answers give [].
 */
export function templateEntries(listing, folder) {
  if (!listing || typeof listing !== "object" || !folder) return [];
  const names = listing[folder];
  if (!Array.isArray(names)) return [];
  const unique = [...new Set(names.filter((name) => typeof name === "string" && name && !name.includes("/")))];
  unique.sort((a, b) => a.localeCompare(b));
  return unique.map((name) => ({ name, label: templateLabel(name) }));
}

/** Server path (without the /api prefix) of one bundled workflow file. */
export function templatePath(folder, name) {
  return `/workflow_templates/${encodeURIComponent(folder)}/${encodeURIComponent(name)}.json`;
}

/** "ui" (nodes + links, what Save writes), "api" ({id: {class_type, inputs}}) or "unknown". */
export function workflowFormat(json) {
  if (!json || typeof json !== "object" || Array.isArray(json)) return "unknown";
  if (Array.isArray(json.nodes)) return "ui";
  const values = Object.values(json);
  if (values.length && values.every((node) => node && typeof node === "object" && typeof node.class_type === "string")) {
    return "api";
  }
  return "unknown";
}

/**
 * Adds our entry to a LiteGraph canvas menu options array (in place), once: a separator, then
 * {content, has_submenu, submenu: {options}}. Returns the array.
 */
export const MENU_TITLE = "Load Portrait Polish example workflow";

export function addMenuEntry(options, entry) {
  if (!Array.isArray(options)) return options;
  if (options.some((item) => item && item.content === MENU_TITLE)) return options;
  options.push(null, entry);
  return options;
}
