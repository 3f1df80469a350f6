"""Test helpers: model and photo locations, the pack imported as ComfyUI imports it.

Tests use the real weights in ../shared/models (PORTRAIT_POLISH_MODELS) and never touch
the network (PORTRAIT_POLISH_OFFLINE=1). Real photos come from ../shared/portraits and are
never written into the repository.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from functools import lru_cache
from pathlib import Path

import numpy as np
import pytest
import torch

REPO_ROOT = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("PORTRAIT_POLISH_SHARED", REPO_ROOT.parent / "shared"))
SHARED_MODELS = SHARED / "models"
PORTRAITS = SHARED / "portraits"

os.environ.setdefault("PORTRAIT_POLISH_MODELS", str(SHARED_MODELS))
os.environ.setdefault("PORTRAIT_POLISH_OFFLINE", "1")
torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))

# The folder name ComfyUI would import the pack under (hyphens and all).
PACK_MODULE_NAME = "comfyui-portrait-polish"


def load_pack_as_comfyui():
    """Import the repository root the way ComfyUI's ``load_custom_node`` does: a package
    named after its folder, loaded from ``__init__.py`` with relative imports inside."""
    if PACK_MODULE_NAME in sys.modules:
        return sys.modules[PACK_MODULE_NAME]
    spec = importlib.util.spec_from_file_location(
        PACK_MODULE_NAME, REPO_ROOT / "__init__.py", submodule_search_locations=[str(REPO_ROOT)]
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[PACK_MODULE_NAME] = module
    spec.loader.exec_module(module)
    return module


def require_shared(path: Path) -> Path:
    """Return ``path``, or skip (locally) / fail (in CI) when ../shared is missing."""
    if path.exists():
        return path
    message = f"{path} is missing: tests need ../shared beside the checkout"
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


@lru_cache(maxsize=32)
def _load_portrait(name: str, max_side: int | None) -> np.ndarray:
    from PIL import Image

    path = require_shared(PORTRAITS / name)
    with Image.open(path) as img:
        img = img.convert("RGB")
        if max_side and max(img.size) > max_side:
            ratio = max_side / max(img.size)
            img = img.resize((max(1, round(img.width * ratio)), max(1, round(img.height * ratio))), Image.LANCZOS)
        arr = np.asarray(img, dtype=np.float32) / 255.0
    arr.setflags(write=False)
    return arr


def portrait(name: str, max_side: int | None = 1024) -> torch.Tensor:
    """A real portrait from ../shared/portraits as an IMAGE ``[1,H,W,3]`` (downscaled to
    ``max_side`` on its long edge to keep the suite fast; ``None`` = full size)."""
    return torch.from_numpy(_load_portrait(name, max_side).copy())[None]


def astronaut() -> torch.Tensor:
    """scikit-image's public-domain astronaut (Eileen Collins), 512x512, as an IMAGE."""
    from skimage import data

    return torch.from_numpy(data.astronaut().astype(np.float32) / 255.0)[None]


@lru_cache(maxsize=16)
def _parsed_portrait(name: str, max_side: int | None):
    from portrait_polish.core.parse import parse_faces

    image = portrait(name, max_side)
    return image, parse_faces(image)


def parsed_portrait(name: str, max_side: int | None = 1024):
    """A real portrait and its FaceParse result ``(IMAGE [1,H,W,3], FaceRegions)``, parsed
    once per test process (cached). Treat both as read-only: copy before editing."""
    return _parsed_portrait(name, max_side)
