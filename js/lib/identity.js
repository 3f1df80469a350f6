// IdentityGuard read-out: shaping the node's UI rows, formatting scores, colour coding.
// Pure (no browser, no ComfyUI import).
import { outputList } from "./refs.js";

export const IDENTITY_KEY = "portrait_polish_identity";
export const SUMMARY_KEYS = Object.freeze(["portrait_polish_identity_summary", "summary", "text"]);

/** A pass closer than this to the threshold (in score units) is shown amber, not green. */
export const MARGINAL_BAND = 0.05;

export const STATUS_COLOURS = Object.freeze({
  pass: "#2e9e4f",
  marginal: "#d99a1e",
  fail: "#d64545",
  unknown: "#8a8a8a",
});

export const STATUS_LABELS = Object.freeze({
  pass: "PASS",
  marginal: "PASS (close)",
  fail: "FAIL",
  unknown: "n/a",
});

function finiteOrNull(value) {
  if (value === null || value === undefined || value === "") return null;
  const number = Number(value);
  return Number.isFinite(number) ? number : null;
}

function intOr(value, fallback) {
  const number = Number(value);
  return Number.isInteger(number) && number >= 0 ? number : fallback;
}

/** The guard's rows, cleaned: {frame, face, score, threshold, passed, action, blend, higherIsBetter}. */
export function identityRows(output) {
  const rows = [];
  outputList(output, IDENTITY_KEY).forEach((entry, position) => {
    if (!entry || typeof entry !== "object") return;
    const status = typeof entry.status === "string" ? entry.status : "";
    // IdentityGuard scores a face it could not pair up (missing or extra) with a sentinel (-1)
    const unpaired = /missing|extra|no_face|unmatched/.test(status);
    const rawScore = finiteOrNull(entry.score);
    const score = unpaired && rawScore !== null && rawScore < 0 ? null : rawScore;
    const threshold = finiteOrNull(entry.threshold);
    let passed = typeof entry.passed === "boolean" ? entry.passed : null;
    if (passed === null && score !== null && threshold !== null) passed = score >= threshold;
    rows.push({
      frame: intOr(entry.frame, 0),
      face: intOr(entry.face, position),
      score,
      threshold,
      passed,
      action: typeof entry.action === "string" ? entry.action : "",
      blend: finiteOrNull(entry.blend),
      finalScore: finiteOrNull(entry.final_score),
      status,
      higherIsBetter: typeof entry.higher_is_better === "boolean" ? entry.higher_is_better : null,
      note:
        typeof entry.note === "string"
          ? entry.note
          : typeof entry.reason === "string"
            ? entry.reason
            : unpaired
              ? status.replace(/_/g, " ")
              : "",
    });
  });
  return rows;
}

/**
 * Whether a larger score means "more the same person" (similarity) or not (distance).
 * Taken from the rows' own flag, else inferred from a row whose pass/fail decides it,
 * else similarity (the contract's default).
 */
export function higherIsBetter(rows) {
  for (const row of rows) if (row.higherIsBetter !== null && row.higherIsBetter !== undefined) return row.higherIsBetter;
  for (const row of rows) {
    if (row.score === null || row.threshold === null || row.passed === null || row.score === row.threshold) continue;
    return row.passed === row.score > row.threshold;
  }
  return true;
}

/** Score with three decimals, or an en dash when the guard could not measure (no face found). */
export function formatScore(score, digits = 3) {
  const number = finiteOrNull(score);
  return number === null ? "\u2013" : number.toFixed(digits);
}

/** "pass" | "marginal" | "fail" | "unknown" for one row. */
export function rowStatus(row, band = MARGINAL_BAND) {
  if (!row || row.passed === null || row.passed === undefined) return "unknown";
  if (!row.passed) return "fail";
  if (row.score !== null && row.threshold !== null && Math.abs(row.score - row.threshold) < band) return "marginal";
  return "pass";
}

export function statusColour(status) {
  return STATUS_COLOURS[status] ?? STATUS_COLOURS.unknown;
}

/** The worst status of all rows (fail > marginal > pass > unknown); "unknown" when empty. */
export function overallStatus(rows, band = MARGINAL_BAND) {
  const order = ["unknown", "pass", "marginal", "fail"];
  let worst = "unknown";
  for (const row of rows) {
    const status = rowStatus(row, band);
    if (order.indexOf(status) > order.indexOf(worst)) worst = status;
  }
  return worst;
}

/** "kept", "blended back 40%", "fell back to the original"... from the guard's action words. */
export function describeAction(action, blend, finalScore = null) {
  const word = String(action || "").toLowerCase();
  const blendValue = finiteOrNull(blend);
  const percent = blendValue === null ? null : Math.round(Math.min(1, Math.max(0, blendValue)) * 100);
  const final = finiteOrNull(finalScore);
  if (!word) return percent ? `blend ${percent}%` : "";
  if (word.includes("blend")) {
    const amount = percent !== null ? `blended back ${percent}%` : "blended back";
    return final !== null ? `${amount} \u2192 ${formatScore(final)}` : amount;
  }
  if (word.includes("fallback") || word.includes("fall_back") || word.includes("original") || word.includes("revert")) {
    return "fell back to the original";
  }
  if (word === "pass" || word === "none" || word === "keep" || word === "kept") return "kept";
  if (word === "report" || word === "warn") return "reported only";
  if (word === "error" || word === "raise") return "stopped the run";
  return word.replace(/_/g, " ");
}

/** One row as a line of text: "frame 1 face 1  0.912 >= 0.600  PASS  kept". */
export function rowText(row, higher = true, band = MARGINAL_BAND) {
  const where = `frame ${row.frame + 1} face ${row.face + 1}`;
  const comparator = row.passed === false ? (higher ? "<" : ">") : higher ? "\u2265" : "\u2264";
  const measure =
    row.threshold === null ? formatScore(row.score) : `${formatScore(row.score)} ${comparator} ${formatScore(row.threshold)}`;
  const parts = [where, measure, STATUS_LABELS[rowStatus(row, band)]];
  const action = describeAction(row.action, row.blend, row.finalScore);
  if (action) parts.push(action);
  if (row.note) parts.push(row.note);
  return parts.join("  ");
}

/** The node's own summary line(s), whichever key it used. */
export function summaryText(output) {
  for (const key of SUMMARY_KEYS) {
    const lines = outputList(output, key)
      .map((item) => (typeof item === "string" ? item : item && typeof item.text === "string" ? item.text : ""))
      .filter((line) => line.trim() !== "");
    if (lines.length) return lines.join("\n");
  }
  return "";
}

/**
 * Everything the read-out draws: {status, colour, headline, rows: [{text, status, colour}], summary}.
 * `null` when the output has no identity rows (then nothing is drawn on the node).
 */
export function identityView(output, band = MARGINAL_BAND) {
  const rows = identityRows(output);
  const summary = summaryText(output);
  if (!rows.length && !summary) return null;
  const higher = higherIsBetter(rows);
  const status = overallStatus(rows, band);
  const failed = rows.filter((row) => row.passed === false).length;
  const measured = rows.filter((row) => row.score !== null);
  let headline;
  if (!rows.length) {
    headline = "Identity: no faces measured";
  } else if (measured.length === 0) {
    headline = `Identity: ${rows.length} face${rows.length === 1 ? "" : "s"}, not measured`;
  } else {
    const scores = measured.map((row) => row.score);
    const worst = higher ? Math.min(...scores) : Math.max(...scores);
    const label = STATUS_LABELS[status];
    const count = failed ? `${failed}/${rows.length} failed` : `${rows.length} face${rows.length === 1 ? "" : "s"}`;
    headline = `Identity ${label}  \u00b7  ${count}  \u00b7  ${higher ? "lowest" : "highest"} ${formatScore(worst)}`;
  }
  return {
    status,
    colour: statusColour(status),
    headline,
    higherIsBetter: higher,
    rows: rows.map((row) => {
      const rowState = rowStatus(row, band);
      return { ...row, text: rowText(row, higher, band), status: rowState, colour: statusColour(rowState) };
    }),
    summary,
  };
}
