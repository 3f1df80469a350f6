"""Lens blur of a portrait's background: disc aperture, linear light, blooming highlights.

For one frame with its matte (alpha and foreground colour from :mod:`core.matte`):

1. A **working copy** of the frame, long side :attr:`BokehSettings.work_px`: a lens blur has
   nothing finer than its smallest disc, so it is computed small and upsampled (bilinear) at
   the end; a 24 MP frame costs little more than a 1 MP one.
2. **Linear light**: the sRGB pixels are linearised, and near-white pixels (above
   ``threshold`` in luminance, i.e. clipped highlights, whose true brightness the photo lost)
   are boosted, so a small light spreads into a visible disc, as through a real lens.
3. **Disc blur of the background alone**: each of a few disc radii is a normalised
   convolution (FFT) of the background-weighted image, ``conv((1-a)·I, D) / conv(1-a, D)``, so
   the person never leaks into the blurred background (no halo) and the background is
   filled in behind the person's edge.
4. **Radius per pixel**: from the person's edge (``near`` of the full radius) to the full radius
   over ``falloff`` (% of the long side), or from a depth MASK (white = near); the pixel's
   value is interpolated between the two nearest disc radii.
5. **Composite** at full resolution: ``a·F + (1-a)·blurred``, with ``F`` the matte's
   foreground colour, so edges carry neither a fringe of the sharp old background nor a halo;
   where alpha is 1 the input pixel is kept, bit-exact.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from .colour import linear_to_srgb, srgb_to_linear
from .filters import gaussian_blur
from .masks import Box, GridSampler, resize, resize_image
from .matte import composite

# Luminance weights (Rec. 709) for the highlight test.
_LUMA = (0.2126, 0.7152, 0.0722)


@dataclass(frozen=True)
class BokehSettings:
    """``blur``: disc radius far from the person, % of the frame's long side. ``near``: share of
    it at the person's edge. ``falloff``: distance (% of the long side) over which the blur grows
    from near to full. ``highlights``: how strongly clipped highlights bloom (0 = off);
    ``threshold``: the luminance (0..1) where blooming starts. ``work_px``: long side of the
    working copy. ``levels``: disc radii computed (more = smoother growth)."""

    blur: float = 2.0
    near: float = 0.4
    falloff: float = 20.0
    highlights: float = 1.0
    threshold: float = 0.9
    work_px: int = 1280
    levels: int = 6

    def __post_init__(self) -> None:
        if self.blur < 0 or not 0 <= self.near <= 1 or self.falloff <= 0:
            raise ValueError("bokeh: blur must be >= 0, near in 0..1 and falloff > 0")
        if not 0 < self.threshold < 1 or self.highlights < 0:
            raise ValueError("bokeh: threshold must be in (0, 1) and highlights >= 0")
        if not 64 <= int(self.work_px) <= 8192 or int(self.levels) < 2:
            raise ValueError("bokeh: work_px must be 64..8192 and levels >= 2")


def disc_kernel(radius: float, device: torch.device | None = None) -> torch.Tensor:
    """An anti-aliased disc (the aperture) of ``radius`` px, summing to 1."""
    half = int(math.ceil(radius + 0.5))
    coords = torch.arange(-half, half + 1, dtype=torch.float32, device=device)
    distance = torch.sqrt(coords[None, :] ** 2 + coords[:, None] ** 2)
    disc = (radius + 0.5 - distance).clamp(0.0, 1.0)
    return disc / disc.sum()


def _fft_convolve(x: torch.Tensor, kernels: list[torch.Tensor]) -> list[torch.Tensor]:
    """``[C, h, w]`` convolved with each centred odd-sized kernel (reflect padding, same size).

    One forward transform of the padded frame serves every kernel (each is centred in the
    largest one's square), so six disc radii cost one forward and six inverse FFTs.
    """
    channels, height, width = x.shape
    half = max(k.shape[0] for k in kernels) // 2
    pad = min(half, height - 1, width - 1)
    padded = F.pad(x[None], (pad, pad, pad, pad), mode="reflect")[0] if pad > 0 else x
    if pad < half:  # a kernel wider than the frame: replicate beyond what reflect can give
        padded = F.pad(padded[None], (half - pad,) * 4, mode="replicate")[0]
    ph, pw = padded.shape[1:]
    size = (ph + 2 * half + 1, pw + 2 * half + 1)
    spectrum = torch.fft.rfft2(padded, s=size)
    out = []
    for kernel in kernels:
        margin = half - kernel.shape[0] // 2
        centred = F.pad(kernel, (margin, margin, margin, margin))
        full = torch.fft.irfft2(spectrum * torch.fft.rfft2(centred, s=size), s=size)
        out.append(full[:, 2 * half : 2 * half + height, 2 * half : 2 * half + width])
    return out


def boost_highlights(linear: torch.Tensor, srgb: torch.Tensor, settings: BokehSettings) -> torch.Tensor:
    """Clipped highlights get back some of the brightness the sensor cut off (``[..., 3]``)."""
    if settings.highlights <= 0:
        return linear
    weights = torch.tensor(_LUMA, dtype=srgb.dtype, device=srgb.device)
    luma = (srgb * weights).sum(-1, keepdim=True)
    ramp = ((luma - settings.threshold) / (1.0 - settings.threshold)).clamp(0.0, 1.0)
    return linear * (1.0 + 12.0 * settings.highlights * ramp**2)


def blur_share(alpha: torch.Tensor, depth: torch.Tensor | None, falloff_px: float) -> torch.Tensor:
    """0 (the near radius) .. 1 (the full radius) per working pixel.

    Without depth: closeness to the person, a Gaussian of the alpha (0.5 on a straight edge,
    falling to 0 about ``falloff_px`` away). With depth (white = near): how much farther than
    the person the pixel is, from the person's median depth to the farthest 2 % of the
    background.
    """
    if depth is None:
        near = gaussian_blur(alpha, max(0.5, falloff_px / 2.0))
        return (1.0 - 2.0 * near).clamp(0.0, 1.0)
    person = depth[alpha > 0.9]
    background = depth[alpha < 0.1]
    if person.numel() == 0 or background.numel() == 0:
        return torch.ones_like(depth)
    focus = person.median()
    far = torch.quantile(background.flatten()[:: max(1, background.numel() // 100_000)], 0.02)
    span = max(float(focus - far), 1e-3)
    return ((focus - depth) / span).clamp(0.0, 1.0)


def blurred_background(
    work_rgb: torch.Tensor, work_alpha: torch.Tensor, share: torch.Tensor, near_px: float, far_px: float, settings: BokehSettings
) -> torch.Tensor:
    """The background blurred with a disc whose radius follows ``share`` (sRGB ``[h, w, 3]``)."""
    linear = boost_highlights(srgb_to_linear(work_rgb), work_rgb, settings)
    weight = (1.0 - work_alpha)[None]  # [1, h, w]
    stack = torch.cat([linear.permute(2, 0, 1) * weight, weight], dim=0)  # premultiplied + weight
    levels = max(2, int(settings.levels)) if far_px - near_px > 0.5 else 2
    radii = torch.linspace(near_px, far_px, levels).tolist()
    discs = [disc_kernel(radius, stack.device) for radius in radii if radius >= 0.5]
    convolved = iter(_fft_convolve(stack, discs) if discs else [])
    blurred = [stack if radius < 0.5 else next(convolved) for radius in radii]
    # Behind the person's middle no background is in reach of any disc: fill it from far away
    # (never shown where alpha is 1; it only keeps the maths defined).
    fill = gaussian_blur(stack, max(4.0, 0.1 * max(work_rgb.shape[:2])))
    position = share * (levels - 1)
    lower = position.floor().clamp(0, levels - 2).to(torch.long)
    frac = (position - lower.to(position.dtype)).clamp(0.0, 1.0)
    result = torch.zeros_like(stack)
    for index in range(levels):
        weight_here = torch.where(lower == index, 1.0 - frac, torch.zeros_like(frac)) + torch.where(
            lower + 1 == index, frac, torch.zeros_like(frac)
        )
        result = result + blurred[index] * weight_here[None]
    covered = result[3:4]
    colour = torch.where(covered > 1e-3, result[:3] / covered.clamp_min(1e-6), fill[:3] / fill[3:4].clamp_min(1e-6))
    return linear_to_srgb(colour.permute(1, 2, 0).clamp_min(0.0))


def bokeh_frame(
    rgb: torch.Tensor,
    alpha: torch.Tensor,
    foreground: torch.Tensor,
    settings: BokehSettings,
    depth: torch.Tensor | None = None,
    device: torch.device | None = None,
) -> torch.Tensor:
    """The frame ``[H, W, 3]`` with its background lens-blurred (see the module doc)."""
    device = device or torch.device("cpu")
    height, width = rgb.shape[:2]
    long_side = max(height, width)
    factor = min(1.0, settings.work_px / long_side)
    size = (max(1, round(height * factor)), max(1, round(width * factor)))

    def shrink(x: torch.Tensor) -> torch.Tensor:
        x = x.to(torch.float32)
        return (resize(x, size) if x.ndim == 2 else resize_image(x, size)).to(device)

    work_rgb, work_alpha = shrink(rgb).clamp(0, 1), shrink(alpha).clamp(0, 1)
    work_depth = None if depth is None else shrink(depth)
    far_px = settings.blur / 100.0 * long_side * factor
    near_px = settings.near * far_px
    share = blur_share(work_alpha, work_depth, settings.falloff / 100.0 * long_side * factor)
    background = blurred_background(work_rgb, work_alpha, share, near_px, far_px, settings).permute(2, 0, 1).cpu()
    blurred = GridSampler(background, (height, width))

    def backdrop(box: Box) -> torch.Tensor:
        return blurred.at(box).permute(1, 2, 0)

    return composite(rgb, alpha, foreground, backdrop)
