"""Node family: skin — TextureSafeSmooth (thin node; the work is in core/skin.py and core/bands.py)."""

from __future__ import annotations

from typing import Any

import torch

from ..core import comfy
from ..core.face_inputs import resolve_regions, restore_layout, split_layout
from ..core.regions import regions_from_mask
from ..core.skin import TEXTURE_MAX, TEXTURE_MIN, SkinParams, smooth_skin_image
from ..core.tensors import as_mask_batch
from .common import FACE_REGIONS, RETOUCH_IMAGE_INPUT, bool_widget, category, float_widget, register
from .preview import compare_ui

NODE_CLASS_MAPPINGS: dict[str, type] = {}
NODE_DISPLAY_NAME_MAPPINGS: dict[str, str] = {}


def _skin_regions_from_mask(image: torch.Tensor, mask: torch.Tensor):  # noqa: ANN202 - FaceRegions
    del image
    return regions_from_mask(mask, region="skin")


def _frame_mask(mask: torch.Tensor | None, batch: int, height: int, width: int, what: str) -> torch.Tensor | None:
    masks = as_mask_batch(mask, batch)
    if masks is not None and tuple(masks.shape[1:]) != (height, width):
        raise ValueError(f"TextureSafeSmooth: {what} is {masks.shape[2]}x{masks.shape[1]} but the IMAGE is {width}x{height}")
    return masks


class TextureSafeSmooth:
    """Clean skin that keeps its pores: tone evening, blemish healing, micro dodge & burn."""

    DESCRIPTION = (
        "Evens skin the way a retoucher's frequency separation does, per face: the skin is split into fine "
        "(pores), medium (blotches, spots) and coarse (tone patches) bands with radii from each face's own size. "
        "Strength lowers the medium and coarse bands with an edge-aware (guided) filter, so nose, jaw and lip "
        "edges don't halo; the fine band (the pores) is kept. Small red spots (pimples, acne) are healed from the "
        "skin around them with their pores put back; freckles, moles and beauty marks are found and kept. Eyes, "
        "brows, lips, nostrils, hair and background are never touched: every pixel outside the skin is bit-exact. "
        "Needs FACE_REGIONS from FaceParse or a MASK of the skin."
    )
    CATEGORY = category("Retouch")
    FUNCTION = "smooth"
    RETURN_TYPES = ("IMAGE", "MASK")
    RETURN_NAMES = ("image", "healed_mask")
    OUTPUT_TOOLTIPS = (
        "The retouched image; pixels outside the skin are bit-exact the input.",
        "Where blemishes were healed (soft, 0..1), e.g. to check or to feed a mask editor.",
    )

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
                    "How much blotches and uneven tone are evened (the medium and coarse bands). 0 = the input, "
                    "bit-exact. 0.5 = a subtle 'good day' result; 1.0 = strong, still with the pores.",
                ),
                "texture": float_widget(
                    1.0,
                    TEXTURE_MIN,
                    TEXTURE_MAX,
                    0.05,
                    "The fine band (pores, fine texture): 1.0 keeps it as it is; down to 0.85 softens it a little "
                    "(it is never erased); up to 1.2 crisps it.",
                ),
                "heal_blemishes": bool_widget(True, "Find small red spots (pimples, acne, red marks) and heal them, pores kept."),
                "heal_strength": float_widget(1.0, 0.0, 1.0, 0.05, "How completely a found blemish is healed (1 = gone)."),
                "heal_brown_spots": bool_widget(
                    False,
                    "Also heal small, light brown spots. Off (default): brown spots count as freckles and are kept. "
                    "Spots at least 'keep mark size' wide or 'keep mark contrast' dark are kept either way.",
                ),
                "keep_mark_size": float_widget(
                    8.0,
                    1.0,
                    30.0,
                    0.5,
                    "Spots at least this wide (in % of the face width) are marks to keep (a mole, a birthmark), "
                    "never healed. Lower it to protect smaller moles.",
                ),
                "keep_mark_contrast": float_widget(
                    20.0,
                    3.0,
                    60.0,
                    1.0,
                    "Spots at least this much darker than the skin around them (CIE L*) are marks to keep (moles, "
                    "beauty marks), never healed.",
                ),
                "dodge_burn": float_widget(
                    0.5,
                    0.0,
                    1.0,
                    0.05,
                    "Micro dodge & burn: flattens small light/dark blotches in the medium band (the ones a "
                    "retoucher paints out), leaving stronger structure such as folds alone. Scaled by strength.",
                ),
                "shine_reduction": float_widget(
                    0.0,
                    0.0,
                    1.0,
                    0.05,
                    "Tone down shiny (specular) patches on forehead, nose and cheeks: 0 = off.",
                ),
                "include_neck": bool_widget(False, "Also retouch the neck skin FaceParse found."),
            },
            "optional": {
                "face_regions": (FACE_REGIONS, {"tooltip": "FaceParse output for this image: each face's skin mask, features and size."}),
                "mask": (
                    "MASK",
                    {
                        "tooltip": "A skin mask, used when there is no FACE_REGIONS (its extent sets the radii); with "
                        "FACE_REGIONS it limits where the skin is retouched."
                    },
                ),
                "protect_mask": ("MASK", {"tooltip": "Areas to leave alone: spots here are kept and the skin is not evened."}),
                "heal_mask": ("MASK", {"tooltip": "Spots here are healed whatever they look like (e.g. a mole you want gone)."}),
                # Optional (added later) so workflows saved before it load unchanged.
                "heal_acne_marks": bool_widget(
                    False,
                    "Also heal post-acne marks: soft, flat, brownish-red spots (redder than a freckle, lighter than "
                    "'keep mark contrast', smaller than 'keep mark size'). Off: they are only evened with the skin.",
                ),
            },
        }

    def smooth(
        self,
        image,  # noqa: ANN001 - ComfyUI types
        strength: float,
        texture: float,
        heal_blemishes: bool,
        heal_strength: float,
        heal_brown_spots: bool,
        keep_mark_size: float,
        keep_mark_contrast: float,
        dodge_burn: float,
        shine_reduction: float,
        include_neck: bool,
        face_regions=None,  # noqa: ANN001
        mask=None,  # noqa: ANN001
        protect_mask=None,  # noqa: ANN001
        heal_mask=None,  # noqa: ANN001
        heal_acne_marks: bool = False,
    ) -> dict[str, Any]:
        base, rgb, channels, alpha = split_layout(image)
        batch, height, width = rgb.shape[0], rgb.shape[1], rgb.shape[2]
        regions = resolve_regions("TextureSafeSmooth", rgb, face_regions, mask, _skin_regions_from_mask)
        params = SkinParams(
            strength=float(strength),
            texture=float(texture),
            heal_blemishes=bool(heal_blemishes),
            heal_strength=float(heal_strength),
            heal_brown_spots=bool(heal_brown_spots),
            heal_acne_marks=bool(heal_acne_marks),
            keep_mark_size=float(keep_mark_size),
            keep_mark_contrast=float(keep_mark_contrast),
            dodge_burn=float(dodge_burn),
            shine=float(shine_reduction),
            include_neck=bool(include_neck),
        )
        protect = _frame_mask(protect_mask, batch, height, width, "protect_mask")
        force = _frame_mask(heal_mask, batch, height, width, "heal_mask")
        out_rgb, healed = smooth_skin_image(rgb, regions, params, protect=protect, force_heal=force, device=comfy.torch_device())
        if params.is_identity():
            out_rgb = rgb
        result = restore_layout(base, rgb, out_rgb, channels, alpha)
        return {"ui": compare_ui(base, result), "result": (result, healed)}


register(NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS, TextureSafeSmooth, "TextureSafeSmooth")
