"""The default workflow's nodes (natural_headshot: FaceParse -> TextureSafeSmooth ->
TeethWhiten -> EyeEnhance -> IdentityGuard) on real camera files, node by node.

- ``headshot nodes <photo>`` at ``native`` size: the photo as it is (pexels_freckles_woman
  is the 4000x6000 reference camera file, paul_rudd_closeup a 1638x2048 close-up, and
  ``PORTRAIT_POLISH_BENCH_PHOTO`` any photo of yours), and at ``1MP`` (the same photo
  scaled to one megapixel). File reading is not timed (it is in the runner rows).
- ``headshot nodes, warm batch``: 1 MP copies of three photos, one after the other, as the
  later images of a batch see it (models loaded, caches warm): seconds per image.

Every row's ``models`` column is the models' own inference inside it (YuNet, landmarks,
the selfie segmenter, dlib's recognition network); the sub-rows split the run per node.
Widget values are the bundled workflow's own (workflows/api/natural_headshot.json).
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from bench import REPO_ROOT, BenchCase

PORTRAITS = REPO_ROOT.parent / "shared" / "portraits"
WORKFLOW = REPO_ROOT / "workflows" / "api" / "natural_headshot.json"


def _photo(path: Path, megapixels: float | None) -> torch.Tensor:
    image = Image.open(path).convert("RGB")
    if megapixels:
        factor = (megapixels * 1e6 / (image.width * image.height)) ** 0.5
        image = image.resize((round(image.width * factor), round(image.height * factor)), Image.LANCZOS)
    return torch.from_numpy(np.asarray(image, dtype=np.float32) / 255.0)[None]


def _widgets() -> dict[str, dict[str, object]]:
    graph = json.loads(WORKFLOW.read_text())
    out = {}
    for node in graph.values():
        literals = {k: v for k, v in node["inputs"].items() if not isinstance(v, list)}
        out[node["class_type"].removeprefix("PortraitPolish")] = literals
    return out


def run_chain(image: torch.Tensor) -> list[tuple[str, float, float]]:
    """The five nodes on ``image``; (node, seconds, models' seconds) per node."""
    from portrait_polish.core import timing
    from portrait_polish.nodes.eyes import EyeEnhance
    from portrait_polish.nodes.identity import IdentityGuard
    from portrait_polish.nodes.parse import FaceParse
    from portrait_polish.nodes.skin import TextureSafeSmooth
    from portrait_polish.nodes.teeth import TeethWhiten

    widgets = _widgets()
    rows: list[tuple[str, float, float]] = []

    def step(name: str, call):  # noqa: ANN001, ANN202 - a node call
        models_before = sum(timing.model_times().values())
        start = time.perf_counter()
        value = call()
        rows.append((name, time.perf_counter() - start, sum(timing.model_times().values()) - models_before))
        return value

    regions = step("FaceParse", lambda: FaceParse().parse(image=image, **widgets["FaceParse"])["result"][1])
    skin = step("TextureSafeSmooth", lambda: TextureSafeSmooth().smooth(image=image, face_regions=regions, **widgets["TextureSafeSmooth"])["result"][0])
    teeth = step("TeethWhiten", lambda: TeethWhiten().whiten(image=skin, face_regions=regions, **widgets["TeethWhiten"])["result"][0])
    eyes = step("EyeEnhance", lambda: EyeEnhance().enhance(image=teeth, face_regions=regions, **widgets["EyeEnhance"])["result"][0])
    step("IdentityGuard", lambda: IdentityGuard().guard(original=image, retouched=eyes, face_regions=regions, **widgets["IdentityGuard"]))
    return rows


def _chain_case(path: Path, megapixels: float | None):  # noqa: ANN202
    def setup(width: int, height: int):  # noqa: ANN202
        del width, height
        if not path.is_file():
            raise SystemExit(f"bench photo not found: {path}")
        image = _photo(path, megapixels)

        def run() -> dict[str, object]:
            return {"rows": run_chain(image)}

        return run

    return setup


def _warm_batch(names: list[str]):  # noqa: ANN202
    def setup(width: int, height: int):  # noqa: ANN202
        del width, height
        images = [_photo(PORTRAITS / name, 1.0) for name in names]
        state = {"next": 0}

        def run() -> dict[str, object]:
            image = images[state["next"] % len(images)]
            state["next"] += 1
            return {"rows": run_chain(image)}

        return run

    return setup


def _cases() -> list[BenchCase]:
    cases = []
    photos = [PORTRAITS / "pexels_freckles_woman.jpg", PORTRAITS / "paul_rudd_closeup.jpg"]
    extra = os.environ.get("PORTRAIT_POLISH_BENCH_PHOTO")
    if extra:
        photos.append(Path(extra))
    for path in photos:
        cases.append(BenchCase(f"headshot nodes {path.stem}", "workflow", "native", _chain_case(path, None), note="natural_headshot's 5 nodes, photo at full size"))
        cases.append(BenchCase(f"headshot nodes {path.stem}", "workflow", "1MP", _chain_case(path, 1.0), repeats=2, note="the same photo at 1 MP"))
    batch = ["pexels_freckles_woman.jpg", "paul_rudd_closeup.jpg", "jolie_1.jpg"]
    cases.append(BenchCase("headshot nodes, warm batch of 3 photos", "workflow", "1MP", _warm_batch(batch), repeats=3, note="per image, models loaded (later images of a batch)"))
    return cases


CASES = _cases()
