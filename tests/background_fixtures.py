"""Composites with a known alpha for the background tests (and the README table).

A real portrait from ../shared/portraits is cut out with a crisp, anti-aliased alpha (the
person segmentation of the original photo at 0.5, rendered at 4x and area-averaged, so every
edge pixel holds its exact coverage) and laid over a real texture from scikit-image. On top,
hair-like strands of known alpha are drawn out of the hair: thin curved lines 0.6 to 2 px wide,
partly transparent, in the person's own hair colour. Because the composite is made here,
alpha, foreground and background are known exactly at every pixel:
``image = alpha * foreground + (1 - alpha) * background``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import torch
import torch.nn.functional as F
from helpers import portrait

BACKGROUNDS = ("coffee", "rocket", "grass", "chelsea")


@dataclass
class Composite:
    image: torch.Tensor  # [H, W, 3]
    alpha: torch.Tensor  # [H, W]
    foreground: torch.Tensor  # [H, W, 3]
    background: torch.Tensor  # [H, W, 3]
    face_scale: float  # the face size in pixels (FaceParse's Face.scale)
    strands: torch.Tensor  # [H, W] alpha of the strands alone

    def band(self, width: float) -> torch.Tensor:
        """Pixels within ``width`` px of the true edge (any pixel whose alpha is not 0 or 1, and
        the boundary between the two): the boundary band the matte is judged in."""
        edge = (self.alpha > 0) & (self.alpha < 1)
        hard = (self.alpha > 0.5).to(torch.float32)[None, None]
        edge |= (F.max_pool2d(hard, 3, 1, 1) != -F.max_pool2d(-hard, 3, 1, 1))[0, 0]
        r = max(1, round(width))
        return F.max_pool2d(edge.to(torch.float32)[None, None], 2 * r + 1, 1, r)[0, 0] > 0


def texture(name: str, height: int, width: int) -> torch.Tensor:
    """A scikit-image picture (public domain / free) scaled to cover ``height × width``; the grey
    textures get a colour so they differ from the person in hue as well."""
    from PIL import Image
    from skimage import data

    pixels = getattr(data, name)()
    if pixels.ndim == 2:
        tint = np.array([0.55, 0.85, 0.45]) if name == "grass" else np.array([0.9, 0.8, 0.7])
        pixels = (pixels[..., None] * tint[None, None]).clip(0, 255).astype(np.uint8)
    picture = Image.fromarray(pixels[..., :3])
    ratio = max(width / picture.width, height / picture.height)
    picture = picture.resize((math.ceil(picture.width * ratio), math.ceil(picture.height * ratio)), Image.BICUBIC)
    left, top = (picture.width - width) // 2, (picture.height - height) // 2
    picture = picture.crop((left, top, left + width, top + height))
    return torch.from_numpy(np.asarray(picture, dtype=np.float32) / 255.0)


def crisp_alpha(person: torch.Tensor, height: int, width: int, supersample: int = 4) -> torch.Tensor:
    """The 0.5 contour of a soft mask as an anti-aliased hard edge: exact pixel coverage."""
    big = F.interpolate(person[None, None].to(torch.float32), size=(height * supersample, width * supersample), mode="bilinear", align_corners=False)
    return F.avg_pool2d((big > 0.5).to(torch.float32), supersample)[0, 0]


def _strand_alpha(height: int, width: int, points: np.ndarray, thickness: float) -> tuple[tuple[int, int, int, int], torch.Tensor]:
    """Coverage of a polyline ``points`` ``[N, 2]`` (x, y) of ``thickness`` px, in its bounding box."""
    pad = int(math.ceil(thickness)) + 2
    x0, y0 = max(0, int(points[:, 0].min()) - pad), max(0, int(points[:, 1].min()) - pad)
    x1, y1 = min(width, int(points[:, 0].max()) + pad + 1), min(height, int(points[:, 1].max()) + pad + 1)
    if x1 <= x0 or y1 <= y0:
        return (0, 0, 0, 0), torch.zeros(0, 0)
    ys, xs = torch.meshgrid(torch.arange(y0, y1, dtype=torch.float32) + 0.5, torch.arange(x0, x1, dtype=torch.float32) + 0.5, indexing="ij")
    p = torch.from_numpy(points.astype(np.float32))
    a, b = p[:-1], p[1:]
    ab = b - a
    length2 = (ab**2).sum(-1).clamp_min(1e-9)
    px = torch.stack([xs, ys], dim=-1)[..., None, :]  # [h, w, 1, 2]
    t = (((px - a) * ab).sum(-1) / length2).clamp(0, 1)
    nearest = a + t[..., None] * ab
    distance = ((px - nearest) ** 2).sum(-1).sqrt().min(dim=-1).values
    # Coverage of a line of this thickness by a unit pixel (linear ramp over one pixel).
    coverage = (thickness / 2 + 0.5 - distance).clamp(0, 1) * min(1.0, thickness)
    return (x0, y0, x1, y1), coverage


@lru_cache(maxsize=8)
def _portrait_parts(name: str, size: int):
    """The portrait at ``size``, its FaceParse result, and its true alpha and foreground: the
    matte of the photo against its own plain backdrop, made at twice the size and area-averaged
    (so edge pixels hold their coverage), with the foreground averaged premultiplied."""
    import pymatting
    from scipy import ndimage

    from portrait_polish.core.matte import segment_person
    from portrait_polish.core.parse import parse_faces

    image = portrait(name, size)[0]
    height, width = image.shape[:2]
    big = portrait(name, 2 * size)[0]
    # A generous trimap of its own (not the node's rule): 4 % of the long side either side of
    # the segmentation's 0.5 contour, 8 % outward above the shoulders, where hair is.
    person = F.interpolate(segment_person(big)[None, None], size=big.shape[:2], mode="bilinear", align_corners=False)[0, 0]
    hard = (person > 0.5).numpy()
    long_side = max(big.shape[:2])
    outside = ndimage.distance_transform_edt(~hard)
    inside = ndimage.distance_transform_edt(hard)
    rows = np.arange(big.shape[0])[:, None] / big.shape[0]
    reach_out = np.where(rows < 0.45, 0.08, 0.04) * long_side
    trimap = np.full(hard.shape, 0.5)
    trimap[outside > reach_out] = 0.0
    trimap[inside > 0.04 * long_side] = 1.0
    pixels = big.numpy().astype(np.float64)
    truth = np.clip(pymatting.estimate_alpha_cf(pixels, trimap, laplacian_kwargs={"epsilon": 1e-6}), 0, 1)
    colour = np.clip(pymatting.estimate_foreground_ml(pixels.astype(np.float32), truth.astype(np.float32)), 0, 1)
    # The matte's 0.5 contour at twice the size, area-averaged: a crisp person edge that
    # follows the photo's own edges, with exact coverage (no faint haze, which closed-form
    # matting leaves on walls that look like the hair). Soft detail comes from the strands.
    crisp = truth > 0.5
    colour = np.where(crisp[..., None] & (truth[..., None] >= 1 - 1 / 512), pixels, colour)
    alpha_big = torch.from_numpy(crisp.astype(np.float32))
    premultiplied = (alpha_big[..., None] * torch.from_numpy(colour.astype(np.float32))).permute(2, 0, 1)[None]
    premultiplied = F.interpolate(premultiplied, size=(height, width), mode="area")[0].permute(1, 2, 0)
    alpha = F.interpolate(alpha_big[None, None], size=(height, width), mode="area")[0, 0]
    regions = parse_faces(image[None])
    return image, regions.images[0], alpha, premultiplied


def person_composite(name: str, background: str, size: int = 768, strands: int = 60, seed: int = 0) -> Composite:
    """``name`` cut out with a crisp alpha (plus ``strands`` hair strands) over ``background``."""
    image, item, alpha, premultiplied = _portrait_parts(name, size)
    alpha, premultiplied = alpha.clone(), premultiplied.clone()
    height, width = image.shape[:2]
    strand_alpha = torch.zeros(height, width)
    face = max(item.faces, key=lambda f: f.scale) if item.faces else None
    scale = float(face.scale) if face is not None else 0.25 * max(height, width)
    if strands and face is not None:
        rng = np.random.default_rng(seed)
        hair_full = torch.zeros(height, width)
        x0, y0, x1, y1 = face.crop
        hair_full[y0:y1, x0:x1] = face.masks["hair"]
        hair_pixels = image[hair_full > 0.6]
        hair_colour = hair_pixels.median(dim=0).values if len(hair_pixels) > 50 else torch.tensor([0.3, 0.2, 0.12])
        # Roots: points of the person's edge that touch the hair, on the outside of the head.
        hard = (alpha > 0.5).to(torch.float32)[None, None]
        edge = ((F.max_pool2d(hard, 3, 1, 1) - hard)[0, 0] > 0) & (F.max_pool2d(hair_full[None, None], 9, 1, 4)[0, 0] > 0.5)
        roots = torch.nonzero(edge).numpy()
        smooth = F.avg_pool2d(hard, 15, 1, 7)[0, 0].numpy()
        gy, gx = np.gradient(smooth)
        for _ in range(strands if len(roots) else 0):
            ry, rx = roots[rng.integers(len(roots))]
            normal = -np.array([gx[ry, rx], gy[ry, rx]])
            normal /= max(np.linalg.norm(normal), 1e-6)
            angle = math.atan2(normal[1], normal[0]) + rng.uniform(-0.6, 0.6)
            length = rng.uniform(0.03, 0.10) * scale
            bend = rng.uniform(-0.8, 0.8)
            start = np.array([rx, ry], dtype=np.float64) - normal * 0.02 * scale
            steps = np.linspace(0.0, 1.0, 24)
            direction = np.stack([np.cos(angle + bend * steps), np.sin(angle + bend * steps)], axis=-1)
            points = start + np.cumsum(direction * (length / len(steps)), axis=0)
            thickness = float(rng.uniform(0.6, 2.0))
            opacity = float(rng.uniform(0.5, 1.0))
            (sx0, sy0, sx1, sy1), cover = _strand_alpha(height, width, points, thickness)
            if cover.numel() == 0:
                continue
            cover = cover * opacity
            colour = (hair_colour * float(rng.uniform(0.8, 1.2))).clamp(0, 1)
            window = (slice(sy0, sy1), slice(sx0, sx1))
            premultiplied[window] = cover[..., None] * colour + (1 - cover[..., None]) * premultiplied[window]
            alpha[window] = cover + (1 - cover) * alpha[window]
            strand_alpha[window] = cover + (1 - cover) * strand_alpha[window]
    back = texture(background, height, width)
    composite = (premultiplied + (1 - alpha[..., None]) * back).clamp(0, 1)
    foreground = torch.where(alpha[..., None] > 0, premultiplied / alpha[..., None].clamp_min(1e-6), image).clamp(0, 1)
    return Composite(image=composite, alpha=alpha, foreground=foreground, background=back, face_scale=scale, strands=strand_alpha)


def alpha_errors(estimate: torch.Tensor, truth: torch.Tensor, band: torch.Tensor) -> tuple[float, float]:
    """(SAD, MSE) of alpha inside ``band``: SAD is the sum of absolute differences in pixels
    (divide by 1000 for the units matting benchmarks print), MSE the mean squared difference."""
    diff = (estimate - truth)[band]
    return float(diff.abs().sum()), float((diff**2).mean())
