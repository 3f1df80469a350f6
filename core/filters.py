"""Edge-aware and plain low-pass filters in torch (float32, any device).

All functions take ``[B, C, H, W]`` tensors (or ``[H, W]`` / ``[C, H, W]``, promoted and
restored) and use reflect padding so borders don't darken. The guided filter is He, Sun &
Tang (ECCV 2010 / TPAMI 2013) built from box filters (O(1) per pixel in the radius), written
here so the pack never needs ``cv2.ximgproc``.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def _as_4d(x: torch.Tensor) -> tuple[torch.Tensor, int]:
    ndim = x.ndim
    if ndim == 2:
        return x[None, None], ndim
    if ndim == 3:
        return x[None], ndim
    return x, ndim


def _restore(x: torch.Tensor, ndim: int) -> torch.Tensor:
    if ndim == 2:
        return x[0, 0]
    if ndim == 3:
        return x[0]
    return x


def box_filter(x: torch.Tensor, radius: int) -> torch.Tensor:
    """Mean over a ``(2r+1)²`` window via cumulative sums (exact, O(1) in ``radius``)."""
    if radius <= 0:
        return x
    x4, ndim = _as_4d(x)
    height, width = x4.shape[-2:]
    r = min(radius, max(height, width))
    # Reflect padding needs pad < size; fall back to replicate on tiny inputs.
    mode = "reflect" if r + 1 < height and r + 1 < width else "replicate"
    padded = F.pad(x4, (r + 1, r, r + 1, r), mode=mode)
    csum = padded.to(torch.float64).cumsum(-1).cumsum(-2)
    k = 2 * r + 1
    total = csum[..., k:, k:] - csum[..., :-k, k:] - csum[..., k:, :-k] + csum[..., :-k, :-k]
    return _restore((total / (k * k)).to(x4.dtype), ndim)


def gaussian_kernel1d(sigma: float, device: torch.device | None = None) -> torch.Tensor:
    radius = max(1, int(math.ceil(3.0 * sigma)))
    positions = torch.arange(-radius, radius + 1, dtype=torch.float32, device=device)
    kernel = torch.exp(-0.5 * (positions / sigma) ** 2)
    return kernel / kernel.sum()


def gaussian_blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur; large sigmas are done on a downsampled copy (fast, same look)."""
    if sigma <= 0:
        return x
    x4, ndim = _as_4d(x)
    height, width = x4.shape[-2:]
    if sigma > 8 and min(height, width) > 32:
        # Blur at lower resolution for big radii: a Gaussian of sigma s at scale 1/f is a
        # Gaussian of s/f; the result is smooth, so bilinear upsampling loses nothing visible.
        factor = min(int(sigma // 4), max(1, min(height, width) // 16))
        if factor > 1:
            small = F.interpolate(x4, scale_factor=1.0 / factor, mode="area")
            small = gaussian_blur(small, sigma / factor)
            return _restore(F.interpolate(small, size=(height, width), mode="bilinear", align_corners=False), ndim)
    kernel = gaussian_kernel1d(sigma, x4.device).to(x4.dtype)
    radius = kernel.numel() // 2
    channels = x4.shape[1]
    mode = "reflect" if radius < height and radius < width else "replicate"
    out = F.pad(x4, (radius, radius, 0, 0), mode=mode)
    out = F.conv2d(out, kernel.view(1, 1, 1, -1).expand(channels, 1, 1, -1), groups=channels)
    out = F.pad(out, (0, 0, radius, radius), mode=mode)
    out = F.conv2d(out, kernel.view(1, 1, -1, 1).expand(channels, 1, -1, 1), groups=channels)
    return _restore(out, ndim)


def guided_filter(guide: torch.Tensor, source: torch.Tensor, radius: int, eps: float) -> torch.Tensor:
    """Guided filter of ``source`` steered by ``guide``.

    ``guide`` is ``[B,1,H,W]`` (grey) or ``[B,3,H,W]`` (colour: the full 3×3 covariance form,
    which keeps edges that differ only in hue, such as lips against skin). ``source`` is
    ``[B,C,H,W]``; each channel is filtered independently. ``eps`` is the regularisation in
    the guide's units squared (e.g. ``1e-3`` for 0..1 images): smaller keeps more edges.
    """
    g4, ndim = _as_4d(guide)
    s4, _ = _as_4d(source)
    g4 = g4.to(torch.float32)
    s4 = s4.to(torch.float32)
    if g4.shape[1] == 1:
        mean_g = box_filter(g4, radius)
        mean_s = box_filter(s4, radius)
        cov_gs = box_filter(g4 * s4, radius) - mean_g * mean_s
        var_g = box_filter(g4 * g4, radius) - mean_g * mean_g
        a = cov_gs / (var_g + eps)
        b = mean_s - a * mean_g
        out = box_filter(a, radius) * g4 + box_filter(b, radius)
        return _restore(out, ndim)
    if g4.shape[1] != 3:
        raise ValueError("guided_filter: guide must have 1 or 3 channels")
    batch, _, height, width = g4.shape
    mean_g = box_filter(g4, radius)  # [B,3,H,W]
    # Covariance of the guide, 3x3 per pixel.
    sigma = torch.empty(batch, height, width, 3, 3, dtype=torch.float32, device=g4.device)
    for i in range(3):
        for j in range(i, 3):
            value = box_filter(g4[:, i : i + 1] * g4[:, j : j + 1], radius)[:, 0] - mean_g[:, i] * mean_g[:, j]
            sigma[..., i, j] = value
            sigma[..., j, i] = value
    sigma = sigma + eps * torch.eye(3, dtype=torch.float32, device=g4.device)
    sigma_inv = torch.linalg.inv(sigma)
    outputs = []
    for c in range(s4.shape[1]):
        channel = s4[:, c : c + 1]
        mean_s = box_filter(channel, radius)
        cov = torch.stack(
            [box_filter(g4[:, i : i + 1] * channel, radius)[:, 0] - mean_g[:, i] * mean_s[:, 0] for i in range(3)],
            dim=-1,
        )  # [B,H,W,3]
        a = (sigma_inv @ cov[..., None])[..., 0]  # [B,H,W,3]
        b = mean_s[:, 0] - (a * mean_g.permute(0, 2, 3, 1)).sum(-1)
        a_mean = box_filter(a.permute(0, 3, 1, 2), radius)
        b_mean = box_filter(b[:, None], radius)
        outputs.append((a_mean * g4).sum(1, keepdim=True) + b_mean)
    return _restore(torch.cat(outputs, dim=1), ndim)
