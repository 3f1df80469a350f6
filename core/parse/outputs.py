"""What FaceParse hands to people: full-frame MASKs of chosen regions and faces, the colour
preview, and the IoU the consistency tests measure.

Everything is computed on each face's mask grid and brought to full resolution once, on
the face's own window: a 24 MP frame costs one upsampling per face, not one per region.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from ..masks import Box, bbox, grid_reach, grow_feather, upsample_window
from ..regions import FACE_REGION_NAMES, IMAGE_REGION_NAMES, ImageFaces, expand_region_names, person_mask

# Preview colours per region (also sent to the canvas legend).
REGION_COLOURS: dict[str, str] = {
    "skin": "#f0a040",
    "neck": "#c07830",
    "nose": "#f0e040",
    "left_brow": "#8040ff",
    "right_brow": "#4080ff",
    "left_eye_white": "#40f0f0",
    "right_eye_white": "#40f0a0",
    "left_iris": "#ff3030",
    "right_iris": "#3030ff",
    "upper_lip": "#ff3090",
    "lower_lip": "#d020d0",
    "mouth_interior": "#700020",
    "teeth": "#30ff30",
    "hair": "#804010",
    "person": "#a0a0a0",
    "background": "#202020",
}

# Full-resolution painting is done in strips of about this many pixels (bounded memory).
STRIP_PIXELS = 1 << 21

# Regions that swap under a horizontal flip.
LEFT_RIGHT_PAIRS = (("left_brow", "right_brow"), ("left_eye_white", "right_eye_white"), ("left_iris", "right_iris"))


def choose_faces(item: ImageFaces, faces: str = "all", index: int = 0) -> list[int]:
    """Indices of the faces to use: ``all``, ``largest`` or ``index`` (faces are ordered
    left to right; an index past the last face selects none)."""
    if not item.faces:
        return []
    if faces == "largest":
        return [max(range(len(item.faces)), key=lambda i: item.faces[i].area())]
    if faces == "index":
        return [index] if 0 <= index < len(item.faces) else []
    return list(range(len(item.faces)))


def region_mask(
    item: ImageFaces,
    regions: str | Sequence[str],
    faces: str = "all",
    index: int = 0,
    grow: float = 0.0,
    feather: float = 0.0,
) -> torch.Tensor:
    """Full-frame ``[H, W]`` union of ``regions`` over the chosen faces.

    ``grow`` and ``feather`` are in percent of each face's size (``Face.scale``), so one
    setting fits every face of a group photo and every resolution; both are applied on the
    face's mask grid (padded so they are not cut at the crop's edge), then the result is
    upsampled to the frame. ``person`` and ``background`` come from the frame's person mask
    (grown/feathered relative to the largest face, or not at all when there is none).
    """
    names = expand_region_names(regions)
    face_names = [n for n in names if n in FACE_REGION_NAMES]
    out = torch.zeros(item.height, item.width, dtype=torch.float32)
    chosen = choose_faces(item, faces, index)
    for i in chosen if face_names else ():
        face = item.faces[i]
        grow_px = grow / 100.0 * face.grid_scale
        feather_px = feather / 100.0 * face.grid_scale
        crop = face.crop_box
        grid = face.mask(face_names)
        window, offset = crop, (0.0, 0.0)
        if abs(grow_px) >= 0.5 or feather_px > 0.3:
            # Pad the grid so growing and feathering are not cut at the crop's edge.
            pad = int(math.ceil(max(grow_px, 0.0) + 3 * feather_px)) + 1
            window = crop.grow(int(math.ceil(pad / face.grid_factor)), item.height, item.width)
            grid = grow_feather(torch.nn.functional.pad(grid[None], (pad, pad, pad, pad))[0], grow_px, feather_px)
            offset = (float(pad), float(pad))
        support = bbox(grid)
        if support is None:
            continue
        # Only where the (padded) grid has mask, brought to full resolution once.
        reach = grid_reach(support.shift(-int(offset[0]), -int(offset[1])), face.grid_size, crop.size).shift(crop.x0, crop.y0)
        window = Box(max(window.x0, reach.x0), max(window.y0, reach.y0), min(window.x1, reach.x1), min(window.y1, reach.y1))
        if window.is_empty():
            continue
        local_window = window.shift(-crop.x0, -crop.y0)
        local = upsample_window(grid, crop.size, local_window, grid_size=face.grid_size, offset=offset).clamp(0.0, 1.0)
        rows, cols = window.slices()
        out[rows, cols] = torch.maximum(out[rows, cols], local)
    image_names = [n for n in names if n in IMAGE_REGION_NAMES]
    if image_names and item.person is not None and chosen:
        person = person_mask(item)
        assert person is not None
        scale = max(item.faces[i].scale for i in chosen)
        if "person" in image_names:
            out = torch.maximum(out, grow_feather(person, grow / 100.0 * scale, feather / 100.0 * scale))
        if "background" in image_names:
            out = torch.maximum(out, grow_feather(1.0 - person, grow / 100.0 * scale, feather / 100.0 * scale))
    return out


def _colour(name: str) -> torch.Tensor:
    hex_code = REGION_COLOURS[name]
    return torch.tensor([int(hex_code[k : k + 2], 16) / 255.0 for k in (1, 3, 5)])


def preview_regions(rgb: torch.Tensor, item: ImageFaces, regions: Sequence[str] | None = None, opacity: float = 0.55) -> torch.Tensor:
    """The frame ``[H, W, 3]`` with each region painted in its colour (and face boxes outlined).

    Regions are painted one over the other in a fixed order. The paint is composed on the
    face's mask grid (colour layer C and remaining transparency T, so ``pixel·T + C`` is the
    painted pixel) and brought to full resolution once per face.
    """
    out = rgb[..., :3].clone()
    names = list(regions) if regions is not None else list(FACE_REGION_NAMES)
    for face in item.faces:
        crop = face.crop_box
        grid_h, grid_w = face.grid_size
        colour_layer = torch.zeros(3, grid_h, grid_w)
        transparency = torch.ones(1, grid_h, grid_w)
        for name in names:
            mask = face.masks.get(name)
            if mask is None:
                continue
            weight = (mask.to(torch.float32) * opacity)[None]
            colour_layer = colour_layer * (1.0 - weight) + _colour(name)[:, None, None] * weight
            transparency = transparency * (1.0 - weight)
        painted = bbox(1.0 - transparency[0])
        if painted is None:
            continue
        layers = torch.cat([colour_layer, transparency])
        # Brought up and painted only where there is paint, in strips of rows: a 24 MP crop
        # never holds a full-size copy of the four paint layers.
        area = grid_reach(painted, (grid_h, grid_w), crop.size)
        step = max(16, STRIP_PIXELS // max(1, area.width))
        for top in range(area.y0, area.y1, step):
            strip = Box(area.x0, top, area.x1, min(area.y1, top + step))
            up = upsample_window(layers, crop.size, strip, fast=True).permute(1, 2, 0)
            rows, cols = strip.shift(crop.x0, crop.y0).slices()
            out[rows, cols] = torch.addcmul(up[..., :3], out[rows, cols], up[..., 3:])
        # Face box outline, 2 px or 0.5 % of the face size.
        bx, by, bw, bh = (round(v) for v in face.box)
        thick = max(2, round(face.scale * 0.005))
        bx0, by0 = max(0, bx), max(0, by)
        bx1, by1 = min(item.width, bx + bw), min(item.height, by + bh)
        if bx1 > bx0 and by1 > by0:
            white = torch.tensor([1.0, 1.0, 1.0])
            out[by0 : by0 + thick, bx0:bx1] = white
            out[max(by0, by1 - thick) : by1, bx0:bx1] = white
            out[by0:by1, bx0 : bx0 + thick] = white
            out[by0:by1, max(bx0, bx1 - thick) : bx1] = white
    return out.clamp_(0.0, 1.0)  # in place: out is our own copy (a 96 MP frame is 1.15 GB)


def mask_iou(a: torch.Tensor, b: torch.Tensor, threshold: float = 0.5) -> float:
    """IoU of two soft masks thresholded at ``threshold`` (1.0 when both are empty)."""
    ha, hb = a > threshold, b > threshold
    union = (ha | hb).sum().item()
    return 1.0 if union == 0 else (ha & hb).sum().item() / union
