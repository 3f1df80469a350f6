"""Low-pass and edge-aware filters, in one place (float32, any device).

Every function takes ``[H, W]``, ``[C, H, W]`` or ``[B, C, H, W]`` and returns the same
shape. Borders are mirrored (reflect-101) so edges don't darken. On the CPU the box and
Gaussian filters run through OpenCV (several times faster than a torch convolution on two
cores); on a GPU they are torch. Both paths use the same kernels (Gaussians cut at 3σ), so
a CPU and a GPU run agree to float rounding.

- :func:`box_blur`, :func:`gaussian_blur`: the plain low-passes.
- :func:`smooth_blur`: a Gaussian for results that are smooth anyway, computed on a
  downscaled copy from σ ≥ 3 on (a fraction of the cost, well under a skin-tone step apart).
- :func:`masked_blur`: normalised convolution, a blur that only listens to weighted pixels.
- :func:`guided_filter`: He, Sun & Tang (ECCV 2010 / TPAMI 2013), grey or colour guide, with
  the fast subsampled mode of He & Sun 2015 (``coarse_size``).
- :func:`guided_coefficients` + :func:`apply_guided`: the same linear model fitted on a
  working grid and evaluated on any full-resolution window, which is how the retouch kernel
  brings an edit made on a small copy back to the photo (edge-aware upsampling).
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from .masks import Box, resize, upsample_window


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


def _on_cpu(x: torch.Tensor) -> bool:
    return x.device.type == "cpu" and x.dtype == torch.float32


def _cv2_planes(x4: torch.Tensor, fn) -> torch.Tensor:  # noqa: ANN001 - an OpenCV call on one plane
    """Apply an OpenCV float32 filter to every ``[H, W]`` plane of a CPU ``[B, C, H, W]`` tensor."""
    array = x4.detach().contiguous().numpy()
    out = np.empty_like(array)
    for b in range(array.shape[0]):
        for c in range(array.shape[1]):
            out[b, c] = fn(array[b, c])
    return torch.from_numpy(out)


def box_blur(x: torch.Tensor, radius: int) -> torch.Tensor:
    """Mean over a ``(2r+1)²`` window (O(1) per pixel in the radius)."""
    if radius <= 0:
        return x
    x4, ndim = _as_4d(x)
    if _on_cpu(x4):
        import cv2

        k = 2 * radius + 1
        return _restore(_cv2_planes(x4, lambda a: cv2.blur(a, (k, k), borderType=cv2.BORDER_REFLECT_101)), ndim)
    height, width = x4.shape[-2:]
    r = min(radius, max(height, width))
    mode = "reflect" if r + 1 < height and r + 1 < width else "replicate"
    padded = F.pad(x4, (r + 1, r, r + 1, r), mode=mode)
    csum = padded.to(torch.float64).cumsum(-1).cumsum(-2)
    k = 2 * r + 1
    total = csum[..., k:, k:] - csum[..., :-k, k:] - csum[..., k:, :-k] + csum[..., :-k, :-k]
    return _restore((total / (k * k)).to(x4.dtype), ndim)


# The name the tests and older callers know.
box_filter = box_blur


def gaussian_kernel1d(sigma: float, device: torch.device | None = None) -> torch.Tensor:
    radius = max(1, int(math.ceil(3.0 * sigma)))
    positions = torch.arange(-radius, radius + 1, dtype=torch.float32, device=device)
    kernel = torch.exp(-0.5 * (positions / sigma) ** 2)
    return kernel / kernel.sum()


def gaussian_blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur cut at 3σ; large sigmas are done on a downsampled copy."""
    if sigma <= 0:
        return x
    x4, ndim = _as_4d(x)
    height, width = x4.shape[-2:]
    if sigma > 8 and min(height, width) > 32:
        # A Gaussian of sigma s at scale 1/f is a Gaussian of s/f; the result is smooth, so
        # bilinear upsampling loses nothing visible.
        factor = min(int(sigma // 4), max(1, min(height, width) // 16))
        if factor > 1:
            small = F.interpolate(x4, scale_factor=1.0 / factor, mode="area")
            small = gaussian_blur(small, sigma / factor)
            return _restore(F.interpolate(small, size=(height, width), mode="bilinear", align_corners=False), ndim)
    radius = max(1, int(math.ceil(3.0 * sigma)))
    if _on_cpu(x4) and min(height, width) > 1:
        import cv2

        k = 2 * radius + 1
        return _restore(_cv2_planes(x4, lambda a: cv2.GaussianBlur(a, (k, k), sigma, borderType=cv2.BORDER_REFLECT_101)), ndim)
    kernel = gaussian_kernel1d(sigma, x4.device).to(x4.dtype)
    channels = x4.shape[1]
    mode = "reflect" if radius < height and radius < width else "replicate"
    out = F.pad(x4, (radius, radius, 0, 0), mode=mode)
    out = F.conv2d(out, kernel.view(1, 1, 1, -1).expand(channels, 1, 1, -1), groups=channels)
    out = F.pad(out, (0, 0, radius, radius), mode=mode)
    out = F.conv2d(out, kernel.view(1, 1, -1, 1).expand(channels, 1, -1, 1), groups=channels)
    return _restore(out, ndim)


def blur_image(rgb: torch.Tensor, sigma: float) -> torch.Tensor:
    """:func:`gaussian_blur` of an ``[H, W, C]`` image, in that layout (OpenCV blurs the
    channels of a pixel together on the CPU: no transposed copies)."""
    if sigma <= 0:
        return rgb
    height, width = rgb.shape[:2]
    if _on_cpu(rgb) and min(height, width) > 1 and rgb.shape[-1] <= 4 and not (sigma > 8 and min(height, width) > 32):
        import cv2

        k = 2 * max(1, int(math.ceil(3.0 * sigma))) + 1
        out = cv2.GaussianBlur(rgb.detach().numpy(), (k, k), sigma, borderType=cv2.BORDER_REFLECT_101)
        return torch.from_numpy(out.reshape(rgb.shape))
    return gaussian_blur(rgb.permute(2, 0, 1), sigma).permute(1, 2, 0)


def smooth_blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """Gaussian blur for smooth results: from σ ≥ 3 on it is computed on an area-downscaled
    copy (factor ≈ σ/2) and upsampled bilinearly, a fraction of a full-size convolution,
    and differs from it by far less than a skin tone step."""
    x4, ndim = _as_4d(x)
    height, width = x4.shape[-2:]
    factor = int(sigma // 2)
    if sigma < 3 or factor < 2 or min(height, width) < 8 * factor:
        return _restore(gaussian_blur(x4, sigma), ndim)
    small_size = (max(1, math.ceil(height / factor)), max(1, math.ceil(width / factor)))
    small = F.interpolate(x4, size=small_size, mode="area")
    # Area downscaling and bilinear upscaling each add about factor²/12 and factor²/6 of
    # variance; take that off the blur done at low resolution.
    sigma_small = math.sqrt(max(sigma**2 - factor**2 / 4.0, (0.5 * factor) ** 2)) / factor
    small = gaussian_blur(small.contiguous(), sigma_small)
    return _restore(F.interpolate(small, size=(height, width), mode="bilinear", align_corners=False), ndim)


def masked_blur(x: torch.Tensor, weight: torch.Tensor, sigma: float, min_weight: float = 1e-4, fallback: str = "blur", exact: bool = False) -> torch.Tensor:
    """Normalised convolution ``G(x·w) / G(w)``: a Gaussian blur that only listens to pixels
    where ``weight`` > 0 (lips never pull a tooth's smooth b* up, hair never darkens skin).

    ``x`` is ``[C, H, W]`` or ``[H, W]``, ``weight`` ``[H, W]``. Where no weighted pixel is
    near (``G(w)`` below ``min_weight``) the result is the plain blur of ``x``
    (``fallback="blur"``) or ``x`` itself (``"value"``). ``exact`` uses the full-size
    Gaussian instead of :func:`smooth_blur`.
    """
    squeeze = x.ndim == 2
    x3 = x[None] if squeeze else x
    w = weight.to(x3)[None]
    blur = gaussian_blur if exact else smooth_blur
    both = blur(torch.cat([x3 * w, w]), sigma)
    num, den = both[:-1], both[-1:]
    out = num / den.clamp_min(min_weight)
    lacking = den < min_weight
    if bool(lacking.any()):
        out = torch.where(lacking.expand_as(out), blur(x3, sigma) if fallback == "blur" else x3, out)
    return out[0] if squeeze else out


# ----------------------------------------------------------------------------- guided filter


def guided_coefficients(guide: torch.Tensor, source: torch.Tensor, radius: int, eps: float) -> tuple[torch.Tensor, torch.Tensor]:
    """The guided filter's box-averaged linear model ``q = a·I + b`` of ``source`` on ``guide``.

    ``guide`` ``[G, H, W]`` (G = 1, grey, or 3, colour: the full 3×3 covariance form, which
    keeps edges that differ only in hue, such as lips against skin), ``source`` ``[C, H, W]``.
    Returns ``a`` ``[C, G, H, W]`` and ``b`` ``[C, H, W]``. ``eps`` is in guide units squared:
    smaller keeps more edges.
    """
    guide = guide.to(torch.float32)
    source = source.to(torch.float32)
    channels, g = source.shape[0], guide.shape[0]
    height, width = guide.shape[-2:]
    mean_g = box_blur(guide, radius)  # [G,H,W]
    mean_s = box_blur(source, radius)  # [C,H,W]
    # Cross terms I_i·p_c for every guide channel i and source channel c, in one pass.
    products = (guide[:, None] * source[None]).reshape(g * channels, height, width)
    cov = box_blur(products, radius).reshape(g, channels, height, width) - mean_g[:, None] * mean_s[None]
    if g == 1:
        var = box_blur(guide * guide, radius) - mean_g * mean_g
        a = (cov[0] / (var + eps))[:, None]  # [C,1,H,W]
    elif g == 3:
        pairs = [(0, 0), (0, 1), (0, 2), (1, 1), (1, 2), (2, 2)]
        second = box_blur(torch.stack([guide[i] * guide[j] for i, j in pairs]), radius)
        sigma = torch.empty(height, width, 3, 3, dtype=torch.float32, device=guide.device)
        for k, (i, j) in enumerate(pairs):
            value = second[k] - mean_g[i] * mean_g[j] + (eps if i == j else 0.0)
            sigma[..., i, j] = value
            sigma[..., j, i] = value
        sigma_inv = torch.linalg.inv(sigma)  # [H,W,3,3]
        a = torch.einsum("hwij,jchw->cihw", sigma_inv, cov)  # [C,3,H,W]
    else:
        raise ValueError("guided filter: the guide must have 1 or 3 channels")
    b = mean_s - (a * mean_g[None]).sum(1)
    a_mean = box_blur(a.reshape(channels * g, height, width), radius).reshape(channels, g, height, width)
    return a_mean, box_blur(b, radius)


def apply_guided(
    a: torch.Tensor,
    b: torch.Tensor,
    guide: torch.Tensor,
    full_size: tuple[int, int] | None = None,
    window: Box | None = None,
    grid_size: tuple[int, int] | None = None,
    offset: tuple[float, float] = (0.0, 0.0),
    fast: bool = False,
) -> torch.Tensor:
    """Evaluate a fitted model on ``guide`` (``[G, h, w]``): ``Σ_i a_i·I_i + b``.

    With ``full_size`` and ``window``, ``a`` and ``b`` live on a coarser grid covering a
    ``full_size`` area (or a piece of one: ``grid_size`` and ``offset`` as in
    :func:`core.masks.upsample_window`) and are upsampled bilinearly onto ``window`` (whose
    pixels ``guide`` holds) without making anything full-size (``fast``: see
    :func:`core.masks.upsample_window`; the coefficients are smooth). Returns ``[C, h, w]``.
    """
    channels, g = a.shape[0], a.shape[1]
    if full_size is None or window is None:
        return torch.einsum("cghw,ghw->chw", a, guide) + b
    coefficients = torch.cat([a.reshape(channels * g, *a.shape[-2:]), b])
    stacked = upsample_window(coefficients, full_size, window, grid_size=grid_size, offset=offset, fast=fast)
    height, width = stacked.shape[-2:]
    hwc = stacked.permute(1, 2, 0)
    if hwc.is_contiguous():
        # OpenCV's resamplers hand back pixels with their channels together: read it so.
        a_up = hwc[..., : channels * g].reshape(height, width, channels, g)
        return torch.einsum("hwcg,ghw->chw", a_up, guide) + hwc[..., channels * g :].permute(2, 0, 1)
    a_up = stacked[: channels * g].reshape(channels, g, height, width)
    return torch.einsum("cghw,ghw->chw", a_up, guide) + stacked[channels * g :]


def guided_filter(guide: torch.Tensor, source: torch.Tensor, radius: int, eps: float, coarse_size: tuple[int, int] | None = None) -> torch.Tensor:
    """Guided filter of ``source`` steered by ``guide`` (He et al.).

    ``guide`` ``[G, H, W]`` or ``[1, G, H, W]`` (G = 1 or 3), ``source`` ``[C, H, W]`` or
    ``[1, C, H, W]``; each source channel is filtered on its own. With ``coarse_size``
    (h, w), the linear coefficients are fitted on that grid (area-shrunk, or bilinearly grown
    for a small face) and applied to the full-resolution guide: the fast guided filter
    (He & Sun 2015). ``radius`` is in pixels of the grid the coefficients are fitted on.
    """
    batched = guide.ndim == 4
    if batched and guide.shape[0] != 1:
        return torch.stack([guided_filter(guide[i], source[i], radius, eps, coarse_size) for i in range(guide.shape[0])])
    g3 = guide[0] if batched else guide
    s3 = source[0] if source.ndim == 4 else source
    if g3.ndim == 2:
        g3 = g3[None]
    squeeze = s3.ndim == 2
    if squeeze:
        s3 = s3[None]
    height, width = g3.shape[-2:]
    if coarse_size is None or tuple(coarse_size) == (height, width):
        a, b = guided_coefficients(g3, s3, radius, eps)
        out = apply_guided(a, b, g3)
    else:
        # Area-shrunk (OpenCV's exact weights on the CPU) or bilinearly grown.
        small_guide = resize(g3, tuple(coarse_size))
        small_source = resize(s3, tuple(coarse_size))
        a, b = guided_coefficients(small_guide, small_source, radius, eps)
        out = apply_guided(a, b, g3, (height, width), Box(0, 0, width, height))
    if squeeze:
        out = out[0]
    return out[None] if batched else out


__all__ = [
    "apply_guided",
    "box_blur",
    "blur_image",
    "box_filter",
    "gaussian_blur",
    "gaussian_kernel1d",
    "guided_coefficients",
    "guided_filter",
    "masked_blur",
    "smooth_blur",
]
