"""FaceParse rows: 1 MP and 24 MP, one face and six faces.

Input: the public-domain astronaut (or PORTRAIT_POLISH_BENCH_PHOTO) scaled to the frame for
one face; for six faces the frame is tiled 3×2 with scaled copies of it. Timed: the whole
FaceParse node call (detection, landmarks, masks, the MASK output and the colour preview).
Masks are computed on a working copy of each face crop (face ≈ 384 px wide) and resized
to the crop, so 24 MP should cost little more than 1 MP apart from the full-frame outputs.
"""

from __future__ import annotations

import torch
from bench_inputs import portrait_image

from bench import BenchCase


def _tiled(width: int, height: int) -> torch.Tensor:
    columns, rows = 3, 2
    tile = portrait_image(width // columns, height // rows)
    row = torch.cat([tile] * columns, dim=2)
    frame = torch.cat([row] * rows, dim=1)
    out = torch.full((1, height, width, 3), 0.5)
    out[:, : frame.shape[1], : frame.shape[2]] = frame
    return out


def _setup(faces: int):  # noqa: ANN202
    def setup(width: int, height: int):  # noqa: ANN202
        from portrait_polish.nodes.parse import FaceParse

        image = portrait_image(width, height) if faces == 1 else _tiled(width, height)
        node = FaceParse()
        inputs = dict(FaceParse.INPUT_TYPES()["required"])
        kwargs = {name: spec[1]["default"] for name, spec in inputs.items() if name != "image"}

        def run() -> object:
            result = node.parse(image=image, **kwargs)
            found = sum(len(item.faces) for item in result["result"][1].images)
            if found != faces:
                raise RuntimeError(f"bench input should have {faces} face(s), FaceParse found {found}")
            return result

        return run

    return setup


CASES = [
    BenchCase("parse/1face", "node", "1MP", _setup(1), note="FaceParse node, astronaut"),
    BenchCase("parse/1face", "node", "24MP", _setup(1), note="FaceParse node, astronaut (face ~1800 px)"),
    BenchCase("parse/6faces", "node", "1MP", _setup(6), note="FaceParse node, astronaut tiled 3x2"),
    BenchCase("parse/6faces", "node", "24MP", _setup(6), note="FaceParse node, astronaut tiled 3x2"),
]
