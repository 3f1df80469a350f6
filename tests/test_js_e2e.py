"""End-to-end check of the js/ canvas extension in headless Chromium (skipped unless COMFYUI_URL).

COMFYUI_URL: a running ComfyUI with this pack installed (see ../shared/comfy-host/README.md).
It also needs Node.js, the `playwright-core` npm package (`npm ci` in the repo root: it is the
only entry of package.json) and a Chromium (`apt-get install chromium`, or CHROMIUM_PATH);
without them the test skips and says what is missing. CI needs none of it.

The browser side is tests/js/e2e/comfy_e2e.mjs: it loads the ComfyUI page, checks our
extension loads without console errors of its own, builds and queues LoadImage -> FaceParse
-> (a retouch node) -> IdentityGuard -> PreviewImage on the canvas, waits for the before/after
comparer and the identity read-out, drags the split, opens the canvas menu, and saves
screenshots (kept under pytest's tmp_path; the path is printed).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from helpers import astronaut

pytestmark = [pytest.mark.comfyui]

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "tests" / "js" / "e2e" / "comfy_e2e.mjs"


def _chromium() -> str | None:
    candidates = [os.environ.get("CHROMIUM_PATH"), shutil.which("chromium"), shutil.which("chromium-browser"), "/usr/bin/chromium"]
    return next((c for c in candidates if c and Path(c).is_file()), None)


@pytest.fixture(scope="module")
def comfy_url() -> str:
    url = os.environ.get("COMFYUI_URL")
    if not url:
        pytest.skip("set COMFYUI_URL (a running ComfyUI with this pack) for the browser end-to-end test")
    return url.rstrip("/")


def test_canvas_extension_in_chromium(comfy_url: str, tmp_path: Path) -> None:
    node = shutil.which("node")
    if node is None:
        pytest.skip("node (Node.js 18+) is not installed")
    if not (ROOT / "node_modules" / "playwright-core").is_dir():
        pytest.skip("playwright-core is not installed: run `npm ci` in the repository root")
    chromium = _chromium()
    if chromium is None:
        pytest.skip("no Chromium: `apt-get install chromium` or set CHROMIUM_PATH")

    from PIL import Image

    image = (astronaut()[0].numpy() * 255.0).round().astype(np.uint8)
    picture = Image.fromarray(image)
    picture.thumbnail((384, 384))  # small: the run is on CPU
    image_path = tmp_path / "astronaut.png"
    picture.save(image_path)
    shots = tmp_path / "screenshots"

    completed = subprocess.run(
        [node, str(SCRIPT), "--url", comfy_url, "--image", str(image_path), "--out", str(shots), "--chromium", chromium, "--timeout", "300"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=420,
        check=False,
    )
    lines = [line for line in completed.stdout.splitlines() if line.startswith("{")]
    assert lines, f"no result from the browser script (rc {completed.returncode}):\n{completed.stdout}\n{completed.stderr}"
    result = json.loads(lines[-1])
    print(f"screenshots: {result.get('screenshots')}")
    assert result["ok"], f"failed checks: {result['errors']}\nconsole errors of ours: {result['ourConsoleErrors']}"
    assert completed.returncode == 0
    assert result["checks"]["comparer appears with both images loaded"]["passed"]
    assert result["checks"]["no console errors from the extension"]["passed"]
    assert result["identity"]["status"] in {"pass", "marginal", "fail", "unknown"}
    for shot in result["screenshots"]:
        assert Path(shot).is_file() and Path(shot).stat().st_size > 10_000, shot
