"""Frequency bands of skin, with radii tied to the face's size (not the image's).

A skin crop is split into four layers that add back up to it exactly::

    x = base + coarse + medium + fine

- ``fine``   pores, fine lines, hair-scale texture: ``x − G(x, σ_fine)``. Kept by the
  smoother (the "texture" widget may lower it a little, never erase it).
- ``medium`` blotches, uneven patches, spots: ``low1 − GF(low1, r_medium)``.
- ``coarse`` tone unevenness at cheek/forehead scale: ``low2 − GF(low2, r_coarse)``.
- ``base``   the face's shape and light (kept).

The fine split is a plain Gaussian (the fine band is kept anyway, so where edges land in
it does not matter). The medium and coarse splits use the guided filter (He et al.) with
the crop's own lightness as guide: strong edges such as the side of the nose, a jaw line or
a fold have a local variance far above ``eps`` and stay in the lower layer, so attenuating
the medium and coarse bands evens blotches without blurring those edges into halos.

All pixels outside the skin are first replaced by a masked (normalised) blur of the skin
around them (:func:`fill_outside`), so lips, eyes, hair and background never bleed into
the skin's bands.

Radii (σ in pixels, ``scale`` = the face width in pixels, :attr:`core.regions.Face.scale`):
fine ``scale/250`` (≥ 1), medium ``scale/50`` (≥ 3), coarse ``scale/25`` (≥ 8). For a
face 500 px wide: 2, 10 and 20 px. Light and shape at larger scales (cheekbones, the
side of a side-lit face) are the base and are never evened.

:func:`band_energy` is the one measurement of a band's strength used by the tests, the
benchmarks and the README numbers.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from .filters import gaussian_blur, guided_filter, masked_blur, smooth_blur

# Fractions of the face width (Face.scale) that set the band boundaries (Gaussian σ).
FINE_FRACTION = 1.0 / 250.0
MEDIUM_FRACTION = 1.0 / 50.0
COARSE_FRACTION = 1.0 / 25.0
MIN_SIGMA_FINE = 1.0
MIN_SIGMA_MEDIUM = 3.0
MIN_SIGMA_COARSE = 8.0

# Guided-filter regularisation in L* units squared: local variation below about
# sqrt(eps) L* counts as unevenness (smoothed), above it as structure (kept).
EPS_MEDIUM = 7.0**2
EPS_COARSE = 15.0**2


@dataclass(frozen=True)
class BandRadii:
    """Gaussian σ (pixels, full resolution) of the three band boundaries for one face."""

    fine: float
    medium: float
    coarse: float

    @property
    def working_factor(self) -> int:
        """Integer downscale for the medium/coarse split (σ_medium ≥ 4 px there after it):
        low1 is already blurred at σ_fine, and only the split's smooth lower layer is made
        at this resolution, so the medium band itself loses nothing."""
        return max(1, int(self.medium // 4))


def band_radii(face_scale: float) -> BandRadii:
    """Band boundaries for a face ``face_scale`` pixels wide."""
    scale = max(float(face_scale), 1.0)
    return BandRadii(
        fine=max(MIN_SIGMA_FINE, scale * FINE_FRACTION),
        medium=max(MIN_SIGMA_MEDIUM, scale * MEDIUM_FRACTION),
        coarse=max(MIN_SIGMA_COARSE, scale * COARSE_FRACTION),
    )


def nearest_inside_index(inside: torch.Tensor) -> torch.Tensor:
    """For every pixel, the flat index of the nearest pixel where ``inside`` is true."""
    import cv2

    hard = inside.to("cpu", torch.bool).numpy()
    height, width = hard.shape
    # distanceTransform measures the distance to the nearest *zero* pixel, and with
    # DIST_LABEL_PIXEL labels every zero pixel: make the inside the zeros.
    _, labels = cv2.distanceTransformWithLabels((~hard).astype(np.uint8), cv2.DIST_L2, 5, labelType=cv2.DIST_LABEL_PIXEL)
    # Label k (1-based) is the k-th zero pixel in row-major order.
    zero_flat = np.flatnonzero(hard.ravel())
    index = zero_flat[np.clip(labels.ravel() - 1, 0, len(zero_flat) - 1)]
    return torch.from_numpy(index.reshape(height, width).astype(np.int64)).to(inside.device)


def fill_outside(x: torch.Tensor, mask: torch.Tensor, sigma: float) -> torch.Tensor:
    """``x`` inside ``mask`` (> 0.5); outside, the nearest skin's (lightly blurred) value.

    Makes the crop look like "skin continues here" to the band filters, so nothing from
    outside the skin (lips, eyes, hair, background) leaks into the skin's bands. The
    continuation is the *nearest* skin (then softened), not an average of the skin
    around: an average is brighter than a jaw or an eye socket that darkens towards the
    edge, and the smoother would then lift that darker rim into a bright outline.
    """
    inside = mask > 0.5
    if not bool(inside.any()) or bool(inside.all()):
        return x
    source = masked_blur(x, inside.to(x.dtype), max(1.0, sigma * 0.25))
    index = nearest_inside_index(inside)
    channels = x.shape[0]
    extended = source.reshape(channels, -1)[:, index.flatten()].reshape(x.shape)
    # Soften the streaks nearest-neighbour extension makes, outside only.
    extended = smooth_blur(extended, max(1.0, sigma * 0.5))
    return torch.where(inside[None], x, extended)


@dataclass
class Bands:
    """``x = base + coarse + medium + fine`` (each ``[C,H,W]``), plus the working factor
    the low layers were computed at (their tensors are already back at full size)."""

    fine: torch.Tensor
    medium: torch.Tensor
    coarse: torch.Tensor
    base: torch.Tensor

    def low(self) -> torch.Tensor:
        """Everything but the fine band (``x − fine``)."""
        return self.base + self.coarse + self.medium


def _downscale(x: torch.Tensor, factor: int) -> torch.Tensor:
    if factor <= 1:
        return x
    return F.interpolate(x[None], scale_factor=1.0 / factor, mode="area")[0]


def _upscale(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    if tuple(x.shape[-2:]) == size:
        return x
    return F.interpolate(x[None], size=size, mode="bilinear", align_corners=False)[0]


def _guided(guide: torch.Tensor, source: torch.Tensor, radius: int, eps: float) -> torch.Tensor:
    return guided_filter(guide[None], source, radius, eps)


def split_bands(x: torch.Tensor, guide: torch.Tensor, radii: BandRadii, eps_scale: float = 1.0) -> Bands:
    """Split ``x`` (``[C,H,W]``, already filled outside the skin) into the four layers.

    ``guide`` is ``[H,W]`` (normally L*). ``eps_scale`` multiplies the guided filter's
    regularisation (larger = more of the variation counts as unevenness).
    """
    height, width = x.shape[-2:]
    low1 = gaussian_blur(x, radii.fine)
    fine = x - low1
    factor = radii.working_factor
    guide_lowres = _downscale(gaussian_blur(guide[None], radii.fine), factor)[0].contiguous()
    low1_lowres = _downscale(low1, factor).contiguous()
    r_medium = max(1, int(round(radii.medium * 1.2 / factor)))
    r_coarse = max(1, int(round(radii.coarse * 1.2 / factor)))
    low2_lowres = _guided(guide_lowres, low1_lowres, r_medium, EPS_MEDIUM * eps_scale)
    guide2 = _guided(guide_lowres, guide_lowres[None], r_medium, EPS_MEDIUM * eps_scale)[0]
    base_lowres = _guided(guide2, low2_lowres, r_coarse, EPS_COARSE * eps_scale)
    # Back to full size: upsample the two low layers; the medium band takes the
    # remainder, so the four layers still add up to ``x`` exactly.
    low2 = _upscale(low2_lowres, (height, width))
    base = _upscale(base_lowres, (height, width))
    return Bands(fine=fine, medium=low1 - low2, coarse=low2 - base, base=base)


def dog_band(x: torch.Tensor, weight: torch.Tensor, sigma_lo: float, sigma_hi: float) -> torch.Tensor:
    """Difference-of-Gaussians band ``G(σ_lo) − G(σ_hi)`` of ``x`` restricted to ``weight``
    (masked blurs; ``σ_lo = 0`` means ``x`` itself)."""
    lo = x if sigma_lo <= 0 else masked_blur(x, weight, sigma_lo)
    hi = masked_blur(x, weight, sigma_hi)
    return lo - hi


def band_energy(x: torch.Tensor, weight: torch.Tensor, sigma_lo: float, sigma_hi: float) -> float:
    """RMS of the DoG band (:func:`dog_band`) over the pixels where ``weight`` > 0.5.

    ``x`` is ``[H,W]`` (e.g. L*). The ratio of this before/after an edit says how much of
    that band survived.
    """
    band = dog_band(x, weight, sigma_lo, sigma_hi)
    inside = weight > 0.5
    if not bool(inside.any()):
        return 0.0
    return math.sqrt(float((band[inside].to(torch.float64) ** 2).mean()))
