"""TeethWhiten and EyeEnhance rows: the node call on a parsed portrait (parsing not timed).

Input: the public-domain astronaut (or PORTRAIT_POLISH_BENCH_PHOTO) scaled to 1 MP / 24 MP,
parsed once by FaceParse in the setup. Both nodes work on a window around the teeth or
each eye, so 24 MP should cost about what 1 MP does, plus the frame copy.
"""

from __future__ import annotations

from bench_inputs import portrait_image

from bench import BenchCase


def _parsed(width: int, height: int):  # noqa: ANN202
    from portrait_polish.core.parse import parse_faces

    image = portrait_image(width, height)
    return image, parse_faces(image)


def _teeth(width: int, height: int):  # noqa: ANN202
    from portrait_polish.nodes.teeth import TeethWhiten

    image, regions = _parsed(width, height)
    node = TeethWhiten()
    return lambda: node.whiten(image=image, strength=0.5, brighten=0.5, natural_cap=True, face_regions=regions)


def _eyes(under_eye: float):  # noqa: ANN202
    def setup(width: int, height: int):  # noqa: ANN202
        from portrait_polish.nodes.eyes import EyeEnhance

        image, regions = _parsed(width, height)
        node = EyeEnhance()
        return lambda: node.enhance(
            image=image,
            whites=0.5,
            iris_clarity=0.5,
            iris_saturation=0.0,
            limbal_ring=0.0,
            catchlight=0.3,
            under_eye=under_eye,
            face_regions=regions,
        )

    return setup


CASES = [
    BenchCase("teeth_whiten", "node", "1MP", _teeth, repeats=3),
    BenchCase("teeth_whiten", "node", "24MP", _teeth, repeats=2),
    BenchCase("eye_enhance", "node", "1MP", _eyes(0.0), repeats=3),
    BenchCase("eye_enhance", "node", "24MP", _eyes(0.0), repeats=2),
    BenchCase("eye_enhance_under_eye", "node", "1MP", _eyes(0.5), repeats=3, note="with dark-circle softening"),
    BenchCase("eye_enhance_under_eye", "node", "24MP", _eyes(0.5), repeats=2, note="with dark-circle softening"),
]
