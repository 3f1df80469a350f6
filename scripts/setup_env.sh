#!/usr/bin/env bash
# Create (or reuse) .venv and install the pack into it, with torch pinned to 2.13.0 so
# pip never swaps in a CUDA build. Usage: scripts/setup_env.sh [extras], e.g. "dev".
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"
VENV="${PORTRAIT_POLISH_VENV:-.venv}"
EXTRAS="${1:-}"
if [ ! -x "$VENV/bin/python" ]; then
  "$PYTHON" -m venv "$VENV"
fi
constraints="$(mktemp)"
trap 'rm -f "$constraints"' EXIT
echo "torch==2.13.0" > "$constraints"
"$VENV/bin/python" -m pip install -q --disable-pip-version-check -c "$constraints" "torch==2.13.0"
target="."
[ -n "$EXTRAS" ] && target=".[$EXTRAS]"
"$VENV/bin/python" -m pip install -q --disable-pip-version-check -c "$constraints" -e "$target"
