"""Tiled super-resolution in bounded memory, at any output scale, without seams.

How a frame is upscaled:

1. The input is cut into tiles of ``tile`` px (automatic from free memory, or set) that
   overlap by ``overlap`` px. Each tile is run through the model with an extra
   ``context`` margin of real pixels around it (discarded afterwards), so no kept pixel
   comes from the model's zero padding at a tile edge.
2. The model output is brought to the requested output size *inside the tile*: a separable
   Lanczos-3 resampler (antialiased when shrinking) computes each output pixel from global
   coordinates, so a tile gives exactly the pixels a whole-image resample would. Running a
   4x model for a 2x result, or for a target long edge, therefore never holds the native
   4x image in memory.
3. Tiles are blended with raised-cosine ramps across the overlaps. The ramps of neighbours
   sum to one, so tiles are *added* straight into the final IMAGE tensor: the output is
   allocated once, no weight buffer, no second full-size copy.

Alpha is resampled with the same Lanczos filter (no model); grey frames go through the
model as RGB and come back grey. Float16 is used on CUDA for our own models (a tile that
overflows is redone in float32); CPU runs in float32. Results are deterministic (cuDNN
autotuning is switched off for the run).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from . import comfy, models
from .esrgan import UpscaleModel, load_upscale_model
from .tensors import as_image_batch, to_rgb

log = logging.getLogger("portrait_polish")

SCALE_MODES = ("model native", "factor", "long edge")
LANCZOS_A = 3
MIN_TILE = 64
MAX_TILE_CPU = 512
MAX_TILE_GPU = 1024
TILE_STEP = 32
# Share of free memory a tile's activations may take (the rest is for ComfyUI, other
# nodes, the allocator's slack).
MEMORY_SHARE_CPU = 0.25
MEMORY_SHARE_GPU = 0.5
ROW_CHUNK = 512


# --------------------------------------------------------------------------- sizes


def output_size(height: int, width: int, native_scale: int, mode: str, factor: float = 2.0, long_edge: int = 2048) -> tuple[int, int]:
    """Output ``(height, width)`` for a scale mode (aspect ratio kept, at least 1 px)."""
    if mode == "model native":
        return height * native_scale, width * native_scale
    if mode == "factor":
        if not factor > 0:
            raise ValueError(f"upscale factor must be positive, got {factor}")
        ratio = float(factor)
    elif mode == "long edge":
        if long_edge < 1:
            raise ValueError(f"long edge must be at least 1 px, got {long_edge}")
        ratio = long_edge / max(height, width)
    else:
        raise ValueError(f"unknown scale mode {mode!r}; choose one of {', '.join(SCALE_MODES)}")
    if height >= width and mode == "long edge":
        return int(long_edge), max(1, round(width * ratio))
    if mode == "long edge":
        return max(1, round(height * ratio)), int(long_edge)
    return max(1, round(height * ratio)), max(1, round(width * ratio))


# --------------------------------------------------------------------------- resampling


def _lanczos(x: torch.Tensor) -> torch.Tensor:
    a = LANCZOS_A
    out = torch.sinc(x) * torch.sinc(x / a)
    return torch.where(x.abs() < a, out, torch.zeros_like(out))


def resample_radius(src_size: int, dst_size: int) -> float:
    """Half-width of the filter in source pixels (widened when shrinking: antialiasing)."""
    return LANCZOS_A * max(1.0, src_size / dst_size)


def resample_taps(dst_start: int, dst_end: int, src_size: int, dst_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Source indices and weights ``[n, K]`` for output pixels ``dst_start..dst_end`` of a
    ``src_size -> dst_size`` resample (pixel centres aligned, edges clamped, like Pillow)."""
    scale = src_size / dst_size
    stretch = max(1.0, scale)
    radius = LANCZOS_A * stretch
    centre = (torch.arange(dst_start, dst_end, dtype=torch.float64) + 0.5) * scale - 0.5
    first = torch.floor(centre - radius).to(torch.int64) + 1
    taps = int(math.ceil(2 * radius)) + 1
    index = first[:, None] + torch.arange(taps, dtype=torch.int64)[None, :]
    weight = _lanczos((index.to(torch.float64) - centre[:, None]) / stretch)
    weight = weight / weight.sum(dim=1, keepdim=True)
    return index.clamp_(0, src_size - 1), weight.to(torch.float32)


def resample_axis(x: torch.Tensor, axis: int, src_size: int, dst_size: int, dst_start: int, dst_end: int, src_offset: int = 0) -> torch.Tensor:
    """Resample ``x`` along ``axis`` where ``x`` holds source positions
    ``src_offset .. src_offset + x.shape[axis]`` of a ``src_size``-long signal, giving output
    positions ``dst_start .. dst_end`` of the ``dst_size``-long result."""
    index, weight = resample_taps(dst_start, dst_end, src_size, dst_size)
    index = index - src_offset
    if index.numel() and (int(index.min()) < 0 or int(index.max()) >= x.shape[axis]):
        raise RuntimeError("resample window outside the tile (context margin too small)")
    index = index.to(x.device)
    weight = weight.to(x.device, x.dtype)
    shape = [1] * x.ndim
    shape[axis] = -1
    out: torch.Tensor | None = None
    for k in range(index.shape[1]):
        term = x.index_select(axis, index[:, k]) * weight[:, k].view(shape)
        out = term if out is None else out.add_(term)
    assert out is not None
    return out


def resize_plane(x: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Lanczos resize of an ``[H, W, ...]`` tensor (row chunks bound the temporary memory)."""
    src_h, src_w = x.shape[0], x.shape[1]
    out = torch.empty((height, width, *x.shape[2:]), dtype=x.dtype, device=x.device)
    for row in range(0, height, ROW_CHUNK):
        end = min(height, row + ROW_CHUNK)
        rows = resample_axis(x, 0, src_h, height, row, end) if src_h != height else x[row:end]
        out[row:end] = resample_axis(rows, 1, src_w, width, 0, width) if src_w != width else rows
    return out


# --------------------------------------------------------------------------- tiling


@dataclass(frozen=True)
class AxisTile:
    """One tile along one axis: input core ``[start, end)``, model input ``[ctx_start,
    ctx_end)``, output ``[out_start, out_end)`` and its blend weights there."""

    start: int
    end: int
    ctx_start: int
    ctx_end: int
    out_start: int
    out_end: int
    weight: torch.Tensor


def _ramp(count: int) -> torch.Tensor:
    """Rising raised-cosine weights for ``count`` output pixels (``r + r[::-1] == 1``)."""
    x = (torch.arange(count, dtype=torch.float64) + 0.5) / count
    return (0.5 - 0.5 * torch.cos(math.pi * x)).to(torch.float32)


def plan_axis(length: int, out_length: int, tile: int, overlap: int, context: int) -> list[AxisTile]:
    """Tiles along one axis, at most ``tile`` px each, with blend weights that sum to
    exactly one at every output pixel.

    The axis is cut at ``count`` evenly spaced boundaries; each tile reaches ``overlap / 2``
    past the boundaries on either side, and the blend zone around each boundary is that
    ``overlap``-wide strip (in output pixels). Zones never touch each other, so every output
    pixel is covered by one tile, or by exactly two whose ramps are complementary.
    """
    tile = max(1, min(tile, length))
    overlap = max(0, min(overlap, tile // 2))
    count = 1 if length <= tile else math.ceil(length / max(1, tile - overlap))
    bounds = [round(i * length / count) for i in range(count + 1)]
    if count > 1:
        overlap = min(overlap, min(b - a for a, b in zip(bounds, bounds[1:], strict=False)))
    half_lo, half_hi = overlap // 2, overlap - overlap // 2
    ratio = out_length / length
    # Blend zones around the inner boundaries, in input and in output pixels.
    zones_in = [(bounds[i] - half_lo, bounds[i] + half_hi) for i in range(1, count)]
    zones_out = [(round(a * ratio), round(b * ratio)) for a, b in zones_in]
    tiles: list[AxisTile] = []
    for i in range(count):
        start = 0 if i == 0 else zones_in[i - 1][0]
        end = length if i == count - 1 else zones_in[i][1]
        out_start = 0 if i == 0 else zones_out[i - 1][0]
        out_end = out_length if i == count - 1 else zones_out[i][1]
        weight = torch.ones(out_end - out_start, dtype=torch.float32)
        if i > 0:
            zone = zones_out[i - 1][1] - zones_out[i - 1][0]
            weight[:zone] *= _ramp(zone)
        if i < count - 1:
            zone = zones_out[i][1] - zones_out[i][0]
            weight[out_end - out_start - zone :] *= 1.0 - _ramp(zone)
        tiles.append(AxisTile(start, end, max(0, start - context), min(length, end + context), out_start, out_end, weight))
    return tiles


CONTEXT_PX = 16


def context_margin(overlap: int, scale: int, src_native: int, dst: int, context: int = CONTEXT_PX) -> int:
    """Input pixels of real context around each tile (so the kept pixels never come from
    the model's zero padding at a tile edge) plus what the resampling filter reaches."""
    resample = math.ceil(resample_radius(src_native, dst) / scale) + 2 if src_native != dst else 0
    return max(0, context) + resample


def auto_tile_size(model: UpscaleModel, device: torch.device, dtype: torch.dtype, height: int, width: int, context: int) -> int:
    """Largest tile (multiple of 32) whose activations fit the memory share of free memory."""
    free = comfy.free_memory_bytes(device)
    share = MEMORY_SHARE_GPU if device.type == "cuda" else MEMORY_SHARE_CPU
    per_pixel = model.bytes_per_input_pixel(dtype)
    side = int(math.sqrt(max(free * share, 0) / per_pixel)) - 2 * context
    cap = MAX_TILE_GPU if device.type == "cuda" else MAX_TILE_CPU
    side = max(MIN_TILE, min(cap, side // TILE_STEP * TILE_STEP))
    needed = math.ceil(max(height, width) / TILE_STEP) * TILE_STEP
    return max(MIN_TILE, min(side, needed))


# --------------------------------------------------------------------------- running


def _model_input(rgb_chw: torch.Tensor, model: UpscaleModel) -> torch.Tensor:
    if model.in_channels == 1:
        return rgb_chw.mean(dim=0, keepdim=True)
    if model.in_channels != 3:
        raise ValueError(f"upscale model {model.name!r} takes {model.in_channels}-channel images; only 1 and 3 are supported")
    return rgb_chw


def _run_model(model: UpscaleModel, region: torch.Tensor, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """Model on one ``[C, h, w]`` region (padded to its size rules), as float32 ``[C', h·s, w·s]``."""
    h, w = region.shape[-2:]
    need_h = max(model.minimum, math.ceil(h / model.multiple_of) * model.multiple_of)
    need_w = max(model.minimum, math.ceil(w / model.multiple_of) * model.multiple_of)
    x = region.unsqueeze(0).to(device=device, dtype=dtype).contiguous()
    if (need_h, need_w) != (h, w):
        x = F.pad(x, (0, need_w - w, 0, need_h - h), mode="replicate")
    y = model(x)
    s = model.scale
    return y[0, :, : h * s, : w * s].to(torch.float32)


@dataclass
class TileStats:
    tile: int
    overlap: int
    context: int
    tiles: int
    retries: int = 0
    float32_fallback: bool = False


class _Runner:
    """Holds the model (and its float32 fallback) for one upscale call."""

    def __init__(self, model: UpscaleModel, device: torch.device, fallback: Callable[[], UpscaleModel] | None) -> None:
        self.model = model
        self.device = device
        self.dtype = model.parameter_dtype
        self.fallback = fallback
        self.fell_back = False

    def __call__(self, region: torch.Tensor) -> torch.Tensor:
        out = _run_model(self.model, _model_input(region, self.model), self.device, self.dtype)
        if self.dtype == torch.float16 and not bool(torch.isfinite(out).all()):
            if self.fallback is None:
                raise FloatingPointError(f"upscale model {self.model.name!r} overflowed in float16")
            log.warning("Upscale: float16 overflowed on a tile of %s; continuing in float32", self.model.name)
            self.model = self.fallback()
            self.dtype = self.model.parameter_dtype
            self.fell_back = True
            out = _run_model(self.model, _model_input(region, self.model), self.device, self.dtype)
        return out


def _upscale_frame(
    rgb_chw: torch.Tensor,
    out_rgb: torch.Tensor,
    grey: bool,
    runner: _Runner,
    rows: list[AxisTile],
    cols: list[AxisTile],
    progress: comfy.Progress,
    strength: float = 1.0,
) -> None:
    """Upscale one ``[3, H, W]`` frame, adding its tiles into ``out_rgb`` (``[Ht, Wt, C]``).

    ``strength`` < 1 mixes the model's tile with a plain Lanczos enlargement of the same
    tile (computed in the same global coordinates, so the mix is seamless too)."""
    _, height, width = rgb_chw.shape
    out_h, out_w = out_rgb.shape[0], out_rgb.shape[1]
    s = runner.model.scale
    native_h, native_w = height * s, width * s
    for ty in rows:
        for tx in cols:
            region = rgb_chw[:, ty.ctx_start : ty.ctx_end, tx.ctx_start : tx.ctx_end]
            native = runner(region).permute(1, 2, 0)  # [h·s, w·s, C'] float32
            if native_h == out_h:
                native = native[ty.out_start - ty.ctx_start * s : ty.out_end - ty.ctx_start * s]
            else:
                native = resample_axis(native, 0, native_h, out_h, ty.out_start, ty.out_end, ty.ctx_start * s)
            if native_w == out_w:
                native = native[:, tx.out_start - tx.ctx_start * s : tx.out_end - tx.ctx_start * s]
            else:
                native = resample_axis(native, 1, native_w, out_w, tx.out_start, tx.out_end, tx.ctx_start * s)
            native = native.to(out_rgb.device)
            if strength < 1.0:
                plain = region.permute(1, 2, 0).to(out_rgb.device, torch.float32)
                plain = resample_axis(plain, 0, height, out_h, ty.out_start, ty.out_end, ty.ctx_start)
                plain = resample_axis(plain, 1, width, out_w, tx.out_start, tx.out_end, tx.ctx_start)
                if native.shape[-1] != plain.shape[-1]:
                    native = native.expand_as(plain)
                native = plain + strength * (native - plain)
            if grey:
                native = native.mean(dim=-1, keepdim=True)
            elif native.shape[-1] == 1:
                native = native.expand(-1, -1, 3)
            weight = (ty.weight[:, None] * tx.weight[None, :])[..., None]
            out_rgb[ty.out_start : ty.out_end, tx.out_start : tx.out_end].add_(native * weight)
            progress.update(1)


def _deterministic(device: torch.device):
    if device.type == "cuda":
        return torch.backends.cudnn.flags(enabled=True, benchmark=False, deterministic=True)
    return nullcontext()


def check_output_fits(batch: int, height: int, width: int, channels: int) -> None:
    """Refuse (clearly) an output that cannot fit in memory, before allocating it."""
    needed = batch * height * width * channels * 4
    free = comfy.free_memory_bytes(torch.device("cpu"))
    if needed > 0.8 * free:
        raise MemoryError(
            f"the upscaled IMAGE would be {batch}x{width}x{height}x{channels} float32 = {needed / 2**30:.1f} GiB, "
            f"but only {free / 2**30:.1f} GiB of memory is free; choose a smaller factor or long edge, or fewer frames"
        )


def upscale_image(
    image: torch.Tensor,
    model: UpscaleModel,
    *,
    mode: str = "model native",
    factor: float = 2.0,
    long_edge: int = 2048,
    tile: int = 0,
    overlap: int = 32,
    device: torch.device | None = None,
    fallback: Callable[[], UpscaleModel] | None = None,
    stats: list[TileStats] | None = None,
    context: int = CONTEXT_PX,
    strength: float = 1.0,
) -> torch.Tensor:
    """Upscale an IMAGE ``[B,H,W,C]`` with ``model`` to the size ``mode`` asks for.

    ``strength`` (0..1) is how much of the model's result is used: below 1 a plain Lanczos
    enlargement is mixed back in (GAN upscalers redraw skin; this tones that down);
    0 is the plain resize alone (the model is not run, and at the same size the input
    comes back bit-exact).

    ``tile`` 0 = automatic from free memory; on out-of-memory the tile is halved and the
    frame redone (down to 64 px). ``fallback`` gives a float32 model for a float16 one whose
    output overflows. ``stats`` (a list) receives one :class:`TileStats` per frame.
    """
    image = as_image_batch(image)
    batch, height, width, channels = image.shape
    rgb, _, alpha = to_rgb(image)
    out_h, out_w = output_size(height, width, model.scale, mode, factor, long_edge)
    check_output_fits(batch, out_h, out_w, channels)
    out = torch.zeros((batch, out_h, out_w, channels), dtype=torch.float32)
    grey = channels == 1
    out_colour = out[..., :1] if grey else out[..., :3]

    strength = min(1.0, max(0.0, float(strength)))
    if strength == 0.0 or (out_h <= height and out_w <= width and (out_h, out_w) != (height, width)):
        # Strength 0, or a reduction: a super-resolution model adds nothing a good resample
        # lacks. (The same size with strength > 0 still runs the model: its detail and
        # denoising at 1x is a real use.)
        log.info("Upscale: %dx%d -> %dx%d by resampling alone (strength %.2f)", width, height, out_w, out_h, strength)
        for b in range(batch):
            out_colour[b] = resize_plane(image[b, ..., : out_colour.shape[-1]], out_h, out_w)
    else:
        device = device or comfy.torch_device()
        if not model.owned:  # ComfyUI's descriptor: borrow it on the device, give it back after
            model.module.to(device)
        else:
            device = model.device
        runner = _Runner(model, device, fallback)
        overlap = max(0, int(overlap))
        scale = model.scale
        context = max(
            context_margin(overlap, scale, height * scale, out_h, context),
            context_margin(overlap, scale, width * scale, out_w, context),
        )
        size = int(tile) if tile else auto_tile_size(model, device, runner.dtype, height, width, context)
        try:
            with torch.inference_mode(), _deterministic(device):
                for b in range(batch):
                    frame = rgb[b].permute(2, 0, 1)
                    retries = 0
                    while True:
                        rows = plan_axis(height, out_h, size, overlap, context)
                        cols = plan_axis(width, out_w, size, overlap, context)
                        failed = False
                        with comfy.Progress(len(rows) * len(cols), f"Upscale {b + 1}/{batch}") as progress:
                            try:
                                _upscale_frame(frame, out_colour[b], grey, runner, rows, cols, progress, strength)
                            except Exception as exc:  # noqa: BLE001 - only OOM is retried; the rest re-raised
                                if not comfy.is_out_of_memory(exc) or size // 2 < MIN_TILE:
                                    raise
                                failed = True
                        if not failed:
                            break
                        # Out of memory: this frame again with half the tile (outside the
                        # except block, so the failed tile's tensors are released first).
                        out_colour[b].zero_()
                        if device.type == "cuda":
                            torch.cuda.empty_cache()
                        retries += 1
                        log.warning("Upscale: out of memory with %d px tiles; retrying with %d px", size, size // 2)
                        size //= 2
                    if stats is not None:
                        stats.append(TileStats(size, overlap, context, len(rows) * len(cols), retries, runner.fell_back))
                    log.info(
                        "Upscale: frame %d/%d %dx%d -> %dx%d with %s, %d tiles of <= %d px",
                        b + 1, batch, width, height, out_w, out_h, model.describe(), len(rows) * len(cols), size,
                    )
        finally:
            if not model.owned:
                model.module.to("cpu")
    out_colour.clamp_(0.0, 1.0)
    if alpha is not None:
        for b in range(batch):
            out[b, ..., 3] = resize_plane(alpha[b], out_h, out_w)
        out[..., 3].clamp_(0.0, 1.0)
    return out


# --------------------------------------------------------------------------- model files


def resolve_model_file(name: str) -> Path:
    """A file name from the ``upscale_models`` dropdown (or a models.json id, or a path)."""
    found = models.find_file(name, "upscale_models")
    if found is not None:
        return found
    try:
        return models.model_path(name)
    except KeyError:
        searched = "\n  ".join(str(d) for d in models.search_dirs("upscale_models"))
        raise models.ModelNotFoundError(
            f"upscale model {name!r} is not in any upscale_models folder. Put it in ComfyUI/models/upscale_models "
            f"(or a folder in {models.ENV_MODELS}). Folders searched:\n  {searched}"
        ) from None


def preferred_dtype(device: torch.device) -> torch.dtype:
    """Float16 on CUDA (all Real-ESRGAN nets run fine in it, at half the memory), else float32."""
    return torch.float16 if device.type == "cuda" else torch.float32


def load_model(name: str, device: torch.device | None = None, dtype: torch.dtype | None = None) -> UpscaleModel:
    """Load (once, cached per file, device and dtype) an upscaler by dropdown name or path."""
    device = device or comfy.torch_device()
    path = resolve_model_file(name)
    stat = path.stat()
    dtype = dtype or preferred_dtype(device)

    def loader() -> UpscaleModel:
        model = load_upscale_model(path)
        use = dtype if (model.supports_half or dtype != torch.float16) else torch.float32
        model.module.to(device=device, dtype=use)
        return model

    key = ("upscale", str(path.resolve()), stat.st_mtime_ns, stat.st_size, str(device), str(dtype))
    model = models.cached_model(key, loader)
    return model
