"""Background rows: PortraitMatte, PortraitBokeh and BackgroundReplace at 1 MP and 24 MP.

Input: the public-domain astronaut (or PORTRAIT_POLISH_BENCH_PHOTO) scaled to the frame, parsed
once by FaceParse in the setup (not timed). The matte is solved on a working copy (800 px
long side) and carried to full size strip by strip; the blur runs on a 1280 px copy; so
24 MP costs the full-size passes (upsampling, compositing) on top of what 1 MP does.

bench.py calls each case once before timing it, so pymatting's import (it compiles numba
kernels: about a minute the first time after install, then read from numba's cache) is not
in these rows; ``background/pymatting_import`` times that import in a fresh process.
"""

from __future__ import annotations

import subprocess
import sys
import time

from bench_inputs import portrait_image

from bench import BenchCase


def _defaults(cls: type) -> dict:
    return {name: spec[1]["default"] for name, spec in cls.INPUT_TYPES()["required"].items() if name != "image"}


def _parsed(width: int, height: int):  # noqa: ANN202
    from portrait_polish.core.parse import parse_faces

    image = portrait_image(width, height)
    return image, parse_faces(image)


def _matte(width: int, height: int):  # noqa: ANN202
    from portrait_polish.nodes.background import PortraitMatte

    image, regions = _parsed(width, height)
    node, widgets = PortraitMatte(), _defaults(PortraitMatte)
    return lambda: node.matte(image, face_regions=regions, **widgets)


def _with_matte(node_name: str):  # noqa: ANN202
    def setup(width: int, height: int):  # noqa: ANN202
        from portrait_polish.nodes import background

        image, regions = _parsed(width, height)
        alpha, foreground = background.PortraitMatte().matte(image, face_regions=regions, **_defaults(background.PortraitMatte))["result"]
        cls = getattr(background, node_name)
        node, widgets = cls(), _defaults(cls)
        call = getattr(node, cls.FUNCTION)
        return lambda: call(image, matte=alpha, foreground=foreground, **widgets)

    return setup


def _whole(node_name: str):  # noqa: ANN202
    """Matte and background node together, as the workflows run them (parsing not timed)."""

    def setup(width: int, height: int):  # noqa: ANN202
        from portrait_polish.nodes import background

        image, regions = _parsed(width, height)
        matte_node, matte_widgets = background.PortraitMatte(), _defaults(background.PortraitMatte)
        cls = getattr(background, node_name)
        node, widgets = cls(), _defaults(cls)
        call = getattr(node, cls.FUNCTION)

        def run() -> object:
            alpha, foreground = matte_node.matte(image, face_regions=regions, **matte_widgets)["result"]
            return call(image, matte=alpha, foreground=foreground, **widgets)

        return run

    return setup


def _pymatting_import(width: int, height: int):  # noqa: ANN202
    del width, height

    def run() -> float:
        start = time.perf_counter()
        subprocess.run([sys.executable, "-c", "import pymatting"], check=True)
        return time.perf_counter() - start

    return run


CASES = [
    BenchCase("background/matte", "node", "1MP", _matte, note="PortraitMatte, working copy 800 px"),
    BenchCase("background/matte", "node", "24MP", _matte, note="PortraitMatte, working copy 800 px"),
    BenchCase("background/bokeh", "node", "1MP", _with_matte("PortraitBokeh"), note="PortraitBokeh given the matte"),
    BenchCase("background/bokeh", "node", "24MP", _with_matte("PortraitBokeh"), note="PortraitBokeh given the matte"),
    BenchCase("background/replace", "node", "1MP", _with_matte("BackgroundReplace"), note="studio gradient, given the matte"),
    BenchCase("background/replace", "node", "24MP", _with_matte("BackgroundReplace"), note="studio gradient, given the matte"),
    BenchCase("background/matte+bokeh", "node", "24MP", _whole("PortraitBokeh"), note="matte + bokeh, as in portrait_bokeh"),
    BenchCase("background/matte+replace", "node", "24MP", _whole("BackgroundReplace"), note="matte + backdrop"),
    BenchCase("background/pymatting_import", "node", "1MP", _pymatting_import, note="a fresh process importing pymatting (numba cache warm)"),
]
