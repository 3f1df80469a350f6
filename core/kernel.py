"""The retouch kernel: one driver, one window type, one way back to full resolution.

Every retouch op (skin, teeth, eyes) runs through :func:`apply_per_face`:

```
frame ──crop──► FaceWindow: the face's crop at full resolution + a working copy where the
                face is RETOUCH_FACE_PX wide, its Lab planes, region masks on that grid
                      │
                op(window) ─► Correction: the op's result on the working copy + where it
                      │       applies, and small full-resolution patches where it must
                      ▼
   full-res pixels + the correction brought up edge-aware (guided upsampling: the
   residual's local linear model on the guide, fitted on the working grid, evaluated on
   the full-resolution guide) + patches; composited inside the op's weight only
```

so pores and fine texture come from the photo itself at any size, and cost follows the
face's working grid, not the frame. When the photo is small enough that the working copy
*is* the crop (a 1 MP headshot), the op's result is composited directly: the same pixels
the op computed, no upsampling.

Why the face is 384 px wide on the working grid: it is FaceParse's own grid, so the region
masks are used as they are (no resampling, no full-size copies), and it is the scale the
pack's numbers were measured and tuned at (a 1 MP headshot's face is 300 to 500 px: those
are edited at, or very near, their own resolution). Everything edited on the grid is smooth
there: the skin's finest edited band (the medium band, face/50) is 7.7 px wide, its
smallest healed spot (a 2-px-radius pimple on a 400-px face) is still 3.8 px across, and the
guided upsampling carries edges finer than that from the full-resolution guide; what is
finer still is done on full-resolution patches (healed spots on big faces, teeth, eyes). A
24 MP face (~1900 px) is then edited on a copy 1/25 of its crop's pixels, at the scale its
1 MP copy is edited at, so both get the same edit: on the reference camera file
(tests/test_kernel_scale.py) the 24 MP edit brought down to 1 MP matches the 1 MP edit to
ΔE00 p95 0.69 on the skin with this grid, 1.06 with a 512 px one (which also costs ~1.5x).

The driver owns batch order, faceless frames (passed through bit-exact), device moves,
the out-of-memory fallback (a face that does not fit on the GPU is redone on the CPU),
progress and ComfyUI's Cancel. Every pixel an op does not weight is bit-exact. Ops on the
whole frame (the background nodes) use the per-frame driver, :func:`for_each_frame`, with
the same batch, progress, Cancel and out-of-memory rules.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import TypeVar

import torch

from . import comfy
from .colour import rgb_to_lab
from .filters import apply_guided, guided_coefficients
from .masks import Box, bbox, grid_reach, resize_image, upsample_window
from .regions import Face, FaceRegions
from .tensors import blend_masked

log = logging.getLogger("portrait_polish")

# Face width on the working grid (see the module docstring for why 512).
RETOUCH_FACE_PX = 384.0
# Guided upsampling: the linear model's window on the working grid, and its regularisation
# in guide units squared (0.02² on 0..1 values: edges with more local contrast than ~5/255
# are followed, flatter areas get the smooth correction).
GUIDE_RADIUS = 2
GUIDE_EPS = 0.02**2
# Full-resolution work is done in strips of about this many pixels (bounded memory).
STRIP_PIXELS = 1 << 21

# Rec. 709 luma weights: the grey guide.
_LUMA = (0.2126, 0.7152, 0.0722)


def luma(rgb: torch.Tensor) -> torch.Tensor:
    """``[h, w, 3]`` -> ``[1, h, w]`` luma (the grey guide)."""
    weights = torch.tensor(_LUMA, dtype=rgb.dtype, device=rgb.device)
    return (rgb @ weights)[None]


@dataclass
class Patch:
    """A small full-resolution edit: ``edit(pixels)`` gets the window's current pixels in
    ``box`` (window coordinates, ``[h, w, 3]`` on the window's device) and returns
    ``(edited pixels, weight [h, w])``, or None to leave them."""

    box: Box
    edit: Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor] | None]


@dataclass
class Correction:
    """What an op gives back for one face window.

    ``edited`` is the op's result on the working copy (``[h, w, 3]`` RGB) and ``weight``
    (``[h, w]``, 0..1) where and how much of it applies; pixels of weight 0 stay bit-exact.
    Both cover ``box`` of the working grid (the whole grid when None): an op that only
    works around the skin or the mouth hands back only that.
    ``guide`` picks the guided upsampling's guide ("luma", or "rgb" for edits that follow
    colour edges, like teeth against gums). ``patches`` are applied after, at full
    resolution. ``hold`` (full resolution, the crop's size) marks pixels that must stay
    bit-exact whatever the rest says (a user's protect mask). ``masks`` are working-grid
    masks the node reports (e.g. where it healed).
    """

    edited: torch.Tensor | None = None
    weight: torch.Tensor | None = None
    box: Box | None = None
    guide: str = "luma"
    radius: int = GUIDE_RADIUS
    eps: float = GUIDE_EPS
    patches: list[Patch] = field(default_factory=list)
    hold: torch.Tensor | None = None
    masks: dict[str, torch.Tensor] = field(default_factory=dict)


class FaceWindow:
    """One face of one frame, as an op sees it.

    ``full`` is the crop at full resolution (``[H, W, 3]`` on ``device``; read it, never
    write it: the kernel applies what the op returns), :attr:`work` the working copy
    (``full`` itself when :attr:`exact`). The working copy, masks and Lab planes are made
    on first use and kept for the op's lifetime.
    """

    def __init__(self, frame_pixels: torch.Tensor, frame: int, index: int, face: Face, device: torch.device, face_px: float = RETOUCH_FACE_PX) -> None:
        self.frame, self.index, self.face, self.device = frame, index, face, device
        self.box = face.crop_box
        rows, cols = self.box.slices()
        self.full = frame_pixels[rows, cols].to(device)
        full_h, full_w = self.box.size
        scale = float(face.scale) if face.scale and face.scale > 0 else 0.6 * max(full_h, full_w)
        factor = min(1.0, face_px / scale)
        self.work_size = (max(1, round(full_h * factor)), max(1, round(full_w * factor)))
        self.exact = self.work_size == (full_h, full_w)
        self._work: torch.Tensor | None = self.full if self.exact else None
        self.factor = self.work_size[1] / full_w
        self.full_scale = scale
        self._lab: torch.Tensor | None = None
        self._masks: dict[str, torch.Tensor] = {}

    @property
    def work(self) -> torch.Tensor:
        """The working copy ``[h, w, 3]`` (made on first use: ops that edit small
        full-resolution patches only never pay for it)."""
        if self._work is None:
            self._work = resize_image(self.full, self.work_size).to(self.device)
        return self._work

    @property
    def full_size(self) -> tuple[int, int]:
        return self.box.size

    @property
    def scale(self) -> float:
        """The face width in working-grid pixels."""
        return self.full_scale * self.factor

    def lab(self, box: Box | None = None) -> torch.Tensor:
        """The working copy (or its ``box``) in CIELAB, ``[3, h, w]``."""
        if box is not None:
            rows, cols = box.slices()
            return rgb_to_lab(self.work[rows, cols]).permute(2, 0, 1).contiguous()
        if self._lab is None:
            self._lab = rgb_to_lab(self.work).permute(2, 0, 1).contiguous()
        return self._lab

    def mask(self, names: str | Iterable[str]) -> torch.Tensor:
        """The union of the named regions on the working grid (``[h, w]`` on ``device``)."""
        key = names if isinstance(names, str) else ",".join(names)
        if key not in self._masks:
            self._masks[key] = self.face.mask_at(names, self.work_size).to(self.device)
        return self._masks[key]

    def full_mask(self, names: str | Iterable[str] | torch.Tensor, box: Box, grid_box: Box | None = None) -> torch.Tensor:
        """Full-resolution mask on ``box`` (window coordinates): named regions straight from
        the face's mask grid, or a working-grid tensor (covering ``grid_box`` of the working
        grid, or all of it) upsampled."""
        if isinstance(names, torch.Tensor):
            return self.upsample(names, box, grid_box).clamp(0.0, 1.0)
        return self.face.window_mask(names, box.shift(self.box.x0, self.box.y0)).to(self.device)

    def upsample(self, grid: torch.Tensor, box: Box, grid_box: Box | None = None) -> torch.Tensor:
        """A working-grid tensor (``[h, w]`` or ``[C, h, w]``, covering ``grid_box`` of the
        grid, or all of it) bilinearly upsampled onto ``box`` (window coordinates)."""
        offset = (0.0, 0.0) if grid_box is None else (-float(grid_box.x0), -float(grid_box.y0))
        return upsample_window(grid.to(self.device, torch.float32), self.full_size, box, grid_size=self.work_size, offset=offset)

    def region_box(self, names: str | Iterable[str], margin: int = 0) -> Box | None:
        """The window box (full resolution) that every pixel of the named regions'
        full-resolution masks lies in, grown by ``margin``; None when they are empty."""
        grid = self.face.mask(names)
        box = bbox(grid)
        return None if box is None else grid_reach(box, tuple(grid.shape), self.full_size, margin)

    def full_box(self, work_box: Box, margin: int = 1) -> Box:
        """The full-resolution window box (clipped) covering a working-grid box."""
        if self.exact:
            return work_box
        fy, fx = self.full_size[0] / self.work_size[0], self.full_size[1] / self.work_size[1]
        box = Box(int(work_box.x0 * fx), int(work_box.y0 * fy), math.ceil(work_box.x1 * fx), math.ceil(work_box.y1 * fy))
        return box.grow(margin, *self.full_size)


@dataclass
class KernelResult:
    """The edited IMAGE and the full-frame masks the ops reported, per name ``[B, H, W]``."""

    image: torch.Tensor
    masks: dict[str, torch.Tensor] = field(default_factory=dict)


FaceOp = Callable[[FaceWindow], Correction | None]
Result = TypeVar("Result")


def _guide(rgb: torch.Tensor, kind: str) -> torch.Tensor:
    return luma(rgb) if kind == "luma" else rgb.permute(2, 0, 1)


def _strips(box: Box) -> list[Box]:
    rows = max(16, STRIP_PIXELS // max(1, box.width))
    return [Box(box.x0, y, box.x1, min(box.y1, y + rows)) for y in range(box.y0, box.y1, rows)]


def _held(result: torch.Tensor, pixels: torch.Tensor, hold: torch.Tensor | None, box: Box) -> torch.Tensor:
    """``result`` with the held pixels of ``box`` put back exactly."""
    if hold is None:
        return result
    rows, cols = box.slices()
    held = (hold[rows, cols] > 0).to(result.device)
    return torch.where(held[..., None], pixels, result)


def _apply_working(window: FaceWindow, correction: Correction, out_crop: torch.Tensor) -> None:
    """Bring the working-grid result to the full-resolution pixels in ``out_crop``."""
    weight = correction.weight
    assert correction.edited is not None and weight is not None
    local = bbox(weight, margin=correction.radius + 2)
    if local is None:
        return
    origin = correction.box or Box(0, 0, *window.work_size[::-1])
    area = local.shift(origin.x0, origin.y0)  # on the whole working grid
    lrows, lcols = local.slices()
    edited, w = correction.edited[lrows, lcols], weight[lrows, lcols]
    rows, cols = area.slices()
    if window.exact:
        pixels = window.full[rows, cols]
        result = blend_masked(pixels, edited, w)
        out_crop[rows, cols] = _held(result, pixels, correction.hold, area).to(out_crop.device)
        return
    # Guided upsampling of the weighted residual: fitted on the working grid around the
    # edit, evaluated strip by strip on the full-resolution guide.
    work = window.work[rows, cols]
    residual = (w[..., None] * (edited - work)).permute(2, 0, 1)
    a, b = guided_coefficients(_guide(work, correction.guide), residual, correction.radius, correction.eps)
    offset = (-float(area.x0), -float(area.y0))
    for strip in _strips(window.full_box(area)):
        srows, scols = strip.slices()
        pixels = out_crop[srows, scols].to(window.device)
        up = apply_guided(a, b, _guide(pixels, correction.guide), window.full_size, strip, grid_size=window.work_size, offset=offset, fast=True)
        w_full = upsample_window(w, window.full_size, strip, grid_size=window.work_size, offset=offset)
        changed = torch.where((w_full > 0)[..., None], (pixels + up.permute(1, 2, 0)).clamp(0.0, 1.0), pixels)
        out_crop[srows, scols] = _held(changed, pixels, correction.hold, strip).to(out_crop.device)


def _apply_patches(window: FaceWindow, patches: Sequence[Patch], hold: torch.Tensor | None, out_crop: torch.Tensor) -> None:
    height, width = window.full_size
    for patch in patches:
        box = Box(max(0, patch.box.x0), max(0, patch.box.y0), min(width, patch.box.x1), min(height, patch.box.y1))
        if box.is_empty():
            continue
        rows, cols = box.slices()
        pixels = out_crop[rows, cols].to(window.device)
        result = patch.edit(pixels)
        if result is None:
            continue
        edited, weight = result
        blended = blend_masked(pixels, edited.to(pixels), weight.to(pixels))
        out_crop[rows, cols] = _held(blended, pixels, hold, box).to(out_crop.device)


def _run_face(op: FaceOp, out: torch.Tensor, frame: int, index: int, face: Face, device: torch.device, face_px: float) -> tuple[Correction, FaceWindow] | None:
    window = FaceWindow(out[frame], frame, index, face, device, face_px)
    correction = op(window)
    if correction is None:
        return None
    out_crop = out[frame][window.box.slices()]
    if correction.edited is not None and correction.weight is not None:
        _apply_working(window, correction, out_crop)
    _apply_patches(window, correction.patches, correction.hold, out_crop)
    return correction, window


def apply_per_face(
    image: torch.Tensor,
    regions: FaceRegions,
    op: FaceOp,
    *,
    name: str,
    device: torch.device | None = None,
    face_px: float = RETOUCH_FACE_PX,
    collect: Sequence[str] = (),
) -> KernelResult:
    """Run ``op`` on every face of every frame of an RGB IMAGE ``[B, H, W, 3]``.

    Faces are edited in order on the already-edited frame, so overlapping crops compose.
    Frames without a face come back as the very same pixels; with no face in the whole
    batch the input tensor itself is returned. ``collect`` names the working-grid masks
    (:attr:`Correction.masks`) to return as full-frame ``[B, H, W]`` masks. ``name`` labels
    the progress bar and the log.
    """
    batch, height, width = image.shape[0], image.shape[1], image.shape[2]
    items = regions.for_batch(batch, height, width)
    total = sum(len(item.faces) for item in items)
    masks = {key: torch.zeros(batch, height, width, dtype=torch.float32) for key in collect}
    for frame, item in enumerate(items):
        if not item.faces:
            log.info("portrait_polish: %s: frame %d has no face; passed through unchanged", name, frame)
    if total == 0:
        return KernelResult(image, masks)
    device = device or image.device
    out = image.clone()
    with comfy.Progress(total, name) as progress:
        for frame, item in enumerate(items):
            for index, face in enumerate(item.faces):
                done = _run_with_fallback(op, out, frame, index, face, device, face_px, name)
                if done is not None:
                    correction, window = done
                    for key, grid in correction.masks.items():
                        if key in masks:
                            _paste_mask(masks[key][frame], grid, correction.box, window)
                progress.update()
    return KernelResult(out, masks)


def _run_with_fallback(op: FaceOp, out: torch.Tensor, frame: int, index: int, face: Face, device: torch.device, face_px: float, name: str) -> tuple[Correction, FaceWindow] | None:
    if device.type == "cpu":
        return _run_face(op, out, frame, index, face, device, face_px)
    rows, cols = face.crop_box.slices()
    before = out[frame][rows, cols].clone()
    try:
        return _run_face(op, out, frame, index, face, device, face_px)
    except RuntimeError as exc:
        if not comfy.is_out_of_memory(exc):
            raise
    # Out of GPU memory: put the crop back as it was (part of it may be written) and redo
    # this face on the CPU.
    out[frame][rows, cols] = before
    _release_device_memory()
    log.warning("portrait_polish: %s ran out of %s memory on a face; redoing it on the CPU", name, device.type.upper())
    return _run_face(op, out, frame, index, face, torch.device("cpu"), face_px)


def for_each_frame(count: int, work: Callable[[int, torch.device], Result], name: str, device: torch.device | None = None) -> list[Result]:
    """The per-frame driver (for whole-frame ops: the background nodes): ``[work(0, device),
    work(1, device), ...]`` in batch order, one progress step and a Cancel check each; a frame
    that runs out of GPU memory is done again on the CPU."""
    device = device or torch.device("cpu")
    results: list[Result] = []
    with comfy.Progress(count, name) as progress:
        for index in range(count):
            comfy.throw_if_interrupted()
            try:
                results.append(work(index, device))
            except Exception as exc:
                if device.type == "cpu" or not comfy.is_out_of_memory(exc):
                    raise
                _release_device_memory()
                log.warning("portrait_polish: %s ran out of %s memory on frame %d; doing it on the CPU", name, device.type.upper(), index)
                results.append(work(index, torch.device("cpu")))
            progress.update()
    return results


def _release_device_memory() -> None:
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def _paste_mask(frame_mask: torch.Tensor, grid: torch.Tensor, grid_box: Box | None, window: FaceWindow) -> None:
    """Paste a working-grid mask (covering ``grid_box``) into a full-frame mask, at full
    resolution on the mask's own support only."""
    support = bbox(grid, margin=1)
    if support is None:
        return
    origin = grid_box or Box(0, 0, *window.work_size[::-1])
    box = window.full_box(support.shift(origin.x0, origin.y0))
    values = window.full_mask(grid, box, origin).to(frame_mask.device)
    rows, cols = box.shift(window.box.x0, window.box.y0).slices()
    frame_mask[rows, cols] = torch.maximum(frame_mask[rows, cols], values)


__all__ = [
    "GUIDE_EPS",
    "GUIDE_RADIUS",
    "RETOUCH_FACE_PX",
    "Correction",
    "FaceOp",
    "FaceWindow",
    "KernelResult",
    "Patch",
    "apply_per_face",
    "for_each_frame",
    "luma",
]
