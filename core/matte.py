"""Person matte: a soft alpha that holds at hair, and the person's own colour under it.

Pipeline for one frame (``[H, W, 3]`` float32 sRGB, any size):

1. **Working copy**: the frame shrunk (area average) so its long side is
   :attr:`MatteSettings.work_px`; everything up to step 4 runs there, so a 24 MP photo costs
   about what a 1 MP one does.
2. **Trimap** from a rough person probability: MediaPipe's selfie segmentation (the one
   FaceParse keeps as ``person``), or a MASK the user gives. Pixels far inside are
   foreground, far outside background, and a band around its 0.5 contour is *unknown*. The
   band is a little wider than the segmenter's own blur everywhere, and much wider where
   FaceParse found hair (flyaway strands reach well past any segmenter's edge); a face's
   own skin is always foreground.
3. **Alpha matting** of the unknown band with pymatting's closed-form matting (Levin, Lischinski
   and Weiss 2008: alpha is locally an affine function of colour), solved by conjugate
   gradients with an incomplete-Cholesky preconditioner; then pymatting's multilevel
   foreground estimation (Germer et al. 2020) gives the foreground *and* background colours.
4. **Edge-aware upsampling** to the full frame: the alpha's local affine colour model
   (guided-filter coefficients, He, Sun and Tang 2013; Fast Guided Filter, He and Sun 2015) is
   fitted on the working copy and applied to the full-resolution pixels, strip by strip, so
   strands thinner than a working pixel come back from the photo itself. The foreground colour
   at full resolution is solved from the compositing equation with the upsampled background
   (``F = (I - (1 - a) B) / a``) where alpha is large, and taken from the working copy where
   it is small.

Where alpha is 1 the foreground is the input pixel itself, bit-exact; where it is 0 the
foreground is pymatting's extrapolated colour (never shown, but smooth).

pymatting is imported on first use, never at import: it compiles its numba kernels when it is
first imported (about a minute once per install, cached on disk; about a second after that).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from .filters import guided_coefficients
from .masks import Box, GridSampler, erode, resize, resize_image, tiles, value_range
from .regions import ImageFaces
from .tensors import to_uint8

log = logging.getLogger("portrait_polish")

# Below this share of the frame, the segmenter's "person" is noise (a face in a poster, a
# texture): the frame counts as having no person.
MIN_PERSON_AREA = 0.005
# Alpha within this of 0 or 1 is snapped: invisible differences that would otherwise make the
# person's interior not exactly opaque (and so not bit-exact in a composite).
SNAP = 1.0 / 512.0
# Trimap codes on the working grid, carried to full resolution (nearest) to say which pixels
# the upsampled model decides.
_BACKGROUND, _BAND, _FOREGROUND = 0, 1, 2


@dataclass(frozen=True)
class MatteSettings:
    """How the matte is made; every size is relative, so one setting fits any resolution.

    ``work_px``: long side of the working copy. ``band``: width of the unknown band around the
    segmentation's edge, in % of the frame's long side. ``hair_band``: its width beyond the
    edge where FaceParse found hair, in % of the face size. ``refine``: False gives the raw
    segmentation (bilinear), for comparisons.
    """

    work_px: int = 800
    band: float = 1.2
    hair_band: float = 10.0
    refine: bool = True
    epsilon: float = 1e-6

    def __post_init__(self) -> None:
        if not 64 <= int(self.work_px) <= 8192:
            raise ValueError(f"matte working resolution must be 64..8192 px, got {self.work_px}")
        if self.band <= 0 or self.hair_band < 0:
            raise ValueError("matte band widths must be positive")


@dataclass
class Matte:
    """The matte of one frame: ``alpha`` ``[H, W]`` and ``foreground`` ``[H, W, 3]`` (float32,
    0..1), ``found`` False when the frame holds no person (alpha is then all 0)."""

    alpha: torch.Tensor
    foreground: torch.Tensor
    found: bool
    info: dict[str, object]


# ---------------------------------------------------------------------------------------
# Sizes


def work_size(height: int, width: int, work_px: int) -> tuple[int, int]:
    """Size of the working copy: long side ``work_px`` (never enlarged)."""
    factor = min(1.0, work_px / max(height, width))
    return max(1, round(height * factor)), max(1, round(width * factor))


# ---------------------------------------------------------------------------------------
# Rough person probability


def segment_person(rgb: torch.Tensor) -> torch.Tensor:
    """MediaPipe selfie segmentation of an ``[H, W, 3]`` float frame (low resolution, 0..1)."""
    from . import detect

    return torch.from_numpy(detect.person_probability(to_uint8(rgb)))


def hair_and_face(item: ImageFaces | None, size: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor, float]:
    """FaceParse's hair and face-skin masks on a grid of ``size`` (h, w), and the largest face
    size on that grid (0 when there is no face)."""
    hair = torch.zeros(size, dtype=torch.float32)
    face = torch.zeros(size, dtype=torch.float32)
    if item is None or not item.faces:
        return hair, face, 0.0
    fy, fx = size[0] / item.height, size[1] / item.width
    scale = 0.0
    for one in item.faces:
        x0, y0, x1, y1 = one.crop
        wx0, wy0 = int(math.floor(x0 * fx)), int(math.floor(y0 * fy))
        wx1, wy1 = max(wx0 + 1, int(math.ceil(x1 * fx))), max(wy0 + 1, int(math.ceil(y1 * fy)))
        wx1, wy1 = min(wx1, size[1]), min(wy1, size[0])
        box = (wy1 - wy0, wx1 - wx0)
        if "hair" in one.masks:
            hair[wy0:wy1, wx0:wx1] = torch.maximum(hair[wy0:wy1, wx0:wx1], resize(one.masks["hair"].to(torch.float32), box))
        skin = one.mask(["skin", "nose"])
        face[wy0:wy1, wx0:wx1] = torch.maximum(face[wy0:wy1, wx0:wx1], resize(skin.to(torch.float32), box))
        scale = max(scale, float(one.scale) * (fx + fy) / 2)
    return hair.clamp(0, 1), face.clamp(0, 1), scale


def _distance_outside(mask: torch.Tensor) -> torch.Tensor:
    """Euclidean distance (px) of every pixel to the nearest pixel where ``mask`` is set (0 on it)."""
    from scipy import ndimage

    inside = mask.numpy().astype(bool)
    if not inside.any():
        return torch.full(mask.shape, float("inf"))
    return torch.from_numpy(ndimage.distance_transform_edt(~inside).astype(np.float32))


def build_trimap(
    person: torch.Tensor, hair: torch.Tensor, face: torch.Tensor, face_scale: float, settings: MatteSettings
) -> torch.Tensor:
    """Trimap on the working grid: 1 foreground, 0 background, 0.5 unknown.

    ``person`` is the rough probability on that grid. The band reaches ``settings.band`` % of
    the long side to either side of its 0.5 contour, and ``settings.hair_band`` % of the face
    size outward (half that inward) near FaceParse's hair.
    """
    height, width = person.shape
    hard = person > 0.5
    base = max(2.0, settings.band / 100.0 * max(height, width))
    out_reach = torch.full((height, width), base)
    in_reach = torch.full((height, width), base)
    if face_scale > 0 and settings.hair_band > 0 and bool((hair > 0.3).any()):
        reach = max(base, settings.hair_band / 100.0 * face_scale)
        near_hair = _distance_outside(hair > 0.3) <= reach
        out_reach = torch.where(near_hair, torch.full_like(out_reach, reach), out_reach)
        in_reach = torch.where(near_hair, torch.full_like(in_reach, max(base, reach / 2)), in_reach)
    to_person = _distance_outside(hard)  # for pixels outside the rough person
    to_background = _distance_outside(~hard)  # for pixels inside it
    trimap = torch.full((height, width), 0.5, dtype=torch.float32)
    trimap[to_person > out_reach] = 0.0
    trimap[to_background > in_reach] = 1.0
    trimap[erode((face > 0.5).to(torch.float32), 2) > 0.5] = 1.0
    return trimap


# ---------------------------------------------------------------------------------------
# pymatting


def _pymatting():  # noqa: ANN202 - the module
    """pymatting, imported on first use (its import compiles numba kernels: see module doc)."""
    try:
        import pymatting
    except ImportError as exc:  # pragma: no cover - a dependency of the pack
        raise RuntimeError(
            "PortraitMatte needs pymatting (pip install pymatting; it is in the pack's requirements)"
        ) from exc
    return pymatting


def solve_alpha(image: np.ndarray, trimap: np.ndarray, epsilon: float = 1e-6) -> np.ndarray:
    """Closed-form matting of the unknown trimap pixels (``image`` ``[h, w, 3]`` float64).

    pymatting's own pieces (matting Laplacian, incomplete Cholesky, conjugate gradients), put
    together as its ``estimate_alpha_cf`` does, but with the preconditioner's buffer sized to
    this problem instead of its 4 GB default.
    """
    pm = _pymatting()
    is_fg = (trimap >= 0.9).ravel()
    is_known = is_fg | (trimap <= 0.1).ravel()
    is_unknown = ~is_known
    if not is_fg.any() or is_fg[is_known].all() or is_known.all():
        return trimap.astype(np.float64)
    laplacian = pm.cf_laplacian(image, epsilon=epsilon, radius=1, is_known=is_known.reshape(trimap.shape))
    rows = laplacian[is_unknown]
    system = rows[:, is_unknown]
    rhs = -rows[:, is_known].dot(is_fg[is_known].astype(np.float64))
    preconditioner = pm.ichol(system.tocsc(), max_nnz=max(1_000_000, 40 * system.nnz))
    solution = pm.cg(system, rhs, M=preconditioner, rtol=1e-6, maxiter=2000)
    alpha = trimap.astype(np.float64).ravel().copy()
    alpha[is_unknown] = solution
    return np.clip(alpha, 0.0, 1.0).reshape(trimap.shape)


def estimate_colours(image: np.ndarray, alpha: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """pymatting's multilevel foreground and background estimation (float32 ``[h, w, 3]``)."""
    pm = _pymatting()
    foreground, background = pm.estimate_foreground_ml(
        image.astype(np.float32), alpha.astype(np.float32), return_background=True
    )
    return np.clip(foreground, 0, 1), np.clip(background, 0, 1)


# ---------------------------------------------------------------------------------------
# One frame


def _snap(alpha: torch.Tensor) -> torch.Tensor:
    alpha = alpha.clamp(0.0, 1.0)
    alpha = torch.where(alpha < SNAP, torch.zeros_like(alpha), alpha)
    return torch.where(alpha > 1.0 - SNAP, torch.ones_like(alpha), alpha)


def matte_frame(
    rgb: torch.Tensor,
    settings: MatteSettings,
    item: ImageFaces | None = None,
    person: torch.Tensor | None = None,
) -> Matte:
    """The matte of one ``[H, W, 3]`` frame.

    ``person``: a rough person probability or mask (any size) to start from instead of the
    segmenter; ``item``: FaceParse's result for this frame (hair, face, and its stored
    segmentation), or None.
    """
    rgb = rgb.detach().to("cpu", torch.float32)
    height, width = rgb.shape[:2]
    size = work_size(height, width, settings.work_px)
    if person is None and item is not None and item.person is not None:
        person = item.person
    if person is None:
        person = segment_person(rgb)
    rough = resize(person.to(torch.float32), size).clamp(0.0, 1.0)
    info: dict[str, object] = {"work_size": list(size)}
    area = float((rough > 0.5).to(torch.float32).mean())
    if area < MIN_PERSON_AREA:
        zeros = torch.zeros(height, width, dtype=torch.float32)
        return Matte(alpha=zeros, foreground=rgb.clone(), found=False, info={**info, "person_area": area})
    info["person_area"] = area
    if not settings.refine:
        alpha = _snap(resize(person.to(torch.float32), (height, width)))
        return Matte(alpha=alpha, foreground=rgb.clone(), found=True, info={**info, "refined": False})

    work = resize_image(rgb, size).clamp(0.0, 1.0)
    hair, face, face_scale = hair_and_face(item, size)
    trimap = build_trimap(rough, hair, face, face_scale, settings)
    info["unknown_share"] = float((trimap == 0.5).to(torch.float32).mean())
    alpha_work = torch.from_numpy(solve_alpha(work.numpy().astype(np.float64), trimap.numpy(), settings.epsilon)).to(torch.float32)
    alpha_work = _snap(alpha_work)
    if size == (height, width):
        alpha = alpha_work
    else:
        alpha = upsample_alpha(rgb, work, alpha_work, trimap)
    foreground = estimate_foreground(rgb, alpha, work, alpha_work)
    return Matte(alpha=alpha, foreground=foreground, found=True, info={**info, "refined": True})


def matte_from_alpha(rgb: torch.Tensor, alpha: torch.Tensor, settings: MatteSettings) -> Matte:
    """A matte from an alpha the user already has (an RGBA picture's, a MASK): only the
    foreground colour is estimated."""
    rgb = rgb.detach().to("cpu", torch.float32)
    height, width = rgb.shape[:2]
    alpha = _snap(resize(alpha.detach().to("cpu", torch.float32), (height, width)))
    area = float((alpha > 0.5).to(torch.float32).mean())
    if area < MIN_PERSON_AREA:
        return Matte(alpha=alpha, foreground=rgb.clone(), found=False, info={"person_area": area, "source": "alpha"})
    size = work_size(height, width, settings.work_px)
    work = resize_image(rgb, size).clamp(0.0, 1.0)
    alpha_work = _snap(resize(alpha, size))
    foreground = estimate_foreground(rgb, alpha, work, alpha_work)
    return Matte(alpha=alpha, foreground=foreground, found=True, info={"person_area": area, "source": "alpha"})


# ---------------------------------------------------------------------------------------
# Edge-aware upsampling, tile by tile: only tiles the edge band reaches do any work


def upsample_alpha(rgb: torch.Tensor, work: torch.Tensor, alpha_work: torch.Tensor, trimap: torch.Tensor) -> torch.Tensor:
    """Full-resolution alpha: the working alpha's local affine colour model (guided-filter
    coefficients, fitted on the working copy) applied to the full-resolution pixels of the
    tiles the unknown band reaches; decided trimap pixels stay exactly 0 or 1."""
    import cv2

    height, width = rgb.shape[:2]
    a, b = guided_coefficients(work.permute(2, 0, 1), alpha_work[None], radius=1, eps=1e-4)
    # A one-pixel margin keeps the upsampled transition inside the band that was solved.
    code = np.full(trimap.shape, _BAND, np.uint8)
    code[(erode((trimap >= 1.0).to(torch.float32), 1) > 0.5).numpy()] = _FOREGROUND
    code[(erode((trimap <= 0.0).to(torch.float32), 1) > 0.5).numpy()] = _BACKGROUND
    full_code = cv2.resize(code, (width, height), interpolation=cv2.INTER_NEAREST_EXACT)
    alpha = torch.from_numpy(full_code == _FOREGROUND).to(torch.float32)
    model = GridSampler(torch.cat([a.reshape(3, *a.shape[-2:]), b]), (height, width))
    for box in tiles(height, width):
        rows, cols = box.slices()
        band = torch.from_numpy(full_code[rows, cols] == _BAND)
        if not bool(band.any()):
            continue
        coefficients = model.at(box)  # [4, h, w]: a (3), b
        guide = rgb[rows, cols].permute(2, 0, 1)
        value = _snap((coefficients[:3] * guide).sum(0) + coefficients[3])
        alpha[rows, cols] = torch.where(band, value, alpha[rows, cols])
    return alpha


def estimate_foreground(rgb: torch.Tensor, alpha: torch.Tensor, work: torch.Tensor, alpha_work: torch.Tensor) -> torch.Tensor:
    """The person's own colour under the matte at full resolution.

    pymatting's multilevel estimate on the working copy gives foreground and background
    colours; at full resolution the foreground is solved from the compositing equation with
    the (smooth) background, ``F = (I - (1-a)·B) / a``, where alpha is large enough to trust
    it, and taken from the working estimate where it is small. Where alpha is 1, ``F`` is the
    input pixel itself (tiles that are all opaque are the input, untouched by any sum).
    """
    height, width = rgb.shape[:2]
    fg_np, bg_np = estimate_colours(work.numpy(), alpha_work.numpy())
    colours = GridSampler(torch.from_numpy(np.concatenate([fg_np, bg_np], axis=-1)).permute(2, 0, 1), (height, width))
    foreground_only = GridSampler(torch.from_numpy(fg_np).permute(2, 0, 1), (height, width))
    foreground = rgb.clone()
    for box in tiles(height, width):
        rows, cols = box.slices()
        weight = alpha[rows, cols]
        low, high = value_range(weight)
        if low >= 1.0:
            continue
        if high <= 0.0:  # clear background: the extrapolated colour (never shown, but smooth)
            foreground[rows, cols] = foreground_only.at(box).permute(1, 2, 0)
            continue
        col = colours.at(box).permute(1, 2, 0)
        fg_up, bg_up = col[..., 0:3], col[..., 3:6]
        pixels = rgb[rows, cols]
        weight = weight[..., None]
        solved = ((pixels - (1.0 - weight) * bg_up) / weight.clamp_min(1e-3)).clamp(0.0, 1.0)
        trust = ((weight - 0.3) / 0.5).clamp(0.0, 1.0)
        mixed = fg_up + trust * (solved - fg_up)
        foreground[rows, cols] = torch.where(weight >= 1.0, pixels, mixed)
    return foreground


# ---------------------------------------------------------------------------------------
# Compositing over a new background


PersonEdit = Callable[[Box, torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]


def composite(
    rgb: torch.Tensor,
    alpha: torch.Tensor,
    foreground: torch.Tensor,
    backdrop: Callable[[Box], torch.Tensor],
    edit_person: PersonEdit | None = None,
) -> torch.Tensor:
    """``a·F + (1−a)·B`` over a frame, tile by tile, with the input pixel kept bit-exact where
    alpha is 1 (a tile that is all opaque is not touched at all).

    ``backdrop(box)`` gives the new background on a tile (``[h, w, 3]``); it is only asked for
    tiles that show some of it. ``edit_person(box, a, person)`` (optional: the light wrap)
    returns the person's colour changed on a tile and where it changed; every tile is then
    visited.
    """
    out = rgb.clone()
    for box in tiles(*rgb.shape[:2]):
        rows, cols = box.slices()
        a = alpha[rows, cols]
        low, high = value_range(a)
        if low >= 1.0 and edit_person is None:
            continue
        if high <= 0.0:
            out[rows, cols] = backdrop(box).clamp(0.0, 1.0)
            continue
        a = a[..., None]
        person = foreground[rows, cols]
        keep = a >= 1.0
        if edit_person is not None:
            person, changed = edit_person(box, a, person)
            keep = keep & ~changed[..., None]
            if bool(keep.all()):
                continue
        back = backdrop(box) if low < 1.0 else torch.zeros_like(person)
        mixed = a * person + (1.0 - a) * back
        out[rows, cols] = torch.where(keep, rgb[rows, cols], mixed.clamp(0.0, 1.0))
    return out
