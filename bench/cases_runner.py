"""Runner rows: the default workflow per image (in-process and via a ComfyUI server) and the
runner's own overhead per image. Images per minute = 60 / seconds.

The server rows use COMFYUI_URL (a running ComfyUI with this pack installed); without it
they report an error that says so.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np
from bench_inputs import portrait_image
from PIL import Image

from bench import REPO_ROOT, BenchCase

DEFAULT_WORKFLOW = REPO_ROOT / "workflows" / "api" / "natural_headshot.json"
CORE_GRAPH = {
    "1": {"class_type": "LoadImage", "inputs": {"image": "x.png"}, "_meta": {"title": "Input"}},
    "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": "b"}, "_meta": {"title": "Save"}},
}


def _sample(width: int, height: int) -> Path:
    folder = Path(tempfile.mkdtemp(prefix="pp-bench-"))
    pixels = (portrait_image(width, height)[0].numpy() * 255).round().astype(np.uint8)
    path = folder / "portrait.png"
    Image.fromarray(pixels).save(path)
    return path


def _batch_case(workflow, server: bool):
    def setup(width: int, height: int):
        from portrait_polish.runner.batch import Batch

        url = os.environ.get("COMFYUI_URL")
        if server and not url:
            raise SystemExit("set COMFYUI_URL to a ComfyUI server with Portrait Polish installed")
        image = _sample(width, height)
        pixels = np.asarray(Image.open(image)).copy()
        batch = Batch(workflow, image.parent / "out", server=url if server else None, overwrite=True, progress=False, name="bench")
        calls = [0]

        def run() -> None:
            # A new image each call (one pixel differs), as in a real batch: no server-side cache hits.
            calls[0] += 1
            pixels[0, 0] = [calls[0] % 256, calls[0] // 256 % 256, 7]
            Image.fromarray(pixels).save(image, compress_level=1)
            batch.jobs = []
            batch.add(image)
            summary = batch.run()
            if summary.count("done") != 1:
                raise RuntimeError(summary.text())

        return run

    return setup


CASES = [
    BenchCase("runner natural_headshot in-process", "workflow", "1MP", _batch_case(DEFAULT_WORKFLOW, server=False), repeats=2,
              note="images/min = 60/seconds"),
    BenchCase("runner natural_headshot in-process", "workflow", "24MP", _batch_case(DEFAULT_WORKFLOW, server=False)),
    BenchCase("runner natural_headshot server", "workflow", "1MP", _batch_case(DEFAULT_WORKFLOW, server=True), repeats=2,
              note="COMFYUI_URL; upload+queue+ws+download"),
    BenchCase("runner overhead (Load->Save) in-process", "workflow", "1MP", _batch_case(CORE_GRAPH, server=False), repeats=3,
              note="hash, manifest, sidecar, PNG read/write (+ bench input write)"),
    BenchCase("runner overhead (Load->Save) server", "workflow", "1MP", _batch_case(CORE_GRAPH, server=True), repeats=3,
              note="COMFYUI_URL; + upload, queue, ws, /view"),
]
