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


# --- bands over the whole skin, marks included (issue 18's user-side measurement) ---------
#
# A user judges the retouch on all of the skin they see: freckles, moles, pimples and the
# skin's edges included. These measure that way: the region is drawn from the landmarks
# (where the face's skin can be) and cut by FaceParse's skin (what is not skin: beard, hair,
# hands), with every hole the parse leaves inside the skin filled back in (spots and marks
# are skin to a user), never eroded; the band radii follow the distance between the eyes.

# MediaPipe FaceLandmarker indices (the canonical 478-point model), written out here so the
# region does not come from the pack's own tables.
_OVAL = (10, 338, 297, 332, 284, 251, 389, 356, 454, 323, 361, 288, 397, 365, 379, 378, 400, 377,
         152, 148, 176, 149, 150, 136, 172, 58, 132, 93, 234, 127, 162, 21, 54, 103, 67, 109)  # fmt: skip
_EYES = ((33, 246, 161, 160, 159, 158, 157, 173, 133, 155, 154, 153, 145, 144, 163, 7),
         (263, 466, 388, 387, 386, 385, 384, 398, 362, 382, 381, 380, 374, 373, 390, 249))  # fmt: skip
_BROWS = ((70, 63, 105, 66, 107, 55, 65, 52, 53, 46), (300, 293, 334, 296, 336, 285, 295, 282, 283, 276))
_LIPS = (61, 185, 40, 39, 37, 0, 267, 269, 270, 409, 291, 375, 321, 405, 314, 17, 84, 181, 91, 146)
_NOSE = (168, 6, 197, 195, 5, 4, 1, 19, 94, 2, 98, 97, 326, 327, 294, 278, 344, 440, 275, 45, 220, 115,
         48, 64, 129, 358, 279, 49, 209, 429, 217, 437, 188, 412, 122, 351, 193, 417, 196, 419, 3, 248)  # fmt: skip
_IRIS_CENTRES = (468, 473)


def eye_distance(landmarks: np.ndarray) -> float:
    """Distance between the iris centres (px)."""
    return float(np.hypot(*(landmarks[_IRIS_CENTRES[0], :2] - landmarks[_IRIS_CENTRES[1], :2])))


def _poly(mask: np.ndarray, points: np.ndarray, value: int) -> None:
    cv2.fillPoly(mask, [np.round(points[:, :2]).astype(np.int32).reshape(-1, 1, 2)], value)


def fill_enclosed(mask: np.ndarray, max_diameter: float) -> np.ndarray:
    """``mask`` with every hole it encloses that is at most ``max_diameter`` across (the
    equivalent circle's diameter) filled: spots and marks a colour parse leaves out."""
    count, labels, stats, _ = cv2.connectedComponentsWithStats((~mask).astype(np.uint8), connectivity=4)
    out = mask.copy()
    height, width = mask.shape
    for label in range(1, count):
        x, y, w, h, area = stats[label]
        touches_border = x == 0 or y == 0 or x + w == width or y + h == height
        if not touches_border and 2.0 * np.sqrt(area / np.pi) <= max_diameter:
            out[labels == label] = True
    return out


def whole_skin(landmarks: np.ndarray, parsed_skin: np.ndarray) -> np.ndarray:
    """The skin a user sees (bool ``[H, W]``): the landmark face oval, its forehead part
    raised by one eye distance (the oval stops below the hairline; the parse decides where
    the hair starts), minus eyes, brows, lips and nose, cut by ``parsed_skin`` (bool) with
    its enclosed holes up to 10 % of the face width (2.5 eye distances) across filled in.
    Not eroded."""
    lm = np.asarray(landmarks, np.float64)
    iod = eye_distance(lm)
    height, width = parsed_skin.shape
    centre = lm[list(_IRIS_CENTRES), :2].mean(axis=0)
    oval = lm[list(_OVAL), :2].copy()
    up = centre - (lm[61, :2] + lm[291, :2]) / 2
    up /= max(np.hypot(*up), 1e-6)
    above = (oval - centre) @ up > 0
    oval[above] += up * iod
    region = np.zeros((height, width), np.uint8)
    _poly(region, oval, 1)
    features = np.zeros_like(region)
    for points in (*_EYES, *_BROWS, _LIPS):
        _poly(features, lm[list(points)], 1)
    _poly(features, cv2.convexHull(lm[list(_NOSE), :2].astype(np.float32)).reshape(-1, 2), 1)
    skin = fill_enclosed(parsed_skin, 0.1 * 2.5 * iod)
    return (region > 0) & ~(features > 0) & skin


def whole_skin_report(before: torch.Tensor, after: torch.Tensor, region: np.ndarray, iod: float) -> dict[str, float]:
    """Ratios after/before of the RMS of the fine (L − G(iod/100)), medium (G(iod/100) −
    G(iod/20)) and coarse (G(iod/20) − G(iod/10)) bands of L* over all of ``region``, the
    fine band's correlation, and CIEDE2000 mean / p95 over it. Blurs normalised to the
    region, which is not eroded: its edges count as much as its middle."""
    lab_before, lab_after = lab_of(before), lab_of(after)
    assert region.sum() > 500, "too little skin to measure"
    scale = 2.5 * iod  # the same band edges as bands(): scale/250, /50, /25
    b0 = bands(lab_before[..., 0], region, scale)
    b1 = bands(lab_after[..., 0], region, scale)

    def rms(x: np.ndarray) -> float:
        return float(np.sqrt(np.mean(x[region] ** 2)))

    report = {name: rms(b1[name]) / rms(b0[name]) for name in b0}
    report["fine_corr"] = float(np.corrcoef(b0["fine"][region], b1["fine"][region])[0, 1])
    de = delta_e2000(torch.from_numpy(lab_before), torch.from_numpy(lab_after)).numpy()[region]
    report["de_mean"] = float(de.mean())
    report["de_p95"] = float(np.percentile(de, 95))
    return report
