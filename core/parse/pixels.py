"""Pixel models for FaceParse: this face's skin colour, and tooth enamel, in CIELAB.

Both follow the face's own skin (cheek and forehead samples), so dark and light skin,
warm and cool light work without fixed colour thresholds.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from ..masks import closing, coordinate_grid, erode


def sample_points(values: torch.Tensor, points: np.ndarray) -> torch.Tensor:
    """Values ``[h, w, C]`` at integer-rounded points (clipped into the image) -> ``[N, C]``."""
    height, width = values.shape[:2]
    pts = np.clip(np.floor(points).astype(int), 0, [width - 1, height - 1])
    return values[torch.from_numpy(pts[:, 1]), torch.from_numpy(pts[:, 0])]


def blurred_at_points(rgb: torch.Tensor, points: np.ndarray, sigma: float) -> torch.Tensor:
    """``sample_points(gaussian_blur(rgb, sigma), points)`` without blurring the whole image:
    the same Gaussian (cut at 3σ, mirrored at the border) evaluated at each point only.
    ``rgb`` is ``[h, w, C]``; returns ``[N, C]``."""
    from ..filters import gaussian_kernel1d

    height, width = rgb.shape[:2]
    kernel = gaussian_kernel1d(sigma).to(rgb.dtype)
    radius = kernel.numel() // 2
    pts = np.clip(np.floor(points).astype(int), 0, [width - 1, height - 1])

    def taps(centre: int, size: int) -> torch.Tensor:
        index = np.arange(centre - radius, centre + radius + 1)
        # Reflect-101, as the full-image blur pads (valid for radius < size).
        index = np.abs(index)
        index = np.where(index >= size, 2 * (size - 1) - index, index)
        return torch.from_numpy(np.clip(index, 0, size - 1))

    out = []
    for x, y in pts:
        patch = rgb[taps(int(y), height)][:, taps(int(x), width)]  # [k, k, C]
        out.append(torch.einsum("i,j,ijc->c", kernel, kernel, patch))
    return torch.stack(out)


# Skin in shade keeps at least this share of the chroma expected for it (see skin_likelihood).
SHADE_CHROMA_FROM = 0.75


def skin_likelihood(
    lab: torch.Tensor, samples: torch.Tensor, sample_xy: np.ndarray, tolerance: float = 1.0, shade: float = 0.0
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
    # Shade: the same skin in less light is darker and, in proportion, less saturated
    # (all of its linear RGB scaled alike). Darkness down to (1 − shade) of the expected
    # lightness is forgiven, and the chroma expected (and its floor) fall with the light;
    # hair, beard and stubble in shade stay out by their lower chroma.
    chroma = torch.sqrt(lab[..., 1] ** 2 + lab[..., 2] ** 2)
    light = (lightness / l_expected.clamp_min(1.0)).clamp(1.0 - shade, 1.0)
    # Only what keeps the skin's colour in the shade is forgiven its darkness: hair, beard
    # and stubble in shade are far greyer than the skin would be there.
    keeps_colour = ((chroma / (c_ref * light).clamp_min(1.0) - SHADE_CHROMA_FROM) / (1.0 - SHADE_CHROMA_FROM)).clamp(0.0, 1.0)
    light = 1.0 - (1.0 - light) * keeps_colour
    l_error = torch.where(brighter, lightness - l_expected, l_expected * light - lightness)
    # A highlight adds white light, which lowers chroma as it raises lightness: forgive a
    # chroma deficit in step with the lightness excess (up to 15 L*, so white cloth or
    # a white wall, far brighter still, stays out).
    highlight = 0.8 * (lightness - l_expected).clamp(0.0, 15.0)
    chroma_gap = chroma - c_ref * light
    chroma_gap = torch.where(chroma_gap < 0, (chroma_gap + highlight).clamp(max=0.0), chroma_gap)
    c_scale = torch.where(chroma_gap > 0, 5.0 * c_spread, 2.2 * c_spread)
    hue_diff = torch.remainder(torch.atan2(lab[..., 2], lab[..., 1]) - h_ref + math.pi, 2 * math.pi) - math.pi
    # Hue is meaningless for near-grey pixels; weigh its error by how coloured the pixel is.
    hue_weight = (chroma / c_ref.clamp(min=1.0)).clamp(max=1.0)
    d2 = (
        (l_error / l_scale) ** 2
        + (chroma_gap / c_scale) ** 2
        + (hue_diff * hue_weight / (2.2 * h_spread)) ** 2
    ) / tolerance**2
    # Skin keeps its colour: well below half the face's chroma (after forgiving highlights)
    # a pixel is white or grey cloth in shade, grey hair or a wall, however close its
    # lightness and hue. Faces with little chroma to begin with (grey photos, cold light)
    # get the floor faded out (none below 6 C*, all of it from 12 C*).
    chroma_floor = 0.6 * c_ref * light - 2.0
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


# Strands (strand_texture): the fine texture of hair, beard and stubble against the
# forehead's own, as ratios (with the chroma loss added) from which a pixel starts and ends
# being strands; the texture window and the closing/erosion that follow, in its widths.
HAIR_TEXTURE_FROM = 1.6
HAIR_TEXTURE_TO = 2.4
HAIR_TEXTURE_WINDOW = 0.008
HAIR_ERODE = 2.0
HAIR_CLOSE = 4.0


def strand_texture(lab: torch.Tensor, forehead: torch.Tensor, scale: float) -> torch.Tensor:
    """Soft 0..1 'these are strands (hair, beard, stubble), not skin' from texture and
    chroma, judged against this forehead's own (``forehead``: a mask of forehead skin,
    ``[h, w]``; ``lab`` ``[h, w, 3]``; ``scale`` the face width in its pixels).

    Hair of the skin's hue (blond, light brown; grey or white over a pale scalp) and beard
    in shade come close to skin in colour; their strands give them away: a fine texture
    many times the skin's (pores included), and a chroma below the skin's.
    """
    from ..filters import gaussian_blur

    lightness = lab[..., 0][None]
    fine = lightness - gaussian_blur(lightness, max(0.7, 0.004 * scale))
    texture = torch.sqrt(gaussian_blur(fine * fine, max(1.0, HAIR_TEXTURE_WINDOW * scale)))[0]
    chroma = torch.sqrt(lab[..., 1] ** 2 + lab[..., 2] ** 2)
    ref = forehead > 0.5
    if int(ref.sum()) < 16:
        return torch.zeros_like(texture)
    ref_texture = texture[ref].median().clamp_min(0.2)
    ref_chroma = chroma[ref].median().clamp_min(4.0)
    pale = (1.0 - chroma / ref_chroma).clamp(0.0, 1.0)
    ratio = texture / ref_texture * (1.0 + pale)
    t = ((ratio - HAIR_TEXTURE_FROM) / (HAIR_TEXTURE_TO - HAIR_TEXTURE_FROM)).clamp(0.0, 1.0)
    hair = t * t * (3.0 - 2.0 * t)
    # Sparse strands (grey hair over a pale scalp) are closed into one area; then the reach
    # of the texture window past the strands into the skin beside them is taken back off
    # its edge (a grey erosion).
    hair = closing(hair, max(0, round(HAIR_CLOSE * HAIR_TEXTURE_WINDOW * scale)))
    return erode(hair, max(0, round(HAIR_ERODE * HAIR_TEXTURE_WINDOW * scale)))
