#!/usr/bin/env bash
# The README's main job on a fresh machine: install the pack into .venv (no dev extras),
# then retouch a sample portrait with the default workflow (natural headshot polish),
# in-process, into out/. Prints where the result and its sidecar JSON are.
#
# The sample is scikit-image's public-domain astronaut (Eileen Collins, NASA), shipped as
# scripts/sample_portrait.jpg so no extra package is needed. Models download on first use
# (or come from PORTRAIT_POLISH_MODELS; ../shared/models is used when it is there).
# Retouch your own photos the same way:
#   .venv/bin/portrait-polish run natural_headshot my_photos/ -o out
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup_env.sh
VENV="${PORTRAIT_POLISH_VENV:-.venv}"
if [ -z "${PORTRAIT_POLISH_MODELS:-}" ] && [ -d ../shared/models ]; then
  PORTRAIT_POLISH_MODELS="$(cd ../shared/models && pwd)"
  export PORTRAIT_POLISH_MODELS
fi
OUT="${1:-out}"
mkdir -p "$OUT"
status=0
"$VENV/bin/portrait-polish" run natural_headshot scripts/sample_portrait.jpg -o "$OUT" --json > "$OUT/demo_summary.json" || status=$?
"$VENV/bin/python" - "$OUT/demo_summary.json" <<'PY'
import json
import sys
from pathlib import Path

summary = json.loads(Path(sys.argv[1]).read_text())
if "error" in summary:
    sys.exit(f"demo failed: {summary['error']}")
out = Path(summary["output_dir"])
for job in summary["jobs"]:
    if job["status"] in ("done", "skipped") and job["outputs"]:
        print(f"result:  {out / job['outputs'][0]}")
        print(f"sidecar: {out / job['sidecars'][0]}  (workflow, parameters, model hashes, IdentityGuard scores, timings)")
    else:
        print(f"{job['status']}: {job['input']}: {job.get('message', '')}")
PY
exit "$status"
