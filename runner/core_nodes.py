"""Small local equivalents of the ComfyUI core nodes our workflows use, for the in-process
engine ONLY: LoadImage, SaveImage and PreviewImage.

They behave like ComfyUI's own (same input names, same pixel conversion, same PNG
metadata, same ``{"ui": {"images": [...]}}`` results) so a workflow gives the same pixels
in-process and on a server. They are never registered with ComfyUI (the pack's
NODE_CLASS_MAPPINGS does not contain them) and ComfyUI itself is never imported.
"""

from __future__ import annotations

import json
import os
import re
import uuid
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch


@dataclass
class EngineDirs:
    """Where the in-process engine's SaveImage/PreviewImage write and LoadImage reads."""

    output: Path
    temp: Path
    input: Path


_DIRS: ContextVar[EngineDirs | None] = ContextVar("portrait_polish_engine_dirs", default=None)


def set_dirs(dirs: EngineDirs):
    """Point these nodes, and the pack's own file nodes (LoadPhoto, SavePhoto), at ``dirs``."""
    from ..core.comfy import use_io_directories

    return _DIRS.set(dirs), use_io_directories(dirs.input, dirs.output, dirs.temp)


def reset_dirs(token) -> None:
    from ..core.comfy import reset_io_directories

    _DIRS.reset(token[0])
    reset_io_directories(token[1])


def _dirs() -> EngineDirs:
    dirs = _DIRS.get()
    if dirs is None:
        raise RuntimeError("core nodes run only inside the in-process engine (no output folder set)")
    return dirs


def load_image_file(path: str | Path) -> tuple[torch.Tensor, torch.Tensor]:
    """Read an image file as ComfyUI's LoadImage returns it (EXIF orientation applied, every
    frame of the first one's size, RGB float32 in 0..1, MASK = 1 - alpha, 64x64 zeros without
    alpha), but with every mode read by its own range (16-bit grey is not white, 16-bit RGB
    keeps its levels) and strictly: a truncated file raises UnreadableImage."""
    from ..core.photo_io import read_photo

    photo = read_photo(path)
    images = torch.from_numpy(photo.pixels)
    if photo.alpha is not None:
        masks = 1.0 - torch.from_numpy(photo.alpha)
    else:
        masks = torch.zeros((images.shape[0], 64, 64), dtype=torch.float32)
    return images, masks


class LoadImage:
    """Load an image file (in-process: the runner passes a path)."""

    CATEGORY = "image"
    RETURN_TYPES = ("IMAGE", "MASK")
    FUNCTION = "load_image"
    DESCRIPTION = "Loads an image file (local equivalent of ComfyUI's LoadImage)."

    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        return {"required": {"image": ([], {"image_upload": True})}}

    @classmethod
    def IS_CHANGED(cls, image: str) -> str:  # noqa: N802 - ComfyUI's name
        """The file's sha256, like ComfyUI: a file edited in place is loaded again."""
        import hashlib

        digest = hashlib.sha256()
        with open(cls._path(image), "rb") as handle:
            for chunk in iter(lambda: handle.read(1 << 20), b""):
                digest.update(chunk)
        return digest.hexdigest()

    @staticmethod
    def _path(image: str) -> Path:
        path = Path(image)
        return path if path.is_absolute() else _dirs().input / path

    def load_image(self, image: str) -> tuple[torch.Tensor, torch.Tensor]:
        return load_image_file(self._path(image))


def _save_path(output_dir: Path, filename_prefix: str, width: int, height: int) -> tuple[Path, str, str, int]:
    """ComfyUI's get_save_image_path, simplified: ``prefix`` may contain a subfolder;
    files are ``<name>_<counter:05>_.png`` with the counter after the highest existing one."""
    prefix = filename_prefix.replace("%width%", str(width)).replace("%height%", str(height))
    subfolder, name = os.path.split(os.path.normpath(prefix))
    full = (output_dir / subfolder).resolve()
    if os.path.commonpath([str(output_dir.resolve()), str(full)]) != str(output_dir.resolve()):
        raise ValueError(f"filename_prefix {filename_prefix!r} points outside the output folder")
    full.mkdir(parents=True, exist_ok=True)
    pattern = re.compile(re.escape(name) + r"_(\d+)_")
    counters = [int(m.group(1)) for f in os.listdir(full) if (m := pattern.match(f))]
    counter = max(counters, default=0) + 1
    return full, name, subfolder, counter


def save_images(images: torch.Tensor, filename_prefix: str, kind: str, prompt: Any = None,
                extra_pnginfo: dict | None = None, compress_level: int = 4) -> dict[str, Any]:
    """Write each frame as an 8-bit PNG with the prompt/workflow in its text chunks, as ComfyUI does."""
    from PIL import Image
    from PIL.PngImagePlugin import PngInfo

    dirs = _dirs()
    root = dirs.output if kind == "output" else dirs.temp
    full, name, subfolder, counter = _save_path(root, filename_prefix, images.shape[2], images.shape[1])
    results = []
    for batch_number, frame in enumerate(images):
        pixels = np.clip(255.0 * frame.detach().cpu().numpy(), 0, 255).astype(np.uint8)
        if pixels.shape[-1] == 1:
            pixels = pixels[..., 0]
        metadata = PngInfo()
        if prompt is not None:
            metadata.add_text("prompt", json.dumps(prompt))
        for key, value in (extra_pnginfo or {}).items():
            metadata.add_text(key, json.dumps(value))
        file = f"{name.replace('%batch_num%', str(batch_number))}_{counter:05}_.png"
        Image.fromarray(pixels).save(full / file, pnginfo=metadata, compress_level=compress_level)
        results.append({"filename": file, "subfolder": subfolder, "type": kind})
        counter += 1
    return {"ui": {"images": results}}


class SaveImage:
    """Save images as PNG into the engine's output folder."""

    CATEGORY = "image"
    RETURN_TYPES = ()
    FUNCTION = "save_images"
    OUTPUT_NODE = True
    DESCRIPTION = "Saves the input images (local equivalent of ComfyUI's SaveImage)."

    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        return {
            "required": {
                "images": ("IMAGE", {"tooltip": "The images to save."}),
                "filename_prefix": ("STRING", {"default": "ComfyUI", "tooltip": "The prefix for the file to save."}),
            },
            "hidden": {"prompt": "PROMPT", "extra_pnginfo": "EXTRA_PNGINFO"},
        }

    def save_images(self, images: torch.Tensor, filename_prefix: str = "ComfyUI", prompt: Any = None,
                    extra_pnginfo: dict | None = None) -> dict[str, Any]:
        return save_images(images, filename_prefix, "output", prompt, extra_pnginfo, compress_level=4)


class PreviewImage:
    """Preview images (written to the engine's temp folder)."""

    CATEGORY = "image"
    RETURN_TYPES = ()
    FUNCTION = "save_images"
    OUTPUT_NODE = True
    DESCRIPTION = "Shows the images (local equivalent of ComfyUI's PreviewImage)."

    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        return {"required": {"images": ("IMAGE",)}, "hidden": {"prompt": "PROMPT", "extra_pnginfo": "EXTRA_PNGINFO"}}

    def save_images(self, images: torch.Tensor, prompt: Any = None, extra_pnginfo: dict | None = None) -> dict[str, Any]:
        prefix = "ComfyUI_temp_" + uuid.uuid4().hex[:5]
        return save_images(images, prefix, "temp", prompt, extra_pnginfo, compress_level=1)


CORE_NODE_CLASSES: dict[str, type] = {"LoadImage": LoadImage, "SaveImage": SaveImage, "PreviewImage": PreviewImage}
CORE_DISPLAY_NAMES = {"LoadImage": "Load Image", "SaveImage": "Save Image", "PreviewImage": "Preview Image"}
