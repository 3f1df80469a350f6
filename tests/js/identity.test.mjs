import assert from "node:assert/strict";
import { test } from "node:test";

import {
  STATUS_COLOURS,
  describeAction,
  formatScore,
  higherIsBetter,
  identityRows,
  identityView,
  overallStatus,
  rowStatus,
  statusColour,
  summaryText,
} from "../../js/lib/identity.js";

const row = (over) => ({ frame: 0, face: 0, score: 0.9, threshold: 0.6, passed: true, action: "pass", blend: 0, ...over });

test("identityRows cleans the guard's rows and keeps their order", () => {
  const rows = identityRows({
    portrait_polish_identity: [
      row({ frame: 0, face: 0, score: "0.91" }),
      null,
      row({ frame: 1, face: 2, score: null, passed: null }),
      { score: 0.4, threshold: 0.6 },
    ],
  });
  assert.equal(rows.length, 3);
  assert.equal(rows[0].score, 0.91, "numeric strings are read as numbers");
  assert.equal(rows[1].score, null, "an unmeasured face keeps a null score");
  assert.equal(rows[1].passed, null);
  assert.equal(rows[2].passed, false, "passed is derived from score and threshold when missing");
  assert.equal(rows[2].face, 3, "a row without a face index gets its position in the list");
  assert.deepEqual(identityRows({}), []);
  assert.deepEqual(identityRows(undefined), []);
});

test("scores are formatted to three decimals, unmeasured as a dash", () => {
  assert.equal(formatScore(0.91234), "0.912");
  assert.equal(formatScore(1), "1.000");
  assert.equal(formatScore(null), "\u2013");
  assert.equal(formatScore("n/a"), "\u2013");
  assert.equal(formatScore(0.5, 2), "0.50");
});

test("status and colour: pass green, close pass amber, fail red, unknown grey", () => {
  assert.equal(rowStatus(row({ score: 0.9 })), "pass");
  assert.equal(rowStatus(row({ score: 0.62 })), "marginal");
  assert.equal(rowStatus(row({ score: 0.5, passed: false })), "fail");
  assert.equal(rowStatus(row({ passed: null })), "unknown");
  assert.equal(rowStatus(row({ score: 0.62 }), 0.01), "pass", "the band is configurable");
  assert.equal(statusColour("pass"), STATUS_COLOURS.pass);
  assert.equal(statusColour("fail"), STATUS_COLOURS.fail);
  assert.equal(statusColour("whatever"), STATUS_COLOURS.unknown);
  assert.notEqual(STATUS_COLOURS.pass, STATUS_COLOURS.fail);
  assert.equal(overallStatus([row({}), row({ score: 0.63 })]), "marginal");
  assert.equal(overallStatus([row({}), row({ score: 0.3, passed: false }), row({ score: 0.61 })]), "fail");
  assert.equal(overallStatus([]), "unknown");
});

test("score direction: similarity by default, distance when the rows say so", () => {
  assert.equal(higherIsBetter([row({})]), true);
  // a distance metric: 0.3 < 0.6 passed, so lower is better
  assert.equal(higherIsBetter([row({ score: 0.3, threshold: 0.6, passed: true })]), false);
  assert.equal(higherIsBetter([row({ score: 0.9, higherIsBetter: false })]), false);
  assert.equal(higherIsBetter([]), true);
});

test("actions read as words a retoucher understands", () => {
  assert.equal(describeAction("pass", 0), "kept");
  assert.equal(describeAction("blend", 0.4), "blended back 40%");
  assert.equal(describeAction("fallback", 1), "fell back to the original");
  assert.equal(describeAction("report", null), "reported only");
  assert.equal(describeAction("", 0.25), "blend 25%");
  assert.equal(describeAction("", null), "");
  assert.equal(describeAction("some_new_action", null), "some new action");
});

test("identityView builds the headline and the per-face lines", () => {
  const view = identityView({
    portrait_polish_identity: [
      row({ frame: 0, face: 0, score: 0.93 }),
      row({ frame: 0, face: 1, score: 0.41, passed: false, action: "blend", blend: 0.5 }),
    ],
    portrait_polish_identity_summary: ["1 of 2 faces below 0.60: blended back"],
  });
  assert.equal(view.status, "fail");
  assert.equal(view.colour, STATUS_COLOURS.fail);
  assert.match(view.headline, /FAIL/);
  assert.match(view.headline, /1\/2 failed/);
  assert.match(view.headline, /lowest 0\.410/);
  assert.equal(view.rows.length, 2);
  assert.equal(view.rows[0].text, "frame 1 face 1  0.930 \u2265 0.600  PASS  kept");
  assert.equal(view.rows[1].text, "frame 1 face 2  0.410 < 0.600  FAIL  blended back 50%");
  assert.equal(view.rows[1].colour, STATUS_COLOURS.fail);
  assert.equal(view.summary, "1 of 2 faces below 0.60: blended back");
});

test("identityView: all pass, distance metric, no faces, nothing at all", () => {
  const pass = identityView({ portrait_polish_identity: [row({ score: 0.97 })] });
  assert.equal(pass.status, "pass");
  assert.match(pass.headline, /Identity PASS\s+\u00b7\s+1 face\s+\u00b7\s+lowest 0\.970/);

  const distance = identityView({
    portrait_polish_identity: [row({ score: 0.31, threshold: 0.6, passed: true }), row({ score: 0.45, threshold: 0.6 })],
  });
  assert.match(distance.headline, /highest 0\.450/, "for a distance the worst face is the largest");
  assert.equal(distance.rows[0].text.includes("0.310 \u2264 0.600"), true);

  const unmeasured = identityView({ portrait_polish_identity: [row({ score: null, passed: null, action: "" })] });
  assert.equal(unmeasured.status, "unknown");
  assert.match(unmeasured.headline, /not measured/);

  const summaryOnly = identityView({ text: ["no face found in frame 1"] });
  assert.equal(summaryOnly.headline, "Identity: no faces measured");
  assert.equal(summaryOnly.summary, "no face found in frame 1");

  assert.equal(identityView({ images: [] }), null, "nothing is drawn for a node without identity output");
  assert.equal(summaryText({ summary: [{ text: "a" }, "b", ""] }), "a\nb");
});

// Rows exactly as nodes/identity.py sends them (core/identity.py FaceReport.as_dict()).
const guardRow = (over) => ({
  frame: 0,
  face: 0,
  score: 0.94,
  threshold: 0.6,
  passed: true,
  action: "none",
  blend: 0.0,
  final_score: 0.94,
  status: "matched",
  box: [10, 20, 100, 120],
  ...over,
});

test("IdentityGuard's own rows: matched, blended back, missing and extra faces", () => {
  const view = identityView({
    portrait_polish_identity: [
      guardRow({}),
      guardRow({ face: 1, score: 0.52, passed: false, action: "blend", blend: 0.234, final_score: 0.612 }),
      guardRow({ face: 2, score: -1.0, passed: false, action: "report", final_score: -1.0, status: "missing_in_retouched" }),
      guardRow({ face: 3, score: -1.0, passed: false, action: "blend", blend: 1.0, final_score: null, status: "extra_in_retouched" }),
    ],
  });
  assert.equal(view.status, "fail");
  assert.equal(view.higherIsBetter, true);
  assert.equal(view.rows[0].text, "frame 1 face 1  0.940 \u2265 0.600  PASS  kept");
  assert.equal(view.rows[1].text, "frame 1 face 2  0.520 < 0.600  FAIL  blended back 23% \u2192 0.612");
  assert.equal(view.rows[2].score, null, "the -1 sentinel of an unpaired face is not shown as a score");
  assert.equal(view.rows[2].text, "frame 1 face 3  \u2013 < 0.600  FAIL  reported only  missing in retouched");
  assert.equal(view.rows[3].text, "frame 1 face 4  \u2013 < 0.600  FAIL  blended back 100%  extra in retouched");
  assert.match(view.headline, /3\/4 failed/);
  assert.match(view.headline, /lowest 0\.520/, "the worst measured face, sentinels left out");
});

test("IdentityGuard with action 'original': every face reports the fallback", () => {
  const view = identityView({
    portrait_polish_identity: [guardRow({ score: 0.3, passed: false, action: "original", final_score: 1.0 })],
  });
  assert.equal(view.rows[0].text, "frame 1 face 1  0.300 < 0.600  FAIL  fell back to the original");
  assert.equal(view.colour, STATUS_COLOURS.fail);
});
