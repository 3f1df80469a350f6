"""FaceParse consistency checks that need no hand labels (issue: flip, 50 % scale, ±10 % brightness).

The masks of a mirrored photo must be the mirrored masks (left/right swapped); a photo at
half size must give the same regions; a slightly brighter or darker exposure must not move
them. Measured as IoU of the masks thresholded at 0.5.
"""

from __future__ import annotations

from functools import lru_cache

import pytest
import torch
import torch.nn.functional as F
from helpers import parsed_portrait

from portrait_polish.core.parse import LEFT_RIGHT_PAIRS, mask_iou, parse_faces
from portrait_polish.core.regions import FACE_REGION_NAMES, ImageFaces, full_frame_mask

SWAP = {a: b for a, b in LEFT_RIGHT_PAIRS} | {b: a for a, b in LEFT_RIGHT_PAIRS}
FRONTAL = "jolie_1.jpg"  # frontal, eyes open, mouth closed; face ~360 px at 1024
SMILE = "biden_2.jpg"  # broad smile with teeth, squinting eyes
OPEN_SMILE = "sundar_pichai.jpg"  # frontal, smiling with teeth, bigger face
SIZE = 1024
# The bar, for every region (flip) and for skin, lips and eyes (half size).
MIN_IOU = 0.9


@lru_cache(maxsize=16)
def _variant(name: str, kind: str) -> tuple[torch.Tensor, ImageFaces]:
    image, _ = parsed_portrait(name, SIZE)
    if kind == "flip":
        image = image.flip(2)
    elif kind == "half":
        image = F.interpolate(image.permute(0, 3, 1, 2), scale_factor=0.5, mode="area").permute(0, 2, 3, 1)
    elif kind == "bright":
        image = (image * 1.1).clamp(0.0, 1.0)
    elif kind == "dark":
        image = image * 0.9
    return image, parse_faces(image).images[0]


def _base(name: str) -> ImageFaces:
    return parsed_portrait(name, SIZE)[1].images[0]


def _present(item: ImageFaces, region: str, min_pixels: int = 150) -> bool:
    return int((full_frame_mask(item, region) > 0.5).sum()) >= min_pixels


@pytest.mark.parametrize("name", [FRONTAL, SMILE, OPEN_SMILE])
@pytest.mark.parametrize("region", FACE_REGION_NAMES)
def test_flip_gives_mirrored_masks(name: str, region: str) -> None:
    base = _base(name)
    _, flipped = _variant(name, "flip")
    assert len(flipped.faces) == len(base.faces) == 1
    if not _present(base, region):
        # Closed mouth: no teeth, (almost) no mouth interior on either side.
        assert int((full_frame_mask(flipped, SWAP.get(region, region)) > 0.5).sum()) < 150
        return
    mirrored = full_frame_mask(flipped, SWAP.get(region, region)).flip(1)
    iou = mask_iou(full_frame_mask(base, region), mirrored)
    assert iou >= MIN_IOU, f"{name} {region}: IoU {iou:.3f}"


def test_flip_swaps_left_and_right() -> None:
    base = _base(FRONTAL)
    _, flipped = _variant(FRONTAL, "flip")
    # Without the swap the mirrored left iris would not overlap the base left iris at all.
    wrong = mask_iou(full_frame_mask(base, "left_iris"), full_frame_mask(flipped, "left_iris").flip(1))
    assert wrong < 0.05


@pytest.mark.parametrize(
    ("name", "region"),
    [(n, r) for n in (FRONTAL, SMILE, OPEN_SMILE) for r in ("skin", "lips", "eyes")]
    # The parts as well, where the face is big enough for them at half size.
    + [(FRONTAL, r) for r in ("upper_lip", "lower_lip", "left_eye_white", "right_iris", "nose", "brows", "hair")],
)
def test_half_size_gives_same_regions(name: str, region: str) -> None:
    base = _base(name)
    _, small = _variant(name, "half")
    full = full_frame_mask(base, region)
    upsampled = F.interpolate(
        full_frame_mask(small, region)[None, None], size=full.shape, mode="bilinear", align_corners=False
    )[0, 0]
    iou = mask_iou(full, upsampled)
    assert iou >= MIN_IOU, f"{name} {region}: IoU {iou:.3f}"


@pytest.mark.parametrize("name", [FRONTAL, SMILE, OPEN_SMILE])
@pytest.mark.parametrize("kind", ["bright", "dark"])
def test_stable_under_brightness(name: str, kind: str) -> None:
    base = _base(name)
    _, changed = _variant(name, kind)
    assert len(changed.faces) == len(base.faces)
    regions = ["skin", "nose", "brows", "lips", "eyes", "left_iris", "right_iris", "left_eye_white", "right_eye_white"]
    if name != FRONTAL:
        regions += ["teeth", "mouth_interior"]
    for region in regions:
        iou = mask_iou(full_frame_mask(base, region), full_frame_mask(changed, region))
        assert iou >= MIN_IOU, f"{name} {kind} {region}: IoU {iou:.3f}"
    # Hair and neck come from colour models on purpose, so exposure moves their edges more.
    for region in ("hair", "neck"):
        iou = mask_iou(full_frame_mask(base, region), full_frame_mask(changed, region))
        assert iou >= 0.65, f"{name} {kind} {region}: IoU {iou:.3f}"
