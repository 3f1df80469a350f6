"""Eye enhancement with a retoucher's restraint: calmer whites, clearer irises, same eyes.

Per face and per eye (subject's left and right), on a small window around the eye:

- **Sclera** (``sclera``): a* is pulled toward the sclera's *own* neutral (its low-a*
  quantile, so a warm white balance stays warm) which takes out redness and veins; the dark
  core of the red veins is filled from the surrounding white in the low band only; then a
  gentle additive L* lift (+2.5 at the default, never more than +5) that keeps the darker
  corners and the lid's shadow: the whites get calmer and a little brighter, never flat.
- **Iris** (``iris``): clarity, i.e. local contrast of L* (detail = L* minus its
  mask-normalised Gaussian). The amount is solved so the iris RMS contrast (std of L*)
  grows by a target factor: ×1.1 at 0.25 up to ×1.4 at 1.0. The pupil never gets lighter.
  ``iris_saturation`` optionally scales a*/b*; ``limbal_ring`` darkens the iris's outer
  rim by up to 15 % (multiply), off at 0.
- **Catchlight** (``catchlight``): an existing catchlight, the brightest small spot inside
  the iris, is strengthened with a monotone screen-like lift (so its peak stays where it
  is). Nothing is painted where there is no clear catchlight.
- **Under-eye** (``under_eye``): dark circles are softened by lifting only the low-pass
  luminance of a band below the lower lid (from MediaPipe's lower-lid landmarks, or from
  the eye masks' lower edge) toward the cheek below it; pores and fine lines (the high
  band) are carried over unchanged, as TextureSafeSmooth does.

An eye whose masks are tiny relative to the face (closed, squinting shut), or whose "white"
is not white (sunglasses, a lid), is left untouched. Every strength at 0 gives the very
same pixels.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass

import torch

from . import colour
from .filters import masked_blur
from .kernel import Correction, FaceWindow, Patch, apply_per_face
from .landmarks import IRIS_POINTS, LANDMARK_COUNT, LOWER_LID
from .masks import Box, bbox, coordinate_grid, smoothstep
from .regions import Face, FaceRegions, ImageFaces
from .under_eye import soften_under_eye, under_eye_band

log = logging.getLogger("portrait_polish")

# An open eye's visible area (white + iris) is ~0.06 IOD² ≈ 0.0095 face-scale²; below a
# quarter of that the eye is shut (or a sliver the parser found on the lid).
MIN_OPEN_EYE_FRACTION = 0.0025
MIN_EYE_PIXELS = 30.0



def _masked_smooth(values: torch.Tensor, weight: torch.Tensor, sigma: float) -> torch.Tensor:
    """The Gaussian mean of ``values`` over the pixels ``weight`` covers (the value itself
    where the mask has no support)."""
    return masked_blur(values, weight, sigma, min_weight=1e-3, fallback="value", exact=True)


@dataclass(frozen=True)
class EyeSettings:
    """Strengths per part, each 0..1 (0 = that part untouched)."""

    sclera: float = 0.5
    iris: float = 0.5
    iris_saturation: float = 0.0
    limbal_ring: float = 0.0
    catchlight: float = 0.3
    under_eye: float = 0.0

    def any(self) -> bool:
        return any(v > 0 for v in (self.sclera, self.iris, self.iris_saturation, self.limbal_ring, self.catchlight, self.under_eye))


def iris_contrast_target(strength: float) -> float:
    """The iris RMS-contrast factor a given iris strength aims for (×1.0 at 0, ×1.4 at 1)."""
    return 1.0 + 0.4 * min(max(strength, 0.0), 1.0)


def weighted_quantile(values: torch.Tensor, weight: torch.Tensor, q: float) -> float:
    """Quantile of ``values`` over the pixels where ``weight > 0.5`` (all weighted pixels if few)."""
    core = weight > 0.5
    if int(core.sum()) < 8:
        core = weight > 0
    picked = values[core]
    if picked.numel() > 200_000:
        picked = picked[torch.randperm(picked.numel(), generator=torch.Generator().manual_seed(0))[:200_000].to(picked.device)]
    return float(torch.quantile(picked.to(torch.float32), q))


# --------------------------------------------------------------------------------------- open?


@dataclass(frozen=True)
class SkinColour:
    """A face's median skin colour in CIELAB."""

    lightness: float
    a: float
    b: float


@dataclass
class EyeCheck:
    open: bool
    reason: str
    sclera_l: float = float("nan")
    iris_l: float = float("nan")
    area_fraction: float = 0.0


def check_eye_open(lab: torch.Tensor, sclera: torch.Tensor, iris: torch.Tensor, scale: float, skin: SkinColour | None) -> EyeCheck:
    """Is this eye open and uncovered? Shut eyes have tiny masks; sunglasses have no white.

    ``lab`` is the eye window ``[h, w, 3]``, ``sclera``/``iris`` its masks, ``scale`` the
    face size in px, ``skin`` the face's median skin colour (None when unknown).
    """
    area = float(sclera.sum() + iris.sum())
    fraction = area / max(scale * scale, 1.0)
    if area < MIN_EYE_PIXELS or fraction < MIN_OPEN_EYE_FRACTION:
        return EyeCheck(False, f"eye area {fraction:.4f} of face² (closed or hidden)", area_fraction=fraction)
    if float(sclera.sum()) < MIN_EYE_PIXELS / 2:
        return EyeCheck(False, "no eye white visible", area_fraction=fraction)
    light = lab[..., 0]
    white = sclera * sclera_likelihood(lab, sclera)
    white_l = weighted_quantile(light, sclera, 0.9)
    iris_l = weighted_quantile(light, iris, 0.5) if float(iris.sum()) >= 4 else white_l - 20.0
    check = EyeCheck(True, "open", white_l, iris_l, fraction)
    if white_l < 30.0:
        check.open, check.reason = False, f"eye white L* {white_l:.0f} is not white (sunglasses or deep shadow)"
    elif white_l < iris_l + 6.0:
        check.open, check.reason = False, f"eye white L* {white_l:.0f} not lighter than iris L* {iris_l:.0f} (a lens or a lid)"
    elif float(white.sum()) < max(MIN_EYE_PIXELS / 3, 0.1 * float(sclera.sum())):
        check.open, check.reason = False, "almost none of the eye-white mask looks like an eye white"
    elif skin is not None and fraction < 2.5 * MIN_OPEN_EYE_FRACTION:
        # A squint: what the mask calls white may be lid skin. It is, if it has the skin's
        # own colour (a*, b* within 6) and most of its chroma.
        a_w = weighted_quantile(lab[..., 1], white, 0.5)
        b_w = weighted_quantile(lab[..., 2], white, 0.5)
        chroma_w = math.hypot(a_w, b_w)
        if math.hypot(a_w - skin.a, b_w - skin.b) < 6.0 and chroma_w > 0.7 * math.hypot(skin.a, skin.b):
            check.open, check.reason = False, f"squinting: the visible 'white' has the skin's colour (a* {a_w:.0f}, b* {b_w:.0f})"
    return check


# ---------------------------------------------------------------------------------- the parts


def sclera_likelihood(lab: torch.Tensor, sclera: torch.Tensor) -> torch.Tensor:
    """How much each pixel of the eye-white mask is actually the white (0..1).

    Parsed eye-white masks also catch lid skin, lashes and the lid's shadow. The white is
    the mask's light, low-yellow part: L* within ~25 of its clean white (90th percentile)
    and b* within ~6 of the bright part's median. Red veins pass (they differ in a*, not
    b*); lid skin (yellower) and lashes (darker) do not, so they are never desaturated or
    lifted.
    """
    light, b_star = lab[..., 0], lab[..., 2]
    white_l = weighted_quantile(light, sclera, 0.9)
    bright = (light >= white_l - 22.0).to(sclera.dtype)
    if int(((sclera * bright) > 0.5).sum()) >= 8:
        ref_b = weighted_quantile(b_star, sclera * bright, 0.5)
    else:
        ref_b = weighted_quantile(b_star, sclera, 0.3)
    gate_l = smoothstep(light, white_l - 32.0, white_l - 18.0)
    gate_b = 1.0 - smoothstep(b_star, ref_b + 5.0, ref_b + 11.0)
    return gate_l * gate_b


def enhance_sclera(lab: torch.Tensor, sclera: torch.Tensor, strength: float) -> torch.Tensor:
    """Return an edited Lab window; the caller blends it with ``sclera`` (the eye-white
    mask already gated by :func:`sclera_likelihood`)."""
    s = min(max(strength, 0.0), 1.0)
    light, a_star, b_star = lab.unbind(-1)
    # The sclera's own neutral: its least red fifth. Half of a positive tint there is kept
    # (warm light stays warm), the other half counts as redness too. Never below a* 0: an
    # already neutral white must not be pushed toward green.
    a_clean = weighted_quantile(a_star, sclera, 0.2)
    a_neutral = max(0.0, 0.5 * a_clean)
    excess = (a_star - a_neutral).clamp_min(0.0)
    # How hard to pull: solved so the white's mean a* drops by a set share (55 % at the
    # default, up to 90 % at full strength), whatever its tint; capped at 90 % of each pixel's
    # excess. An already neutral white (mean a* ≈ 0) is barely touched.
    weight_sum = float(sclera.sum())
    mean_a = float((a_star * sclera).sum()) / weight_sum
    mean_excess = float((excess * sclera).sum()) / weight_sum
    pull = min(0.9, 1.1 * s * max(mean_a, 0.0) / mean_excess) if mean_excess > 1e-6 else 0.0
    new_a = a_star - pull * excess
    # Veins are thin, red *and* darker than the white right around them: a* above its local
    # (vein-scale) mean. Their dark core is filled from the local white, low band only.
    # Corners and the lid's shadow are broad, so they are not "veins" and keep their shading.
    width = float((sclera > 0).any(dim=0).sum())
    sigma = max(1.0, width / 25.0)
    local_a = _masked_smooth(a_star, sclera, sigma)
    vein = smoothstep(a_star - local_a, 2.0, 7.0)
    local_l = _masked_smooth(light, sclera * (1.0 - vein), sigma)
    vein_fill = min(1.0, 1.6 * s) * vein * (local_l - light).clamp_min(0.0)
    # Gentle additive lift: differences (corners, lid shadow) are kept exactly; fades out
    # toward highlights so nothing clips to flat white.
    lift = 5.0 * s * (1.0 - smoothstep(light, 82.0, 96.0))
    new_l = (light + vein_fill + lift).clamp(0.0, 100.0)
    return torch.stack([new_l, new_a, b_star], dim=-1)


def _iris_geometry(iris: torch.Tensor, points: torch.Tensor | None) -> tuple[float, float, float]:
    """Iris centre (x, y) and radius in window px: from landmarks when given, else the mask."""
    height, width = iris.shape
    if points is not None:
        centre = points[0]
        radius = float(torch.linalg.norm(points[1:] - centre, dim=-1).mean())
        # Trust the landmarks only when they make a sensible circle inside this window.
        if radius >= 1.0 and 0 <= float(centre[0]) < width and 0 <= float(centre[1]) < height:
            return float(centre[0]), float(centre[1]), radius
    yy, xx = coordinate_grid(height, width, iris.device)
    total = float(iris.sum())
    cx = float((xx * iris).sum()) / total
    cy = float((yy * iris).sum()) / total
    cols = (iris > 0.5).any(dim=0).nonzero()
    radius = (float(cols.max() - cols.min()) + 1.0) / 2.0 if cols.numel() else math.sqrt(total / math.pi)
    return cx, cy, radius


def _solve_detail_amount(light: torch.Tensor, detail: torch.Tensor, core: torch.Tensor, target: float) -> float:
    """α ≥ 0 with std(light + α·detail) = target·std(light) over ``core`` (a quadratic in α)."""
    x = light[core].to(torch.float64)
    d = detail[core].to(torch.float64)
    x = x - x.mean()
    d = d - d.mean()
    var_x = float((x * x).mean())
    var_d = float((d * d).mean())
    cov = float((x * d).mean())
    if var_d < 1e-8 or var_x < 1e-8:
        return 0.0
    # var_d α² + 2 cov α + var_x (1 − target²) = 0, positive root.
    c = var_x * (1.0 - target * target)
    disc = cov * cov - var_d * c
    if disc < 0:
        return 0.0
    return max(0.0, min(4.0, (-cov + math.sqrt(disc)) / var_d))


def catchlight_search_area(iris: torch.Tensor, centre_x: float, centre_y: float, radius: float) -> torch.Tensor:
    """Where a catchlight may be: the iris core (mask > 0.5) within 0.85 radii of its centre,
    so the bright white at the iris's soft edge is never mistaken for one."""
    height, width = iris.shape
    yy, xx = coordinate_grid(height, width, iris.device)
    inside = ((xx - centre_x) ** 2 + (yy - centre_y) ** 2) <= (0.85 * radius) ** 2
    return (iris > 0.5) & inside


def find_catchlight(light: torch.Tensor, area: torch.Tensor) -> tuple[int, int, float, float] | None:
    """(y, x, peak L*, threshold L*) of a clear catchlight inside ``area`` (bool), or None.

    Clear means: a small spot (≤ 15 % of the area) at least 20 L* above the area's median,
    and at least L* 55. A dull iris with no such spot gets nothing painted.
    """
    if int(area.sum()) < 12:
        return None
    masked = torch.where(area, light, torch.full_like(light, -1.0))
    flat_index = int(torch.argmax(masked))
    y, x = divmod(flat_index, light.shape[1])
    peak = float(light[y, x])
    median = float(light[area].median())
    if peak < 55.0 or peak - median < 20.0:
        return None
    threshold = median + 0.5 * (peak - median)
    spot = area & (light > threshold)
    if float(spot.sum()) > 0.15 * float(area.sum()):
        return None
    return y, x, peak, threshold


def enhance_iris(lab: torch.Tensor, iris: torch.Tensor, settings: EyeSettings, points: torch.Tensor | None) -> torch.Tensor:
    """Return an edited Lab window; the caller blends it with the iris mask."""
    light, a_star, b_star = lab.unbind(-1)
    core = iris > 0.5
    if int(core.sum()) < 8:
        return lab
    new_l = light
    median_l = float(light[core].median())
    # The pupil: clearly darker than the iris around it; it must never get lighter.
    pupil = light < min(0.55 * median_l, median_l - 8.0)
    cx, cy, radius = _iris_geometry(iris, points)
    if settings.iris > 0:
        sigma = max(0.8, 0.18 * radius)
        detail = light - _masked_smooth(light, iris, sigma)
        # The caller blends with the soft iris weight, so each pixel finally gets α·w·detail:
        # solve with the weight included.
        amount = _solve_detail_amount(light, detail * iris, core, iris_contrast_target(settings.iris))
        new_l = light + amount * detail
    if settings.limbal_ring > 0 and radius > 2:
        height, width = light.shape
        yy, xx = coordinate_grid(height, width, light.device)
        r = torch.sqrt((xx - cx) ** 2 + (yy - cy) ** 2) / radius
        ring = smoothstep(r, 0.72, 0.95)
        new_l = new_l * (1.0 - 0.15 * min(settings.limbal_ring, 1.0) * ring)
    if settings.catchlight > 0:
        area = catchlight_search_area(iris, cx, cy, radius)
        found = find_catchlight(new_l, area)
        if found is not None:
            _y, _x, peak, threshold = found
            # Monotone in L* (slope ≥ 1 − k > 0), so the brightest pixel stays the brightest;
            # only inside the search area (never the white at the iris's edge).
            weight = smoothstep(new_l, threshold, peak) * area.to(new_l.dtype)
            k = 0.6 * min(settings.catchlight, 1.0)
            new_l = new_l + k * (100.0 - new_l).clamp_min(0.0) * weight
    new_l = torch.where(pupil, torch.minimum(new_l, light), new_l).clamp(0.0, 100.0)
    new_a, new_b = a_star, b_star
    if settings.iris_saturation > 0:
        gain = 1.0 + 0.5 * min(settings.iris_saturation, 1.0)
        keep = pupil.to(light.dtype)
        new_a = a_star * (gain - (gain - 1.0) * keep)
        new_b = b_star * (gain - (gain - 1.0) * keep)
    return torch.stack([new_l, new_a, new_b], dim=-1)


# ------------------------------------------------------------------------------------ per face


def caruncle_protection(face: Face, side: str, box: Box) -> torch.Tensor | None:
    """0 near the eye's inner corner, 1 elsewhere, on ``box`` (image coordinates); None
    without 478 landmarks.

    The caruncle, the pink knob in the inner corner, is part of the eye-white polygon but
    not of the white: a retoucher leaves it pink. Radius: 0.08 eye widths fully protected,
    fading out by 0.16.
    """
    if face.landmarks is None or face.landmarks.shape[0] < LANDMARK_COUNT:
        return None
    outer, inner = LOWER_LID[side][0], LOWER_LID[side][-1]
    points = face.landmarks[[outer, inner]].to(torch.float32).cpu()
    eye_width = float(torch.linalg.norm(points[1] - points[0]))
    if eye_width < 4:
        return None
    yy, xx = coordinate_grid(box.height, box.width, origin=(float(box.x0), float(box.y0)))
    distance = torch.sqrt((xx - float(points[1, 0])) ** 2 + (yy - float(points[1, 1])) ** 2) / eye_width
    return smoothstep(distance, 0.08, 0.16)


def _skin_colour(window: FaceWindow) -> SkinColour | None:
    """The face's median skin colour, from a subsampled working copy."""
    skin = window.mask("skin") if "skin" in window.face.masks else None
    if skin is None or float(skin.sum()) < 50 * window.factor**2:
        return None
    box = bbox(skin)
    assert box is not None
    step = max(1, int(max(box.height, box.width) // 256))
    sub = window.work[box.y0 : box.y1 : step, box.x0 : box.x1 : step, :]
    weight = skin[box.y0 : box.y1 : step, box.x0 : box.x1 : step]
    lab = colour.rgb_to_lab(sub.to(torch.float32))
    return SkinColour(*(weighted_quantile(lab[..., c], weight, 0.5) for c in range(3)))


def _eye_masks(face: Face, side: str, image_box: Box, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    return face.window_mask(f"{side}_eye_white", image_box).to(device), face.window_mask(f"{side}_iris", image_box).to(device)


def _edit_eye(pixels: torch.Tensor, face: Face, side: str, image_box: Box, settings: EyeSettings) -> tuple[torch.Tensor, torch.Tensor] | None:
    """Sclera and iris of one (open) eye on its full-resolution patch (``image_box``)."""
    sclera, iris = _eye_masks(face, side, image_box, pixels.device)
    lab = colour.rgb_to_lab(pixels)
    edited_lab = lab
    weight = torch.zeros_like(sclera)
    if settings.sclera > 0 and float(sclera.sum()) >= 4:
        white = sclera * sclera_likelihood(lab, sclera)
        protect = caruncle_protection(face, side, image_box)
        if protect is not None:
            white = white * protect.to(white.device)
        if float(white.sum()) >= 4:
            sclera_lab = enhance_sclera(lab, white, settings.sclera)
            edited_lab = lab + (sclera_lab - lab) * white[..., None]
            weight = torch.maximum(weight, white)
    if (settings.iris > 0 or settings.iris_saturation > 0 or settings.limbal_ring > 0 or settings.catchlight > 0) and float(iris.sum()) >= 4:
        points = None
        if face.landmarks is not None and face.landmarks.shape[0] >= LANDMARK_COUNT:
            offset = torch.tensor([float(image_box.x0), float(image_box.y0)])
            points = face.landmarks[list(IRIS_POINTS[side])].to(torch.float32).cpu() - offset
        iris_lab = enhance_iris(edited_lab, iris, settings, points)
        edited_lab = edited_lab + (iris_lab - edited_lab) * iris[..., None]
        weight = torch.maximum(weight, iris)
    # Only pixels whose Lab actually changed are rewritten (the Lab round trip is not
    # bit-exact, so a part that found nothing to do, e.g. no catchlight, must not touch them).
    # edited_lab already carries the soft mask blend; the indicator keeps the rest exact.
    changed = (weight * (edited_lab != lab).any(dim=-1).to(weight.dtype)) > 0
    if not bool(changed.any()):
        return None
    return colour.lab_to_rgb(edited_lab).to(pixels.dtype), changed.to(pixels.dtype)


def _region_box(window: FaceWindow, names: list[str], margin: int) -> Box | None:
    """The window box (full resolution) every pixel of the named regions' full-resolution
    masks lies in, grown by ``margin``."""
    grid = window.face.mask(names)
    box = bbox(grid)
    if box is None:
        return None
    grid_h, grid_w = grid.shape
    full_h, full_w = window.full_size
    sy, sx = full_h / grid_h, full_w / grid_w
    # A grid pixel reaches the full-resolution pixels whose bilinear taps include it.
    reach = Box(math.floor((box.x0 - 0.5) * sx - 0.5), math.floor((box.y0 - 0.5) * sy - 0.5), math.ceil((box.x1 + 0.5) * sx + 0.5), math.ceil((box.y1 + 0.5) * sy + 0.5))
    return reach.grow(margin, full_h, full_w)


def eye_op(settings: EyeSettings) -> Callable[[FaceWindow], Correction | None]:
    """EyeEnhance as a kernel op: every part is a small full-resolution patch per eye.

    An eye is about 1 % of its face's crop, and what is edited there (red veins a few
    pixels wide, the iris's crypts, a catchlight) is finer than the working grid, so the
    eyes are edited at the photo's own resolution; the under-eye band likewise (a smooth
    lift, but on a window far smaller than the crop).
    """

    def op(window: FaceWindow) -> Correction | None:
        face = window.face
        patches: list[Patch] = []
        skin: list[SkinColour | None] = []

        def skin_colour() -> SkinColour | None:
            if not skin:
                skin.append(_skin_colour(window))
            return skin[0]

        for side in ("right", "left"):
            names = [n for n in (f"{side}_eye_white", f"{side}_iris") if n in face.masks]
            if not names:
                continue
            box = _region_box(window, names, margin=2)
            if box is None:
                continue
            image_box = box.shift(window.box.x0, window.box.y0)
            # Is it open and uncovered? Judged once, on the eye's own pixels; a shut eye or
            # one behind sunglasses gets nothing, its under-eye included.
            rows, cols = box.slices()
            sclera, iris = _eye_masks(face, side, image_box, window.device)
            check = check_eye_open(colour.rgb_to_lab(window.full[rows, cols]), sclera, iris, float(face.scale), skin_colour())
            if not check.open:
                log.info("portrait_polish: EyeEnhance: %s eye left unchanged: %s", side, check.reason)
                continue
            patches.append(Patch(box, lambda pixels, side=side, image_box=image_box: _edit_eye(pixels, face, side, image_box, settings)))
            if settings.under_eye > 0:
                under = _under_eye_patch(window, side, settings.under_eye)
                if under is not None:
                    patches.append(under)
        return Correction(patches=patches) if patches else None

    return op


def _under_eye_patch(window: FaceWindow, side: str, strength: float) -> Patch | None:
    found = under_eye_band(window.face, side)
    if found is None:
        return None
    band_box, band = found
    # Include the cheek just below the band: it is the lift's reference.
    eye_width = float(max(band_box.width, 1))
    box = Box(band_box.x0, band_box.y0, band_box.x1, min(window.box.y1, band_box.y1 + int(0.25 * eye_width) + 2))
    local = box.shift(-window.box.x0, -window.box.y0)

    def edit(pixels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor] | None:
        band_p = torch.zeros(pixels.shape[:2], device=pixels.device)
        band_p[: band.shape[0], : band.shape[1]] = band.to(pixels.device)
        lab = colour.rgb_to_lab(pixels)
        soft = soften_under_eye(lab, band_p, eye_width, strength)
        if soft is lab:
            return None
        return colour.lab_to_rgb(soft).to(pixels.dtype), (band_p > 0).to(pixels.dtype)

    return Patch(local, edit)


def enhance_eyes(image: torch.Tensor, regions: FaceRegions, settings: EyeSettings, device: torch.device | None = None) -> torch.Tensor:
    """Enhance every open eye of every face in an RGB IMAGE ``[B, H, W, 3]`` (new tensor)."""
    if not settings.any():
        return image
    return apply_per_face(image, regions, eye_op(settings), name="EyeEnhance", device=device).image


def eye_regions_from_mask(image: torch.Tensor, mask: torch.Tensor) -> FaceRegions:
    """FACE_REGIONS from a plain MASK over one or more eyes (no FaceParse in the graph).

    Each connected blob of the mask becomes one pseudo-face with one eye; inside it the
    white and the iris are told apart by lightness (above/below the midpoint of the blob's
    10th and 90th L* percentiles). The face scale is taken as 5 eye widths.
    """
    import cv2
    import numpy as np

    batch, height, width = image.shape[0], image.shape[1], image.shape[2]
    if mask.shape[0] not in (1, batch):
        raise ValueError(f"MASK has {mask.shape[0]} frames but the IMAGE batch has {batch}")
    images: list[ImageFaces] = []
    for frame in range(batch):
        m = mask[frame if mask.shape[0] == batch else 0].to(torch.float32).cpu()
        if tuple(m.shape) != (height, width):
            raise ValueError(f"MASK is {m.shape[1]}x{m.shape[0]} but the IMAGE is {width}x{height}")
        item = ImageFaces(height=height, width=width)
        count, labels = cv2.connectedComponents((m.numpy() > 0).astype(np.uint8), connectivity=8)
        labels_t = torch.from_numpy(labels)
        for label in range(1, count):
            blob = labels_t == label
            ys, xs = torch.nonzero(blob, as_tuple=True)
            y0, y1 = int(ys.min()), int(ys.max()) + 1
            x0, x1 = int(xs.min()), int(xs.max()) + 1
            if (y1 - y0) * (x1 - x0) < 16:
                continue
            soft = torch.where(blob, m, torch.zeros_like(m))[y0:y1, x0:x1]
            light = colour.rgb_to_lab(image[frame, y0:y1, x0:x1, :3].to(torch.float32).cpu())[..., 0]
            values = light[soft > 0]
            lo, hi = float(torch.quantile(values, 0.1)), float(torch.quantile(values, 0.9))
            split = 0.5 * (lo + hi)
            white = smoothstep(light, split - 3.0, split + 3.0)
            face = Face(
                box=(float(x0), float(y0), float(x1 - x0), float(y1 - y0)),
                score=1.0,
                crop=(x0, y0, x1, y1),
                masks={"right_eye_white": soft * white, "right_iris": soft * (1.0 - white)},
                scale=5.0 * float(x1 - x0),
                info={"source": "mask"},
            )
            item.faces.append(face)
        images.append(item)
    return FaceRegions(images=images, backend="mask")


__all__ = [
    "EyeSettings",
    "enhance_eyes",
    "eye_op",
    "eye_regions_from_mask",
    "check_eye_open",
    "find_catchlight",
    "catchlight_search_area",
    "under_eye_band",
    "iris_contrast_target",
]
