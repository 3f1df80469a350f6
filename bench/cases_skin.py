"""TextureSafeSmooth rows: the node call on a parsed portrait (parsing not timed).

Input: the public-domain astronaut (or PORTRAIT_POLISH_BENCH_PHOTO) scaled to 1 MP / 24 MP,
parsed once by FaceParse in the setup. The node works on each face's crop, with radii from
the face's size; at 24 MP the face itself is ~24× larger, so the medium/coarse split runs
on a downscaled copy (core/bands.py working factor) while the fine band stays full size.
"""

from __future__ import annotations

from bench_inputs import portrait_image

from bench import BenchCase


def _skin(width: int, height: int):  # noqa: ANN202
    from portrait_polish.core.parse import parse_faces
    from portrait_polish.nodes.skin import TextureSafeSmooth

    image = portrait_image(width, height)
    regions = parse_faces(image)
    node = TextureSafeSmooth()
    widgets = {name: spec[1]["default"] for name, spec in node.INPUT_TYPES()["required"].items() if name != "image"}
    return lambda: node.smooth(image=image, face_regions=regions, **widgets)


CASES = [
    BenchCase("texture_safe_smooth", "node", "1MP", _skin, repeats=2),
    BenchCase("texture_safe_smooth", "node", "24MP", _skin, repeats=1, note="face crop only; low bands on a downscaled copy"),
]
