"""FACE_REGIONS helpers: region names, masks on a grid, full-frame masks on request."""

from __future__ import annotations

import pytest
import torch

from portrait_polish.core import regions as R


def _face(crop=(10, 20, 30, 50), value=1.0) -> R.Face:
    x0, y0, x1, y1 = crop
    skin = torch.zeros(y1 - y0, x1 - x0)
    skin[5:10, 5:10] = value
    lips = torch.zeros(y1 - y0, x1 - x0)
    lips[12:14, 6:12] = 1.0
    return R.Face(box=(x0, y0, x1 - x0, y1 - y0), score=0.9, crop=crop, masks={"skin": skin, "upper_lip": lips}, scale=20.0)


def test_expand_region_names_groups_and_errors():
    assert R.expand_region_names("skin, lips") == ["skin", "upper_lip", "lower_lip"]
    assert R.expand_region_names(["eyes"]) == ["left_eye_white", "right_eye_white", "left_iris", "right_iris"]
    with pytest.raises(ValueError, match="unknown face region"):
        R.expand_region_names("freckles")


def test_full_frame_mask_places_crops():
    item = R.ImageFaces(height=64, width=64, faces=[_face()])
    full = R.full_frame_mask(item, "skin")
    assert full.shape == (64, 64)
    assert full[25:30, 15:20].min() == 1.0
    assert float(full.sum()) == 25.0
    both = R.full_frame_mask(item, "skin,lips")
    assert float(both.sum()) == 25.0 + 12.0


def test_person_and_background_from_low_res_person_mask():
    person = torch.zeros(8, 8)
    person[:, :4] = 1.0
    item = R.ImageFaces(height=32, width=32, person=person)
    mask = R.full_frame_mask(item, "person")
    assert mask.shape == (32, 32)
    assert mask[:, :12].min() > 0.99 and mask[:, 20:].max() < 0.01
    background = R.full_frame_mask(item, "background")
    assert torch.allclose(mask + background, torch.ones(32, 32))


def test_for_batch_size_mismatch_is_explained():
    regions = R.FaceRegions(images=[R.ImageFaces(64, 64, [])])
    with pytest.raises(ValueError, match="parsed at 64x64"):
        regions.for_batch(1, 32, 64)
    assert len(regions.for_batch(3, 64, 64)) == 3
    two = R.FaceRegions(images=[R.ImageFaces(64, 64, []), R.ImageFaces(64, 64, [])])
    with pytest.raises(ValueError, match="holds 2 image"):
        two.for_batch(3, 64, 64)


def test_regions_from_mask_bounds_and_empty_frames():
    mask = torch.zeros(2, 40, 50)
    mask[0, 10:20, 5:25] = 0.7
    wrapped = R.regions_from_mask(mask)
    assert len(wrapped.images) == 2 and wrapped.images[1].faces == []
    face = wrapped.images[0].faces[0]
    assert face.crop == (5, 10, 25, 20)
    assert torch.equal(R.full_frame_mask(wrapped.images[0], "skin"), mask[0])


def test_masks_on_a_coarse_grid_come_back_at_full_resolution_on_request() -> None:
    # A 40x60 crop whose masks live on a 10x15 grid (a quarter of the resolution).
    grid = torch.zeros(10, 15)
    grid[3:7, 4:11] = 1.0
    face = R.Face(box=(20.0, 10.0, 60.0, 40.0), score=0.9, crop=(20, 10, 80, 50), masks={"skin": grid}, scale=48.0)
    assert face.grid_size == (10, 15) and face.crop_size == (40, 60)
    assert abs(face.grid_factor - 0.25) < 1e-9 and abs(face.grid_scale - 12.0) < 1e-9
    full = face.crop_mask("skin")
    assert full.shape == (40, 60) and float(full[20, 30]) == 1.0 and float(full[0, 0]) == 0.0
    # A window straddling the crop's edge: the same values inside, zero outside the crop.
    window = face.window_mask("skin", R.Box(10, 20, 50, 45))
    assert window.shape == (25, 40)
    assert torch.allclose(window[:, 10:], full[10:35, :30], atol=1e-6) and float(window[:, :10].abs().max()) == 0.0
    assert abs(face.area_fraction("skin") - 28.0 / 144.0) < 1e-6
    item = R.ImageFaces(height=64, width=96, faces=[face])
    frame = R.full_frame_mask(item, "skin")
    assert torch.equal(frame[10:50, 20:80], full) and float(frame.sum()) == float(full.sum())
