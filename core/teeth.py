"""Teeth whitening in CIELAB, the way a retoucher does it: less yellow, a little lighter, same teeth.

The edit works on the *smooth* component of the teeth's L* and b* (a mask-normalised
Gaussian, about a third of a tooth wide) and keeps the residual, so the dark gaps between
teeth, the enamel texture and the specular highlights are carried over untouched. Only
the smooth yellowness is scaled down and the smooth lightness lifted, under three caps
that keep the result natural:

- b* never drops below ``b_floor_fraction`` of its own value (0.5 at the default strength)
  and never to zero or below: blue-white teeth are the "Hollywood" veneer look;
- the lift of L* fades out toward the highlights (no clipping of enamel glints);
- the teeth never end up lighter than the same face's eye whites (their mean L*).

Gums, lips and tongue stay untouched: the lips' masks are cut out and a redness gate on
a* (relative to the teeth's own median a*) drops pinkish pixels the teeth mask may have
caught. Each face is measured and edited on its own; a face with no visible teeth (an
empty or tiny mask) is returned as the very same pixels.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

import torch

from . import colour
from .filters import masked_blur
from .kernel import Correction, FaceWindow, apply_per_face
from .masks import Box, bbox, smoothstep
from .regions import FaceRegions

log = logging.getLogger("portrait_polish")

# Below this many (mask-weighted) pixels there is nothing worth whitening: a closed mouth.
MIN_TEETH_PIXELS = 24.0
# ... and below this fraction of the face's area (face scale squared), a sliver at the lips.
MIN_TEETH_FACE_FRACTION = 2e-4


@dataclass(frozen=True)
class TeethSettings:
    """What TeethWhiten exposes.

    ``strength`` 0..1 scales the whole edit (0 = bit-exact input; 0.5 is the natural
    default). ``brighten`` 0..1 scales the lightness lift relative to the yellowness
    reduction. ``natural_cap`` enforces the b* floor at half the original and the
    eye-white ceiling; without it b* may go down to a fifth of the original (still > 0).
    """

    strength: float = 0.5
    brighten: float = 0.5
    natural_cap: bool = True


def teeth_weight(lab: torch.Tensor, teeth: torch.Tensor, exclude: torch.Tensor | None) -> torch.Tensor:
    """The soft weight the edit uses: the teeth mask minus lips/gums and minus red pixels.

    ``lab`` is ``[H, W, 3]``; the redness gate is relative to the teeth's own median a*, so
    it follows the white balance instead of assuming neutral light.
    """
    weight = teeth.clamp(0.0, 1.0)
    if exclude is not None:
        weight = weight * (1.0 - exclude.clamp(0.0, 1.0))
    core = weight > 0.5
    if int(core.sum()) < 8:
        core = weight > 0
    if int(core.sum()) == 0:
        return weight
    a_star = lab[..., 1]
    chroma = torch.sqrt(lab[..., 1] ** 2 + lab[..., 2] ** 2)
    a_ref = a_star[core].median()
    # Gums and tongue are far redder than enamel: +4 a* is still tooth, +12 is gum.
    red_gate = 1.0 - smoothstep(a_star, float(a_ref) + 4.0, float(a_ref) + 12.0)
    # A red pixel must also be chromatic; a slightly pink but grey-ish enamel pixel stays in.
    red_gate = torch.where(chroma < 8.0, torch.ones_like(red_gate), red_gate)
    return weight * red_gate


def whiten_teeth_region(
    rgb: torch.Tensor,
    teeth: torch.Tensor,
    settings: TeethSettings,
    exclude: torch.Tensor | None = None,
    eye_white_l: float | None = None,
    min_pixels: float = MIN_TEETH_PIXELS,
) -> tuple[Box, torch.Tensor, torch.Tensor] | None:
    """Whiten the teeth in one RGB image ``[H, W, 3]`` (0..1) given its soft teeth mask ``[H, W]``.

    ``exclude`` (lips, gums) is never edited; ``eye_white_l`` is the same face's eye-white
    mean L*, the ceiling for the teeth's mean L* (None: no ceiling). Returns the box around
    the teeth, the whitened pixels there and the edit's weight (0 wherever nothing may
    change), or None when there is nothing to whiten.
    """
    strength = float(settings.strength)
    if strength <= 0.0 or float(teeth.sum()) < min_pixels:
        return None
    box = bbox(teeth, margin=2)
    if box is None:
        return None
    rows, cols = box.slices()
    patch = rgb[rows, cols, :]
    lab = colour.rgb_to_lab(patch.to(torch.float32))
    teeth_p = teeth[rows, cols].to(lab)
    exclude_p = exclude[rows, cols].to(lab) if exclude is not None else None
    weight = teeth_weight(lab, teeth_p, exclude_p)
    if float(weight.sum()) < min_pixels:
        return None

    # About a third of a tooth: an upper incisor is ~1/8 of the visible teeth row's width.
    row_width = float((weight > 0).any(dim=0).sum())
    sigma = max(1.0, row_width / 24.0)
    light, a_star, b_star = lab.unbind(-1)
    smooth = masked_blur(torch.stack([light, a_star, b_star]), weight, sigma, min_weight=1e-3, fallback="value", exact=True)
    light_s, a_s, b_s = smooth.unbind(0)

    s = min(strength, 1.0)
    floor_fraction = 0.5 if settings.natural_cap else 0.2
    brighten = min(max(float(settings.brighten), 0.0), 1.0)

    # The fullest edit the caps allow (t = 1), on the smooth component only:
    # yellowness b* down to floor_fraction of itself (never to or below zero), the red
    # share of chroma a* down by 60 %, and L* lifted toward white with a highlight guard.
    full_db = -(1.0 - floor_fraction) * b_s.clamp_min(0.0)
    full_da = -0.6 * a_s.clamp_min(0.0)
    # Guard on both the smooth and the pixel's own L*: a glint inside a mid-tone tooth stays put.
    highlight_guard = (1.0 - smoothstep(light_s, 80.0, 96.0)) * (1.0 - smoothstep(light, 85.0, 97.0))
    full_dl = (brighten * 0.35 * (100.0 - light_s).clamp_min(0.0) * highlight_guard).clamp(max=14.0 * brighten)
    if settings.natural_cap and eye_white_l is not None:
        teeth_l = float((light_s * weight).sum() / weight.sum())
        # The mean lift may not take the teeth past the eye whites (teeth already lighter
        # than the whites get no lift at all, only less yellow).
        room = max(0.0, eye_white_l - teeth_l)
        mean_lift = float((full_dl * weight).sum() / weight.sum())
        if mean_lift > room:
            full_dl = full_dl * (room / max(mean_lift, 1e-6))

    positive = b_star > 0
    floor = floor_fraction * b_star

    def edit(t: float) -> torch.Tensor:
        # Per-pixel caps: b* stays above floor_fraction of itself (so above zero); pixels
        # that were already neutral or bluish keep their b*.
        new_b = torch.where(positive, torch.maximum(b_star + t * full_db, floor), b_star)
        new_l = (light + t * full_dl).clamp(0.0, 100.0)
        return torch.stack([new_l, a_star + t * full_da, new_b], dim=-1)

    # How far along: the edit whose mean ΔE00 over the teeth is a fixed perceptual step
    # (3.5 at the natural default, 7.0 at full strength: past the dental acceptability
    # threshold of 1.8, far from a veneer shade), and whose whiteness gain stays under
    # ΔWID 20·strength (WID: the CIELAB whiteness index of Pérez et al.; see core.colour). Solved by bisection on up to 4096 teeth pixels.
    core = weight > 0.5 if int((weight > 0.5).sum()) >= 8 else weight > 0
    picks = torch.nonzero(core.flatten()).flatten()
    if picks.numel() > 4096:
        picks = picks[torch.linspace(0, picks.numel() - 1, 4096, device=picks.device).long()]
    lab_flat = lab.reshape(-1, 3)[picks]
    # The soft weight is part of what the eye sees: a feathered small mouth gets a partial edit.
    weight_flat = weight.reshape(-1)[picks][:, None]
    wid_before = colour.whiteness_wid(lab_flat).mean()
    target_de = 7.0 * s
    max_wid = 20.0 * s

    def measure(t: float) -> tuple[float, float]:
        edited_flat = lab_flat + weight_flat * (edit(t).reshape(-1, 3)[picks] - lab_flat)
        de = float(colour.delta_e2000(lab_flat, edited_flat).mean())
        return de, float(colour.whiteness_wid(edited_flat).mean() - wid_before)

    de_full, wid_full = measure(1.0)
    if de_full <= target_de and wid_full <= max_wid:
        t = 1.0
    else:
        lo, hi = 0.0, 1.0
        for _ in range(14):
            mid = 0.5 * (lo + hi)
            de, wid = measure(mid)
            if de > target_de or wid > max_wid:
                hi = mid
            else:
                lo = mid
        t = lo
    if t <= 0.0:
        return None
    return box, colour.lab_to_rgb(edit(t)).to(rgb.dtype), weight.to(torch.float32)


def eye_white_lightness(rgb: torch.Tensor, eye_white: torch.Tensor | None, min_pixels: float = 8.0) -> float | None:
    """L* of the clean eye white (the 90th percentile inside the masks: lids and lashes the
    masks catch are darker, never lighter), or None when there is none."""
    if eye_white is None or float(eye_white.sum()) < min_pixels:
        return None
    box = bbox(eye_white)
    if box is None:
        return None
    rows, cols = box.slices()
    weight = eye_white[rows, cols].to(rgb.device, torch.float32)
    light = colour.rgb_to_lab(rgb[rows, cols, :].to(torch.float32))[..., 0]
    core = weight > 0.5 if int((weight > 0.5).sum()) >= 8 else weight > 0
    return float(torch.quantile(light[core], 0.9))


def teeth_op(settings: TeethSettings) -> Callable[[FaceWindow], Correction | None]:
    """TeethWhiten as a kernel op: the edit is made on the working grid (it changes only the
    teeth's smooth L* and b*) and comes back colour-guided, so gaps, enamel texture and
    glints are the photo's own at any resolution."""

    def op(window: FaceWindow) -> Correction | None:
        face = window.face
        teeth = window.mask("teeth")
        min_pixels = max(MIN_TEETH_PIXELS, MIN_TEETH_FACE_FRACTION * window.scale**2)
        if float(teeth.sum()) < min_pixels:
            log.info("portrait_polish: TeethWhiten: no teeth visible on a face at %s; unchanged", face.crop[:2])
            return None
        lips = [n for n in ("upper_lip", "lower_lip") if n in face.masks]
        whites = [n for n in ("left_eye_white", "right_eye_white") if n in face.masks]
        result = whiten_teeth_region(
            window.work,
            teeth,
            settings,
            exclude=window.mask(lips) if lips else None,
            eye_white_l=eye_white_lightness(window.work, window.mask(whites)) if whites else None,
            min_pixels=min_pixels,
        )
        if result is None:
            return None
        box, edited, weight = result
        return Correction(edited, weight, box=box, guide="rgb")

    return op


def whiten_teeth(image: torch.Tensor, regions: FaceRegions, settings: TeethSettings, device: torch.device | None = None) -> torch.Tensor:
    """Whiten every face's teeth in an RGB IMAGE ``[B, H, W, 3]`` (a new tensor; input untouched)."""
    if settings.strength <= 0.0:
        return image
    return apply_per_face(image, regions, teeth_op(settings), name="TeethWhiten", device=device).image
