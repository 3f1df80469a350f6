"""Node family: photo files (load and save a photographer's file with its depth, profile and metadata).

LoadPhoto reads 8/16-bit PNG, 8/16-bit TIFF, JPEG and WebP (every Pillow mode by its own
range) into float32 and outputs the file's PHOTO_INFO (ICC profile, EXIF, XMP, IPTC, bit
depth); SavePhoto writes 16-bit PNG / TIFF, JPEG or WebP with that metadata, atomically and
never over an existing file. The work is in ``core.photo_io``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..core import comfy
from ..core.photo_io import (
    DEFAULT_JPEG_QUALITY,
    FORMAT_CHOICES,
    METADATA_CHOICES,
    SAVED_KEY,
    PhotoInfo,
    encode_photo,
    next_counter,
    parse_format,
    read_photo,
    resolve_format,
    save_prefix_parts,
    write_new_file,
)
from .common import bool_widget, category, combo_widget, int_widget, register
from .preview import _save_temp_png

NODE_CLASS_MAPPINGS: dict[str, type] = {}
NODE_DISPLAY_NAME_MAPPINGS: dict[str, str] = {}

PHOTO_INFO = "PHOTO_INFO"
PHOTO_EXTENSIONS = (".png", ".tif", ".tiff", ".jpg", ".jpeg", ".webp", ".bmp", ".gif")
BROWSER_FORMATS = {"png", "jpeg", "webp"}  # shown on the canvas as they are; TIFF gets a PNG preview


def _input_files() -> list[str]:
    folder = comfy.io_directory("input")
    if folder is None or not folder.is_dir():
        return []
    return sorted(f for f in os.listdir(folder) if f.lower().endswith(PHOTO_EXTENSIONS) and (folder / f).is_file())


def _input_path(image: str) -> Path:
    fp = comfy.folder_paths()
    if fp is not None and hasattr(fp, "get_annotated_filepath"):
        return Path(fp.get_annotated_filepath(image))
    path = Path(image)
    if path.is_absolute():
        return path
    folder = comfy.io_directory("input")
    return folder / path if folder is not None else path


class LoadPhoto:
    CATEGORY = category("Photo")
    RETURN_TYPES = ("IMAGE", "MASK", PHOTO_INFO)
    RETURN_NAMES = ("image", "mask", "photo_info")
    OUTPUT_TOOLTIPS = (
        "The photo as float32 RGB (16-bit files keep all 65536 levels), EXIF orientation applied.",
        "1 - alpha where the file has transparency (LA, RGBA, P with transparency), else a 64x64 zero mask like Load Image.",
        "The file's ICC profile, EXIF, XMP, IPTC, DPI and bit depth, for Save Photo.",
    )
    FUNCTION = "load"
    DESCRIPTION = ("Loads a photo file keeping what a photographer put in it: 16-bit PNG and TIFF precision, the ICC "
                   "profile, EXIF, XMP and IPTC. A truncated or corrupt file is an error, never a grey block.")

    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        files = _input_files() or [""]
        return {
            "required": {
                "image": (files, {"image_upload": True, "tooltip": "A photo in ComfyUI's input folder (PNG, TIFF, JPEG, WebP; 8 or 16 bits)."}),
                "to_srgb": bool_widget(False, "Convert the pixels from the file's ICC profile to sRGB with LittleCMS (the "
                                              "retouch's Lab maths then see true colours; wide-gamut colours are clipped). "
                                              "Off: the file's own RGB is kept and its profile passed through byte for byte."),
            }
        }

    @classmethod
    def VALIDATE_INPUTS(cls, image: str) -> bool | str:  # noqa: N802 - ComfyUI's name
        if not image or not _input_path(image).is_file():
            return f"Invalid image file: {image}"
        return True

    @classmethod
    def IS_CHANGED(cls, image: str, to_srgb: bool = False) -> str:  # noqa: N802 - ComfyUI's name
        digest = hashlib.sha256(str(to_srgb).encode())
        with open(_input_path(image), "rb") as handle:
            for chunk in iter(lambda: handle.read(1 << 20), b""):
                digest.update(chunk)
        return digest.hexdigest()

    def load(self, image: str, to_srgb: bool = False) -> tuple[torch.Tensor, torch.Tensor, PhotoInfo]:
        photo = read_photo(_input_path(image), to_srgb=to_srgb)
        pixels = torch.from_numpy(photo.pixels)
        if photo.alpha is not None:
            mask = 1.0 - torch.from_numpy(photo.alpha)
        else:
            mask = torch.zeros((pixels.shape[0], 64, 64), dtype=torch.float32)
        return pixels, mask, photo.info


class SavePhoto:
    CATEGORY = category("Photo")
    RETURN_TYPES = ()
    FUNCTION = "save"
    OUTPUT_NODE = True
    DESCRIPTION = ("Saves photos as 8/16-bit PNG, 8/16-bit TIFF, JPEG (4:4:4) or WebP with the loaded file's ICC "
                   "profile (byte for byte), EXIF, XMP and IPTC; atomic, and never over an existing file.")

    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        return {
            "required": {
                "images": ("IMAGE", {"tooltip": "The photos to save."}),
                "filename_prefix": ("STRING", {"default": "portrait_polish/photo",
                                               "tooltip": "File name prefix (may hold a sub-folder of the output folder); a counter follows."}),
                "format": combo_widget(list(FORMAT_CHOICES), "auto",
                                       "auto: the input's depth (16-bit in, 16-bit out), TIFF for TIFF input, else PNG. "
                                       "png/tiff are 8-bit, png16/tiff16 16-bit; jpeg and webp 8-bit."),
                "quality": int_widget(DEFAULT_JPEG_QUALITY, 1, 100, "JPEG quality (4:4:4 chroma); WebP: 100 = lossless, below = lossy."),
                "metadata": combo_widget(list(METADATA_CHOICES), "keep",
                                         "keep: EXIF, XMP and IPTC of the loaded file; strip GPS: without location; strip all: "
                                         "no EXIF, XMP, IPTC or workflow text (the ICC profile stays: it is colour, not metadata)."),
            },
            "optional": {
                "photo_info": (PHOTO_INFO, {"tooltip": "From Load Photo: the profile and metadata to write (without it: sRGB, no metadata)."}),
                "mask": ("MASK", {"tooltip": "Written as alpha (1 - mask) where it has the image's size, e.g. Load Photo's mask."}),
            },
            "hidden": {"prompt": "PROMPT", "extra_pnginfo": "EXTRA_PNGINFO"},
        }

    def save(self, images: torch.Tensor, filename_prefix: str = "portrait_polish/photo", format: str = "auto",  # noqa: A002
             quality: int = DEFAULT_JPEG_QUALITY, metadata: str = "keep", photo_info: PhotoInfo | None = None,
             mask: torch.Tensor | None = None, prompt: Any = None, extra_pnginfo: dict | None = None) -> dict[str, Any]:
        output_dir = comfy.io_directory("output")
        if output_dir is None:
            raise RuntimeError("Save Photo has no output folder: run it inside ComfyUI or with portrait-polish run")
        fmt = resolve_format(parse_format(format, quality), photo_info)
        info = photo_info if isinstance(photo_info, PhotoInfo) else PhotoInfo()
        frames = images.detach().to("cpu", torch.float32).numpy()
        if frames.ndim == 3:
            frames = frames[None]
        if frames.shape[-1] in (1, 2):
            info = dataclasses.replace(info, grey=True)
        texts = {}
        if fmt.kind == "png":  # like ComfyUI's SaveImage: the workflow travels in PNG text chunks
            if prompt is not None:
                texts["prompt"] = json.dumps(prompt)
            texts.update({key: json.dumps(value) for key, value in (extra_pnginfo or {}).items()})
        saved, previews = [], []
        for index, frame in enumerate(frames):
            rgb, alpha, note = _frame_planes(frame, mask, index)
            data, record = encode_photo(rgb, info, fmt, alpha=alpha, metadata=metadata, texts=texts)
            if note:
                record["dropped"].append(note)
            folder, name, subfolder = save_prefix_parts(output_dir, filename_prefix.replace("%batch_num%", str(index)),
                                                        rgb.shape[1], rgb.shape[0])
            counter = next_counter(folder, name)
            while not write_new_file(folder / f"{name}_{counter:05}_{fmt.extension}", data):
                counter += 1  # someone else's file has this name: never replaced, the next number is used
            ref = {"filename": f"{name}_{counter:05}_{fmt.extension}", "subfolder": subfolder, "type": "output"}
            saved.append({**ref, "photo": record})
            preview = ref if fmt.kind in BROWSER_FORMATS else _preview(rgb, f"{name}_{counter:05}")
            if preview is not None:
                previews.append(preview)
        return {"ui": {"images": previews, SAVED_KEY: saved}}


def _frame_planes(frame: np.ndarray, mask: torch.Tensor | None, index: int) -> tuple[np.ndarray, np.ndarray | None, str | None]:
    """RGB (H, W, 3) and alpha of one IMAGE frame: its own 4th channel, else ``1 - mask``
    when the mask has the frame's size (Load Photo's 64x64 placeholder never does)."""
    channels = frame.shape[-1]
    alpha = frame[..., -1] if channels in (2, 4) else None
    rgb = frame[..., :1].repeat(3, axis=-1) if channels in (1, 2) else frame[..., :3]
    note = None
    if alpha is None and mask is not None:
        planes = mask.detach().to("cpu", torch.float32).numpy()
        plane = planes[min(index, planes.shape[0] - 1)] if planes.ndim == 3 else planes
        if plane.shape == rgb.shape[:2]:
            alpha = 1.0 - plane
        elif plane.shape != (64, 64):
            note = f"alpha: the mask is {plane.shape[1]}x{plane.shape[0]}, the image {rgb.shape[1]}x{rgb.shape[0]}"
    return np.ascontiguousarray(rgb), alpha, note


def _preview(rgb: np.ndarray, stem: str) -> dict[str, str] | None:
    folder = comfy.io_directory("temp")
    if folder is None:
        return None
    folder.mkdir(parents=True, exist_ok=True)
    return _save_temp_png(torch.from_numpy(rgb), str(folder), f"{stem}_preview")


register(NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS, LoadPhoto, "LoadPhoto")
register(NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS, SavePhoto, "SavePhoto")
