"""How the retouch nodes that work on face parts get their regions: FACE_REGIONS, a MASK, or both.

- FACE_REGIONS only: FaceParse's per-face masks.
- MASK only: the mask stands for the part itself (teeth, eyes); see each node's wrapper.
- Both: FaceParse's masks, limited to where the MASK is non-zero (paint which faces or
  which side to touch).
- Neither: a clear error that says what to connect.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

import torch

from .masks import resize
from .regions import FaceRegions, ImageFaces
from .tensors import as_image_batch, as_mask_batch, from_rgb


def limit_regions_by_mask(regions: FaceRegions, mask: torch.Tensor, batch: int, height: int, width: int) -> FaceRegions:
    """A copy of ``regions`` whose every face mask is multiplied by ``mask`` (on the face's crop)."""
    masks = as_mask_batch(mask, batch)
    assert masks is not None
    if tuple(masks.shape[1:]) != (height, width):
        raise ValueError(f"MASK is {masks.shape[2]}x{masks.shape[1]} but the IMAGE is {width}x{height}; they must be the same size")
    items = regions.for_batch(batch, height, width)
    images: list[ImageFaces] = []
    for frame, item in enumerate(items):
        limit = masks[frame].to(torch.float32).cpu()
        faces = []
        for face in item.faces:
            rows, cols = face.crop_box.slices()
            # The limit on the face's own mask grid (area-averaged when the grid is coarser).
            window = resize(limit[rows, cols], face.grid_size)
            faces.append(replace(face, masks={name: value * window.to(value.device) for name, value in face.masks.items()}))
        images.append(replace(item, faces=faces))
    return replace(regions, images=images)


def resolve_regions(
    node: str,
    image: torch.Tensor,
    face_regions: FaceRegions | None,
    mask: torch.Tensor | None,
    from_mask: Callable[[torch.Tensor, torch.Tensor], FaceRegions],
) -> FaceRegions:
    """The regions a node works on, from whichever of FACE_REGIONS / MASK it was given.

    ``image`` is the RGB IMAGE ``[B, H, W, 3]``; ``from_mask(image, mask)`` turns a plain
    MASK into regions for this node's part.
    """
    batch, height, width = image.shape[0], image.shape[1], image.shape[2]
    if face_regions is None and mask is None:
        raise ValueError(
            f"{node} needs to know where to work: connect FACE_REGIONS (from FaceParse) or a MASK "
            "(drawn, or from any mask node); with both, the MASK limits FaceParse's regions"
        )
    # Duck-typed: the pack may be imported under two names (ComfyUI's folder name and
    # portrait_polish), which gives two FaceRegions classes for the same thing.
    if face_regions is not None and not (hasattr(face_regions, "images") and hasattr(face_regions, "for_batch")):
        raise TypeError(f"{node}: face_regions must be FaceParse's FACE_REGIONS output, got {type(face_regions).__name__}")
    if face_regions is None:
        masks = as_mask_batch(mask, batch)
        assert masks is not None
        if tuple(masks.shape[1:]) != (height, width):
            raise ValueError(f"MASK is {masks.shape[2]}x{masks.shape[1]} but the IMAGE is {width}x{height}; they must be the same size")
        return from_mask(image, masks)
    if mask is None:
        return face_regions
    return limit_regions_by_mask(face_regions, mask, batch, height, width)


def split_layout(image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, int, torch.Tensor | None]:
    """``(base, rgb, channels, alpha)``: the float32 IMAGE, its 3-channel view, and what
    :func:`restore_layout` needs. Like :func:`core.tensors.to_rgb`, but validates the frame
    once (on 24 MP each validation pass is a noticeable cost) and keeps ``base``."""
    base = as_image_batch(image)
    channels = base.shape[-1]
    if channels == 1:
        return base, base.expand(-1, -1, -1, 3), 1, None
    if channels == 4:
        return base, base[..., :3], 4, base[..., 3]
    return base, base, channels, None


def restore_layout(base: torch.Tensor, rgb_in: torch.Tensor, rgb_out: torch.Tensor, channels: int, alpha: torch.Tensor | None) -> torch.Tensor:
    """Give ``rgb_out`` the input's layout (grey, RGB, RGBA) with untouched pixels bit-exact.

    ``base``/``rgb_in`` come from :func:`split_layout`. Unchanged output is ``base`` itself;
    a grey frame keeps its own value wherever nothing changed (the mean of three equal
    floats is not always that float).
    """
    if rgb_out is rgb_in:
        return base
    if channels == 1:
        changed = (rgb_out != rgb_in).any(dim=-1, keepdim=True)
        return torch.where(changed, rgb_out.mean(dim=-1, keepdim=True), base)
    return from_rgb(rgb_out, channels, alpha)
