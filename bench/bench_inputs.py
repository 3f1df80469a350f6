"""Bench inputs: the public-domain astronaut (or PORTRAIT_POLISH_BENCH_PHOTO) at a given size."""

from __future__ import annotations

import os

import numpy as np
import torch
from PIL import Image


def portrait_image(width: int, height: int) -> torch.Tensor:
    """An IMAGE ``[1, H, W, 3]``: the photo scaled to cover ``width×height`` and centre-cropped."""
    path = os.environ.get("PORTRAIT_POLISH_BENCH_PHOTO")
    if path:
        img = Image.open(path).convert("RGB")
    else:
        from skimage import data

        img = Image.fromarray(data.astronaut())
    ratio = max(width / img.width, height / img.height)
    img = img.resize((round(img.width * ratio), round(img.height * ratio)), Image.BICUBIC)
    left = (img.width - width) // 2
    top = (img.height - height) // 2
    img = img.crop((left, top, left + width, top + height))
    return torch.from_numpy(np.asarray(img, dtype=np.float32) / 255.0)[None]
