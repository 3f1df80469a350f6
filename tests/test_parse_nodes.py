"""FaceParse and FaceRegionsToMask nodes, called the way ComfyUI calls them."""

from __future__ import annotations

import pytest
import torch
from helpers import astronaut, load_pack_as_comfyui, parsed_portrait

from portrait_polish.core.regions import FaceRegions, full_frame_mask

PACK = load_pack_as_comfyui()
FACE_PARSE = PACK.NODE_CLASS_MAPPINGS["PortraitPolishFaceParse"]
TO_MASK = PACK.NODE_CLASS_MAPPINGS["PortraitPolishFaceRegionsToMask"]


def _defaults(cls: type) -> dict[str, object]:
    return {name: spec[1]["default"] for name, spec in cls.INPUT_TYPES()["required"].items() if "default" in spec[1]}


def _parse(image: torch.Tensor, **overrides: object) -> dict[str, object]:
    kwargs = _defaults(FACE_PARSE) | overrides
    return getattr(FACE_PARSE(), FACE_PARSE.FUNCTION)(image=image, **kwargs)


def test_display_names_and_ids() -> None:
    assert PACK.NODE_DISPLAY_NAME_MAPPINGS["PortraitPolishFaceParse"] == "FaceParse"
    assert PACK.NODE_DISPLAY_NAME_MAPPINGS["PortraitPolishFaceRegionsToMask"] == "FaceRegionsToMask"


def test_outputs_mask_regions_preview_and_legend() -> None:
    image = astronaut()
    out = _parse(image, regions="skin, lips")
    mask, regions, preview = out["result"]
    # (ComfyUI imports the pack under its folder name, so compare by type name.)
    assert type(regions).__name__ == FaceRegions.__name__ and len(regions) == 1
    assert mask.shape == (1, 512, 512) and mask.dtype == torch.float32
    expected = full_frame_mask(regions.images[0], "skin, lips")
    assert torch.allclose(mask[0], expected, atol=1e-5)
    assert preview.shape == image.shape and preview.dtype == torch.float32
    # The preview differs from the photo only where a region or a face box is drawn.
    changed = (preview - image).abs().sum(-1)[0] > 1e-6
    drawn = full_frame_mask(regions.images[0], "skin, lips") > 0
    x, y, w, h = (round(v) for v in regions.images[0].faces[0].box)
    drawn[max(0, y - 1) : y + h + 1, max(0, x - 1) : x + w + 1] = True
    assert bool(changed.any()) and not bool((changed & ~drawn).any())
    legend = out["ui"]["portrait_polish_regions"]
    assert [entry["name"] for entry in legend] == ["skin", "upper_lip", "lower_lip"]
    assert all(entry["color"].startswith("#") and len(entry["color"]) == 7 for entry in legend)


def test_batch_with_and_without_faces() -> None:
    face = astronaut()
    blank = torch.zeros_like(face)
    mask, regions, preview = _parse(torch.cat([face, blank, face]))["result"]
    assert mask.shape[0] == preview.shape[0] == len(regions) == 3
    assert float(mask[1].sum()) == 0.0
    assert torch.equal(preview[1], blank[0])
    # Same frame twice, same masks (up to float rounding in multi-threaded reductions).
    assert float(mask[0].sum()) > 0 and torch.allclose(mask[0], mask[2], atol=1e-5)


def test_rgba_and_grey_input() -> None:
    rgb = astronaut()
    rgba = torch.cat([rgb, torch.full_like(rgb[..., :1], 0.5)], dim=-1)
    mask, _, preview = _parse(rgba)["result"]
    assert preview.shape[-1] == 3 and float(mask.sum()) > 0
    mask, _, _ = _parse(rgb.mean(-1, keepdim=True))["result"]
    assert float(mask.sum()) > 0


def test_bad_region_name_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="unknown face region 'cheekbones'"):
        _parse(astronaut(), regions="skin, cheekbones")


def test_regions_to_mask_picks_faces_and_grows() -> None:
    _, regions = parsed_portrait("jolie_pitt_couple.jpg", 768)
    node = TO_MASK()
    run = getattr(node, TO_MASK.FUNCTION)
    base = _defaults(TO_MASK)
    (everyone,) = run(face_regions=regions, **(base | {"regions": "skin"}))
    (left,) = run(face_regions=regions, **(base | {"regions": "skin", "faces": "index", "face_index": 0}))
    (right,) = run(face_regions=regions, **(base | {"regions": "skin", "faces": "index", "face_index": 1}))
    assert torch.allclose(torch.maximum(left, right), everyone)
    middle = everyone.shape[2] // 2
    assert float(left[0, :, middle:].sum()) < 0.01 * float(left.sum())  # face 0 is the left one
    (grown,) = run(face_regions=regions, **(base | {"regions": "skin", "grow": 3.0}))
    assert float(grown.sum()) > float(everyone.sum()) and torch.all(grown >= everyone - 1e-6)
    (person,) = run(face_regions=regions, **(base | {"regions": "background"}))
    assert 0.2 < float(person.mean()) < 0.95
