"""TextureSafeSmooth: even skin tone and heal blemishes while the pores stay the same pores.

Pure functions on one face crop (``[h, w, 3]`` sRGB float32) plus the image-level driver
:func:`smooth_skin_image`. The recipe, per face, in CIELAB (float32 throughout):

1. **Skin mask**: FaceParse's skin (+ nose, + neck if asked) minus eyes, brows, lips,
   mouth, teeth and hair (dilated a little), eroded and feathered a little.
2. **Spots** (:func:`find_spots`): small places that differ from the skin around them
   (a blur at pore scale minus a masked blur at ~face/28). Each connected spot is sorted:
   - *blemish* (healed): redness-dominated (haemoglobin: pimples, acne, red or dark-red
     marks), smaller than ``keep_mark_size`` and less dark than ``keep_mark_contrast``;
     with ``heal_brown_spots`` also small, light brown spots;
   - *mark* (kept and shielded from smoothing): brown/pigment spots (freckles, moles,
     beauty marks), anything at least ``keep_mark_size`` wide or ``keep_mark_contrast``
     darker than its surroundings;
   - a user ``protect`` mask turns spots into marks, a ``heal`` mask into blemishes.
3. **Healing** (:func:`heal_spots`): inside a blemish the low bands are replaced by the
   skin around it (masked blur that ignores the spot) and the spot's own fine texture is put
   back with its mean removed, so the healed place has pores, not a smooth patch.
4. **Bands** (:mod:`core.bands`): the medium and coarse bands of L*, a*, b* are scaled down
   by ``strength`` (tone evenness); micro dodge & burn flattens small luminance blotches in
   the medium band only; the fine band is kept × ``texture`` (0.85–1.2). Marks and the
   protect mask keep their bands.
5. Optional **shine** reduction pulls bright, paler-than-skin highlights back to the skin.
6. The change is applied to the original pixels and composited with the skin mask, so
   every pixel outside it is bit-exact.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from .bands import BandRadii, band_radii, blur, fill_outside, masked_blur, smooth_blur, split_bands
from .colour import lab_to_rgb, rgb_to_lab
from .regions import Face, FaceRegions
from .regions import dilate_mask as _dilate_torch
from .tensors import blend_masked

log = logging.getLogger("portrait_polish")

TEXTURE_MIN = 0.85
TEXTURE_MAX = 1.2

# Spot detection thresholds (CIELAB units, spot minus its surroundings).
# Redness = Δa* − 0.6·max(Δb*, 0): blood raises a*, melanin (freckles, moles) raises b*
# about twice as much as a*, so brown spots score ≤ 0 and red ones clearly above.
RED_CANDIDATE = 1.5
RED_SPOT = 5.0
DARK_CANDIDATE = 2.5
DARK_SPOT = 4.0
# Pigment spots this much darker (L*) than the skin right around them are marks (freckles).
MARK_DARKNESS = 4.0
BROWN_REDNESS_SLOPE = 0.6
RED_TO_DARK = 0.5
# A pigment mark is a compact spot: filling at least this much of its bounding box, and
# at most this many times ``keep_mark_size`` wide (bigger dark areas are shading).
MIN_MARK_FILL = 0.4
MAX_MARK_FACTOR = 1.0

# How strongly ``strength`` = 1 scales each band down (gain = 1 − k·strength).
GAIN_MEDIUM_L = 0.15
GAIN_COARSE_L = 1.7
GAIN_MEDIUM_AB = 0.4
GAIN_COARSE_AB = 0.2
# Share of the smoothing held back on the nose (coarse, medium band).
NOSE_COARSE_KEEP = 0.8
NOSE_MEDIUM_KEEP = 0.4
# Micro dodge & burn: medium-band luminance deviations well below this (L*) are flattened.
DODGE_BURN_TAU = 4.0
DODGE_BURN_GAIN = 0.6
# Soft limit (L*, at strength 0.5) of how far evening moves a pixel's lightness.
MAX_LIFT = 3.5


@dataclass(frozen=True)
class SkinParams:
    """What the TextureSafeSmooth widgets set (see the node's tooltips)."""

    strength: float = 0.5
    texture: float = 1.0
    heal_blemishes: bool = True
    heal_strength: float = 1.0
    heal_brown_spots: bool = False
    keep_mark_size: float = 8.0  # % of the face width (spot diameter)
    keep_mark_contrast: float = 20.0  # L* darker than the surrounding skin
    dodge_burn: float = 0.5
    shine: float = 0.0
    include_neck: bool = False

    def is_identity(self) -> bool:
        """True when these settings change nothing (strength 0 turns everything off)."""
        return self.strength <= 0.0

    def clamped_texture(self) -> float:
        return min(TEXTURE_MAX, max(TEXTURE_MIN, float(self.texture)))


@dataclass
class SkinResult:
    """One face's result: the edited crop and the masks (on the crop) of what was done."""

    image: torch.Tensor  # [h, w, 3]
    healed: torch.Tensor  # [h, w] soft mask of healed blemishes
    marks: torch.Tensor  # [h, w] soft mask of spots kept as marks
    skin: torch.Tensor  # [h, w] the skin mask used


def face_scale(face: Face) -> float:
    """The face width in pixels used for radii (falls back to the crop size)."""
    if face.scale and face.scale > 0:
        return float(face.scale)
    height, width = face.crop_size
    return 0.6 * float(max(height, width))


def dilate_mask(mask: torch.Tensor, radius: int) -> torch.Tensor:
    """Grey dilation of ``[H,W]`` with a ``(2r+1)²`` square (as :func:`core.regions.dilate_mask`),
    via OpenCV on the CPU: its running max is far faster than a big max-pool at 24 MP."""
    if radius <= 0:
        return mask
    if mask.device.type != "cpu" or mask.ndim != 2:
        return _dilate_torch(mask, radius)
    import cv2

    kernel = np.ones((2 * radius + 1, 2 * radius + 1), np.uint8)
    array = mask.detach().to(torch.float32).contiguous().numpy()
    out = cv2.dilate(array, kernel, borderType=cv2.BORDER_CONSTANT, borderValue=0.0)
    return torch.from_numpy(out).to(mask.dtype)


def _erode(mask: torch.Tensor, radius: int) -> torch.Tensor:
    if radius <= 0:
        return mask
    return 1.0 - dilate_mask(1.0 - mask, radius)


# Holes in the parsed skin narrower than this fraction of the face width are spots on the
# skin (a colour-based parse tends to leave freckles and pimples out), not features.
HOLE_FRACTION = 0.06


def fill_small_holes(mask: torch.Tensor, max_diameter: float) -> torch.Tensor:
    """Set enclosed holes of ``mask`` (> 0.5) smaller than a disc of ``max_diameter`` to 1.

    Eyes, nostrils and the mouth are bigger than this and are also taken out again by
    :func:`skin_mask`; what gets filled is a pimple or a freckle the parser left out.
    """
    hard = (mask > 0.5).to("cpu", torch.uint8).numpy()
    if not hard.any() or max_diameter <= 0:
        return mask
    import cv2

    count, labels, stats, _ = cv2.connectedComponentsWithStats(1 - hard, connectivity=4)
    height, width = hard.shape
    max_area = math.pi * (max_diameter / 2.0) ** 2
    x, y, w, h, area = (stats[:, i] for i in range(5))
    inner = (x > 0) & (y > 0) & (x + w < width) & (y + h < height) & (area <= max_area)
    inner[0] = False  # label 0 is the mask itself
    if not inner.any():
        return mask
    holes = torch.from_numpy(inner[labels] & (hard == 0)).to(mask.device)
    return torch.where(holes, torch.ones_like(mask), mask)


def skin_mask(face: Face, include_neck: bool = False) -> torch.Tensor:
    """Soft ``[h, w]`` mask of the skin to retouch on ``face``'s crop.

    FaceParse's skin already excludes eyes, brows, lips and hair; they are taken out again
    (dilated by ~face/250) so a soft parse edge never lets the smoother touch a lash line
    or the lip border. Then eroded by ~face/300 and feathered inside its own support.
    """
    scale = face_scale(face)
    names = ["skin", "nose"] + (["neck"] if include_neck else [])
    skin = fill_small_holes(face.mask(names), HOLE_FRACTION * scale)
    exclude = face.mask(["eyes", "brows", "mouth", "teeth", "hair"])
    if bool((exclude > 0).any()):
        skin = skin * (1.0 - dilate_mask(exclude, max(1, round(scale / 250.0))).clamp(0, 1))
    radius = max(1, round(scale / 300.0))
    eroded = _erode(skin, radius)
    feathered = blur(eroded[None], radius * 0.5)[0]
    return torch.minimum(feathered, skin).clamp(0.0, 1.0)


def _smoothstep(x: torch.Tensor, lo: float, hi: float) -> torch.Tensor:
    t = ((x - lo) / (hi - lo)).clamp(0.0, 1.0)
    return t * t * (3.0 - 2.0 * t)


@dataclass
class Spots:
    """Spot masks on the crop: ``blemish`` (to heal) and ``mark`` (to keep), both soft."""

    blemish: torch.Tensor
    mark: torch.Tensor
    count_blemish: int
    count_mark: int


def spot_contrast(lab: torch.Tensor, inside: torch.Tensor, radii: BandRadii, scale: float, around: float = 1.0 / 28.0) -> torch.Tensor:
    """``[3,H,W]`` difference between a pore-scale blur of ``lab`` and the skin around it.

    The surroundings are a masked blur at ``around`` × the face width, computed twice: the
    second time without the candidate spots, so a big spot does not raise its own reference.
    """
    sigma_spot = max(0.7, 0.5 * radii.fine)
    sigma_around = max(3.0, scale * around)
    smooth = blur(lab, sigma_spot)
    around = masked_blur(lab, inside, sigma_around)
    diff = smooth - around
    candidates = (diff.norm(dim=0) > DARK_CANDIDATE) & (inside > 0)
    weight = inside * (1.0 - dilate_mask(candidates.to(lab.dtype), max(1, round(radii.fine * 2))))
    around = masked_blur(lab, weight, sigma_around)
    return smooth - around


@dataclass
class _Components:
    """Connected spots of one binary map: labels ``[H,W]`` (0 = none) and per-label stats."""

    labels: torch.Tensor
    count: int
    diameter: torch.Tensor  # equivalent-circle diameter, px
    fill: torch.Tensor  # area / bounding-box area (1 = a filled square, ~0.8 a disc)

    def peak(self, values: torch.Tensor) -> torch.Tensor:
        out = torch.full((self.count,), -1e9, dtype=values.dtype, device=values.device)
        return out.scatter_reduce_(0, self.labels.flatten(), values.flatten(), reduce="amax")

    def sum(self, values: torch.Tensor) -> torch.Tensor:
        out = torch.zeros(self.count, dtype=values.dtype, device=values.device)
        return out.index_add_(0, self.labels.flatten(), values.flatten())

    def touches(self, user_mask: torch.Tensor | None) -> torch.Tensor:
        if user_mask is None:
            return torch.zeros(self.count, dtype=torch.bool, device=self.labels.device)
        return self.peak((user_mask > 0.5).to(torch.float32).to(self.labels.device)) > 0

    def select(self, chosen: torch.Tensor) -> torch.Tensor:
        chosen = chosen.clone()
        chosen[0] = False  # label 0 is "no spot"
        return chosen[self.labels]


def _components(binary: torch.Tensor) -> _Components:
    import cv2  # CPU connected components on a small binary crop

    count, labels, stats, _ = cv2.connectedComponentsWithStats(binary.to("cpu", torch.uint8).numpy(), connectivity=8)
    area = torch.from_numpy(stats[:, cv2.CC_STAT_AREA].astype(np.float32)).to(binary.device)
    labels_t = torch.from_numpy(labels.astype(np.int64)).to(binary.device)
    bbox = torch.from_numpy((stats[:, cv2.CC_STAT_WIDTH] * stats[:, cv2.CC_STAT_HEIGHT]).astype(np.float32)).to(binary.device)
    return _Components(labels_t, int(count), 2.0 * torch.sqrt(area / math.pi), area / bbox.clamp_min(1.0))


def find_spots(
    lab: torch.Tensor,
    inside: torch.Tensor,
    radii: BandRadii,
    scale: float,
    params: SkinParams,
    protect: torch.Tensor | None = None,
    force_heal: torch.Tensor | None = None,
    allowed: torch.Tensor | None = None,
) -> Spots:
    """Find and sort the spots on a crop (``lab`` is ``[3,H,W]``, ``inside`` the hard skin mask).

    Red spots and pigment spots are found as separate connected sets, so a pimple among
    freckles is not merged with them into one big "mark". ``allowed`` (bool ``[H,W]``) is
    where a red spot that touches the skin may extend to: a parser that judges skin by its
    colour leaves an inflamed spot's core out of the skin, and it must still be healed.
    """
    height, width = lab.shape[-2:]
    diff = spot_contrast(lab, inside, radii, scale)
    d_l, d_a, d_b = diff[0], diff[1], diff[2]
    redness = d_a - BROWN_REDNESS_SLOPE * d_b.clamp_min(0.0)
    darkness = -d_l
    in_skin = inside > 0.5
    empty = torch.zeros(height, width, dtype=lab.dtype, device=lab.device)
    min_diameter = max(2.5, scale / 250.0)
    grow = max(1, round(max(radii.fine * 1.5, scale / 200.0)))

    def soft(hard: torch.Tensor, grow: int = grow) -> torch.Tensor:
        hard = hard.to(lab.dtype)
        if not bool(hard.any()):
            return empty.clone()
        grown = blur(dilate_mask(hard, grow)[None], max(0.7, grow * 0.5))[0]
        return torch.maximum(grown, hard).clamp(0.0, 1.0) * reach

    protected_px = None if protect is None else protect > 0.5
    reach = inside if allowed is None else torch.maximum(inside, allowed.to(lab.dtype))
    # Red (haemoglobin) spots: pimples, acne, red or dark-red marks.
    red_map = (redness > RED_CANDIDATE) & (in_skin if allowed is None else (allowed | in_skin))
    blemish_hard = torch.zeros(height, width, dtype=torch.bool, device=lab.device)
    mark_hard = torch.zeros_like(blemish_hard)
    count_blemish = count_mark = 0
    if bool(red_map.any()):
        red = _components(red_map)
        size_pct = 100.0 * red.diameter / scale
        red_peak = red.peak(redness)
        # Red enough, and red out of proportion to how dark it is: a reddish freckle is
        # much darker than it is red, an inflamed spot is not.
        # How dark the spot is where it is reddest (a redness-weighted mean): a pimple next
        # to a freckle must not borrow the freckle's darkness.
        weight = redness.clamp_min(0.0) ** 2
        red_dark = red.sum(darkness * weight) / red.sum(weight).clamp_min(1e-6)
        is_red = (red_peak >= RED_SPOT) & (red_peak >= RED_TO_DARK * red.peak(darkness))
        small = (red.diameter >= min_diameter) & (size_pct < params.keep_mark_size)
        not_too_dark = red_dark < params.keep_mark_contrast
        heal = (is_red & small & not_too_dark) | (red.touches(force_heal) & is_red)
        heal = heal & red.touches(in_skin)
        heal = heal & ~red.touches(protected_px)
        # Big or very dark red-brown spots are marks (a birthmark, a dark mole).
        keep = is_red & (red.diameter >= min_diameter) & ~heal & ~(size_pct >= params.keep_mark_size * 3)
        blemish_hard |= red.select(heal)
        mark_hard |= red.select(keep & (red.peak(darkness) >= DARK_SPOT))
        count_blemish += int(heal[1:].sum())
        count_mark += int((keep & (red.peak(darkness) >= DARK_SPOT))[1:].sum())
    # Pigment (melanin) spots: freckles, moles, beauty marks. Thresholded at the spot
    # level (not the candidate level) so shading and stubble don't join into big areas;
    # elongated (folds, lines) and very large (shadows) dark areas are not marks.
    # Marks are judged against nearer surroundings (face/50): a mole or a freckle is dark
    # against the skin right next to it, a shadow is not.
    darkness = -spot_contrast(lab, inside, radii, scale, around=1.0 / 50.0)[0]
    dark_map = (darkness > MARK_DARKNESS) & in_skin & ~blemish_hard
    if bool(dark_map.any()):
        dark = _components(dark_map)
        size_pct = 100.0 * dark.diameter / scale
        sized = (dark.diameter >= min_diameter) & (size_pct < MAX_MARK_FACTOR * params.keep_mark_size) & (dark.fill >= MIN_MARK_FILL)
        small_light = (size_pct < params.keep_mark_size) & (dark.peak(darkness) < params.keep_mark_contrast)
        heal = sized & ((small_light & params.heal_brown_spots) | dark.touches(force_heal))
        heal = heal & ~dark.touches(protected_px)
        keep = sized & ~heal
        blemish_hard |= dark.select(heal)
        mark_hard |= dark.select(keep)
        count_blemish += int(heal[1:].sum())
        count_mark += int(keep[1:].sum())
    # Marks grow less than blemishes: only their soft edge needs covering.
    return Spots(soft(blemish_hard), soft(mark_hard & ~blemish_hard, max(1, round(radii.fine))), count_blemish, count_mark)


def heal_spots(lab: torch.Tensor, blemish: torch.Tensor, inside: torch.Tensor, radii: BandRadii, scale: float, amount: float) -> torch.Tensor:
    """Replace the low bands of ``lab`` under ``blemish`` by the skin around it; keep pores.

    The fill is a normalised blur that ignores the blemish (two widths mixed so that big
    spots still get filled from their own ring). The spot's fine band is put back with its
    local mean removed and clipped to the skin's own pore contrast, so the spot's colour is
    gone but its texture is not.
    """
    if amount <= 0 or not bool((blemish > 0).any()):
        return lab
    outside_spots = inside * (blemish <= 0.02).to(lab.dtype)
    sigma_near = max(1.5, scale / 80.0)
    sigma_far = max(4.0, scale / 25.0)
    w = outside_spots[None]
    stacked = torch.cat([lab * w, w])
    mixed = smooth_blur(stacked, sigma_near) + 0.02 * smooth_blur(stacked, sigma_far)
    num, den = mixed[:-1], mixed[-1:]
    fill = num / den.clamp_min(1e-6)

    fine = lab - blur(lab, radii.fine)
    spot_mean = masked_blur(fine, blemish, max(0.8, radii.fine))
    texture = fine - spot_mean * blemish[None]
    # Clip to the skin's own fine-band spread (per channel), so no spot edge survives as
    # a "texture" ring.
    skin_px = outside_spots > 0.5
    if bool(skin_px.any()):
        spread = fine[:, skin_px].std(dim=1).clamp_min(0.05) * 2.0
        texture = torch.maximum(torch.minimum(texture, spread[:, None, None]), -spread[:, None, None])
    # The spot's own pores come back a little calmer: at pore-sized spots the spot itself
    # is partly in the fine band.
    healed = fill + texture * (1.0 - 0.5 * blemish[None])
    weight = (blemish * amount).clamp(0.0, 1.0)[None]
    return lab + weight * (healed - lab)


def retouch_skin(
    crop: torch.Tensor,
    face: Face,
    params: SkinParams,
    protect: torch.Tensor | None = None,
    force_heal: torch.Tensor | None = None,
    limit: torch.Tensor | None = None,
) -> SkinResult:
    """TextureSafeSmooth on one face crop ``[h, w, 3]``; see the module docstring.

    ``protect``, ``force_heal`` and ``limit`` are optional ``[h, w]`` masks on the crop:
    spots to keep (and no smoothing there), spots to heal whatever they look like, and an
    extra mask the skin is multiplied by.
    """
    height, width = crop.shape[0], crop.shape[1]
    device = crop.device
    zeros = torch.zeros(height, width, dtype=torch.float32, device=device)
    skin = skin_mask(face, params.include_neck).to(device)
    if limit is not None:
        skin = skin * limit.to(device, torch.float32)
    if params.is_identity() or not bool((skin > 0).any()) or min(height, width) < 4:
        return SkinResult(crop, zeros, zeros, skin)

    scale = face_scale(face)
    radii = band_radii(scale)
    strength = float(min(max(params.strength, 0.0), 1.0))
    lab = rgb_to_lab(crop.to(torch.float32)).permute(2, 0, 1).contiguous()  # [3,h,w]
    inside = (skin > 0.5).to(torch.float32)
    if not bool(inside.any()):
        inside = (skin > 0).to(torch.float32)
    filled = fill_outside(lab, inside, radii.medium)

    # 1. spots (a red spot may reach a little past the parsed skin, never into a feature)
    features = face.mask(["eyes", "brows", "mouth", "teeth", "hair"]).to(device)
    allowed = (dilate_mask(inside, max(1, round(scale / 40.0))) > 0) & (dilate_mask(features, max(1, round(scale / 100.0))) < 0.2)
    if limit is not None:
        allowed &= limit.to(device) > 0.5
    # Spots are always sorted: marks (freckles, moles) keep their bands even with healing off.
    seen = torch.where((allowed | (inside > 0))[None], lab, filled)
    spots = find_spots(seen, inside, radii, scale, params, protect, force_heal if params.heal_blemishes else None, allowed)
    healed_mask = spots.blemish if params.heal_blemishes else zeros
    # The band filters see the real pixels of the skin and of the spots being healed,
    # and the skin's continuation everywhere else.
    work = filled if not bool((healed_mask > 0).any()) else torch.where((healed_mask > 0)[None], lab, filled)
    if params.heal_blemishes:
        work_healed = heal_spots(work, healed_mask, inside, radii, scale, float(params.heal_strength))
    else:
        work_healed = work

    # 2. bands, measured with the marks filled in from the skin around them: a field of
    # freckles would otherwise drag the local mean down, the clear skin between them would
    # look like a light blotch, and evening it would fade the freckles.
    band_source = heal_spots(work_healed, spots.mark, inside, radii, scale, 1.0)
    bands = split_bands(band_source, band_source[0], radii)
    keep = spots.mark
    if protect is not None:
        keep = torch.maximum(keep, protect.to(device, torch.float32).clamp(0, 1))
    free = (1.0 - keep)[None]  # where smoothing may act
    # Marks keep their own medium band (their shape and contrast) but follow the tone
    # evening of the skin around them (the coarse band, measured with them filled in), so
    # a freckle on a lifted patch stays exactly as distinct from its skin as before.
    user_keep = zeros if protect is None else protect.to(device, torch.float32).clamp(0, 1)
    coarse_keep = (1.0 - user_keep)[None]
    # The nose's light and shade is its shape, not unevenness: its coarse band is left
    # mostly alone (and its medium band partly), so the nose does not flatten.
    nose = face.mask("nose").to(device)
    # Near the edge of the skin the low bands are one-sided estimates (the skin's
    # continuation is a guess), so their attenuation fades out there instead of lifting
    # the darker rim along a jaw or an eye socket.
    edge_taper = ((blur(inside[None], radii.medium) - 0.5) * 2.5).clamp(0.0, 1.0)
    free = free * edge_taper
    coarse_free = coarse_keep * edge_taper * (1.0 - NOSE_COARSE_KEEP * nose)[None]
    free = free * (1.0 - NOSE_MEDIUM_KEEP * nose)[None]
    gains_medium = torch.tensor([GAIN_MEDIUM_L, GAIN_MEDIUM_AB, GAIN_MEDIUM_AB], device=device).view(3, 1, 1)
    gains_coarse = torch.tensor([GAIN_COARSE_L, GAIN_COARSE_AB, GAIN_COARSE_AB], device=device).view(3, 1, 1)
    medium_gain = (1.0 - gains_medium * strength * free).clamp_min(0.1)
    coarse_gain = (1.0 - gains_coarse * strength * coarse_free).clamp_min(0.1)
    medium = bands.medium * medium_gain
    if params.dodge_burn > 0:
        flatten = params.dodge_burn * strength * DODGE_BURN_GAIN * torch.exp(-((bands.medium[0] / DODGE_BURN_TAU) ** 2))
        medium[0] = medium[0] * (1.0 - flatten.clamp(0.0, 0.9) * free[0])
    coarse = bands.coarse * coarse_gain
    # Evening is a correction of small deviations: each pixel's lightness moves by at most
    # about MAX_LIFT L* (soft limit), so strong structure in the bands (a moustache, the
    # shadow under the lip, a nostril edge) is only nudged, never lifted away.
    limit = MAX_LIFT * (0.5 + strength)
    change = (medium[0] - bands.medium[0]) + (coarse[0] - bands.coarse[0])
    limited = limit * torch.tanh(change / limit)
    scale_back = torch.where(change.abs() > 1e-6, limited / change, torch.ones_like(change))
    medium[0] = bands.medium[0] + (medium[0] - bands.medium[0]) * scale_back
    coarse[0] = bands.coarse[0] + (coarse[0] - bands.coarse[0]) * scale_back
    texture = params.clamped_texture()
    fine = bands.fine.clone()
    fine[0] = fine[0] * texture
    if params.shine > 0:
        # Highlights: brighter and paler (lower chroma) than the skin around them, at any
        # size up to a good part of the cheek, so they are judged against a broad masked
        # blur (face/8), not against the band split's base.
        low = bands.low()
        broad = masked_blur(low, inside, max(4.0, scale / 8.0))
        lift = low[0] - broad[0]
        chroma = torch.sqrt(low[1] ** 2 + low[2] ** 2)
        broad_chroma = torch.sqrt(broad[1] ** 2 + broad[2] ** 2)
        pale = _smoothstep(broad_chroma - chroma, 0.0, 4.0)
        shine_w = (float(params.shine) * _smoothstep(lift, 2.0, 8.0) * (0.5 + 0.5 * pale) * free[0]).clamp(0, 1)
        # Take most of the excess lightness away and give the colour of the skin around back.
        medium[0] = medium[0] - shine_w * lift.clamp_min(0.0) * 0.8
        medium[1:] = medium[1:] + shine_w[None] * (broad[1:] - low[1:]) * 0.8
    result = bands.base + coarse + medium + fine

    # 3. apply the change to the original pixels and composite inside the skin only
    delta = (result - band_source) + (work_healed - work)
    out_lab = lab + delta
    out_rgb = lab_to_rgb(out_lab.permute(1, 2, 0)).to(torch.float32)
    composite = torch.maximum(skin, healed_mask) * (1.0 - user_keep)  # protected pixels stay bit-exact
    out = blend_masked(crop, out_rgb, composite)
    return SkinResult(out, healed_mask, spots.mark * skin, composite)


def smooth_skin(crop: torch.Tensor, face: Face, params: SkinParams) -> torch.Tensor:
    """The per-face operation (``core.regions.FaceOp``): edited crop, same shape."""
    return retouch_skin(crop, face, params).image


def _crop(mask: torch.Tensor | None, frame: int, face: Face) -> torch.Tensor | None:
    if mask is None:
        return None
    x0, y0, x1, y1 = face.crop
    return mask[min(frame, mask.shape[0] - 1), y0:y1, x0:x1]


def _retouch_on(device: torch.device, crop: torch.Tensor, face: Face, params: SkinParams, masks: list[torch.Tensor | None]) -> SkinResult:
    """:func:`retouch_skin` with the crop and its masks moved to ``device``."""
    moved = [None if m is None else m.to(device, torch.float32) for m in masks]
    return retouch_skin(crop.to(device), face, params, *moved)


def smooth_skin_image(
    image: torch.Tensor,
    regions: FaceRegions,
    params: SkinParams,
    limit: torch.Tensor | None = None,
    protect: torch.Tensor | None = None,
    force_heal: torch.Tensor | None = None,
    device: torch.device | None = None,
    progress: Callable[[], None] | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """TextureSafeSmooth on an RGB IMAGE ``[B,H,W,3]``: every face of every frame.

    ``limit`` / ``protect`` / ``force_heal`` are full-frame MASKs ``[B or 1, H, W]``.
    Returns ``(image, healed_mask [B,H,W])``. Frames with no face, and ``strength`` 0,
    give the input pixels back bit-exact.
    """
    batch, height, width = image.shape[0], image.shape[1], image.shape[2]
    healed = torch.zeros(batch, height, width, dtype=torch.float32)
    if params.is_identity():
        return image, healed
    items = regions.for_batch(batch, height, width)
    out = image.clone()
    device = device or image.device
    for frame, image_faces in enumerate(items):
        if not image_faces.faces:
            log.info("portrait_polish: TextureSafeSmooth: frame %d has no face; passed through unchanged", frame)
        for face in image_faces.faces:
            x0, y0, x1, y1 = face.crop
            crop = out[frame, y0:y1, x0:x1, :]
            masks = [_crop(m, frame, face) for m in (protect, force_heal, limit)]
            try:
                result = _retouch_on(device, crop, face, params, masks)
            except RuntimeError as exc:
                if device.type == "cpu" or "out of memory" not in str(exc).lower():
                    raise
                log.warning("portrait_polish: TextureSafeSmooth ran out of GPU memory; retrying this face on the CPU")
                result = _retouch_on(torch.device("cpu"), crop, face, params, masks)
            if result.image is not crop:
                out[frame, y0:y1, x0:x1, :] = result.image.to(out.device)
            region = healed[frame, y0:y1, x0:x1]
            healed[frame, y0:y1, x0:x1] = torch.maximum(region, result.healed.to(region.device))
            if progress is not None:
                progress()
    return out, healed


__all__ = [
    "SkinParams",
    "SkinResult",
    "Spots",
    "face_scale",
    "find_spots",
    "heal_spots",
    "retouch_skin",
    "skin_mask",
    "smooth_skin",
    "smooth_skin_image",
    "spot_contrast",
]
