"""Spots on skin: find them, sort them (blemishes to heal, marks to keep), heal them.

Used by TextureSafeSmooth (:mod:`core.skin`) on a face's working grid. A spot is a small
place that differs from the skin around it (a blur at pore scale minus a masked blur at
~face/28). Each connected spot is sorted:

- *blemish* (healed): redness-dominated (haemoglobin: pimples, acne, red or dark-red marks),
  round (a long red line is a crease or a wrinkle's shadow: left to the band evening),
  smaller than ``keep_mark_size`` and less dark than ``keep_mark_contrast``; with
  ``heal_brown_spots`` also small, light brown spots;
- *mark* (kept and shielded from smoothing): brown/pigment spots (freckles, moles, beauty
  marks), anything at least ``keep_mark_size`` wide or ``keep_mark_contrast`` darker than
  its surroundings;
- with ``heal_acne_marks``, also *post-acne marks*: soft brownish-red spots (a* raised
  about as much as b*), lighter than ``keep_mark_contrast``, smaller than ``keep_mark_size``;
- a user ``protect`` mask turns spots into marks, a ``heal`` mask into blemishes.

Healing replaces a spot's low bands by the skin around it (a normalised blur that ignores
the spot: :func:`heal_fill`) and puts the spot's own fine texture back with its mean
removed (:func:`heal_texture`), so the healed place has pores, not a smooth patch. On a
large photo the fill comes from the working grid and the texture from the photo itself, on
a small full-resolution patch per spot (:func:`heal_patches`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch

from .bands import BandRadii, band_radii
from .colour import lab_to_rgb, rgb_to_lab
from .filters import gaussian_blur, masked_blur, smooth_blur
from .masks import Box, dilate

if TYPE_CHECKING:
    from .kernel import FaceWindow, Patch

# Spot detection thresholds (CIELAB units, spot minus its surroundings).
# Redness = Δa* − 0.6·max(Δb*, 0): blood raises a*, melanin (freckles, moles) raises b*
# about twice as much as a*, so brown spots score ≤ 0 and red ones clearly above.
RED_CANDIDATE = 1.5
# A spot's peak redness must reach RED_SPOT to be a blemish. Painted pimples of a* +7..16
# measure 4..15 here (the skin under them varies too); 5.0 left a fifth of them on fair and
# on very dark skin. Creases no longer pass as spots (MAX_BLEMISH_ELONGATION), and with both
# the default chain's lowest dlib identity on the 22 shared faces rose (0.812 -> 0.827).
RED_SPOT = 4.0
DARK_CANDIDATE = 2.5
DARK_SPOT = 4.0
# Pigment spots this much darker (L*) than the skin right around them are marks (freckles).
MARK_DARKNESS = 4.0
BROWN_REDNESS_SLOPE = 0.6
RED_TO_DARK = 0.5
# Share of a healed spot's own fine band taken out at its core (at pore-sized spots the
# spot is partly in the fine band itself); the rest is put back as its pores.
HEAL_TEXTURE_CALM = 0.25
# The put-back texture is clipped to this many standard deviations of the clear skin's.
HEAL_TEXTURE_CLIP = 1.5
# A red spot's edge: where its redness falls to this share of its peak.
SPOT_EDGE = 0.5
# A pigment mark's edge, as a share of its peak darkness (lower: a freckle field's lighter
# freckles beside a dark one stay marks).
MARK_EDGE = 0.2
# Post-acne marks (healed with ``heal_acne_marks``): a* above the skin around by at least
# ACNE_CANDIDATE (extent) and ACNE_MARK (peak), and more red than ACNE_BROWN_SLOPE × b*.
ACNE_CANDIDATE = 1.5
ACNE_MARK = 3.0
ACNE_BROWN_SLOPE = 0.5
# A pigment mark is a compact spot: filling at least this much of its bounding box, and
# at most this many times ``keep_mark_size`` wide (bigger dark areas are shading).
MIN_MARK_FILL = 0.4
MAX_MARK_FACTOR = 1.0
# A blemish is round: a red area more than this many times as long as it is wide (the
# ratio of its second moments' axes) is a crease, a fold or a wrinkle's shadow, which are
# the face's age and shape, not spots to heal.
MAX_BLEMISH_ELONGATION = 3.0


@dataclass(frozen=True)
class SpotRules:
    """The TextureSafeSmooth settings spot sorting reads."""

    keep_mark_size: float = 8.0  # % of the face width (spot diameter)
    keep_mark_contrast: float = 20.0  # L* darker than the surrounding skin
    heal_brown_spots: bool = False
    heal_acne_marks: bool = False


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
    smooth = gaussian_blur(lab, sigma_spot)
    around = masked_blur(lab, inside, sigma_around)
    diff = smooth - around
    # Squared norm against a squared threshold: torch's norm over the channel axis is slow.
    candidates = ((diff * diff).sum(dim=0) > DARK_CANDIDATE**2) & (inside > 0)
    weight = inside * (1.0 - dilate(candidates.to(lab.dtype), max(1, round(radii.fine * 2))))
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

    def elongation(self) -> torch.Tensor:
        """Length over width of each spot (square root of its pixel cloud's second-moment
        eigenvalue ratio; each pixel counted as a unit square, so 1 px lines stay finite).
        On the CPU in float64 (a small crop; the moments cancel badly in float32)."""
        labels = self.labels.to("cpu").numpy().ravel()
        height, width = self.labels.shape
        ys, xs = np.divmod(np.arange(height * width, dtype=np.float64), width)

        def per_spot(values: np.ndarray | None) -> np.ndarray:
            return np.bincount(labels, weights=values, minlength=self.count)

        n = np.maximum(per_spot(None), 1.0)
        mx, my = per_spot(xs) / n, per_spot(ys) / n
        cxx = per_spot(xs * xs) / n - mx * mx + 1.0 / 12.0
        cyy = per_spot(ys * ys) / n - my * my + 1.0 / 12.0
        cxy = per_spot(xs * ys) / n - mx * my
        half_trace = (cxx + cyy) / 2.0
        spread = np.sqrt(((cxx - cyy) / 2.0) ** 2 + cxy * cxy)
        ratio = np.sqrt((half_trace + spread) / np.maximum(half_trace - spread, 1e-6))
        return torch.from_numpy(ratio.astype(np.float32)).to(self.labels.device)

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
    params: SpotRules,
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
        grown = gaussian_blur(dilate(hard, grow), max(0.7, grow * 0.5))
        return torch.maximum(grown, hard).clamp(0.0, 1.0) * reach

    protected_px = None if protect is None else protect > 0.5
    reach = inside if allowed is None else torch.maximum(inside, allowed.to(lab.dtype))
    # Red (haemoglobin) spots: pimples, acne, red or dark-red marks.
    # A spot's extent is where it is at least SPOT_EDGE of its own peak redness (the peak
    # over a window as wide as the largest spot to heal): a pimple on a flushed cheek or
    # beside the nose stays a pimple, not part of one big red area that is too big to heal.
    window = max(3, 2 * round(scale * params.keep_mark_size / 200.0) + 1)
    local_peak = dilate(redness, window // 2)  # OpenCV's running max on the CPU: a big max_pool2d took 0.9 s
    red_map = (redness > torch.clamp(SPOT_EDGE * local_peak, min=RED_CANDIDATE)) & (in_skin if allowed is None else (allowed | in_skin))
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
        is_red = (red_peak >= RED_SPOT) & (red_peak >= RED_TO_DARK * red_dark)
        round_spot = red.elongation() <= MAX_BLEMISH_ELONGATION
        small = (red.diameter >= min_diameter) & (size_pct < params.keep_mark_size) & round_spot
        not_too_dark = red_dark < params.keep_mark_contrast
        heal = (is_red & small & not_too_dark) | (red.touches(force_heal) & is_red)
        heal = heal & red.touches(in_skin)
        heal = heal & ~red.touches(protected_px)
        # Big or very dark red-brown spots are marks (a birthmark, a dark mole).
        keep = is_red & round_spot & (red.diameter >= min_diameter) & ~heal & ~(size_pct >= params.keep_mark_size * 3)
        blemish_hard |= red.select(heal)
        mark_hard |= red.select(keep & (red.peak(darkness) >= DARK_SPOT))
        count_blemish += int(heal[1:].sum())
        count_mark += int((keep & (red.peak(darkness) >= DARK_SPOT))[1:].sum())
    if params.heal_acne_marks:
        # Post-acne marks: soft, flat, brownish red. Blood and melanin both: a* raised about
        # as much as b* or more (melanin alone raises b* about twice as much as a*), never
        # as dark as keep_mark_contrast, smaller than keep_mark_size.
        tint = d_a - ACNE_BROWN_SLOPE * d_b.clamp_min(0.0)
        acne_map = (d_a > ACNE_CANDIDATE) & (tint > 0.0) & in_skin & ~blemish_hard
        if bool(acne_map.any()):
            acne = _components(acne_map)
            size_pct = 100.0 * acne.diameter / scale
            heal = (acne.peak(d_a) >= ACNE_MARK) & (acne.diameter >= min_diameter) & (size_pct < params.keep_mark_size)
            heal = heal & (acne.peak(darkness) < params.keep_mark_contrast) & ~acne.touches(protected_px)
            blemish_hard |= acne.select(heal)
            count_blemish += int(heal[1:].sum())
    # Pigment (melanin) spots: freckles, moles, beauty marks. Thresholded at the spot
    # level (not the candidate level) so shading and stubble don't join into big areas;
    # elongated (folds, lines) and very large (shadows) dark areas are not marks.
    # Marks are judged against nearer surroundings (face/50): a mole or a freckle is dark
    # against the skin right next to it, a shadow is not.
    darkness = -spot_contrast(lab, inside, radii, scale, around=1.0 / 50.0)[0]
    dark_map = (darkness > MARK_DARKNESS) & in_skin & ~blemish_hard
    if bool(dark_map.any()):
        # A dark area too big to be a mark (shade in a hollow) is cut again at MARK_EDGE of
        # its own peak darkness: a mole in the shade is a mole; the shade stays shade.
        first = _components(dark_map)
        too_big = first.select(100.0 * first.diameter / scale >= MAX_MARK_FACTOR * params.keep_mark_size)
        if bool(too_big.any()):
            dark_peak = dilate(darkness, window // 2)
            dark_map = dark_map & (~too_big | (darkness > MARK_EDGE * dark_peak))
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


def heal_fill(lab: torch.Tensor, blemish: torch.Tensor, inside: torch.Tensor, scale: float) -> torch.Tensor:
    """What a spot is healed to: a normalised blur of the skin around it that ignores every
    spot (two widths mixed, so big spots still get filled from their own ring). Smooth."""
    outside_spots = inside * (blemish <= 0.02).to(lab.dtype)
    sigma_near = max(1.5, scale / 80.0)
    sigma_far = max(4.0, scale / 25.0)
    w = outside_spots[None]
    stacked = torch.cat([lab * w, w])
    mixed = smooth_blur(stacked, sigma_near) + 0.02 * smooth_blur(stacked, sigma_far)
    num, den = mixed[:-1], mixed[-1:]
    return num / den.clamp_min(1e-6)


def heal_texture(lab: torch.Tensor, blemish: torch.Tensor, skin_px: torch.Tensor, sigma_fine: float) -> torch.Tensor:
    """A spot's own fine band with its local mean removed, clipped to the skin's own pore
    contrast (``skin_px``: clear skin to measure it on), so no spot edge survives as a
    "texture" ring; a little calmer inside the spot. The pores are put back in lightness
    only: a spot near the pore size is partly in the fine band itself, and its redness
    there would survive the healing as a small red dot."""
    fine = lab - gaussian_blur(lab, sigma_fine)
    spot_mean = masked_blur(fine, blemish, max(0.8, sigma_fine))
    texture = fine - spot_mean * blemish[None]
    if bool(skin_px.any()):
        spread = fine[:, skin_px].std(dim=1).clamp_min(0.05) * HEAL_TEXTURE_CLIP
        texture = torch.maximum(torch.minimum(texture, spread[:, None, None]), -spread[:, None, None])
    texture = texture * (1.0 - HEAL_TEXTURE_CALM * blemish[None])
    texture[1:] = texture[1:] * (1.0 - blemish[None])
    return texture


def heal_spots(lab: torch.Tensor, blemish: torch.Tensor, inside: torch.Tensor, radii: BandRadii, scale: float, amount: float) -> torch.Tensor:
    """Replace the low bands of ``lab`` (``[3, H, W]``) under ``blemish`` by the skin
    around it and keep its pores (all on one grid)."""
    if amount <= 0 or not bool((blemish > 0).any()):
        return lab
    fill = heal_fill(lab, blemish, inside, scale)
    skin_px = inside * (blemish <= 0.02).to(lab.dtype) > 0.5
    healed = fill + heal_texture(lab, blemish, skin_px, radii.fine)
    weight = (blemish * amount).clamp(0.0, 1.0)[None]
    return lab + weight * (healed - lab)


def _merged_boxes(boxes: list[Box]) -> list[Box]:
    """Overlapping boxes merged (a spot is healed by one patch, never twice)."""
    merged: list[Box] = []
    for box in sorted(boxes):
        for i, other in enumerate(merged):
            if box.x0 < other.x1 and other.x0 < box.x1 and box.y0 < other.y1 and other.y0 < box.y1:
                merged[i] = Box(min(box.x0, other.x0), min(box.y0, other.y0), max(box.x1, other.x1), max(box.y1, other.y1))
                break
        else:
            merged.append(box)
    return merged if len(merged) == len(boxes) else _merged_boxes(merged)


def heal_patches(window: FaceWindow, box: Box, lab_evened: torch.Tensor, blemish: torch.Tensor, inside: torch.Tensor, amount: float, keep: torch.Tensor | None) -> list[Patch]:
    """Full-resolution healing, one small patch per spot (or group of nearby spots).

    The tensors cover ``box`` of the working grid. The fill is computed there from the
    already-evened skin (``lab_evened``) and upsampled (it is smooth); the texture is the
    photo's own, at full resolution, so a healed pimple on a 24 MP face keeps pores as fine
    as its neighbours'. ``keep`` is a user's protect mask: no healing there.
    """
    from .kernel import Patch

    if amount <= 0 or not bool((blemish > 0.02).any()):
        return []
    import cv2

    fill = heal_fill(lab_evened, blemish, inside, window.scale)
    radii_full = band_radii(window.full_scale)
    margin_full = int(math.ceil(3.0 * max(0.8, radii_full.fine))) + 2
    margin_work = int(math.ceil(margin_full * window.factor)) + 1
    count, _labels, stats, _ = cv2.connectedComponentsWithStats((blemish > 0.02).to("cpu", torch.uint8).numpy(), connectivity=8)
    height, width = blemish.shape
    spots = [Box(int(x), int(y), int(x + w), int(y + h)).grow(margin_work, height, width) for x, y, w, h, _area in stats[1:count]]
    weight_grid = blemish * amount
    if keep is not None:
        weight_grid = weight_grid * (1.0 - keep)
    patches: list[Patch] = []
    for spot_box in _merged_boxes(spots):
        full_box = window.full_box(spot_box.shift(box.x0, box.y0), margin_full)

        def edit(pixels: torch.Tensor, full_box: Box = full_box) -> tuple[torch.Tensor, torch.Tensor] | None:
            weight = window.full_mask(weight_grid, full_box, box)
            if not bool((weight > 0).any()):
                return None
            spot = window.full_mask(blemish, full_box, box)
            lab = rgb_to_lab(pixels).permute(2, 0, 1)
            skin_px = (window.full_mask(inside, full_box, box) > 0.5) & (spot <= 0.02)
            healed = window.upsample(fill, full_box, box) + heal_texture(lab, spot, skin_px, radii_full.fine)
            out = lab + weight[None] * (healed - lab)
            return lab_to_rgb(out.permute(1, 2, 0)), weight

        patches.append(Patch(full_box, edit))
    return patches


__all__ = [
    "SpotRules",
    "Spots",
    "find_spots",
    "heal_fill",
    "heal_patches",
    "heal_spots",
    "heal_texture",
    "spot_contrast",
]
