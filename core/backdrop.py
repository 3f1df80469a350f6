"""New backgrounds behind a matted portrait: solid colour, studio backdrop, another picture.

The composite is ``a·F + (1-a)·backdrop`` with the matte's foreground colour ``F``, so no
fringe of the old background is left at the edges; where alpha is 1 the input pixel is kept,
bit-exact. Smooth backdrops (solid, studio) are made on a small grid and stretched to the
frame tile by tile, only where the backdrop shows, so a 24 MP frame never holds more than the
frame and its result.

Studio backdrop: the colour in CIELAB with its lightness raised by a soft glow behind the
person (``glow``: up to +15 L*, a Gaussian about a third of the frame wide) and lowered
toward the corners (``vignette``: up to −20 L*); hue and chroma stay the colour's own, as
with a lit paper backdrop. A faint ±½-level dither keeps 8-bit saves from banding.

Light wrap (optional): the new background's light spills a little over the person's edge,
as it does in a real photo, instead of the cut-out look.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from .colour import lab_to_rgb, rgb_to_lab
from .filters import gaussian_blur
from .masks import Box, GridSampler
from .matte import composite

GRID_PX = 256  # long side of the grid a smooth backdrop is drawn on
BACKDROPS = ("solid colour", "studio gradient", "image")
_NAMED = {"white": "#ffffff", "black": "#000000", "grey": "#808080", "gray": "#808080", "studio grey": "#8c8f93"}


def parse_colour(text: str) -> torch.Tensor:
    """``#rrggbb``, ``#rgb``, ``r, g, b`` (0..255) or a few names -> sRGB ``[3]`` in 0..1."""
    value = str(text).strip().lower()
    value = _NAMED.get(value, value)
    match = re.fullmatch(r"#?([0-9a-f]{6}|[0-9a-f]{3})", value)
    if match:
        digits = match.group(1)
        if len(digits) == 3:
            digits = "".join(ch * 2 for ch in digits)
        return torch.tensor([int(digits[i : i + 2], 16) / 255.0 for i in (0, 2, 4)], dtype=torch.float32)
    parts = [p for p in re.split(r"[,\s]+", value) if p]
    if len(parts) == 3:
        try:
            numbers = [float(p) for p in parts]
        except ValueError:
            numbers = []
        if numbers and all(0 <= n <= 255 for n in numbers):
            return torch.tensor(numbers, dtype=torch.float32) / 255.0
    raise ValueError(f"colour {text!r} is not understood: use #rrggbb (e.g. #8c8f93), #rgb, 'r, g, b' (0-255) or white/black/grey")


@dataclass(frozen=True)
class BackdropSettings:
    """``kind``: one of :data:`BACKDROPS`. ``glow`` / ``vignette``: 0..1 (studio only).
    ``light_wrap``: 0..1; ``wrap_width``: its reach in % of the long side."""

    kind: str = "studio gradient"
    colour: str = "#8c8f93"
    glow: float = 0.4
    vignette: float = 0.35
    light_wrap: float = 0.0
    wrap_width: float = 1.0

    def __post_init__(self) -> None:
        if self.kind not in BACKDROPS:
            raise ValueError(f"background must be one of {', '.join(BACKDROPS)}, got {self.kind!r}")
        parse_colour(self.colour)


def studio_grid(size: tuple[int, int], colour: torch.Tensor, glow: float, vignette: float, centre: tuple[float, float]) -> torch.Tensor:
    """A studio backdrop on a small ``size`` grid (sRGB ``[h, w, 3]``); ``centre`` = (x, y) 0..1."""
    height, width = size
    ys = (torch.arange(height, dtype=torch.float32) + 0.5) / height
    xs = (torch.arange(width, dtype=torch.float32) + 0.5) / width
    aspect = width / max(height, width), height / max(height, width)
    dx = (xs[None, :] - centre[0]) * aspect[0]
    dy = (ys[:, None] - centre[1]) * aspect[1]
    glow_field = torch.exp(-(dx**2 + dy**2) / (2 * 0.33**2))
    cx, cy = (xs[None, :] - 0.5) * aspect[0] * 2, (ys[:, None] - 0.5) * aspect[1] * 2
    corner = ((cx**2 + cy**2) / 2.0).clamp(0, 1)  # 0 in the middle, 1 in the corners
    lab = rgb_to_lab(colour.to(torch.float64)).to(torch.float32)
    lightness = lab[0] + 15.0 * glow * glow_field - 20.0 * vignette * corner**1.5
    field = torch.stack([lightness.clamp(0, 100), lab[1].expand_as(lightness), lab[2].expand_as(lightness)], dim=-1)
    return lab_to_rgb(field).clamp(0.0, 1.0)


def cover(picture: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """``picture`` ``[h, w, 3]`` scaled to cover ``height × width`` and centre-cropped."""
    ph, pw = picture.shape[:2]
    ratio = max(height / ph, width / pw)
    size = (max(height, math.ceil(ph * ratio)), max(width, math.ceil(pw * ratio)))
    scaled = F.interpolate(picture.permute(2, 0, 1)[None].to(torch.float32), size=size, mode="bilinear", align_corners=False, antialias=True)[0]
    top, left = (size[0] - height) // 2, (size[1] - width) // 2
    return scaled[:, top : top + height, left : left + width].permute(1, 2, 0).clamp(0.0, 1.0)


def person_centre(alpha: torch.Tensor) -> tuple[float, float]:
    """Where a studio light would be aimed: the person's horizontal centre, a third of the way
    down their extent (about the head), as fractions of the frame."""
    height, width = alpha.shape
    small = F.interpolate(alpha[None, None], size=(min(height, 128), min(width, 128)), mode="area")[0, 0]
    total = float(small.sum())
    if total <= 0:
        return 0.5, 0.4
    xs = (torch.arange(small.shape[1], dtype=torch.float32) + 0.5) / small.shape[1]
    rows = torch.nonzero(small.amax(dim=1) > 0.5)
    top = float(rows.min()) / small.shape[0] if len(rows) else 0.0
    return float((small.sum(0) * xs).sum() / total), top + (1.0 - top) / 3.0


def _smooth_backdrop(settings: BackdropSettings, height: int, width: int, alpha: torch.Tensor) -> torch.Tensor:
    colour = parse_colour(settings.colour)
    factor = GRID_PX / max(height, width)
    size = (max(2, round(height * factor)), max(2, round(width * factor)))
    if settings.kind == "solid colour":
        return colour[:, None, None].expand(3, *size).clone()
    return studio_grid(size, colour, settings.glow, settings.vignette, person_centre(alpha)).permute(2, 0, 1)


def replace_frame(
    rgb: torch.Tensor,
    alpha: torch.Tensor,
    foreground: torch.Tensor,
    settings: BackdropSettings,
    picture: torch.Tensor | None = None,
) -> torch.Tensor:
    """The frame ``[H, W, 3]`` over a new background (see the module doc)."""
    height, width = rgb.shape[:2]
    if settings.kind == "image":
        if picture is None:
            raise ValueError("BackgroundReplace: background 'image' needs the background_image input connected")
        full = cover(picture, height, width).permute(2, 0, 1)
        grid = None
    else:
        grid = _smooth_backdrop(settings, height, width, alpha)
        full = None
    if full is not None:

        def backdrop(box: Box) -> torch.Tensor:
            rows, cols = box.slices()
            return full[:, rows, cols].permute(1, 2, 0)

    else:
        smooth = GridSampler(grid, (height, width))
        seed = height * 7919 + width

        def backdrop(box: Box) -> torch.Tensor:
            back = smooth.at(box).permute(1, 2, 0)
            if settings.kind != "studio gradient":
                return back
            # The dither of each tile seeded by where it is: the same pixels whatever is asked.
            generator = torch.Generator().manual_seed(seed + box.y0 * 65_537 + box.x0)
            shape = back.shape[:2]
            noise = torch.rand(shape, generator=generator) - torch.rand(shape, generator=generator)
            return (back + noise[..., None] * (0.5 / 255.0)).clamp(0.0, 1.0)

    edit_person = None
    if settings.light_wrap > 0:
        wrap = GridSampler(_light_wrap_fields(alpha, full if full is not None else grid, settings, height, width), (height, width))

        def edit_person(box: Box, a: torch.Tensor, person: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            fields = wrap.at(box)
            light, reach = fields[:3].permute(1, 2, 0), fields[3]
            strength = (settings.light_wrap * reach * a[..., 0]).clamp(0.0, 1.0)
            return person + strength[..., None] * (light - person), strength > 0

    return composite(rgb, alpha, foreground, backdrop, edit_person)


def _light_wrap_fields(alpha: torch.Tensor, backdrop: torch.Tensor, settings: BackdropSettings, height: int, width: int) -> torch.Tensor:
    """``[4, h, w]`` on a small grid: the backdrop's blurred light (RGB) and how far inside the
    person's edge it reaches (1 at the edge, 0 deeper than ``wrap_width``)."""
    factor = min(1.0, 512 / max(height, width))
    size = (max(2, round(height * factor)), max(2, round(width * factor)))
    small_alpha = F.interpolate(alpha[None, None], size=size, mode="area")[0, 0]
    small_back = F.interpolate(backdrop[None], size=size, mode="area" if backdrop.shape[1] >= size[0] else "bilinear")[0]
    sigma = max(0.7, settings.wrap_width / 100.0 * max(size))
    outside = 1.0 - small_alpha
    light = gaussian_blur(small_back * outside[None], sigma) / gaussian_blur(outside[None], sigma).clamp_min(1e-4)
    # 1 at the edge, exactly 0 a few widths inside (the Gaussian's tail cut, so the person's
    # interior stays bit-exact).
    reach = ((2.0 * gaussian_blur(outside, sigma) - 0.05) / 0.95).clamp(0.0, 1.0)
    return torch.cat([light, reach[None]], dim=0)
