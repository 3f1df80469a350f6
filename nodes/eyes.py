"""Node family: eyes — EyeEnhance (thin node; the work is in core/eyes.py)."""

from __future__ import annotations

from typing import Any

from ..core import comfy
from ..core.eyes import EyeSettings, enhance_eyes, eye_regions_from_mask
from ..core.face_inputs import resolve_regions, restore_layout, split_layout
from .common import FACE_REGIONS, RETOUCH_IMAGE_INPUT, category, float_widget, register
from .preview import compare_ui

NODE_CLASS_MAPPINGS: dict[str, type] = {}
NODE_DISPLAY_NAME_MAPPINGS: dict[str, str] = {}


class EyeEnhance:
    """Calmer, brighter eye whites and clearer irises: the same eyes."""

    DESCRIPTION = (
        "Per face and per eye: eye whites lose redness and veins (a* pulled toward the white's own neutral) and "
        "get a gentle lift that keeps the corners' and lid's shading; the iris gets clarity (its contrast grows "
        "by a set factor, ×1.2 at 0.5), optionally saturation and a darker limbal ring; an existing catchlight "
        "can be strengthened (none is ever painted); dark circles below the lower lid can be softened "
        "(low-pass lift only, texture kept). Closed eyes and sunglasses are left alone. Each strength at 0 leaves "
        "that part bit-exact. Needs FACE_REGIONS from FaceParse or a MASK over the eyes."
    )
    CATEGORY = category("Retouch")
    FUNCTION = "enhance"
    RETURN_TYPES = ("IMAGE",)
    RETURN_NAMES = ("image",)
    OUTPUT_TOOLTIPS = ("The image with enhanced eyes; every pixel outside the eyes (and the under-eye band, when on) is bit-exact the input.",)

    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        return {
            "required": {
                "image": RETOUCH_IMAGE_INPUT,
                "whites": float_widget(
                    0.5, 0.0, 1.0, 0.05,
                    "Eye whites: less redness and fewer visible veins, plus a gentle lift (+2.5 L* at 0.5, at most +5) "
                    "that keeps the natural shading. 0 = untouched.",
                ),
                "iris_clarity": float_widget(
                    0.5, 0.0, 1.0, 0.05,
                    "Iris local contrast: the iris's RMS contrast grows ×(1 + 0.4·value), ×1.2 at 0.5, ×1.4 at 1. "
                    "The pupil never gets lighter. 0 = untouched.",
                ),
                "iris_saturation": float_widget(0.0, 0.0, 1.0, 0.05, "Iris colour: up to +50 % chroma at 1 (pupil excluded). 0 = off."),
                "limbal_ring": float_widget(0.0, 0.0, 1.0, 0.05, "Darken the iris's outer rim, up to 15 % at 1. 0 = off."),
                "catchlight": float_widget(
                    0.3, 0.0, 1.0, 0.05,
                    "Strengthen an existing catchlight (the brightest small spot in the iris) without moving it. "
                    "Eyes without a clear catchlight get none. 0 = off.",
                ),
                "under_eye": float_widget(
                    0.0, 0.0, 1.0, 0.05,
                    "Soften dark circles: lift the low-pass lightness of the band below the lower lid toward the cheek "
                    "(half the difference at 0.5); pores and lines are kept. 0 = off.",
                ),
            },
            "optional": {
                "face_regions": (FACE_REGIONS, {"tooltip": "FaceParse output for this image: eye-white, iris and skin masks and landmarks of every face."}),
                "mask": (
                    "MASK",
                    {"tooltip": "A mask over the eyes, used when there is no FACE_REGIONS (each blob is one eye; white and iris told apart by lightness); with FACE_REGIONS it limits which eyes are touched."},
                ),
            },
        }

    def enhance(
        self,
        image,  # noqa: ANN001 - ComfyUI types
        whites: float,
        iris_clarity: float,
        iris_saturation: float,
        limbal_ring: float,
        catchlight: float,
        under_eye: float,
        face_regions=None,  # noqa: ANN001
        mask=None,  # noqa: ANN001
    ) -> dict[str, Any]:
        base, rgb, channels, alpha = split_layout(image)
        regions = resolve_regions("EyeEnhance", rgb, face_regions, mask, eye_regions_from_mask)
        settings = EyeSettings(
            sclera=float(whites),
            iris=float(iris_clarity),
            iris_saturation=float(iris_saturation),
            limbal_ring=float(limbal_ring),
            catchlight=float(catchlight),
            under_eye=float(under_eye),
        )
        out_rgb = enhance_eyes(rgb, regions, settings, device=comfy.torch_device())
        result = restore_layout(base, rgb, out_rgb, channels, alpha)
        return {"ui": compare_ui(base, result), "result": (result,)}


register(NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS, EyeEnhance, "EyeEnhance")
