"""FaceParse core: detection, landmarks and region masks on real photos and synthetic input."""

from __future__ import annotations

import logging

import pytest
import torch
from helpers import astronaut, parsed_portrait, portrait

from portrait_polish.core.parse import parse_faces
from portrait_polish.core.regions import FACE_REGION_NAMES, full_frame_mask

# Regions every frontal face shows (teeth and hair depend on the photo).
ALWAYS_VISIBLE = (
    "skin",
    "nose",
    "left_brow",
    "right_brow",
    "left_eye_white",
    "right_eye_white",
    "left_iris",
    "right_iris",
    "upper_lip",
    "lower_lip",
)


def _inside_box(mask: torch.Tensor, box: tuple[float, ...], margin: float) -> float:
    """Fraction of a full-frame mask's weight inside the face box grown by ``margin`` × its size."""
    x, y, w, h = box
    x0, y0 = max(0, int(x - margin * w)), max(0, int(y - margin * h))
    x1, y1 = int(x + w * (1 + margin)) + 1, int(y + h * (1 + margin)) + 1
    total = float(mask.sum())
    return float(mask[y0:y1, x0:x1].sum()) / total if total > 0 else 0.0


@pytest.mark.parametrize(
    ("name", "count"), [("group_six_t1.jpg", 6), ("jolie_pitt_couple.jpg", 2), ("biden_2.jpg", 1), ("obama_1.jpg", 1)]
)
def test_face_count(name: str, count: int) -> None:
    _, regions = parsed_portrait(name)
    assert len(regions.images) == 1
    assert len(regions.images[0].faces) == count


def test_face_count_on_every_shared_portrait() -> None:
    """One face per photo except the couple (2) and the group (6); no false faces in
    backgrounds (paintings, blurred bystanders), none missed (close-ups, 3/4 views)."""
    from helpers import PORTRAITS, require_shared

    require_shared(PORTRAITS)
    expected = {"group_six_t1.jpg": 6, "jolie_pitt_couple.jpg": 2}
    names = sorted(p.name for p in PORTRAITS.iterdir() if p.suffix.lower() in (".jpg", ".png"))
    assert len(names) >= 20
    counts = {name: len(parse_faces(portrait(name, 640), refine=False, person=False).images[0].faces) for name in names}
    assert counts == {name: expected.get(name, 1) for name in names}


@pytest.mark.parametrize("name", ["biden_2.jpg", "jolie_1.jpg", "compreface_personA_2.jpg"])
def test_frontal_regions_non_empty_and_inside_face(name: str) -> None:
    image, regions = parsed_portrait(name)
    (face,) = regions.images[0].faces
    assert face.landmarks is not None and face.landmarks.shape == (478, 2)
    assert face.keypoints5 is not None and face.keypoints5.shape == (5, 2)
    # YuNet order: subject's right eye (image left) first.
    assert face.keypoints5[0, 0] < face.keypoints5[1, 0]
    assert set(face.masks) >= set(FACE_REGION_NAMES)
    # Masks live on the face's working grid (face ~384 px wide), never larger than the crop.
    height, width = face.grid_size
    assert height <= face.crop_size[0] and width <= face.crop_size[1]
    for region in FACE_REGION_NAMES:
        mask = face.masks[region]
        assert mask.shape == (height, width) and mask.dtype == torch.float32
        assert 0.0 <= float(mask.min()) and float(mask.max()) <= 1.0
    for region in ALWAYS_VISIBLE:
        full = full_frame_mask(regions.images[0], region)
        assert float(full.sum()) > 20.0, region
        # Forehead skin reaches a little above YuNet's box; everything else sits inside it.
        margin = 0.25 if region == "skin" else 0.02
        assert _inside_box(full, face.box, margin) > 0.97, region


def test_subject_left_is_image_right() -> None:
    _, regions = parsed_portrait("biden_2.jpg")
    face = regions.images[0].faces[0]
    item = regions.images[0]

    def centre_x(region: str) -> float:
        mask = full_frame_mask(item, region)
        xs = torch.arange(mask.shape[1], dtype=torch.float32)
        return float((mask.sum(0) * xs).sum() / mask.sum())

    assert centre_x("left_eye_white") > centre_x("right_eye_white")
    assert centre_x("left_brow") > centre_x("right_brow")
    assert face.scale > 100


def test_iris_inside_eye_opening() -> None:
    _, regions = parsed_portrait("jolie_1.jpg")
    face = regions.images[0].faces[0]
    for side in ("left", "right"):
        iris = face.masks[f"{side}_iris"]
        eye = face.mask(f"{side}_eye")
        assert float(iris.sum()) > 10
        assert float(torch.clamp(iris - eye, min=0).sum()) / float(iris.sum()) < 0.01


def test_no_face_passes_through_with_log(caplog: pytest.LogCaptureFixture) -> None:
    grey = torch.full((1, 96, 128, 3), 0.5)
    with caplog.at_level(logging.INFO, logger="portrait_polish"):
        regions = parse_faces(grey)
    assert len(regions.images) == 1 and regions.images[0].faces == []
    assert "no face" in caplog.text


def test_mixed_batch_keeps_order_and_count() -> None:
    face = astronaut()
    blank = torch.zeros_like(face)
    regions = parse_faces(torch.cat([blank, face, blank, face]))
    assert [len(item.faces) for item in regions.images] == [0, 1, 0, 1]


def test_grey_and_rgba_inputs() -> None:
    rgb = portrait("jolie_1.jpg", 512)
    grey = rgb.mean(dim=-1, keepdim=True)
    rgba = torch.cat([rgb, torch.ones_like(rgb[..., :1])], dim=-1)
    colour_skin = float(parse_faces(rgb).images[0].faces[0].masks["skin"].sum())
    for variant in (grey, rgba):
        regions = parse_faces(variant)
        assert len(regions.images[0].faces) == 1
        # A grey photo has no chroma for the skin model to go on: the skin must not vanish.
        assert float(regions.images[0].faces[0].masks["skin"].sum()) > 0.8 * colour_skin


# --- teeth ---------------------------------------------------------------------------------

TEETH_SHOW = [
    "biden_2.jpg",
    "clooney_2.jpg",
    "sundar_pichai.jpg",
    "u2net_black_woman_smile.jpg",
    "fairface_latina_smile.jpg",
    "obama_1.jpg",
]
MOUTH_CLOSED = [
    "jolie_1.jpg",
    "biden_1.jpg",
    "compreface_personA_2.jpg",
    "unsplash_black_woman.jpg",
    "u2net_older_black_woman.png",
]


def _teeth_share(name: str) -> float:
    """Teeth mask area relative to the face size squared (resolution-free)."""
    _, regions = parsed_portrait(name, 768)
    (face,) = regions.images[0].faces
    return face.area_fraction("teeth")


@pytest.mark.parametrize("name", TEETH_SHOW)
def test_teeth_found_where_they_show(name: str) -> None:
    assert _teeth_share(name) > 2e-3


@pytest.mark.parametrize("name", MOUTH_CLOSED)
def test_no_teeth_when_mouth_closed(name: str) -> None:
    assert _teeth_share(name) < 3e-4


def test_teeth_inside_mouth_interior() -> None:
    _, regions = parsed_portrait("biden_2.jpg", 768)
    face = regions.images[0].faces[0]
    assert torch.all(face.masks["teeth"] <= face.masks["mouth_interior"] + 1e-6)
