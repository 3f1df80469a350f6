#!/usr/bin/env bash
# The project's one test command (README and .ci/run both use it): installs the pack with
# its dev extras into .venv, then runs ruff and the whole test suite against the real
# models in ../shared/models.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup_env.sh dev
VENV="${PORTRAIT_POLISH_VENV:-.venv}"
export PORTRAIT_POLISH_MODELS="${PORTRAIT_POLISH_MODELS:-$(cd .. && pwd)/shared/models}"
export PORTRAIT_POLISH_OFFLINE=1
"$VENV/bin/python" -m ruff check .
status=0
"$VENV/bin/python" -m pytest "$@" || status=$?
# The canvas extension's logic (js/lib, js/dom) with Node's built-in test runner: no npm packages.
js_status=0
if command -v node >/dev/null 2>&1; then
  node --test tests/js/ || js_status=$?
else
  echo "node not found: the js/ tests (node --test tests/js/) need Node.js 18 or newer" >&2
  js_status=1
fi
if [ "$status" -eq 5 ]; then
  echo "pytest collected no tests: that is a failure here" >&2
  exit 1
fi
if [ "$status" -eq 0 ] && [ "$js_status" -ne 0 ]; then
  status=$js_status
fi
exit "$status"
