"""Measurements for the TextureSafeSmooth tests, written independently of the pack's code.

The pack's bands come from core/bands.py (Gaussian fine split, guided-filter medium and
coarse splits, torch). These re-measure with OpenCV Gaussians and numpy only, so a bug in
the pack's band maths cannot make the tests agree with it. Band edges are tied to the
face size (``scale`` = face width in px), as the product promises:

- fine   = L − G(scale/250)           (pores, fine texture)
- medium = G(scale/250) − G(scale/50) (blotches, spots)
- coarse = G(scale/50) − G(scale/25)  (tone patches)

Blurs are normalised to the skin (masked) so nothing outside the skin enters a band, and
the band numbers are taken over the skin's interior (eroded by scale/30), where a band is
two-sided; the colour shift (CIEDE2000) over the whole skin.
"""

from __future__ import annotations

import cv2
import numpy as np
import torch

from portrait_polish.core.colour import delta_e2000, rgb_to_lab


def lab_of(rgb: torch.Tensor) -> np.ndarray:
    """``[H,W,3]`` sRGB tensor -> float64 CIELAB array."""
    return rgb_to_lab(rgb.to(torch.float32)).numpy().astype(np.float64)


def masked_gauss(x: np.ndarray, weight: np.ndarray, sigma: float) -> np.ndarray:
    num = cv2.GaussianBlur(x * weight, (0, 0), sigma, borderType=cv2.BORDER_REFLECT)
    den = cv2.GaussianBlur(weight, (0, 0), sigma, borderType=cv2.BORDER_REFLECT)
    return num / np.maximum(den, 1e-9)


def erode(mask: np.ndarray, radius: int) -> np.ndarray:
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))
    return cv2.erode(mask.astype(np.uint8), kernel).astype(bool)


def dilate(mask: np.ndarray, radius: int) -> np.ndarray:
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))
    return cv2.dilate(mask.astype(np.uint8), kernel).astype(bool)


def bands(lightness: np.ndarray, skin: np.ndarray, scale: float) -> dict[str, np.ndarray]:
    weight = skin.astype(np.float64)
    g_fine = masked_gauss(lightness, weight, scale / 250.0)
    g_medium = masked_gauss(lightness, weight, scale / 50.0)
    g_coarse = masked_gauss(lightness, weight, scale / 25.0)
    return {"fine": lightness - g_fine, "medium": g_fine - g_medium, "coarse": g_medium - g_coarse}


def interior(skin: np.ndarray, scale: float) -> np.ndarray:
    return erode(skin, max(2, round(scale / 30.0)))


def band_report(before: torch.Tensor, after: torch.Tensor, skin: np.ndarray, scale: float) -> dict[str, float]:
    """Ratios after/before of the RMS of each band of L*, the fine-band correlation, and
    CIEDE2000 mean / 95th percentile; bands over the interior of ``skin`` (bool ``[H,W]``),
    colour over all of it."""
    lab_before, lab_after = lab_of(before), lab_of(after)
    region = interior(skin, scale)
    assert region.sum() > 500, "too little skin to measure"
    b0 = bands(lab_before[..., 0], skin, scale)
    b1 = bands(lab_after[..., 0], skin, scale)

    def rms(x: np.ndarray) -> float:
        return float(np.sqrt(np.mean(x[region] ** 2)))

    report = {name: rms(b1[name]) / rms(b0[name]) for name in b0}
    report["fine_corr"] = float(np.corrcoef(b0["fine"][region], b1["fine"][region])[0, 1])
    # Colour shift over the whole skin (bands need the interior, a colour cast does not).
    de = delta_e2000(torch.from_numpy(lab_before), torch.from_numpy(lab_after)).numpy()[skin]
    report["de_mean"] = float(de.mean())
    report["de_p95"] = float(np.percentile(de, 95))
    return report


def paint_spot(lab: np.ndarray, cx: float, cy: float, radius: float, delta: tuple[float, float, float]) -> None:
    """Add a round spot with a soft edge (flat core, falls to 0 at ~1.3 radius) in CIELAB."""
    height, width = lab.shape[:2]
    yy, xx = np.mgrid[0:height, 0:width]
    r = np.hypot(xx - cx, yy - cy) / radius
    profile = np.exp(-(r**4))
    for channel in range(3):
        lab[..., channel] += delta[channel] * profile


def spot_contrast(lab: np.ndarray, cx: float, cy: float, radius: float) -> float:
    """CIEDE2000 between the mean colour of a spot's core (r ≤ 0.7R) and of the ring
    around it (1.6R–2.6R)."""
    height, width = lab.shape[:2]
    yy, xx = np.mgrid[0:height, 0:width]
    r = np.hypot(xx - cx, yy - cy)
    core = lab[r <= 0.7 * radius].mean(axis=0)
    ring = lab[(r >= 1.6 * radius) & (r <= 2.6 * radius)].mean(axis=0)
    return float(delta_e2000(torch.from_numpy(core), torch.from_numpy(ring)))


def spot_shift(lab_before: np.ndarray, lab_after: np.ndarray, cx: float, cy: float, radius: float) -> float:
    """CIEDE2000 between a spot's core colour before and after."""
    height, width = lab_before.shape[:2]
    yy, xx = np.mgrid[0:height, 0:width]
    core = np.hypot(xx - cx, yy - cy) <= 0.7 * radius
    return float(delta_e2000(torch.from_numpy(lab_before[core].mean(axis=0)), torch.from_numpy(lab_after[core].mean(axis=0))))


def spot_darkness(lightness: np.ndarray, skin: np.ndarray, scale: float) -> np.ndarray:
    """How much darker (L*) each point is than the skin around it (masked blur at scale/40),
    after a light blur; 0 outside the skin's interior."""
    weight = skin.astype(np.float64)
    smooth = cv2.GaussianBlur(lightness, (0, 0), max(0.8, scale / 400.0))
    around = masked_gauss(lightness, weight, scale / 40.0)
    return np.where(interior(skin, scale), around - smooth, 0.0)


def dark_spots(lightness: np.ndarray, skin: np.ndarray, scale: float, contrast: float = 5.0) -> np.ndarray:
    """Freckle-like spots ``[N, 2]`` (y, x): local maxima of :func:`spot_darkness` of at least
    ``contrast`` L*, at least scale/100 apart."""
    from skimage.feature import peak_local_max

    darkness = spot_darkness(lightness, skin, scale)
    return peak_local_max(darkness, min_distance=max(2, round(scale / 100.0)), threshold_abs=contrast)


def spot_retention(before: np.ndarray, after: np.ndarray, skin: np.ndarray, scale: float, spots: np.ndarray) -> np.ndarray:
    """For each spot found before: its darkness after (best within ±1 px) / before."""
    d0 = spot_darkness(before, skin, scale)
    d1 = spot_darkness(after, skin, scale)
    return np.array([d1[max(0, y - 1) : y + 2, max(0, x - 1) : x + 2].max() / d0[y, x] for y, x in spots])
