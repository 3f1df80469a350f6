"""FACE_REGIONS helpers: region names, full-frame masks, per-face application."""

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


def test_apply_per_face_leaves_faceless_frames_and_outside_pixels_alone():
    torch.manual_seed(0)
    image = torch.rand(2, 64, 64, 3)
    regions = R.FaceRegions(images=[R.ImageFaces(64, 64, [_face()]), R.ImageFaces(64, 64, [])])

    def brighten_skin(crop, face):
        return torch.where(face.mask("skin")[..., None] > 0, crop * 0.5, crop)

    out = R.apply_per_face(image, regions, brighten_skin)
    assert out.shape == image.shape
    assert torch.equal(out[1], image[1])
    changed = (out[0] != image[0]).any(-1)
    assert changed.sum() == 25 and changed[25:30, 15:20].all()
    assert torch.equal(image, image.clone())  # input untouched (apply_per_face copies)


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


def test_dilate_mask():
    mask = torch.zeros(9, 9)
    mask[4, 4] = 1.0
    assert R.dilate_mask(mask, 2).sum() == 25
