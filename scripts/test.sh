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
if [ "$status" -eq 5 ]; then
  echo "pytest collected no tests: that is a failure here" >&2
  exit 1
fi
exit "$status"
