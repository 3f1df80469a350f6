"""EyeEnhance's under-eye part: soften dark circles, keep the skin's texture.

Only the low-pass luminance of a band below the lower lid is lifted toward the cheek just
below it; pores and fine lines (the high band) are carried over unchanged, as
TextureSafeSmooth does. The band is built at full resolution on its own small window (the
face's landmarks give the lid; a 24 MP crop never costs a full-crop buffer).
"""

from __future__ import annotations

import math

import torch

from .filters import gaussian_blur, masked_blur
from .landmarks import LANDMARK_COUNT, LOWER_LID
from .masks import Box, coordinate_grid, dilate, smoothstep
from .regions import Face


def _lid_line(face: Face, side: str) -> torch.Tensor | None:
    """The lower lid as points ``[N, 2]`` in image pixels: MediaPipe's lower-lid landmarks,
    or the lower edge of the eye mask for a face without them."""
    if face.landmarks is not None and face.landmarks.shape[0] >= LANDMARK_COUNT:
        return face.landmarks[list(LOWER_LID[side])].to(torch.float32).cpu()
    crop = face.crop_box
    eye_mask = face.window_mask(f"{side}_eye", crop)
    cols = (eye_mask > 0.5).any(dim=0).nonzero().flatten()
    if cols.numel() < 4:
        return None
    xs = torch.linspace(float(cols.min()), float(cols.max()), 9)
    ys = []
    for xv in xs.round().long().tolist():
        rows = (eye_mask[:, xv] > 0.5).nonzero().flatten()
        ys.append(float(rows.max()) if rows.numel() else float("nan"))
    lid = torch.stack([xs, torch.tensor(ys)], dim=-1) + torch.tensor([float(crop.x0), float(crop.y0)])
    return lid[torch.isfinite(lid[:, 1])]


def under_eye_band(face: Face, side: str) -> tuple[Box, torch.Tensor] | None:
    """Soft band below the ``side`` eye's lower lid: its window (image coordinates) and the
    band on it, or None when the eye is too small or has no lid line.

    The band starts a little below the lid and reaches ~0.38 eye widths down, tapering at
    both corners; the eye itself (dilated: lashes) and anything outside the skin mask are
    cut out.
    """
    lid = _lid_line(face, side)
    if lid is None or lid.shape[0] < 3:
        return None
    lid = lid[torch.argsort(lid[:, 0])]
    eye_width = float(lid[-1, 0] - lid[0, 0])
    if eye_width < 6:
        return None
    crop = face.crop_box
    radius = max(1, int(0.04 * eye_width))
    # The lid's columns, and from the lid's top to 0.4 eye widths below it.
    window = Box(
        max(crop.x0, int(float(lid[0, 0])) - 1),
        max(crop.y0, int(float(lid[:, 1].min())) - radius - 1),
        min(crop.x1, int(math.ceil(float(lid[-1, 0]))) + 2),
        min(crop.y1, int(math.ceil(float(lid[:, 1].max()) + 0.4 * eye_width)) + 2),
    )
    if window.is_empty():
        return None
    ys, xs = coordinate_grid(window.height, window.width, origin=(float(window.x0), float(window.y0)))
    xs = xs[0]
    # Lid height per column (linear interpolation along the sorted landmark polyline).
    idx = torch.searchsorted(lid[:, 0].contiguous(), xs).clamp(1, lid.shape[0] - 1)
    xa, xb = lid[idx - 1, 0], lid[idx, 0]
    ya, yb = lid[idx - 1, 1], lid[idx, 1]
    t = ((xs - xa) / (xb - xa).clamp_min(1e-3)).clamp(0.0, 1.0)
    lid_y = ya + t * (yb - ya)
    # Horizontal taper: full in the middle of the eye, fading to zero at the corners.
    u = (xs - float(lid[0, 0])) / eye_width
    across = torch.sin(math.pi * u.clamp(0.0, 1.0)) ** 0.7
    depth = (ys - lid_y[None, :]) / eye_width
    band = smoothstep(depth, 0.02, 0.08) * (1.0 - smoothstep(depth, 0.22, 0.38)) * across[None, :]
    # The eye (dilated) is never part of the band; dilate on a padded window so eye pixels
    # just outside it still count.
    padded = window.grow(radius, face.crop_box.y1, face.crop_box.x1)
    eyes = dilate((face.window_mask(f"{side}_eye", padded) > 0.05).to(torch.float32), radius)
    band = band * (1.0 - eyes[window.y0 - padded.y0 : window.y1 - padded.y0, window.x0 - padded.x0 : window.x1 - padded.x0])
    if "skin" in face.masks:
        band = band * face.window_mask("skin", window)
    return window, band.clamp(0.0, 1.0)


def soften_under_eye(lab: torch.Tensor, band: torch.Tensor, eye_width: float, strength: float) -> torch.Tensor:
    """Lift the band's low-pass L* toward the cheek just below it (``lab`` ``[h, w, 3]``,
    the band window plus the cheek below); texture is kept as is."""
    light = lab[..., 0]
    sigma = max(1.0, 0.08 * eye_width)
    low = masked_blur(light, torch.ones_like(light), sigma, min_weight=1e-3, fallback="value", exact=True)
    # The cheek reference: the low-pass L* just under the band (same columns, further down).
    rows = (band > 0.05).any(dim=1).nonzero().flatten()
    cols = (band > 0.05).any(dim=0).nonzero().flatten()
    if rows.numel() == 0 or cols.numel() == 0:
        return lab
    r1 = int(rows.max()) + 1
    r2 = min(light.shape[0], r1 + max(2, int(0.2 * eye_width)))
    if r2 <= r1:
        return lab
    reference = float(low[r1:r2, int(cols.min()) : int(cols.max()) + 1].median())
    deficit = (reference - low).clamp_min(0.0)
    lift = gaussian_blur(deficit, sigma) * band * min(strength, 1.0)
    new_l = (light + lift).clamp(0.0, 100.0)
    return torch.stack([new_l, lab[..., 1], lab[..., 2]], dim=-1)


__all__ = ["soften_under_eye", "under_eye_band"]
