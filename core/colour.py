"""Colour science on torch tensors, float32 throughout.

sRGB (D65) <-> linear RGB <-> CIE XYZ <-> CIELAB <-> LCh, the CIEDE2000 colour difference
and the WIO and WID whiteness indices used in dentistry. Every function takes ``[..., 3]`` tensors.
"""

from __future__ import annotations

import math

import torch

# sRGB primaries, D65 white (IEC 61966-2-1).
_RGB_TO_XYZ = torch.tensor(
    [
        [0.4124564, 0.3575761, 0.1804375],
        [0.2126729, 0.7151522, 0.0721750],
        [0.0193339, 0.1191920, 0.9503041],
    ],
    dtype=torch.float64,
)
_XYZ_TO_RGB = torch.linalg.inv(_RGB_TO_XYZ)
_WHITE_D65 = torch.tensor([0.95047, 1.0, 1.08883], dtype=torch.float64)

_EPSILON = 216.0 / 24389.0
_KAPPA = 24389.0 / 27.0


def srgb_to_linear(rgb: torch.Tensor) -> torch.Tensor:
    rgb = rgb.clamp(0.0, 1.0)
    return torch.where(rgb <= 0.04045, rgb / 12.92, ((rgb + 0.055) / 1.055) ** 2.4)


def linear_to_srgb(linear: torch.Tensor) -> torch.Tensor:
    linear = linear.clamp(0.0, 1.0)
    return torch.where(linear <= 0.0031308, linear * 12.92, 1.055 * linear.clamp_min(1e-12) ** (1 / 2.4) - 0.055)


def _matmul3(x: torch.Tensor, matrix: torch.Tensor) -> torch.Tensor:
    return x @ matrix.to(dtype=x.dtype, device=x.device).T


def rgb_to_xyz(rgb: torch.Tensor) -> torch.Tensor:
    return _matmul3(srgb_to_linear(rgb), _RGB_TO_XYZ)


def xyz_to_rgb(xyz: torch.Tensor) -> torch.Tensor:
    return linear_to_srgb(_matmul3(xyz, _XYZ_TO_RGB))


def xyz_to_lab(xyz: torch.Tensor) -> torch.Tensor:
    white = _WHITE_D65.to(dtype=xyz.dtype, device=xyz.device)
    ratio = xyz / white
    f = torch.where(ratio > _EPSILON, ratio.clamp_min(1e-12) ** (1.0 / 3.0), (_KAPPA * ratio + 16.0) / 116.0)
    lightness = 116.0 * f[..., 1] - 16.0
    a = 500.0 * (f[..., 0] - f[..., 1])
    b = 200.0 * (f[..., 1] - f[..., 2])
    return torch.stack([lightness, a, b], dim=-1)


def lab_to_xyz(lab: torch.Tensor) -> torch.Tensor:
    white = _WHITE_D65.to(dtype=lab.dtype, device=lab.device)
    fy = (lab[..., 0] + 16.0) / 116.0
    fx = fy + lab[..., 1] / 500.0
    fz = fy - lab[..., 2] / 200.0

    def finv(f: torch.Tensor) -> torch.Tensor:
        return torch.where(f**3 > _EPSILON, f**3, (116.0 * f - 16.0) / _KAPPA)

    y = torch.where(lab[..., 0] > _KAPPA * _EPSILON, fy**3, lab[..., 0] / _KAPPA)
    return torch.stack([finv(fx), y, finv(fz)], dim=-1) * white


def rgb_to_lab(rgb: torch.Tensor) -> torch.Tensor:
    """sRGB in 0..1 to CIELAB (D65): L* in 0..100, a*, b* roughly -128..127."""
    return xyz_to_lab(rgb_to_xyz(rgb))


def lab_to_rgb(lab: torch.Tensor) -> torch.Tensor:
    """CIELAB (D65) to sRGB in 0..1 (out-of-gamut values are clipped)."""
    return xyz_to_rgb(lab_to_xyz(lab))


def lab_to_lch(lab: torch.Tensor) -> torch.Tensor:
    chroma = torch.sqrt(lab[..., 1] ** 2 + lab[..., 2] ** 2)
    hue = torch.atan2(lab[..., 2], lab[..., 1])
    return torch.stack([lab[..., 0], chroma, hue], dim=-1)


def lch_to_lab(lch: torch.Tensor) -> torch.Tensor:
    return torch.stack([lch[..., 0], lch[..., 1] * torch.cos(lch[..., 2]), lch[..., 1] * torch.sin(lch[..., 2])], dim=-1)


def delta_e2000(lab1: torch.Tensor, lab2: torch.Tensor) -> torch.Tensor:
    """CIEDE2000 colour difference (Sharma, Wu & Dalal 2005), kL = kC = kH = 1."""
    lab1 = lab1.to(torch.float64)
    lab2 = lab2.to(torch.float64)
    l1, a1, b1 = lab1.unbind(-1)
    l2, a2, b2 = lab2.unbind(-1)
    c1 = torch.sqrt(a1**2 + b1**2)
    c2 = torch.sqrt(a2**2 + b2**2)
    c_bar7 = ((c1 + c2) / 2.0) ** 7
    g = 0.5 * (1.0 - torch.sqrt(c_bar7 / (c_bar7 + 25.0**7)))
    a1p = (1.0 + g) * a1
    a2p = (1.0 + g) * a2
    c1p = torch.sqrt(a1p**2 + b1**2)
    c2p = torch.sqrt(a2p**2 + b2**2)
    h1p = torch.remainder(torch.atan2(b1, a1p), 2 * math.pi)
    h2p = torch.remainder(torch.atan2(b2, a2p), 2 * math.pi)
    h1p = torch.where(c1p == 0, torch.zeros_like(h1p), h1p)
    h2p = torch.where(c2p == 0, torch.zeros_like(h2p), h2p)

    dl = l2 - l1
    dc = c2p - c1p
    dh = h2p - h1p
    dh = torch.where(dh > math.pi, dh - 2 * math.pi, dh)
    dh = torch.where(dh < -math.pi, dh + 2 * math.pi, dh)
    dh = torch.where(c1p * c2p == 0, torch.zeros_like(dh), dh)
    dH = 2.0 * torch.sqrt(c1p * c2p) * torch.sin(dh / 2.0)

    l_bar = (l1 + l2) / 2.0
    c_bar_p = (c1p + c2p) / 2.0
    h_sum = h1p + h2p
    h_bar = torch.where(
        (c1p * c2p) == 0,
        h_sum,
        torch.where(
            torch.abs(h1p - h2p) <= math.pi,
            h_sum / 2.0,
            torch.where(h_sum < 2 * math.pi, (h_sum + 2 * math.pi) / 2.0, (h_sum - 2 * math.pi) / 2.0),
        ),
    )
    t = (
        1.0
        - 0.17 * torch.cos(h_bar - math.radians(30))
        + 0.24 * torch.cos(2 * h_bar)
        + 0.32 * torch.cos(3 * h_bar + math.radians(6))
        - 0.20 * torch.cos(4 * h_bar - math.radians(63))
    )
    d_theta = math.radians(30) * torch.exp(-(((torch.rad2deg(h_bar) - 275.0) / 25.0) ** 2))
    c_bar_p7 = c_bar_p**7
    r_c = 2.0 * torch.sqrt(c_bar_p7 / (c_bar_p7 + 25.0**7))
    s_l = 1.0 + 0.015 * (l_bar - 50.0) ** 2 / torch.sqrt(20.0 + (l_bar - 50.0) ** 2)
    s_c = 1.0 + 0.045 * c_bar_p
    s_h = 1.0 + 0.015 * c_bar_p * t
    r_t = -torch.sin(2 * d_theta) * r_c
    result = torch.sqrt(
        (dl / s_l) ** 2 + (dc / s_c) ** 2 + (dH / s_h) ** 2 + r_t * (dc / s_c) * (dH / s_h)
    )
    return result.to(torch.float32)


# Chromaticity of the D65 white (CIE 1931 2° observer).
_WHITE_D65_XY = (0.31271, 0.32902)


def whiteness_wio(lab: torch.Tensor) -> torch.Tensor:
    """WIO whiteness index for teeth (Luo, Cui & Li, J. Dent. 2009), D65/2°:
    ``WIO = Y + 1075.012 (x_n − x) + 145.516 (y_n − y)`` with Y in 0..100 and (x, y) the
    chromaticity of the colour, (x_n, y_n) that of the white."""
    xyz = lab_to_xyz(lab.to(torch.float64))
    total = xyz.sum(-1).clamp_min(1e-12)
    x = xyz[..., 0] / total
    y = xyz[..., 1] / total
    xn, yn = _WHITE_D65_XY
    return (100.0 * xyz[..., 1] + 1075.012 * (xn - x) + 145.516 * (yn - y)).to(torch.float32)


def whiteness_wid(lab: torch.Tensor) -> torch.Tensor:
    """WID whiteness index for dentistry, defined in CIELAB (Pérez et al., J. Dent. 2016):
    ``0.511 L* − 2.324 a* − 1.100 b*``."""
    return 0.511 * lab[..., 0] - 2.324 * lab[..., 1] - 1.100 * lab[..., 2]


def luminance(rgb: torch.Tensor) -> torch.Tensor:
    """Relative luminance Y of sRGB values (linear light), ``[..., 3] -> [...]``."""
    return rgb_to_xyz(rgb)[..., 1]
