"""Box, Gaussian and guided filters against direct computations."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from portrait_polish.core.filters import box_filter, gaussian_blur, guided_filter


def test_box_filter_equals_direct_window_mean():
    torch.manual_seed(0)
    x = torch.rand(2, 3, 40, 50)
    direct = F.avg_pool2d(F.pad(x, (5, 5, 5, 5), mode="reflect"), 11, stride=1)
    assert torch.allclose(box_filter(x, 5), direct, atol=1e-5)


def test_box_filter_on_tiny_input_does_not_crash():
    assert box_filter(torch.rand(3, 2), 10).shape == (3, 2)


def test_gaussian_preserves_constants_and_mean():
    x = torch.full((1, 1, 64, 64), 0.3)
    assert torch.allclose(gaussian_blur(x, 3.0), x, atol=1e-6)
    torch.manual_seed(0)
    noise = torch.rand(1, 1, 256, 256)
    blurred = gaussian_blur(noise, 20.0)  # exercises the downsampled path
    assert blurred.std() < noise.std() / 10
    assert abs(float(blurred.mean() - noise.mean())) < 0.01


def test_guided_filter_keeps_edges_that_a_blur_smears():
    # A step edge with noise: the guided filter (guide = the image) removes the noise
    # but keeps the step sharp; a Gaussian of similar reach smears it.
    torch.manual_seed(0)
    step = torch.zeros(1, 1, 64, 64)
    step[..., 32:] = 1.0
    noisy = step + 0.03 * torch.randn_like(step)
    guided = guided_filter(noisy, noisy, radius=6, eps=1e-2)
    blurred = gaussian_blur(noisy, 3.0)
    edge_guided = float(guided[..., 31].mean() - guided[..., 28].mean()).__abs__()
    edge_blurred = float(blurred[..., 31].mean() - blurred[..., 28].mean()).__abs__()
    assert edge_guided < 0.1 < edge_blurred
    flat = guided[..., 5:25, 5:25]
    assert flat.std() < noisy[..., 5:25, 5:25].std() / 2


def test_colour_guided_filter_separates_hue_edges():
    # Two regions with equal luminance but different hue: a colour guide keeps the edge.
    image = torch.zeros(1, 3, 32, 32)
    image[:, 0, :, :16] = 0.6
    image[:, 1, :, 16:] = 0.6 * 0.299 / 0.587
    source = torch.zeros(1, 1, 32, 32)
    source[..., 16:] = 1.0
    out = guided_filter(image, source, radius=4, eps=1e-4)
    assert float(out[..., 14].mean()) < 0.1 and float(out[..., 17].mean()) > 0.9
