"""UI previews for the canvas: the before/after pair the js/ comparer shows on a node.

Inside ComfyUI, the first frames of ``before`` and ``after`` are written as temporary PNGs
(ComfyUI's temp folder, cleared at start-up, the same place PreviewImage uses) and returned
as ``{"images": [after...], "portrait_polish_compare": [{"before": ref, "after": ref}...]}``:
``images`` makes the plain ComfyUI front-end show the result on the node, the second key is
what our comparer reads. Outside ComfyUI (tests, the in-process runner) it returns ``{}``
and writes nothing. The 8-bit PNG is a preview only; the node's IMAGE output stays float32.
"""

from __future__ import annotations

import os
import uuid
from typing import Any

import numpy as np
import torch

from ..core import comfy

MAX_PREVIEW_FRAMES = 4
# Canvas previews are at most this long on their long edge: a 24 MP PNG takes seconds to
# encode and hundreds of MB for a preview the browser shows a few hundred pixels wide (and
# the comparer's before and after shrink alike). The IMAGE outputs are always full size.
PREVIEW_LONG_EDGE = 2048


def _save_temp_png(frame: torch.Tensor, directory: str, stem: str) -> dict[str, str]:
    import cv2
    from PIL import Image

    array = frame.detach().to("cpu", torch.float32).clamp(0, 1).numpy()
    height, width = array.shape[:2]
    ratio = PREVIEW_LONG_EDGE / max(height, width)
    if ratio < 1.0:
        size = (max(1, round(width * ratio)), max(1, round(height * ratio)))
        array = cv2.resize(np.ascontiguousarray(array), size, interpolation=cv2.INTER_AREA).reshape(size[1], size[0], -1)
    if array.shape[-1] == 1:
        array = array[..., 0]
    pixels = np.round(array * 255.0).astype(np.uint8)
    filename = f"{stem}.png"
    Image.fromarray(pixels).save(os.path.join(directory, filename), compress_level=1)
    return {"filename": filename, "subfolder": "", "type": "temp"}


def compare_ui(before: torch.Tensor, after: torch.Tensor) -> dict[str, Any]:
    """UI dict with before/after previews for up to four frames (``{}`` outside ComfyUI)."""
    fp = comfy.folder_paths()
    if fp is None or not hasattr(fp, "get_temp_directory"):
        return {}
    directory = fp.get_temp_directory()
    os.makedirs(directory, exist_ok=True)
    token = uuid.uuid4().hex[:12]
    pairs: list[dict[str, Any]] = []
    images: list[dict[str, str]] = []
    for index in range(min(before.shape[0], after.shape[0], MAX_PREVIEW_FRAMES)):
        ref_before = _save_temp_png(before[index], directory, f"portrait_polish_{token}_{index}_before")
        ref_after = _save_temp_png(after[index], directory, f"portrait_polish_{token}_{index}_after")
        images.append(ref_after)
        pairs.append({"before": ref_before, "after": ref_after})
    return {"images": images, "portrait_polish_compare": pairs}
