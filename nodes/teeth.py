"""Node family: teeth — TeethWhiten (thin node; the work is in core/teeth.py)."""

from __future__ import annotations

from typing import Any

import torch

from ..core import comfy
from ..core.face_inputs import resolve_regions, restore_layout, split_layout
from ..core.regions import regions_from_mask
from ..core.teeth import TeethSettings, whiten_teeth
from .common import FACE_REGIONS, RETOUCH_IMAGE_INPUT, bool_widget, category, float_widget, register
from .preview import compare_ui

NODE_CLASS_MAPPINGS: dict[str, type] = {}
NODE_DISPLAY_NAME_MAPPINGS: dict[str, str] = {}


def _teeth_regions_from_mask(image: torch.Tensor, mask: torch.Tensor):  # noqa: ANN202 - FaceRegions
    del image
    return regions_from_mask(mask, region="teeth")


class TeethWhiten:
    """Whiter teeth within natural limits, face by face."""

    DESCRIPTION = (
        "Whitens teeth in CIELAB the way a retoucher does: less yellow (b*) and less chroma, a little lighter, "
        "with the shading between teeth, the enamel texture and the highlights kept (only the smooth component "
        "is edited). Each face is measured on its own and gets a fixed perceptual step (mean CIEDE2000 3.5 at "
        "strength 0.5). The natural cap keeps b* at least half its original (never bluish) and the teeth no "
        "lighter than the same face's eye whites. Gums, lips and tongue are untouched; a face with no visible "
        "teeth is unchanged. Needs FACE_REGIONS from FaceParse or a MASK of the teeth."
    )
    CATEGORY = category("Retouch")
    FUNCTION = "whiten"
    RETURN_TYPES = ("IMAGE",)
    RETURN_NAMES = ("image",)
    OUTPUT_TOOLTIPS = ("The image with whiter teeth; every pixel outside the teeth is bit-exact the input.",)

    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        return {
            "required": {
                "image": RETOUCH_IMAGE_INPUT,
                "strength": float_widget(
                    0.5,
                    0.0,
                    1.0,
                    0.05,
                    "How much whiter. 0 = the input, bit-exact. 0.5 = natural (a visible but modest step, mean ΔE00 "
                    "about 3.5); 1.0 = twice that step, still inside the cap.",
                ),
                "brighten": float_widget(
                    0.5,
                    0.0,
                    1.0,
                    0.05,
                    "Share of lightness lift in the whitening (0 = only less yellow). The lift fades out toward "
                    "highlights and never takes the teeth past the eye whites while the cap is on.",
                ),
                "natural_cap": bool_widget(
                    True,
                    "Keep it natural: b* stays at least half its original (never blue-white) and the teeth stay no "
                    "lighter than that face's eye whites. Off: b* may go to a fifth of its original (still above 0).",
                ),
            },
            "optional": {
                "face_regions": (FACE_REGIONS, {"tooltip": "FaceParse output for this image: the teeth, lips and eye-white masks of every face."}),
                "mask": ("MASK", {"tooltip": "A mask of the teeth, used when there is no FACE_REGIONS; with FACE_REGIONS it limits which teeth are touched."}),
            },
        }

    def whiten(self, image, strength: float, brighten: float, natural_cap: bool, face_regions=None, mask=None) -> dict[str, Any]:  # noqa: ANN001 - ComfyUI types
        base, rgb, channels, alpha = split_layout(image)
        regions = resolve_regions("TeethWhiten", rgb, face_regions, mask, _teeth_regions_from_mask)
        settings = TeethSettings(strength=float(strength), brighten=float(brighten), natural_cap=bool(natural_cap))
        out_rgb = whiten_teeth(rgb, regions, settings, device=comfy.torch_device())
        result = restore_layout(base, rgb, out_rgb, channels, alpha)
        return {"ui": compare_ui(base, result), "result": (result,)}


register(NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS, TeethWhiten, "TeethWhiten")
