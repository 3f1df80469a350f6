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
from dataclasses import dataclass

import torch

from . import colour
from .filters import gaussian_blur
from .regions import Face, FaceRegions, ImageFaces, apply_per_face, dilate_mask
from .teeth import _bbox, _smoothstep, masked_smooth
from .tensors import blend_masked

log = logging.getLogger("portrait_polish")

# An open eye's visible area (white + iris) is ~0.06 IOD² ≈ 0.0095 face-scale²; below a
# quarter of that the eye is shut (or a sliver the parser found on the lid).
MIN_OPEN_EYE_FRACTION = 0.0025
MIN_EYE_PIXELS = 30.0

# MediaPipe FaceMesh lower-lid contours (outer to inner corner) and iris points.
LOWER_LID = {
    "right": (33, 7, 163, 144, 145, 153, 154, 155, 133),
    "left": (263, 249, 390, 373, 374, 380, 381, 382, 362),
}
IRIS_POINTS = {"right": (468, 469, 470, 471, 472), "left": (473, 474, 475, 476, 477)}


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
    gate_l = _smoothstep(white_l - 32.0, white_l - 18.0, light)
    gate_b = 1.0 - _smoothstep(ref_b + 5.0, ref_b + 11.0, b_star)
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
    local_a = masked_smooth(a_star, sclera, sigma)
    vein = _smoothstep(2.0, 7.0, a_star - local_a)
    local_l = masked_smooth(light, sclera * (1.0 - vein), sigma)
    vein_fill = min(1.0, 1.6 * s) * vein * (local_l - light).clamp_min(0.0)
    # Gentle additive lift: differences (corners, lid shadow) are kept exactly; fades out
    # toward highlights so nothing clips to flat white.
    lift = 5.0 * s * (1.0 - _smoothstep(82.0, 96.0, light))
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
    yy, xx = torch.meshgrid(torch.arange(height, dtype=torch.float32, device=iris.device), torch.arange(width, dtype=torch.float32, device=iris.device), indexing="ij")
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
    yy, xx = torch.meshgrid(torch.arange(height, dtype=torch.float32, device=iris.device), torch.arange(width, dtype=torch.float32, device=iris.device), indexing="ij")
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
        detail = light - masked_smooth(light, iris, sigma)
        # The caller blends with the soft iris weight, so each pixel finally gets α·w·detail:
        # solve with the weight included.
        amount = _solve_detail_amount(light, detail * iris, core, iris_contrast_target(settings.iris))
        new_l = light + amount * detail
    if settings.limbal_ring > 0 and radius > 2:
        height, width = light.shape
        yy, xx = torch.meshgrid(torch.arange(height, dtype=light.dtype, device=light.device), torch.arange(width, dtype=light.dtype, device=light.device), indexing="ij")
        r = torch.sqrt((xx - cx) ** 2 + (yy - cy) ** 2) / radius
        ring = _smoothstep(0.72, 0.95, r)
        new_l = new_l * (1.0 - 0.15 * min(settings.limbal_ring, 1.0) * ring)
    if settings.catchlight > 0:
        area = catchlight_search_area(iris, cx, cy, radius)
        found = find_catchlight(new_l, area)
        if found is not None:
            _y, _x, peak, threshold = found
            # Monotone in L* (slope ≥ 1 − k > 0), so the brightest pixel stays the brightest;
            # only inside the search area (never the white at the iris's edge).
            weight = _smoothstep(threshold, peak, new_l) * area.to(new_l.dtype)
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


# ----------------------------------------------------------------------------------- under-eye


def under_eye_band(face: Face, side: str, eye_mask: torch.Tensor) -> torch.Tensor:
    """Soft band ``[h, w]`` on the face crop below the ``side`` eye's lower lid (0 outside).

    The lid line comes from MediaPipe's lower-lid landmarks when the face has 478 of them,
    else from the lower edge of the eye masks. The band starts a little below the lid and
    reaches ~0.38 eye widths down, tapering at both corners; the eye itself (dilated) and
    anything outside the skin mask are cut out.
    """
    height, width = face.crop_size
    x0, y0 = face.crop[0], face.crop[1]
    lid: torch.Tensor | None = None
    if face.landmarks is not None and face.landmarks.shape[0] >= 478:
        lid = face.landmarks[list(LOWER_LID[side])].to(torch.float32).cpu() - torch.tensor([float(x0), float(y0)])
    else:
        cols = (eye_mask > 0.5).any(dim=0).nonzero().flatten()
        if cols.numel() >= 4:
            xs = torch.linspace(float(cols.min()), float(cols.max()), 9)
            ys = []
            for xv in xs.round().long().tolist():
                rows = (eye_mask[:, xv] > 0.5).nonzero().flatten()
                ys.append(float(rows.max()) if rows.numel() else float("nan"))
            lid = torch.stack([xs, torch.tensor(ys)], dim=-1)
            lid = lid[torch.isfinite(lid[:, 1])]
    band = torch.zeros(height, width)
    if lid is None or lid.shape[0] < 3:
        return band
    lid = lid[torch.argsort(lid[:, 0])]
    eye_width = float(lid[-1, 0] - lid[0, 0])
    if eye_width < 6:
        return band
    # Work on a window around the band only (a 24 MP face crop must not cost a full-crop
    # dilation): the lid's columns, and from the lid's top to 0.4 eye widths below it.
    radius = max(1, int(0.04 * eye_width))
    wx0 = max(0, int(float(lid[0, 0])) - 1)
    wx1 = min(width, int(math.ceil(float(lid[-1, 0]))) + 2)
    wy0 = max(0, int(float(lid[:, 1].min())) - radius - 1)
    wy1 = min(height, int(math.ceil(float(lid[:, 1].max()) + 0.4 * eye_width)) + 2)
    if wx1 <= wx0 or wy1 <= wy0:
        return band
    xs = torch.arange(wx0, wx1, dtype=torch.float32)
    # Lid height per column (linear interpolation along the sorted landmark polyline).
    idx = torch.searchsorted(lid[:, 0].contiguous(), xs).clamp(1, lid.shape[0] - 1)
    xa, xb = lid[idx - 1, 0], lid[idx, 0]
    ya, yb = lid[idx - 1, 1], lid[idx, 1]
    t = ((xs - xa) / (xb - xa).clamp_min(1e-3)).clamp(0.0, 1.0)
    lid_y = ya + t * (yb - ya)
    # Horizontal taper: full in the middle of the eye, fading to zero at the corners.
    u = (xs - float(lid[0, 0])) / eye_width
    across = torch.sin(math.pi * u.clamp(0.0, 1.0)) ** 0.7
    ys = torch.arange(wy0, wy1, dtype=torch.float32)[:, None]
    depth = (ys - lid_y[None, :]) / eye_width
    down = _smoothstep(0.02, 0.08, depth) * (1.0 - _smoothstep(0.22, 0.38, depth))
    window = down * across[None, :]
    # The eye itself (dilated: lashes) is never part of the band; dilate on a padded window
    # so eye pixels just outside it still count.
    py0, py1 = max(0, wy0 - radius), min(height, wy1 + radius)
    px0, px1 = max(0, wx0 - radius), min(width, wx1 + radius)
    eyes = dilate_mask((eye_mask[py0:py1, px0:px1] > 0.05).to(torch.float32).cpu(), radius)
    window = window * (1.0 - eyes[wy0 - py0 : wy1 - py0, wx0 - px0 : wx1 - px0])
    skin = face.masks.get("skin")
    if skin is not None:
        window = window * skin[wy0:wy1, wx0:wx1].to(torch.float32).cpu()
    band[wy0:wy1, wx0:wx1] = window.clamp(0.0, 1.0)
    return band


def soften_under_eye(lab: torch.Tensor, band: torch.Tensor, eye_width: float, strength: float) -> torch.Tensor:
    """Lift the band's low-pass L* toward the cheek just below it; texture is kept as is."""
    light = lab[..., 0]
    sigma = max(1.0, 0.08 * eye_width)
    low = masked_smooth(light, torch.ones_like(light), sigma)
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
    lift = gaussian_blur(deficit[None, None], sigma)[0, 0] * band * min(strength, 1.0)
    new_l = (light + lift).clamp(0.0, 100.0)
    return torch.stack([new_l, lab[..., 1], lab[..., 2]], dim=-1)


# ------------------------------------------------------------------------------------ per face


def caruncle_protection(face: Face, side: str, origin: tuple[int, int], shape: tuple[int, int]) -> torch.Tensor | None:
    """0 near the eye's inner corner, 1 elsewhere (None without 478 landmarks).

    The caruncle, the pink knob in the inner corner, is part of the eye-white polygon but
    not of the white: a retoucher leaves it pink. Radius: 0.08 eye widths fully protected,
    fading out by 0.16.
    """
    if face.landmarks is None or face.landmarks.shape[0] < 478:
        return None
    outer, inner = LOWER_LID[side][0], LOWER_LID[side][-1]
    points = face.landmarks[[outer, inner]].to(torch.float32).cpu()
    eye_width = float(torch.linalg.norm(points[1] - points[0]))
    if eye_width < 4:
        return None
    cx = float(points[1, 0]) - face.crop[0] - origin[0]
    cy = float(points[1, 1]) - face.crop[1] - origin[1]
    yy, xx = torch.meshgrid(torch.arange(shape[0], dtype=torch.float32), torch.arange(shape[1], dtype=torch.float32), indexing="ij")
    distance = torch.sqrt((xx - cx) ** 2 + (yy - cy) ** 2) / eye_width
    return _smoothstep(0.08, 0.16, distance)


def _window(mask: torch.Tensor, margin: int) -> tuple[int, int, int, int] | None:
    return _bbox(mask, margin)


def _skin_colour(rgb: torch.Tensor, face: Face) -> SkinColour | None:
    skin = face.masks.get("skin")
    if skin is None or float(skin.sum()) < 50:
        return None
    box = _bbox(skin, 0)
    assert box is not None
    y0, y1, x0, x1 = box
    step = max(1, int(max(y1 - y0, x1 - x0) // 256))
    sub = rgb[y0:y1:step, x0:x1:step, :]
    weight = skin[y0:y1:step, x0:x1:step].to(sub.device)
    lab = colour.rgb_to_lab(sub.to(torch.float32))
    return SkinColour(*(weighted_quantile(lab[..., c], weight, 0.5) for c in range(3)))


def enhance_eyes_face(rgb: torch.Tensor, face: Face, settings: EyeSettings, device: torch.device | None = None) -> torch.Tensor:
    """The per-face op for :func:`apply_per_face`: edits each open eye of one face crop."""
    if not settings.any():
        return rgb
    target = device or rgb.device
    out = rgb
    skin: SkinColour | None = None
    skin_measured = False
    for side in ("right", "left"):
        sclera_full = face.masks.get(f"{side}_eye_white")
        iris_full = face.masks.get(f"{side}_iris")
        if sclera_full is None and iris_full is None:
            continue
        zeros = torch.zeros(face.crop_size)
        sclera_full = (sclera_full if sclera_full is not None else zeros).to(torch.float32).cpu()
        iris_full = (iris_full if iris_full is not None else zeros).to(torch.float32).cpu()
        eye_full = torch.maximum(sclera_full, iris_full)
        box = _window(eye_full, margin=2)
        if box is None:
            continue
        if not skin_measured:
            skin, skin_measured = _skin_colour(rgb, face), True
        y0, y1, x0, x1 = box
        patch = out[y0:y1, x0:x1, :].to(target)
        sclera = sclera_full[y0:y1, x0:x1].to(target)
        iris = iris_full[y0:y1, x0:x1].to(target)
        lab = colour.rgb_to_lab(patch)
        check = check_eye_open(lab, sclera, iris, float(face.scale), skin)
        if not check.open:
            log.info("portrait_polish: EyeEnhance: %s eye left unchanged: %s", side, check.reason)
            continue
        edited_lab = lab
        weight = torch.zeros_like(sclera)
        if settings.sclera > 0 and float(sclera.sum()) >= 4:
            white = sclera * sclera_likelihood(lab, sclera)
            protect = caruncle_protection(face, side, (x0, y0), white.shape)
            if protect is not None:
                white = white * protect.to(white.device)
            if float(white.sum()) >= 4:
                sclera_lab = enhance_sclera(lab, white, settings.sclera)
                edited_lab = lab + (sclera_lab - lab) * white[..., None]
                weight = torch.maximum(weight, white)
        if (settings.iris > 0 or settings.iris_saturation > 0 or settings.limbal_ring > 0 or settings.catchlight > 0) and float(iris.sum()) >= 4:
            points = None
            if face.landmarks is not None and face.landmarks.shape[0] >= 478:
                offset = torch.tensor([float(face.crop[0] + x0), float(face.crop[1] + y0)])
                points = face.landmarks[list(IRIS_POINTS[side])].to(torch.float32).cpu() - offset
            iris_lab = enhance_iris(edited_lab, iris, settings, points)
            edited_lab = edited_lab + (iris_lab - edited_lab) * iris[..., None]
            weight = torch.maximum(weight, iris)
        # Only pixels whose Lab actually changed are rewritten (the Lab round trip is not
        # bit-exact, so a part that found nothing to do, e.g. no catchlight, must not touch them).
        weight = weight * (edited_lab != lab).any(dim=-1).to(weight.dtype)
        if float(weight.sum()) > 0:
            edited = colour.lab_to_rgb(edited_lab).to(patch.dtype)
            # edited_lab already carries the soft mask blend; the indicator keeps the rest exact.
            patch_out = blend_masked(patch, edited, (weight > 0).to(patch.dtype))
            if out is rgb:
                out = rgb.clone()
            out[y0:y1, x0:x1, :] = patch_out.to(rgb.device)
        if settings.under_eye > 0:
            band = under_eye_band(face, side, eye_full)
            band_box = _window(band, margin=0)
            if band_box is not None:
                by0, by1, bx0, bx1 = band_box
                # Include the cheek just below the band: it is the lift's reference.
                eye_width = float(max(bx1 - bx0, 1))
                ey1 = min(face.crop_size[0], by1 + int(0.25 * eye_width) + 2)
                patch2 = out[by0:ey1, bx0:bx1, :].to(target)
                band_p = torch.zeros(ey1 - by0, bx1 - bx0, device=target)
                band_p[: by1 - by0] = band[by0:by1, bx0:bx1].to(target)
                lab2 = colour.rgb_to_lab(patch2)
                soft = soften_under_eye(lab2, band_p, eye_width, settings.under_eye)
                if soft is not lab2:
                    edited2 = colour.lab_to_rgb(soft).to(patch2.dtype)
                    if out is rgb:
                        out = rgb.clone()
                    out[by0:ey1, bx0:bx1, :] = blend_masked(patch2, edited2, (band_p > 0).to(patch2.dtype)).to(rgb.device)
    return out


def enhance_eyes(image: torch.Tensor, regions: FaceRegions, settings: EyeSettings, device: torch.device | None = None, progress=None) -> torch.Tensor:
    """Enhance every open eye of every face in an RGB IMAGE ``[B, H, W, 3]`` (new tensor)."""
    if not settings.any():
        return image
    return apply_per_face(image, regions, lambda crop, face: enhance_eyes_face(crop, face, settings, device), progress)


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
            white = _smoothstep(split - 3.0, split + 3.0, light)
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
    "enhance_eyes_face",
    "eye_regions_from_mask",
    "check_eye_open",
    "find_catchlight",
    "catchlight_search_area",
    "under_eye_band",
    "iris_contrast_target",
]
