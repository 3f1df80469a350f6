"""Node family: parse — FaceParse and FaceRegionsToMask (thin nodes; the work is in core/parse.py)."""

from __future__ import annotations

import logging
from typing import Any

import torch

from ..core import comfy
from ..core.parse import REGION_COLOURS, parse_faces, preview_regions, region_mask
from ..core.regions import ALL_REGION_NAMES, FACE_REGION_NAMES, FaceRegions, expand_region_names
from ..core.tensors import stack_frames, to_rgb
from .common import FACE_REGIONS, bool_widget, category, combo_widget, float_widget, int_widget, register
from .preview import _save_temp_png

log = logging.getLogger("portrait_polish")

NODE_CLASS_MAPPINGS: dict[str, type] = {}
NODE_DISPLAY_NAME_MAPPINGS: dict[str, str] = {}

# The UI key the canvas legend (js/) reads: [{"name": region, "color": "#rrggbb"}, ...].
UI_LEGEND_KEY = "portrait_polish_regions"
MAX_PREVIEW_FRAMES = 4
FACE_CHOICES = ["all", "largest", "index"]
BACKENDS = ["mediapipe", "bisenet"]

REGIONS_TOOLTIP = (
    "Regions for the MASK output, comma-separated; the union is taken. Names: "
    + ", ".join(ALL_REGION_NAMES)
    + ". Left/right are the subject's own sides. Groups: face, eyes, irises, eye_whites, brows, lips, mouth. "
    "'skin' excludes the nose (add 'nose' for all facial skin)."
)


def _faces_inputs() -> dict[str, Any]:
    return {
        "faces": combo_widget(
            FACE_CHOICES, "all", "Which faces go into the MASK: all, the largest, or the one at face_index."
        ),
        "face_index": int_widget(0, 0, 63, "Face number when faces = index; faces are counted left to right from 0."),
        "grow": float_widget(
            0.0,
            -20.0,
            20.0,
            0.5,
            "Grow (> 0) or shrink (< 0) the MASK, in percent of each face's size (1 % ≈ 2 px on a 200 px face).",
        ),
        "feather": float_widget(0.0, 0.0, 20.0, 0.5, "Extra blur on the MASK edge, in percent of each face's size."),
    }


def _legend(names: list[str]) -> list[dict[str, str]]:
    return [{"name": name, "color": REGION_COLOURS[name]} for name in names if name in REGION_COLOURS]


def _preview_ui(preview: torch.Tensor, names: list[str]) -> dict[str, Any]:
    ui: dict[str, Any] = {UI_LEGEND_KEY: _legend(names)}
    fp = comfy.folder_paths()
    if fp is not None and hasattr(fp, "get_temp_directory"):
        import os
        import uuid

        directory = fp.get_temp_directory()
        os.makedirs(directory, exist_ok=True)
        token = uuid.uuid4().hex[:12]
        ui["images"] = [
            _save_temp_png(preview[i], directory, f"portrait_polish_parse_{token}_{i}")
            for i in range(min(preview.shape[0], MAX_PREVIEW_FRAMES))
        ]
    return ui


def _masks_for(
    regions: FaceRegions, names: str, faces: str, face_index: int, grow: float, feather: float
) -> torch.Tensor:
    frames = [region_mask(item, names, faces, face_index, grow, feather) for item in regions.images]
    return stack_frames(frames) if frames else torch.zeros(0, 1, 1)


class FaceParse:
    """Finds every face and gives soft masks for skin, eyes, iris, brows, lips, teeth, hair and more."""

    DESCRIPTION = (
        "Finds every face in each image (YuNet, several scales, small faces in group photos included) and parses "
        "it into soft region masks: skin (beard, stubble, glasses frames and hair drop out by a per-face skin "
        "colour model), neck, nose, brows, eye whites, irises (clipped by the eyelids), lips, mouth interior, "
        "teeth (bright low-chroma pixels inside the mouth; gums and tongue excluded), hair and person/background. "
        "Masks follow MediaPipe's 478 landmarks, are snapped to image edges and feathered in proportion to face "
        "size, and live on a crop per face, so big photos stay cheap. Outputs the MASK of the chosen regions, "
        "FACE_REGIONS for the retouch nodes (parse once per graph), and a colour preview. A frame with no face "
        "passes through with empty masks."
    )
    CATEGORY = category("Parse")
    FUNCTION = "parse"
    RETURN_TYPES = ("MASK", FACE_REGIONS, "IMAGE")
    RETURN_NAMES = ("mask", "face_regions", "preview")
    OUTPUT_TOOLTIPS = (
        "Full-frame soft mask (0..1) of the chosen regions over the chosen faces, one per frame (empty where no face).",
        "Per image and face: box, landmarks, face size and every region mask; feed it to TextureSafeSmooth, "
        "TeethWhiten, EyeEnhance and IdentityGuard so the graph parses once.",
        "The image with each region painted in its own colour and face boxes outlined.",
    )

    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        from ..core.models import list_files, spec_for

        # The published file first (it downloads on first use), then whatever else the
        # face_parsing folder holds (e.g. 79999_iter.pth under its original name).
        default_file = spec_for("bisenet").filename
        bisenet_files = [default_file] + [name for name in list_files("face_parsing") if name != default_file]
        return {
            "required": {
                "image": (
                    "IMAGE",
                    {"tooltip": "Photo(s) to parse. Grey and RGBA work; any size (faces are parsed on crops)."},
                ),
                "regions": ("STRING", {"default": "face", "multiline": False, "tooltip": REGIONS_TOOLTIP}),
                **_faces_inputs(),
                "max_faces": int_widget(16, 1, 64, "Keep at most this many faces per image (the largest ones)."),
                "min_face_size": int_widget(24, 8, 4096, "Ignore faces narrower than this many pixels."),
                "confidence": float_widget(
                    0.7,
                    0.3,
                    0.99,
                    0.01,
                    "Face detector score needed to count as a face. Lower finds more faces and more false ones.",
                ),
                "refine": bool_widget(
                    True,
                    "Refine masks with the pixels: skin colour model (beard, frames, hair out of skin), edge snapping. "
                    "Off = landmark shapes only (faster, smoother, ignores occlusions).",
                ),
                "edge_softness": float_widget(
                    1.0,
                    0.0,
                    4.0,
                    0.1,
                    "Softness of all region edges, relative to the default (0 = hard edges; scales with face size).",
                ),
                "backend": combo_widget(
                    BACKENDS,
                    "mediapipe",
                    "mediapipe: landmark-based regions (commercial use OK). bisenet: a face-parsing network (CelebAMask-HQ, "
                    "non-commercial weights you must provide) for skin/hair/brows/eyes/lips/nose/neck; irises and teeth still "
                    "come from landmarks.",
                ),
                "bisenet_model": combo_widget(
                    bisenet_files,
                    bisenet_files[0],
                    "BiSeNet weights (face_parsing folder) used when backend = bisenet.",
                ),
            }
        }

    def parse(
        self,
        image: torch.Tensor,
        regions: str,
        faces: str,
        face_index: int,
        grow: float,
        feather: float,
        max_faces: int,
        min_face_size: int,
        confidence: float,
        refine: bool,
        edge_softness: float,
        backend: str,
        bisenet_model: str,
    ) -> dict[str, Any]:
        names = expand_region_names(regions)  # a bad name fails early, before any model runs
        rgb, _, _ = to_rgb(image)
        parsed = parse_faces(
            rgb,
            min_face_size=float(min_face_size),
            confidence=float(confidence),
            max_faces=int(max_faces),
            feather=float(edge_softness),
            refine=bool(refine),
            backend=backend,
            bisenet_model=bisenet_model,
        )
        mask = _masks_for(parsed, regions, faces, face_index, grow, feather)
        shown = [n for n in names if n in FACE_REGION_NAMES] or list(FACE_REGION_NAMES)
        preview = stack_frames([preview_regions(rgb[i], item, shown) for i, item in enumerate(parsed.images)])
        return {"ui": _preview_ui(preview, shown), "result": (mask, parsed, preview)}


class FaceRegionsToMask:
    """Turns FACE_REGIONS into a MASK of chosen regions and faces, without parsing again."""

    DESCRIPTION = (
        "Makes a full-frame MASK from an existing FACE_REGIONS (from FaceParse): the union of the chosen regions "
        "over the chosen faces, grown/shrunk and feathered in proportion to each face's size. Use it to get "
        "several different masks from one parse."
    )
    CATEGORY = category("Parse")
    FUNCTION = "to_mask"
    RETURN_TYPES = ("MASK",)
    RETURN_NAMES = ("mask",)
    OUTPUT_TOOLTIPS = ("Full-frame soft mask (0..1), one per parsed frame (empty where no face).",)

    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        return {
            "required": {
                "face_regions": (FACE_REGIONS, {"tooltip": "FACE_REGIONS from FaceParse."}),
                "regions": ("STRING", {"default": "skin", "multiline": False, "tooltip": REGIONS_TOOLTIP}),
                **_faces_inputs(),
            }
        }

    def to_mask(
        self, face_regions: FaceRegions, regions: str, faces: str, face_index: int, grow: float, feather: float
    ) -> tuple[torch.Tensor]:
        expand_region_names(regions)
        return (_masks_for(face_regions, regions, faces, face_index, grow, feather),)


register(NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS, FaceParse, "FaceParse")
register(NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS, FaceRegionsToMask, "FaceRegionsToMask")
