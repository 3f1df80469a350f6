"""Upscale rows: megapixels out per second and peak memory, both real models, tiles 256/512.

For this family the size column is the OUTPUT size class (what an upscaler is asked for):
``1MP`` = a 250x250 crop upscaled 4x to 1000x1000; ``24MP`` = 1500x1000 upscaled 4x to
6000x4000. MP out per second = the note's "MP out" / seconds. The last row is the issue's
memory bound: 2048x2048 -> 8192x8192 (67 MP out) with the automatic tile; its peak RAM must
stay below 6 GB (the output alone is 805 MB).

- ``compact`` = realesr-animevideov3 (SRVGGNetCompact, same cost as realesr-general-x4v3
  minus its 16 extra convs); ``rrdb`` = RealESRGAN_x4plus weights (RRDBNet, 23 blocks).
- RRDBNet costs ~36 MFLOP per input pixel: a 24 MP-out run takes over half an hour on a
  2-core CPU, so its 24MP rows exist only on CUDA. At 1MP out the whole 250x250 input is
  one tile at both tile sizes (the rows differ only by noise there).
- The first call of each case (bench.py's untimed warm-up) upscales a 64x64 image only: it
  loads and caches the model, which is all the warm-up is for, without doubling a
  minutes-long run.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import torch
from bench_inputs import portrait_image

from bench import REPO_ROOT, BenchCase

MODELS = Path(os.environ.get("PORTRAIT_POLISH_MODELS", REPO_ROOT.parent / "shared" / "models"))
FILES = {"compact": "realesr-animevideov3.pth", "rrdb": "RealESRGAN_x4plus_from_ncnn.pth"}
INPUTS = {"1MP": (250, 250), "24MP": (1500, 1000)}


def _case(kind: str, tile: int, in_size: tuple[int, int]) -> Callable[[int, int], Callable[[], object]]:
    def setup(_width: int, _height: int) -> Callable[[], object]:
        from portrait_polish.core import comfy, upscale

        device = comfy.torch_device()
        model = upscale.load_model(str(MODELS / FILES[kind]), device)
        image = portrait_image(*in_size)
        warmed = [False]

        def run() -> object:
            if not warmed[0]:
                warmed[0] = True
                return upscale.upscale_image(image[:, :64, :64], model, tile=tile, device=device)
            return upscale.upscale_image(image, model, mode="model native", tile=tile, device=device)

        return run

    return setup


def _memory_case(_width: int, _height: int) -> Callable[[], object]:
    from portrait_polish.core import comfy, upscale

    device = comfy.torch_device()
    model = upscale.load_model(str(MODELS / FILES["compact"]), device)
    image = portrait_image(2048, 2048)
    warmed = [False]

    def run() -> object:
        if not warmed[0]:
            warmed[0] = True
            return upscale.upscale_image(image[:, :64, :64], model, device=device)
        out = upscale.upscale_image(image, model, mode="model native", tile=0, device=device)
        assert out.shape == (1, 8192, 8192, 3)
        return None  # let the 805 MB output go before the next repeat

    return run


def _cases() -> list[BenchCase]:
    cases: list[BenchCase] = []
    for kind in ("compact", "rrdb"):
        for size, (w, h) in INPUTS.items():
            if kind == "rrdb" and size == "24MP" and not torch.cuda.is_available():
                continue
            for tile in (256, 512):
                mp_out = w * h * 16 / 1e6
                cases.append(
                    BenchCase(
                        name=f"upscale_{kind}_4x_tile{tile}",
                        kind="node",
                        size=size,
                        setup=_case(kind, tile, (w, h)),
                        note=f"tile {tile}; in {w}x{h} -> {mp_out:.1f} MP out",
                    )
                )
    cases.append(
        BenchCase(
            name="upscale_compact_4x_2048sq_memory",
            kind="node",
            size="24MP",
            setup=_memory_case,
            note="tile auto; in 2048x2048 -> 67.1 MP out; peak must be < 6 GB",
        )
    )
    return cases


CASES = _cases()
