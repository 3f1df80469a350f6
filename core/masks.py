"""Mask helpers, in one place: smoothstep, boxes, morphology, coordinate grids, resampling.

Every op and the parser use these (there used to be two ``_smoothstep`` with opposite
argument orders and six dilate/erode helpers). Masks are float32 tensors in 0..1, ``[H, W]``
unless a function says otherwise. On the CPU the morphology uses OpenCV (its running
min/max is many times faster than a large ``max_pool2d``); on a GPU it stays in torch.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
import torch
import torch.nn.functional as F


def smoothstep(x: torch.Tensor, lo: float, hi: float) -> torch.Tensor:
    """0 below ``lo``, 1 above ``hi``, the cubic Hermite ramp between (``x`` first, always)."""
    t = ((x - lo) / (hi - lo)).clamp(0.0, 1.0)
    return t * t * (3.0 - 2.0 * t)


class Box(NamedTuple):
    """An integer window ``[x0, x1) × [y0, y1)`` in some image's pixel grid."""

    x0: int
    y0: int
    x1: int
    y1: int

    @property
    def width(self) -> int:
        return self.x1 - self.x0

    @property
    def height(self) -> int:
        return self.y1 - self.y0

    @property
    def size(self) -> tuple[int, int]:
        """(height, width)."""
        return self.y1 - self.y0, self.x1 - self.x0

    def slices(self) -> tuple[slice, slice]:
        """``(rows, columns)`` slices for indexing an ``[H, W, ...]`` array."""
        return slice(self.y0, self.y1), slice(self.x0, self.x1)

    def grow(self, margin: int, height: int, width: int) -> Box:
        """Grown by ``margin`` on every side, clipped to a ``height × width`` grid."""
        return Box(max(0, self.x0 - margin), max(0, self.y0 - margin), min(width, self.x1 + margin), min(height, self.y1 + margin))

    def shift(self, dx: int, dy: int) -> Box:
        return Box(self.x0 + dx, self.y0 + dy, self.x1 + dx, self.y1 + dy)

    def is_empty(self) -> bool:
        return self.x1 <= self.x0 or self.y1 <= self.y0


def bbox(mask: torch.Tensor, margin: int = 0, threshold: float = 0.0) -> Box | None:
    """The box around ``mask > threshold`` grown by ``margin`` (clipped), or None if empty."""
    hit = mask > threshold
    rows = hit.any(dim=1).nonzero()
    if rows.numel() == 0:
        return None
    cols = hit.any(dim=0).nonzero()
    height, width = mask.shape[-2:]
    return Box(int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1).grow(margin, height, width)


def grid_reach(box: Box, grid_size: tuple[int, int], full_size: tuple[int, int], margin: int = 0) -> Box:
    """The full-resolution box that bilinear upsampling of a grid spanning ``full_size``
    reaches from the grid pixels in ``box`` (every full-resolution pixel whose taps include
    one of them), grown by ``margin`` and clipped."""
    sy, sx = full_size[0] / grid_size[0], full_size[1] / grid_size[1]
    reach = Box(
        math.floor((box.x0 - 0.5) * sx - 0.5),
        math.floor((box.y0 - 0.5) * sy - 0.5),
        math.ceil((box.x1 + 0.5) * sx + 0.5),
        math.ceil((box.y1 + 0.5) * sy + 0.5),
    )
    return reach.grow(margin, *full_size)


def coordinate_grid(height: int, width: int, device: torch.device | None = None, origin: tuple[float, float] = (0.0, 0.0)) -> tuple[torch.Tensor, torch.Tensor]:
    """``(ys [H, 1], xs [1, W])`` float32 pixel-index coordinates (shifted by ``origin`` = (x, y)),
    broadcastable against each other: ``(xs - cx) ** 2 + (ys - cy) ** 2`` is a distance map."""
    ys = torch.arange(height, dtype=torch.float32, device=device)[:, None] + float(origin[1])
    xs = torch.arange(width, dtype=torch.float32, device=device)[None, :] + float(origin[0])
    return ys, xs


# ------------------------------------------------------------------------------- morphology


def _cv2_kernel(radius: int, disc: bool) -> np.ndarray:
    import cv2

    size = 2 * radius + 1
    if disc:
        return cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (size, size))
    return np.ones((size, size), np.uint8)


def dilate(mask: torch.Tensor, radius: int, disc: bool = False) -> torch.Tensor:
    """Grey dilation (max filter) over a ``(2r+1)²`` square (or disc); ``[H,W]`` or ``[B,H,W]``.

    Pixels outside the grid are ignored (nothing grows in from the border).
    """
    if radius <= 0:
        return mask
    if mask.ndim == 2 and (mask.device.type == "cpu" or disc):
        import cv2

        array = mask.detach().to("cpu", torch.float32).contiguous().numpy()
        out = cv2.dilate(array, _cv2_kernel(radius, disc), borderType=cv2.BORDER_REPLICATE)
        return torch.from_numpy(out).to(mask.device, mask.dtype)
    x = mask[None, None] if mask.ndim == 2 else mask[:, None]
    out = F.max_pool2d(x, kernel_size=2 * radius + 1, stride=1, padding=radius)
    return out[0, 0] if mask.ndim == 2 else out[:, 0]


def erode(mask: torch.Tensor, radius: int) -> torch.Tensor:
    """Grey erosion (min filter) over a ``(2r+1)²`` square; pixels outside the grid are
    ignored, so a mask that touches the grid's edge keeps touching it."""
    if radius <= 0:
        return mask
    if mask.device.type == "cpu" and mask.ndim == 2:
        import cv2

        array = mask.detach().to(torch.float32).contiguous().numpy()
        return torch.from_numpy(cv2.erode(array, _cv2_kernel(radius, False), borderType=cv2.BORDER_REPLICATE)).to(mask.dtype)
    x = mask[None, None] if mask.ndim == 2 else mask[:, None]
    out = -F.max_pool2d(-x, kernel_size=2 * radius + 1, stride=1, padding=radius)
    return out[0, 0] if mask.ndim == 2 else out[:, 0]


def closing(mask: torch.Tensor, radius: int) -> torch.Tensor:
    """Grey closing (dilate then erode, squares): fills dark gaps narrower than ``2·radius``
    (pores, freckles and moles stay inside a skin mask)."""
    if radius <= 0:
        return mask
    return erode(dilate(mask, radius), radius)


def fill_small_holes(mask: torch.Tensor, max_diameter: float) -> torch.Tensor:
    """Set enclosed holes of ``mask > 0.5`` no bigger than a disc of ``max_diameter`` to 1."""
    hard = (mask > 0.5).to("cpu", torch.uint8).numpy()
    if not hard.any() or max_diameter <= 0:
        return mask
    import cv2

    _count, labels, stats, _ = cv2.connectedComponentsWithStats(1 - hard, connectivity=4)
    height, width = hard.shape
    max_area = math.pi * (max_diameter / 2.0) ** 2
    x, y, w, h, area = (stats[:, i] for i in range(5))
    inner = (x > 0) & (y > 0) & (x + w < width) & (y + h < height) & (area <= max_area)
    inner[0] = False  # label 0 is the mask itself
    if not inner.any():
        return mask
    holes = torch.from_numpy(inner[labels] & (hard == 0)).to(mask.device)
    return torch.where(holes, torch.ones_like(mask), mask)


# ------------------------------------------------------------------------------- resampling


def resize(mask: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """``[H, W]`` or ``[C, H, W]`` resized to ``size`` (h, w): area averaging to shrink
    (OpenCV's exact-area weights on the CPU), bilinear with pixel centres aligned
    (``align_corners=False``) to grow."""
    if tuple(mask.shape[-2:]) == tuple(size):
        return mask
    x = mask[None, None] if mask.ndim == 2 else mask[None]
    if size[0] <= mask.shape[-2] and size[1] <= mask.shape[-1]:
        if mask.device.type == "cpu" and mask.dtype == torch.float32:
            planes = x[0].contiguous().numpy()
            out = torch.from_numpy(np.stack([_cv2_area(plane, size) for plane in planes]))
            return out[0] if mask.ndim == 2 else out
        out = F.interpolate(x, size=tuple(size), mode="area")
    else:
        out = F.interpolate(x, size=tuple(size), mode="bilinear", align_corners=False)
    return out[0, 0] if mask.ndim == 2 else out[0]


def _cv2_area(array: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    import cv2

    return cv2.resize(array, (int(size[1]), int(size[0])), interpolation=cv2.INTER_AREA)


def resize_image(rgb: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """An ``[H, W, C]`` image shrunk (area) or grown (bilinear) to ``size`` (h, w), float32."""
    if tuple(rgb.shape[:2]) == tuple(size):
        return rgb
    if rgb.device.type == "cpu" and size[0] <= rgb.shape[0] and size[1] <= rgb.shape[1]:
        # OpenCV reads a crop of a frame in place (rows may be strided): no copy of a 24 MP crop.
        array = rgb.detach().to(torch.float32).numpy()
        out = _cv2_area(array, size)
        return torch.from_numpy(out.reshape(size[0], size[1], -1))
    return resize(rgb.permute(2, 0, 1).to(torch.float32), size).permute(1, 2, 0).contiguous()


def _sample_positions(out_start: int, out_count: int, scale: float, offset: float, in_size: int, device: torch.device) -> torch.Tensor:
    """Where output pixels ``out_start + k`` sample an axis of the input, in ``grid_sample``'s
    normalised coordinates (pixel centres aligned: input position ``(p + 0.5)·scale − 0.5 + offset``)."""
    position = (torch.arange(out_count, dtype=torch.float32, device=device) + out_start + 0.5) * scale - 0.5 + offset
    return (2.0 * position + 1.0) / in_size - 1.0


def _bilinear(grid: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """``[C, h, w]`` resized bilinearly to ``size`` (pixel centres aligned): OpenCV on the
    CPU (about 3x torch's speed there, float weights), torch elsewhere."""
    if grid.device.type == "cpu" and grid.shape[0] <= 512:
        hwc = np.ascontiguousarray(grid.permute(1, 2, 0).numpy())
        out = cv2_resize_linear(hwc, size)
        return torch.from_numpy(out.reshape(size[0], size[1], -1)).permute(2, 0, 1)
    return F.interpolate(grid[None], size=tuple(size), mode="bilinear", align_corners=False)[0]


def cv2_resize_linear(array: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    import cv2

    return cv2.resize(array, (int(size[1]), int(size[0])), interpolation=cv2.INTER_LINEAR)


def upsample_window(
    grid: torch.Tensor,
    full_size: tuple[int, int],
    window: Box,
    *,
    grid_size: tuple[int, int] | None = None,
    offset: tuple[float, float] = (0.0, 0.0),
    fast: bool = False,
) -> torch.Tensor:
    """Bilinear resampling of ``grid`` (``[H, W]`` or ``[C, H, W]``), a coarser copy of a
    ``full_size`` area, evaluated on ``window`` of that area only (full-resolution pixels).

    Equal to ``F.interpolate(grid, size=full_size, mode="bilinear", align_corners=False)``
    cropped to ``window``, without ever making the full-size result: cost and memory follow
    the window. A grid that is a piece of (or padded around) the grid spanning the area says
    so with ``grid_size`` (the spanning grid's size, default ``grid``'s own) and ``offset``
    (x, y: where the spanning grid's pixel (0, 0) is in ``grid``). ``fast`` lets the CPU use
    OpenCV's warp, about 3x quicker, which places samples to 1/32 of a grid pixel: right for
    smooth fields (a correction's coefficients, paint layers), not for masks whose zeros
    decide what stays bit-exact.
    """
    squeeze = grid.ndim == 2
    g = (grid[None] if squeeze else grid).to(torch.float32)
    in_h, in_w = g.shape[-2:]
    nominal = tuple(grid_size or (in_h, in_w))
    whole = window == Box(0, 0, full_size[1], full_size[0]) and offset == (0.0, 0.0) and nominal == (in_h, in_w)
    if whole:
        out = g if (in_h, in_w) == tuple(full_size) else _bilinear(g, full_size)
    elif fast and g.device.type == "cpu":
        out = GridSampler(g, full_size, grid_size=nominal, offset=offset).at(window)
    else:
        gy = _sample_positions(window.y0, window.height, nominal[0] / full_size[0], float(offset[1]), in_h, g.device)
        gx = _sample_positions(window.x0, window.width, nominal[1] / full_size[1], float(offset[0]), in_w, g.device)
        sample_at = torch.stack(torch.meshgrid(gx, gy, indexing="xy"), dim=-1)[None]
        out = F.grid_sample(g[None], sample_at, mode="bilinear", padding_mode="border", align_corners=False)[0]
    return out[0] if squeeze else out


# OpenCV's bilinear warp has a fast path for up to 4 channels only (a 6-channel grid costs
# ten times a 3-channel one per value), so wider grids are warped 4 channels at a time.
_WARP_CHANNELS = 4


class GridSampler:
    """Bilinear samples of a smooth coarse grid (``[C, h, w]``, CPU) that spans a
    ``full_size`` area, on windows of that area: :func:`upsample_window`'s ``fast`` path
    (OpenCV's warp, samples placed to 1/32 of a grid pixel) with the grid laid out for OpenCV
    once, so many small windows (the tiles of a whole-frame pass) cost what their pixels cost.
    ``grid_size`` and ``offset`` as in :func:`upsample_window`.
    """

    def __init__(self, grid: torch.Tensor, full_size: tuple[int, int], *, grid_size: tuple[int, int] | None = None,
                 offset: tuple[float, float] = (0.0, 0.0)) -> None:
        grid = grid.detach().to("cpu", torch.float32)
        self.channels = grid.shape[0]
        self.full_size = (int(full_size[0]), int(full_size[1]))
        nominal = tuple(grid_size or grid.shape[-2:])
        self.scale = (nominal[0] / self.full_size[0], nominal[1] / self.full_size[1])
        self.offset = (float(offset[0]), float(offset[1]))
        self.same = nominal == tuple(grid.shape[-2:]) == self.full_size and self.offset == (0.0, 0.0)
        hwc = grid.permute(1, 2, 0).numpy()
        self.parts = [np.ascontiguousarray(hwc[..., c : c + _WARP_CHANNELS]) for c in range(0, self.channels, _WARP_CHANNELS)]

    def at(self, window: Box) -> torch.Tensor:
        """The grid on ``window`` of the full area, ``[C, h, w]`` (a channels-last array's view)."""
        if self.same:
            rows, cols = window.slices()
            return torch.from_numpy(np.concatenate([part[rows, cols] for part in self.parts], axis=-1)).permute(2, 0, 1)
        import cv2

        sy, sx = self.scale
        # Output pixel (k, l) samples the grid at ((window.x0 + l + 0.5)·sx − 0.5 + ox, ...).
        matrix = np.array(
            [[sx, 0.0, (window.x0 + 0.5) * sx - 0.5 + self.offset[0]], [0.0, sy, (window.y0 + 0.5) * sy - 0.5 + self.offset[1]]]
        )
        flags = cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP
        warped = [
            cv2.warpAffine(part, matrix, (window.width, window.height), flags=flags, borderMode=cv2.BORDER_REPLICATE).reshape(window.height, window.width, -1)
            for part in self.parts
        ]
        out = warped[0] if len(warped) == 1 else np.concatenate(warped, axis=-1)
        return torch.from_numpy(out).permute(2, 0, 1)


def value_range(x: torch.Tensor) -> tuple[float, float]:
    """(min, max) of a tensor; a strided tile of a CPU frame is read in place (numpy's
    reduction there is about 4x torch's on a 256-pixel tile)."""
    if x.device.type == "cpu" and x.dtype == torch.float32:
        array = x.detach().numpy()
        return float(array.min()), float(array.max())
    low, high = torch.aminmax(x)
    return float(low), float(high)


def tiles(height: int, width: int, size: int = 256) -> list[Box]:
    """``size``-pixel tiles covering a ``height × width`` frame, row by row: the unit of a
    whole-frame pass that only does work where something happens (a matte's edge)."""
    return [Box(x0, y0, min(width, x0 + size), min(height, y0 + size)) for y0 in range(0, height, size) for x0 in range(0, width, size)]


def grow_feather(mask: torch.Tensor, grow_px: float, feather_px: float) -> torch.Tensor:
    """Grow (dilate, > 0) or shrink (erode, < 0) by ``grow_px`` and blur by ``feather_px``."""
    from .filters import gaussian_blur

    radius = int(round(abs(grow_px)))
    if radius > 0:
        mask = dilate(mask, radius) if grow_px > 0 else erode(mask, radius)
    if feather_px > 0.3:
        mask = gaussian_blur(mask, feather_px).clamp(0.0, 1.0)
    return mask


__all__ = [
    "Box",
    "GridSampler",
    "bbox",
    "closing",
    "coordinate_grid",
    "dilate",
    "erode",
    "fill_small_holes",
    "grid_reach",
    "grow_feather",
    "resize",
    "resize_image",
    "smoothstep",
    "tiles",
    "upsample_window",
    "value_range",
]
