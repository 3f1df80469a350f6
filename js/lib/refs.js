// Image references as ComfyUI's UI outputs carry them: {filename, subfolder, type}.
// Pure helpers (no browser, no ComfyUI import) so Node's test runner can load them.

const IMAGE_TYPES = new Set(["temp", "output", "input"]);

/** A clean {filename, subfolder, type} or null when `value` is not a usable image reference. */
export function normalizeRef(value) {
  if (!value || typeof value !== "object") return null;
  const filename = typeof value.filename === "string" ? value.filename : "";
  if (!filename || filename.includes("..") || filename.includes("/") || filename.includes("\\")) return null;
  const subfolder = typeof value.subfolder === "string" ? value.subfolder : "";
  if (subfolder.split(/[\\/]/).includes("..")) return null;
  const type = IMAGE_TYPES.has(value.type) ? value.type : "temp";
  return { filename, subfolder, type };
}

/** The server path (without the /api prefix) that serves `ref`; `bust` defeats the browser cache. */
export function viewPath(ref, bust = "") {
  const clean = normalizeRef(ref);
  if (!clean) return null;
  const params = new URLSearchParams({ filename: clean.filename, subfolder: clean.subfolder, type: clean.type });
  if (bust !== "" && bust !== null && bust !== undefined) params.set("rand", String(bust));
  return `/view?${params.toString()}`;
}

/** Same reference (filename, subfolder and type all equal)? */
export function sameRef(a, b) {
  const x = normalizeRef(a);
  const y = normalizeRef(b);
  return !!x && !!y && x.filename === y.filename && x.subfolder === y.subfolder && x.type === y.type;
}

/** `output[key]` as an array whatever ComfyUI did with it (missing, a single value, a list). */
export function outputList(output, key) {
  if (!output || typeof output !== "object") return [];
  const value = output[key];
  if (value === undefined || value === null) return [];
  return Array.isArray(value) ? value : [value];
}
