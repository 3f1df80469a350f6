"""core.masks: one smoothstep, one bbox, one morphology, resampling that follows windows."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from portrait_polish.core.masks import (
    Box,
    bbox,
    closing,
    dilate,
    erode,
    fill_small_holes,
    grow_feather,
    resize,
    smoothstep,
    upsample_window,
)


def test_smoothstep_takes_the_value_first() -> None:
    x = torch.tensor([-1.0, 0.0, 0.5, 1.0, 2.0])
    assert torch.allclose(smoothstep(x, 0.0, 1.0), torch.tensor([0.0, 0.0, 0.5, 1.0, 1.0]))
    assert float(smoothstep(torch.tensor(0.25), 0.0, 1.0)) < 0.25  # eased, not linear


def test_bbox_and_box_helpers() -> None:
    mask = torch.zeros(20, 30)
    mask[5:8, 10:14] = 0.3
    box = bbox(mask)
    assert box == Box(10, 5, 14, 8) and box.size == (3, 4)
    assert bbox(mask, margin=20) == Box(0, 0, 30, 20)  # clipped to the grid
    assert bbox(mask, threshold=0.5) is None
    assert bbox(torch.zeros(4, 4)) is None


def test_dilate_erode_ignore_the_border_and_closing_fills_gaps() -> None:
    mask = torch.zeros(9, 9)
    mask[4, 4] = 1.0
    assert float(dilate(mask, 2).sum()) == 25.0
    full = torch.ones(9, 9)
    assert torch.equal(erode(full, 3), full)  # touching the edge stays touching it
    gap = torch.ones(12, 12)
    gap[:, 5:7] = 0.0
    assert torch.equal(closing(gap, 2), torch.ones(12, 12))
    assert float(erode(gap, 1)[:, 4].sum()) == 0.0
    # GPU-style (torch) path gives the same answer as OpenCV's.
    batch = dilate(mask[None], 2)[0]
    assert torch.equal(batch, dilate(mask, 2))


def test_fill_small_holes_keeps_big_ones() -> None:
    mask = torch.ones(40, 40)
    mask[5:7, 5:7] = 0.0  # a freckle-sized hole
    mask[15:35, 15:35] = 0.0  # an eye-sized hole
    filled = fill_small_holes(mask, 4.0)
    assert float(filled[5:7, 5:7].min()) == 1.0
    assert float(filled[20:30, 20:30].max()) == 0.0


def test_upsample_window_equals_interpolate_crop_and_handles_pieces() -> None:
    torch.manual_seed(0)
    grid = torch.rand(3, 30, 25)
    full = (300, 250)
    reference = F.interpolate(grid[None], size=full, mode="bilinear", align_corners=False)[0]
    window = Box(40, 60, 190, 270)
    assert torch.allclose(upsample_window(grid, full, window), reference[:, 60:270, 40:190], atol=1e-5)
    assert torch.allclose(upsample_window(grid, full, Box(0, 0, 250, 300)), reference, atol=1e-6)
    # A piece of the grid, told where it sits.
    piece = grid[:, 5:25, 3:20]
    inner = Box(60, 80, 180, 230)
    got = upsample_window(piece, full, inner, grid_size=(30, 25), offset=(-3.0, -5.0))
    assert torch.allclose(got, reference[:, 80:230, 60:180], atol=1e-5)
    # A padded grid, told its padding.
    padded = F.pad(grid, (2, 2, 2, 2))
    got = upsample_window(padded, full, window, grid_size=(30, 25), offset=(2.0, 2.0))
    assert torch.allclose(got, reference[:, 60:270, 40:190], atol=1e-5)


def test_resize_shrinks_by_area_and_grows_bilinearly() -> None:
    mask = torch.zeros(8, 8)
    mask[:4, :4] = 1.0
    small = resize(mask, (2, 2))
    assert torch.allclose(small, torch.tensor([[1.0, 0.0], [0.0, 0.0]]))
    big = resize(small, (8, 8))
    assert big.shape == (8, 8) and float(big[0, 0]) == 1.0 and float(big[-1, -1]) == 0.0


def test_grow_feather() -> None:
    mask = torch.zeros(41, 41)
    mask[20, 20] = 1.0
    assert float((grow_feather(mask, 3, 0) > 0).sum()) == 49.0
    shrunk = grow_feather(torch.ones(41, 41), -3, 0)
    assert float(shrunk.min()) == 1.0  # nothing outside the grid to shrink from
    soft = grow_feather(mask, 0, 2.0)
    assert 0.0 < float(soft.max()) < 1.0
