"""Pixel models for FaceParse: this face's skin colour, and tooth enamel, in CIELAB.

Both follow the face's own skin (cheek and forehead samples), so dark and light skin,
warm and cool light work without fixed colour thresholds.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from ..masks import coordinate_grid


def sample_points(values: torch.Tensor, points: np.ndarray) -> torch.Tensor:
    """Values ``[h, w, C]`` at integer-rounded points (clipped into the image) -> ``[N, C]``."""
    height, width = values.shape[:2]
    pts = np.clip(np.floor(points).astype(int), 0, [width - 1, height - 1])
    return values[torch.from_numpy(pts[:, 1]), torch.from_numpy(pts[:, 0])]


def skin_likelihood(
    lab: torch.Tensor, samples: torch.Tensor, sample_xy: np.ndarray, tolerance: float = 1.0
) -> torch.Tensor:
    """Soft 0..1 'this pixel is this face's skin' from the face's own cheek/forehead samples.

    Works in lightness, chroma and hue. Hue must match the samples closely. Chroma may
    rise well above the samples' (freckles, moles, blush: more of the same pigment) but
    not fall far below (grey or dark hair, stubble, beard, frames, most backgrounds).
    Lightness follows a plane fitted to the samples over the face, so side light does not
    cut the shadowed half away; highlights (flash, sheen) are tolerated further, with the
    chroma the added white light removes put back.
    """
    height, width = lab.shape[:2]
    sample_chroma = torch.sqrt(samples[:, 1] ** 2 + samples[:, 2] ** 2)
    sample_hue = torch.atan2(samples[:, 2], samples[:, 1])
    c_ref = sample_chroma.median()
    h_ref = sample_hue.median()
    c_spread = torch.clamp((sample_chroma - c_ref).abs().median() * 1.5, min=3.5)
    h_spread = torch.clamp((sample_hue - h_ref).abs().median() * 1.5, min=0.09)
    # Lightness plane L = c0 + c1·x + c2·y by least squares over the samples.
    xy = torch.from_numpy(np.asarray(sample_xy, np.float32))
    design = torch.cat([torch.ones(len(xy), 1), xy / max(height, width)], dim=1)
    coeffs = torch.linalg.lstsq(design, samples[:, 0:1]).solution[:, 0]
    residual = samples[:, 0] - design @ coeffs
    l_spread = torch.clamp(residual.abs().median() * 1.5, min=7.0)
    ys, xs = coordinate_grid(height, width, lab.device)
    ys, xs = ys / max(height, width), xs / max(height, width)
    l_expected = coeffs[0] + coeffs[1] * xs + coeffs[2] * ys
    lightness = lab[..., 0]
    brighter = lightness > l_expected
    l_scale = torch.where(brighter, 4.4 * l_spread, 2.2 * l_spread)
    # A highlight adds white light, which lowers chroma as it raises lightness: forgive a
    # chroma deficit in step with the lightness excess (up to 15 L*, so white cloth or
    # a white wall, far brighter still, stays out).
    highlight = 0.8 * (lightness - l_expected).clamp(0.0, 15.0)
    chroma = torch.sqrt(lab[..., 1] ** 2 + lab[..., 2] ** 2)
    chroma_gap = chroma - c_ref
    chroma_gap = torch.where(chroma_gap < 0, (chroma_gap + highlight).clamp(max=0.0), chroma_gap)
    c_scale = torch.where(chroma_gap > 0, 5.0 * c_spread, 2.2 * c_spread)
    hue_diff = torch.remainder(torch.atan2(lab[..., 2], lab[..., 1]) - h_ref + math.pi, 2 * math.pi) - math.pi
    # Hue is meaningless for near-grey pixels; weigh its error by how coloured the pixel is.
    hue_weight = (chroma / c_ref.clamp(min=1.0)).clamp(max=1.0)
    d2 = (
        ((lightness - l_expected) / l_scale) ** 2
        + (chroma_gap / c_scale) ** 2
        + (hue_diff * hue_weight / (2.2 * h_spread)) ** 2
    ) / tolerance**2
    # Skin keeps its colour: well below half the face's chroma (after forgiving highlights)
    # a pixel is white or grey cloth in shade, grey hair or a wall, however close its
    # lightness and hue. Faces with little chroma to begin with (grey photos, cold light)
    # get the floor faded out (none below 6 C*, all of it from 12 C*).
    chroma_floor = 0.6 * c_ref - 2.0
    floor_strength = float(((c_ref - 6.0) / 6.0).clamp(0.0, 1.0))
    colourful = 1.0 - floor_strength * torch.sigmoid((chroma_floor - chroma - highlight) / 1.5)
    # 1 inside the model's core, falling smoothly to 0 beyond ~1.3 spreads.
    return torch.sigmoid((1.6 - d2) * 3.0) * colourful


def teeth_likelihood(
    lab: torch.Tensor, skin_lightness: float, skin_a: float = 16.0, skin_chroma: float = 30.0
) -> torch.Tensor:
    """Soft 0..1 'this is tooth enamel' score from CIELAB ``[..., 3]``.

    Teeth are the bright, low-chroma pixels of the mouth: brighter than the dark mouth
    cavity, less red than gums, tongue and lips (whose a* is well above the skin's) and
    less saturated than the skin. Every threshold follows the face's own skin (median
    L*, a*, chroma of cheek samples), so dark and light skin, warm and cool light work.
    """
    lightness, a_star, b_star = lab[..., 0], lab[..., 1], lab[..., 2]
    chroma = torch.sqrt(a_star**2 + b_star**2)
    l_threshold = float(np.clip(0.65 * skin_lightness, 30.0, 55.0))
    a_threshold = float(np.clip(0.8 * skin_a, 10.0, 16.0))
    c_threshold = float(np.clip(0.85 * skin_chroma, 22.0, 34.0))
    bright = torch.sigmoid((lightness - l_threshold) / 4.0)
    not_red = torch.sigmoid((a_threshold - a_star) / 2.5)
    low_chroma = torch.sigmoid((c_threshold - chroma) / 4.0)
    return bright * not_red * low_chroma
