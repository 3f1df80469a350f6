"""Node family: upscale (Real-ESRGAN-class super-resolution, tiled, any output size)."""

from __future__ import annotations

from typing import Any

import torch

from ..core import comfy, models
from ..core.esrgan import from_descriptor
from ..core.tensors import as_image_batch
from ..core.upscale import SCALE_MODES, load_model, resize_plane, upscale_image
from .common import category, combo_widget, float_widget, int_widget, register
from .preview import MAX_PREVIEW_FRAMES, PREVIEW_LONG_EDGE, compare_ui

NODE_CLASS_MAPPINGS: dict[str, type] = {}
NODE_DISPLAY_NAME_MAPPINGS: dict[str, str] = {}

FOLDER = "upscale_models"
# Default model, in order of preference among the files on disk: the small, fast general
# model first (it runs on a CPU in seconds), then the others. With none on disk the first
# is offered and downloaded on first use (models.json).
PREFERRED_MODELS = (
    "realesr-general-x4v3.pth",
    "RealESRGAN_x4plus.pth",
    "RealESRGAN_x2plus.pth",
    "realesr-animevideov3.pth",
)


def model_choices() -> tuple[list[str], str]:
    """Files in ComfyUI's upscale_models folders (and PORTRAIT_POLISH_MODELS), plus the
    models.json upscalers (downloaded on first use); and the default among them."""
    on_disk = models.list_files(FOLDER)
    known = [spec.filename for spec in models.registry().values() if spec.folder == FOLDER]
    choices = on_disk + [name for name in known if name not in on_disk]
    default = next((name for name in PREFERRED_MODELS if name in on_disk), None)
    if default is None:
        default = on_disk[0] if on_disk else PREFERRED_MODELS[0]
    if default not in choices:
        choices.insert(0, default)
    return choices, default


def _preview_pair(before: torch.Tensor, after: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Before (plain Lanczos) and after at one preview size, at most PREVIEW_LONG_EDGE long."""
    frames = min(before.shape[0], MAX_PREVIEW_FRAMES)
    height, width = after.shape[1], after.shape[2]
    ratio = min(1.0, PREVIEW_LONG_EDGE / max(height, width))
    size = (max(1, round(height * ratio)), max(1, round(width * ratio)))
    shown_after = torch.stack([resize_plane(after[i], *size) if ratio < 1 else after[i] for i in range(frames)])
    shown_before = torch.stack([resize_plane(before[i], *size) for i in range(frames)])
    return shown_before.clamp(0, 1), shown_after.clamp(0, 1)


class Upscale:
    DESCRIPTION = (
        "Upscales photos with Real-ESRGAN-family models (RRDBNet such as RealESRGAN_x4plus/x2plus, "
        "SRVGGNetCompact such as realesr-general-x4v3) from ComfyUI's upscale_models folder, or with any "
        "UPSCALE_MODEL from Load Upscale Model. Works in tiles with feathered overlaps (no seams) sized to "
        "free memory, halving them on out-of-memory; gives any output size (e.g. 2x with a 4x model, or a "
        "target long edge) with Lanczos resampling for the rest; alpha is carried through. No torchvision."
    )
    CATEGORY = category("Upscale")
    FUNCTION = "upscale"
    RETURN_TYPES = ("IMAGE",)
    RETURN_NAMES = ("image",)
    OUTPUT_TOOLTIPS = ("The upscaled image, float32, same batch and channels (grey, RGB or RGBA) as the input.",)

    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        choices, default = model_choices()
        return {
            "required": {
                "image": ("IMAGE", {"tooltip": "Images to upscale (any batch; grey, RGB or RGBA)."}),
                "model_name": combo_widget(
                    choices,
                    default,
                    "Upscale model file from ComfyUI's models/upscale_models (.pth or .safetensors). "
                    "realesr-general-x4v3 is small and fast; RealESRGAN_x4plus is slower and stronger. "
                    "Files not on disk are downloaded on first use. Ignored when upscale_model is connected.",
                ),
                "scale_mode": combo_widget(
                    list(SCALE_MODES),
                    "factor",
                    "model native: the model's own scale (4x for x4 models). factor: any scale, e.g. 2x with a 4x "
                    "model. long edge: the output's longer side in pixels.",
                ),
                "factor": float_widget(
                    2.0, 1.0, 8.0, 0.05, "Output scale when scale_mode is 'factor' (1.0 = same size, model detail only)."
                ),
                "long_edge": int_widget(
                    4096, 64, 16384, "Output long side in pixels when scale_mode is 'long edge'.", step=8
                ),
                "strength": float_widget(
                    1.0,
                    0.0,
                    1.0,
                    0.05,
                    "How much of the model's result to use. 1 = the model alone. Lower values mix back a plain "
                    "Lanczos enlargement of the photo, for a softer, less redrawn look of skin (GAN upscalers flatten "
                    "fine texture and make freckles look painted). 0 = plain Lanczos resize, no model.",
                ),
                "tile": int_widget(
                    0,
                    0,
                    2048,
                    "Tile size in input pixels. 0 = automatic from free memory (halved and retried on out-of-memory). "
                    "Smaller tiles use less memory; results are the same.",
                    step=64,
                ),
                "overlap": int_widget(
                    32, 0, 256, "Overlap between tiles in input pixels, blended smoothly so no seams show.", step=8
                ),
            },
            "optional": {
                "upscale_model": (
                    "UPSCALE_MODEL",
                    {"tooltip": "A model from ComfyUI's Load Upscale Model node; when connected, model_name is ignored."},
                ),
            },
        }

    def upscale(
        self,
        image: torch.Tensor,
        model_name: str,
        scale_mode: str = "factor",
        factor: float = 2.0,
        long_edge: int = 4096,
        strength: float = 1.0,
        tile: int = 0,
        overlap: int = 32,
        upscale_model: Any = None,
    ) -> dict[str, Any]:
        device = comfy.torch_device()
        if upscale_model is not None:
            model = from_descriptor(upscale_model)
            fallback = None
        else:
            model = load_model(model_name, device)

            def fallback() -> Any:
                return load_model(model_name, device, torch.float32)

        result = upscale_image(
            image,
            model,
            mode=scale_mode,
            factor=factor,
            long_edge=long_edge,
            strength=strength,
            tile=tile,
            overlap=overlap,
            device=device,
            fallback=fallback,
        )
        ui: dict[str, Any] = {}
        if comfy.in_comfyui():
            ui = compare_ui(*_preview_pair(as_image_batch(image), result))
        return {"ui": ui, "result": (result,)}


register(NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS, Upscale, "Upscale")
