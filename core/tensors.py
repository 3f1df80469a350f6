"""ComfyUI tensor conventions, in one place.

IMAGE is ``[B, H, W, C]`` float32 in 0..1 (C = 3; we also accept 1 = grey and 4 = RGBA).
MASK is ``[B, H, W]`` float32 in 0..1 (``[H, W]`` is accepted and gets a batch axis).

Nothing here goes through 8 bits: integer inputs are scaled by their own type's range
(uint8 by 255, uint16/int32 by 65535) straight into float32.
"""

from __future__ import annotations

import math

import numpy as np
import torch

__all__ = [
    "stack_frames",
    "as_image_batch",
    "as_mask_batch",
    "split_alpha",
    "merge_alpha",
    "to_rgb",
    "numpy_to_image",
    "check_same_size",
    "blend_masked",
    "to_uint8",
    "opencv_view",
]


def _integer_scale(dtype: torch.dtype | np.dtype) -> float:
    """Full-scale value for an integer pixel type (8- or 16-bit images)."""
    if dtype in (torch.uint8, np.uint8):
        return 255.0
    return 65535.0


def numpy_to_image(array: np.ndarray) -> torch.Tensor:
    """Convert an ``H×W``, ``H×W×C`` or ``B×H×W×C`` array of any pixel type to an IMAGE."""
    arr = np.asarray(array)
    if arr.dtype.kind in "ui":
        scale = 255.0 if arr.dtype == np.uint8 else 65535.0
        tensor = torch.from_numpy(arr.astype(np.float32) / np.float32(scale))
    elif arr.dtype == np.bool_:
        tensor = torch.from_numpy(arr.astype(np.float32))
    else:
        tensor = torch.from_numpy(np.ascontiguousarray(arr, dtype=np.float32))
    return as_image_batch(tensor)


def as_image_batch(image: torch.Tensor) -> torch.Tensor:
    """Normalise any reasonable image tensor to ``[B, H, W, C]`` float32 in 0..1.

    Accepts ``[H, W]`` (grey), ``[H, W, C]`` and ``[B, H, W, C]`` with C in {1, 3, 4}.
    Integer tensors are scaled by their range; floats are clamped to 0..1 only if they
    stray outside it (so a valid input is returned bit-exact, not copied).
    """
    if not isinstance(image, torch.Tensor):
        raise TypeError(f"expected a torch.Tensor IMAGE, got {type(image).__name__}")
    if image.ndim == 2:
        image = image[None, :, :, None]
    elif image.ndim == 3:
        if image.shape[-1] in (1, 3, 4):
            image = image[None]
        else:  # a batch of grey frames [B, H, W]
            image = image[..., None]
    if image.ndim != 4:
        raise ValueError(f"IMAGE must be [B,H,W,C]; got shape {tuple(image.shape)}")
    if image.shape[-1] not in (1, 3, 4):
        raise ValueError(
            f"IMAGE must have 1, 3 or 4 channels in its last axis; got shape {tuple(image.shape)}"
        )
    if image.shape[1] == 0 or image.shape[2] == 0:
        raise ValueError(f"IMAGE is empty: shape {tuple(image.shape)}")
    if not image.is_floating_point():
        image = image.to(torch.float32) / _integer_scale(image.dtype)
    elif image.dtype != torch.float32:
        image = image.to(torch.float32)
    # One pass over the pixels: min and max propagate NaN and show infinities (a 24 MP
    # frame is checked in ~20 ms, where isfinite + min + max took ~0.4 s).
    low, high = (float(v) for v in torch.aminmax(image))
    if not (math.isfinite(low) and math.isfinite(high)):
        raise ValueError("IMAGE contains NaN or infinite values")
    if low < 0 or high > 1:
        image = image.clamp(0.0, 1.0)
    return image


def as_mask_batch(mask: torch.Tensor | None, batch: int | None = None) -> torch.Tensor | None:
    """Normalise a MASK to ``[B, H, W]`` float32; ``[H, W]`` gets a batch axis.

    A single mask is repeated to ``batch`` frames when ``batch`` is given; a ``[B,H,W,1]``
    tensor is squeezed. ``None`` stays ``None``.
    """
    if mask is None:
        return None
    if mask.ndim == 4 and mask.shape[-1] == 1:
        mask = mask[..., 0]
    if mask.ndim == 2:
        mask = mask[None]
    if mask.ndim != 3:
        raise ValueError(f"MASK must be [B,H,W] or [H,W]; got shape {tuple(mask.shape)}")
    mask = mask.to(torch.float32) if mask.is_floating_point() else mask.to(torch.float32) / _integer_scale(mask.dtype)
    if batch is not None and mask.shape[0] != batch:
        if mask.shape[0] == 1:
            mask = mask.expand(batch, -1, -1)
        else:
            raise ValueError(f"MASK has {mask.shape[0]} frames but the IMAGE batch has {batch}")
    return mask.clamp(0.0, 1.0)


def split_alpha(image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Split ``[B,H,W,4]`` into RGB and alpha ``[B,H,W]``; other inputs give (image, None)."""
    if image.shape[-1] == 4:
        return image[..., :3], image[..., 3]
    return image, None


def merge_alpha(rgb: torch.Tensor, alpha: torch.Tensor | None) -> torch.Tensor:
    """Inverse of :func:`split_alpha`."""
    if alpha is None:
        return rgb
    return torch.cat([rgb, alpha[..., None]], dim=-1)


def to_rgb(image: torch.Tensor) -> tuple[torch.Tensor, int, torch.Tensor | None]:
    """Give a 3-channel view of an IMAGE plus what is needed to restore its layout.

    Returns ``(rgb, channels, alpha)``: grey is broadcast to three channels, RGBA drops
    its alpha (returned separately so callers carry it through untouched).
    """
    image = as_image_batch(image)
    channels = image.shape[-1]
    if channels == 1:
        return image.expand(-1, -1, -1, 3), 1, None
    rgb, alpha = split_alpha(image)
    return rgb, channels, alpha


def from_rgb(rgb: torch.Tensor, channels: int, alpha: torch.Tensor | None) -> torch.Tensor:
    """Restore the layout :func:`to_rgb` took apart (grey output = mean of the channels)."""
    if channels == 1:
        return rgb.mean(dim=-1, keepdim=True)
    return merge_alpha(rgb, alpha)


def check_same_size(a: torch.Tensor, b: torch.Tensor, what_a: str, what_b: str) -> None:
    """Raise a clear error when two IMAGE/MASK tensors differ in height or width."""
    if tuple(a.shape[1:3]) != tuple(b.shape[1:3]):
        raise ValueError(
            f"{what_a} is {a.shape[2]}x{a.shape[1]} but {what_b} is {b.shape[2]}x{b.shape[1]}; "
            "they must be the same size"
        )


def opencv_view(array: np.ndarray, dtype: type = np.float32) -> np.ndarray:
    """``array`` as OpenCV reads it: in place when its pixels are packed and its rows apart
    (a face window cut from a frame: copying one from a 24 MP frame costs more than the
    resize that reads it), else a packed copy (a flipped or broadcast array, another type)."""
    if array.dtype == dtype and array.ndim in (2, 3) and all(stride > 0 for stride in array.strides):
        pixel = array.itemsize * (array.shape[2] if array.ndim == 3 else 1)
        packed = array.ndim == 2 or array.strides[2] == array.itemsize
        if packed and array.strides[1] == pixel and array.strides[0] >= pixel * array.shape[1]:
            return array
    return np.ascontiguousarray(array, dtype=dtype)


def to_uint8(rgb: np.ndarray | torch.Tensor) -> np.ndarray:
    """8-bit copy of a float 0..1 image (``H×W×C`` or ``H×W``) for a model's input only:
    never written back into an image. OpenCV's saturating convert (one pass, ~3x faster
    than a clamp-scale-round in torch on a 24 MP frame); the tiny offset makes its
    round-half-to-even round halves up, as ``floor(255·x + 0.5)`` does, so a model sees the
    same bytes as before (a landmark moves by a third of a pixel when 10 % of them differ
    by one level)."""
    import cv2

    array = rgb.detach().to("cpu", torch.float32).numpy() if isinstance(rgb, torch.Tensor) else np.asarray(rgb, np.float32)
    return cv2.convertScaleAbs(opencv_view(array), alpha=255.0, beta=1e-4)


def stack_frames(frames: list[torch.Tensor]) -> torch.Tensor:
    """A batch of frames; one frame is a view, not a copy (a 24 MP frame is 288 MB)."""
    return frames[0][None] if len(frames) == 1 else torch.stack(frames)


def blend_masked(original: torch.Tensor, edited: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """``original + mask·(edited − original)``, and exactly ``original`` where mask is 0.

    ``mask`` is ``[..., H, W]`` and broadcasts over the channel axis. Using ``where`` keeps
    every pixel outside the mask bit-exact, which a plain lerp does not guarantee.
    """
    weight = mask[..., None] if mask.ndim == original.ndim - 1 else mask
    mixed = original + weight * (edited - original)
    return torch.where(weight > 0, mixed, original)
