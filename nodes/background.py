"""Node family: background — PortraitMatte, PortraitBokeh, BackgroundReplace.

Thin nodes: the matte is core/matte.py, the lens blur core/bokeh.py, the new backgrounds
core/backdrop.py, the per-frame driver core/kernel.py (for_each_frame).
"""

from __future__ import annotations

import logging
from typing import Any

import torch

from ..core import comfy
from ..core.backdrop import BACKDROPS, BackdropSettings, replace_frame
from ..core.bokeh import BokehSettings, bokeh_frame
from ..core.face_inputs import restore_layout, split_layout
from ..core.kernel import for_each_frame
from ..core.matte import MIN_PERSON_AREA, Matte, MatteSettings, matte_frame, matte_from_alpha
from ..core.regions import ImageFaces
from ..core.tensors import as_image_batch, as_mask_batch, stack_frames
from .common import FACE_REGIONS, bool_widget, category, combo_widget, float_widget, int_widget, register
from .preview import compare_ui

log = logging.getLogger("portrait_polish")

NODE_CLASS_MAPPINGS: dict[str, type] = {}
NODE_DISPLAY_NAME_MAPPINGS: dict[str, str] = {}

MATTE_SOURCES = ["auto", "segmentation", "image alpha"]
NO_PERSON = ["pass through", "all background"]
IMAGE_INPUT = ("IMAGE", {"tooltip": "The portrait (RGB, grey or RGBA; an RGBA picture's alpha can serve as the matte)."})
MATTE_INPUT = ("MASK", {"tooltip": "A person matte (PortraitMatte's alpha, or any MASK: 1 = person). Without it the node makes one itself."})
FOREGROUND_INPUT = ("IMAGE", {"tooltip": "PortraitMatte's foreground colour, for clean edges; estimated here when only a matte is given."})
REGIONS_INPUT = (FACE_REGIONS, {"tooltip": "FaceParse output for this image: its hair widens the matte's edge band where strands are."})


def _items(face_regions: Any, batch: int, height: int, width: int) -> list[ImageFaces | None]:
    if face_regions is None:
        return [None] * batch
    if not (hasattr(face_regions, "images") and hasattr(face_regions, "for_batch")):
        raise TypeError(f"face_regions must be FaceParse's FACE_REGIONS output, got {type(face_regions).__name__}")
    return list(face_regions.for_batch(batch, height, width))


def _sized_masks(mask: torch.Tensor | None, batch: int, height: int, width: int, what: str, node: str) -> torch.Tensor | None:
    masks = as_mask_batch(mask, batch)
    if masks is not None and tuple(masks.shape[1:]) != (height, width):
        raise ValueError(f"{node}: {what} is {masks.shape[2]}x{masks.shape[1]} but the IMAGE is {width}x{height}; they must be the same size")
    return masks


def _sized_images(image: torch.Tensor | None, batch: int, height: int, width: int, what: str, node: str) -> torch.Tensor | None:
    if image is None:
        return None
    # PortraitMatte's own output is float32 [B,H,W,3] already: no second full validation pass.
    valid = isinstance(image, torch.Tensor) and image.ndim == 4 and image.dtype == torch.float32 and image.shape[-1] >= 3
    images = (image if valid else as_image_batch(image))[..., :3]
    if images.shape[0] not in (1, batch):
        raise ValueError(f"{node}: {what} has {images.shape[0]} frames but the IMAGE batch has {batch}")
    if tuple(images.shape[1:3]) != (height, width):
        raise ValueError(f"{node}: {what} is {images.shape[2]}x{images.shape[1]} but the IMAGE is {width}x{height}")
    return images


class _MatteInputs:
    """Where each frame's matte comes from: a MASK given, the RGBA alpha, or made here."""

    def __init__(self, node: str, base: torch.Tensor, rgb: torch.Tensor, alpha_channel: torch.Tensor | None, *,
                 source: str = "auto", face_regions: Any = None, matte: torch.Tensor | None = None,
                 foreground: torch.Tensor | None = None, person_mask: torch.Tensor | None = None,
                 settings: MatteSettings | None = None) -> None:
        batch, height, width = rgb.shape[0], rgb.shape[1], rgb.shape[2]
        if source not in MATTE_SOURCES:
            raise ValueError(f"{node}: matte_from must be one of {', '.join(MATTE_SOURCES)}")
        if source == "image alpha" and alpha_channel is None:
            raise ValueError(f"{node}: matte_from 'image alpha' needs an RGBA image (this one has {base.shape[-1]} channel(s))")
        self.node, self.rgb, self.alpha_channel, self.source = node, rgb, alpha_channel, source
        self.items = _items(face_regions, batch, height, width)
        self.matte = _sized_masks(matte, batch, height, width, "matte", node)
        self.foreground = _sized_images(foreground, batch, height, width, "foreground", node)
        self.person = _sized_masks(person_mask, batch, height, width, "person_mask", node)
        self.settings = settings or MatteSettings()

    def frame(self, index: int) -> Matte:
        rgb = self.rgb[index]
        if self.matte is not None:
            alpha = self.matte[index]
            if self.foreground is not None:
                found = float((alpha > 0.5).to(torch.float32).mean()) >= MIN_PERSON_AREA
                foreground = self.foreground[min(index, self.foreground.shape[0] - 1)]
                return Matte(alpha=alpha.contiguous(), foreground=foreground, found=found, info={"source": "input"})
            return matte_from_alpha(rgb, alpha, self.settings)
        use_alpha = self.alpha_channel is not None and (
            self.source == "image alpha" or (self.source == "auto" and bool((self.alpha_channel[index] < 1.0).any()))
        )
        if use_alpha:
            return matte_from_alpha(rgb, self.alpha_channel[index], self.settings)
        person = None if self.person is None else self.person[index]
        return matte_frame(rgb, self.settings, item=self.items[index], person=person)


def _grouped(spec: tuple[Any, dict[str, Any]], group: str) -> tuple[Any, dict[str, Any]]:
    """A widget spec with the canvas's widget-group name (js/lib/groups.js reads ``group``)."""
    return (spec[0], {**spec[1], "group": group})


def _no_person(node: str, index: int) -> None:
    log.info("portrait_polish: %s: no person found in frame %d; passed through unchanged", node, index)


def _matte_settings(resolution: int, edge_band: float, hair_band: float, refine: bool) -> MatteSettings:
    return MatteSettings(work_px=int(resolution), band=float(edge_band), hair_band=float(hair_band), refine=bool(refine))


def _matte_widgets() -> dict[str, Any]:
    return {
        "resolution": int_widget(800, 256, 4096, "Long side (px) of the working copy the matte is solved on; the edge is then "
                                 "carried to full size along the photo's own edges. Higher = finer and slower.", step=16, group="Matte"),
        "edge_band": float_widget(1.2, 0.2, 5.0, 0.1, "Width of the uncertain band around the segmentation's edge that matting "
                                  "decides, in % of the long side (each way).", group="Matte"),
        "hair_band": float_widget(10.0, 0.0, 30.0, 0.5, "How far past the segmentation's edge stray hair is looked for, in % of "
                                  "the face size, where FaceParse found hair (needs face_regions).", group="Matte"),
        "refine": _grouped(bool_widget(True, "Refine the segmentation to the photo's edges with alpha matting. Off: the raw segmentation."), "Matte"),
    }


class PortraitMatte:
    """A soft person alpha that holds at hair, plus the person's own colour under it."""

    DESCRIPTION = (
        "Cuts the person out with a soft alpha: MediaPipe selfie segmentation (or your own person_mask, or an RGBA "
        "picture's alpha) gives a rough mask; a band around its edge, wider where FaceParse found hair, is decided by "
        "closed-form alpha matting (pymatting) on a working copy, then carried to full size along the photo's own "
        "edges. Also outputs the foreground colour (pymatting's multilevel estimate), so a new background shows no "
        "fringe of the old one. A frame with no person gives an empty matte (and a log line)."
    )
    CATEGORY = category("Background")
    FUNCTION = "matte"
    RETURN_TYPES = ("MASK", "IMAGE")
    RETURN_NAMES = ("alpha", "foreground")
    OUTPUT_TOOLTIPS = (
        "Person alpha, 0..1 (1 = person; exactly 1 inside, exactly 0 far outside).",
        "The person's colour with the old background taken out of the edge pixels (equal to the input where alpha is 1).",
    )

    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        return {
            "required": {
                "image": IMAGE_INPUT,
                "matte_from": _grouped(combo_widget(MATTE_SOURCES, "auto", "Where the rough person comes from: auto = an RGBA image's alpha "
                                           "when it has one, else the segmenter (or person_mask); 'image alpha' uses the "
                                           "alpha as the matte as it is."), "Source"),
                **_matte_widgets(),
            },
            "optional": {
                "face_regions": REGIONS_INPUT,
                "person_mask": ("MASK", {"tooltip": "A rough person mask to start from instead of the built-in segmenter (e.g. from another segmentation node)."}),
            },
        }

    def matte(self, image, matte_from: str, resolution: int, edge_band: float, hair_band: float, refine: bool,  # noqa: ANN001
              face_regions=None, person_mask=None) -> dict[str, Any]:  # noqa: ANN001
        base, rgb, _channels, alpha_channel = split_layout(image)
        inputs = _MatteInputs("PortraitMatte", base, rgb, alpha_channel, source=matte_from, face_regions=face_regions,
                              person_mask=person_mask, settings=_matte_settings(resolution, edge_band, hair_band, refine))

        def one(index: int, device: torch.device) -> Matte:
            del device  # pymatting runs on the CPU
            result = inputs.frame(index)
            if not result.found:
                log.info("portrait_polish: PortraitMatte: no person found in frame %d; its matte is empty", index)
            return result

        mattes = for_each_frame(rgb.shape[0], one, "PortraitMatte")
        alpha = stack_frames([m.alpha for m in mattes])
        foreground = stack_frames([m.foreground for m in mattes])
        ui: dict[str, Any] = {}
        if comfy.in_comfyui():  # the cut-out on mid grey, for the canvas comparer only
            shown = slice(0, 4)
            a = alpha[shown, ..., None]
            ui = compare_ui(rgb[shown], a * foreground[shown] + (1.0 - a) * 0.5)
        return {"ui": ui, "result": (alpha, foreground)}


class PortraitBokeh:
    """Lens blur of the background; the person untouched."""

    DESCRIPTION = (
        "Blurs the background like a fast lens: a disc aperture in linear light, clipped highlights bloom into discs, "
        "and the blur grows from the person's edge outward (or follows a depth MASK, white = near). The person is "
        "bit-exact where the matte is 1, and edges are composited with the matte's foreground colour, so there is "
        "no halo and no sharp fringe. Uses a matte you connect (PortraitMatte), an RGBA picture's alpha, or makes one. "
        "A frame with no person passes through unchanged (with a log line)."
    )
    CATEGORY = category("Background")
    FUNCTION = "blur"
    RETURN_TYPES = ("IMAGE",)
    RETURN_NAMES = ("image",)
    OUTPUT_TOOLTIPS = ("The photo with its background lens-blurred; the person's pixels where the matte is 1 are bit-exact.",)

    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        return {
            "required": {
                "image": IMAGE_INPUT,
                "blur": float_widget(2.0, 0.0, 10.0, 0.1, "Disc radius far behind the person, in % of the long side (2 % ≈ a "
                                     "portrait lens near f/2). 0 = no blur.", group="Blur"),
                "near_blur": float_widget(0.4, 0.0, 1.0, 0.05, "Blur right beside the person, as a share of the full blur "
                                          "(the background near the person is usually nearer the focus).", group="Blur"),
                "falloff": float_widget(20.0, 1.0, 100.0, 1.0, "Distance from the person, in % of the long side, over which the "
                                        "blur grows to full.", group="Blur"),
                "highlights": float_widget(1.0, 0.0, 3.0, 0.05, "How strongly clipped highlights (lights, sun glints) bloom into "
                                           "bright discs. 0 = plain blur.", group="Highlights"),
                "highlight_threshold": float_widget(0.9, 0.5, 0.99, 0.01, "Brightness (0..1) above which a point blooms.", group="Highlights"),
                "blur_resolution": int_widget(1280, 256, 4096, "Long side (px) of the working copy the blur is computed on "
                                              "(a blur has no fine detail; this bounds time and memory).", step=16, group="Size"),
            },
            "optional": {
                "matte": MATTE_INPUT,
                "foreground": FOREGROUND_INPUT,
                "face_regions": REGIONS_INPUT,
                "depth": ("MASK", {"tooltip": "A depth map (white = near, e.g. from a depth-estimation node); the blur then grows "
                                   "with distance behind the person instead of with distance from them."}),
            },
        }

    def blur(self, image, blur: float, near_blur: float, falloff: float, highlights: float, highlight_threshold: float,  # noqa: ANN001
             blur_resolution: int, matte=None, foreground=None, face_regions=None, depth=None) -> dict[str, Any]:  # noqa: ANN001
        base, rgb, channels, alpha_channel = split_layout(image)
        batch, height, width = rgb.shape[0], rgb.shape[1], rgb.shape[2]
        settings = BokehSettings(blur=float(blur), near=float(near_blur), falloff=float(falloff), highlights=float(highlights),
                                 threshold=float(highlight_threshold), work_px=int(blur_resolution))
        inputs = _MatteInputs("PortraitBokeh", base, rgb, alpha_channel, face_regions=face_regions, matte=matte, foreground=foreground)
        depths = _sized_masks(depth, batch, height, width, "depth", "PortraitBokeh")

        def one(index: int, device: torch.device) -> torch.Tensor:
            if settings.blur <= 0:
                return rgb[index]
            result = inputs.frame(index)
            if not result.found:
                _no_person("PortraitBokeh", index)
                return rgb[index]
            return bokeh_frame(rgb[index], result.alpha, result.foreground, settings,
                               depth=None if depths is None else depths[index], device=device)

        frames = for_each_frame(batch, one, "PortraitBokeh", comfy.torch_device())
        if all(frame is rgb[i] for i, frame in enumerate(frames)):
            return {"ui": compare_ui(base, base), "result": (base,)}
        result = restore_layout(base, rgb, stack_frames(frames), channels, alpha_channel)
        return {"ui": compare_ui(base, result), "result": (result,)}


class BackgroundReplace:
    """A new background behind the person: solid colour, studio backdrop or another picture."""

    DESCRIPTION = (
        "Puts the person on a new background: a solid colour, a studio backdrop (the colour with a soft glow behind the "
        "person and a vignette, like a lit paper roll) or another IMAGE scaled to cover the frame. Edges use the matte's "
        "foreground colour, so no trace of the old background is left; optional light wrap lets the new background's "
        "light spill over the edge. Uses a matte you connect (PortraitMatte), an RGBA picture's alpha, or makes one. "
        "A frame with no person passes through, or becomes all background if you ask (if_no_person). Output is RGB."
    )
    CATEGORY = category("Background")
    FUNCTION = "replace"
    RETURN_TYPES = ("IMAGE",)
    RETURN_NAMES = ("image",)
    OUTPUT_TOOLTIPS = ("The person over the new background (RGB); pixels where the matte is 1 are the input's, bit-exact.",)

    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        return {
            "required": {
                "image": IMAGE_INPUT,
                "background": _grouped(combo_widget(list(BACKDROPS), "studio gradient", "solid colour, studio gradient (colour + glow + "
                                           "vignette) or image (background_image, scaled to cover)."), "Backdrop"),
                "colour": ("STRING", {"default": "#8c8f93", "tooltip": "Backdrop colour: #rrggbb, #rgb, 'r, g, b' (0-255), or "
                                      "white / black / grey. Studio grey is #8c8f93.", "group": "Backdrop"}),
                "glow": float_widget(0.4, 0.0, 1.0, 0.05, "Studio gradient: the lit spot behind the person (up to +15 L*).", group="Studio light"),
                "vignette": float_widget(0.35, 0.0, 1.0, 0.05, "Studio gradient: darker corners (up to −20 L*).", group="Studio light"),
                "light_wrap": float_widget(0.0, 0.0, 1.0, 0.05, "Let the new background's light spill over the person's edge "
                                           "(0 = off); blends the cut-out into its new light.", group="Edge"),
                "if_no_person": _grouped(combo_widget(NO_PERSON, "pass through", "A frame where no person is found: pass it through "
                                             "unchanged, or make it all background."), "No person"),
            },
            "optional": {
                "matte": MATTE_INPUT,
                "foreground": FOREGROUND_INPUT,
                "face_regions": REGIONS_INPUT,
                "background_image": ("IMAGE", {"tooltip": "The picture to put behind the person when background = image (one, or one per frame)."}),
            },
        }

    def replace(self, image, background: str, colour: str, glow: float, vignette: float, light_wrap: float,  # noqa: ANN001
                if_no_person: str, matte=None, foreground=None, face_regions=None, background_image=None) -> dict[str, Any]:  # noqa: ANN001
        base, rgb, _channels, alpha_channel = split_layout(image)
        batch = rgb.shape[0]
        if if_no_person not in NO_PERSON:
            raise ValueError(f"BackgroundReplace: if_no_person must be one of {', '.join(NO_PERSON)}")
        settings = BackdropSettings(kind=background, colour=colour, glow=float(glow), vignette=float(vignette), light_wrap=float(light_wrap))
        pictures = None
        if background_image is not None:
            pictures = as_image_batch(background_image)[..., :3]
            if pictures.shape[0] not in (1, batch):
                raise ValueError(f"BackgroundReplace: background_image has {pictures.shape[0]} frames but the IMAGE batch has {batch}")
        if settings.kind == "image" and pictures is None:
            raise ValueError("BackgroundReplace: background 'image' needs the background_image input connected")
        inputs = _MatteInputs("BackgroundReplace", base, rgb, alpha_channel, face_regions=face_regions, matte=matte, foreground=foreground)

        def one(index: int, device: torch.device) -> torch.Tensor:
            del device
            result = inputs.frame(index)
            picture = None if pictures is None else pictures[min(index, pictures.shape[0] - 1)]
            alpha, fg = result.alpha, result.foreground
            if not result.found:
                if if_no_person == "pass through":
                    _no_person("BackgroundReplace", index)
                    return rgb[index]
                log.info("portrait_polish: BackgroundReplace: no person in frame %d; it becomes all background", index)
                alpha = torch.zeros_like(alpha)
            return replace_frame(rgb[index], alpha, fg, settings, picture)

        out = stack_frames(for_each_frame(batch, one, "BackgroundReplace"))
        return {"ui": compare_ui(rgb, out), "result": (out,)}


register(NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS, PortraitMatte, "PortraitMatte")
register(NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS, PortraitBokeh, "PortraitBokeh")
register(NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS, BackgroundReplace, "BackgroundReplace")
