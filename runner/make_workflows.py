"""Write the bundled workflows: ``workflows/ui/<name>.json`` (UI format, for the canvas),
``workflows/api/<name>.json`` (API format, for the runner) and ``example_workflows/``
(UI format plus a ``.jpg`` thumbnail, served by ComfyUI as templates).

The UI files sit in a sub-folder on purpose: ComfyUI also lists ``<pack>/workflows/*.json``
as templates, so files directly in ``workflows/`` would show up twice in its menu.

    python -m portrait_polish.runner.make_workflows            # rewrite all
    python -m portrait_polish.runner.make_workflows --check    # fail if a file is out of date

Widget order and defaults come from the pack's own node definitions, so after a node gains
or changes an input, run this again. Thumbnails show each workflow's before/after on
scikit-image's public-domain astronaut (a dev extra), never on other photos.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import uuid
from pathlib import Path
from typing import Any

from .builder import NodeSpec, build
from .objectinfo import input_specs, local_object_info

# The front-end wants a UUID in a UI workflow's "id" (it warns on anything else); one derived
# from the workflow's name keeps the generated files stable.
WORKFLOW_NAMESPACE = uuid.UUID("5f1d3c2a-7b0e-4c59-9a63-3e1f6b2d8a40")

PACK_ROOT = Path(__file__).resolve().parent.parent
WORKFLOWS = PACK_ROOT / "workflows"
EXAMPLES = PACK_ROOT / "example_workflows"
P = "PortraitPolish"
SAMPLE_IMAGE = "example.png"  # ComfyUI ships input/example.png, so templates open without a missing file


def _models_for(plain_name: str, chosen: list[str] = ()) -> list[dict[str, str]]:
    """properties.models for a node: its required models that ComfyUI can download as a
    plain file (not those shipped inside a pip package or as an archive), plus chosen files."""
    from ..core.models import registry

    entries = []
    for spec in registry().values():
        wanted = (plain_name in spec.nodes and spec.required) or spec.filename in chosen
        if wanted and not spec.archive and not spec.bundled_in:
            entries.append({"name": spec.filename, "url": spec.url, "directory": spec.folder})
    return entries


def _socket(info: dict[str, Any], kind: str) -> str | None:
    return next((s.name for s in input_specs(info) if s.type == kind and not s.is_widget), None)


# Settings per preset; anything not named keeps the node's default. Names are checked
# against the node definitions when the files are written.
PRESETS: dict[str, dict[str, dict[str, Any]]] = {
    "natural_headshot": {},  # every node at its defaults: the defaults ARE the natural look
    "profile_photo": {
        "TextureSafeSmooth": {"strength": 0.2, "dodge_burn": 0.3, "heal_acne_marks": False},
        "TeethWhiten": {"strength": 0.3, "brighten": 0.3},
        "EyeEnhance": {"whites": 0.3, "iris_clarity": 0.3, "catchlight": 0.15},
    },
    "polished": {
        "TextureSafeSmooth": {"strength": 0.8, "dodge_burn": 0.7, "shine_reduction": 0.4, "heal_acne_marks": True},
        "TeethWhiten": {"strength": 0.8, "brighten": 0.7},
        "EyeEnhance": {"whites": 0.75, "iris_clarity": 0.7, "iris_saturation": 0.2, "catchlight": 0.5, "under_eye": 0.4},
        "IdentityGuard": {"action": "blend"},
    },
    # For print: 2x with Real-ESRGAN's general v3 model (4.9 MB, made for real photos, runs on
    # CPU; downloaded on first use); swap in RealESRGAN_x4plus.pth in the canvas for the
    # heavier general-photo model. Not the anime model: it paints portraits flat.
    "upscale": {"Upscale": {"model_name": "realesr-general-x4v3.pth", "scale_mode": "factor", "factor": 2.0}},
    "batch": {"IdentityGuard": {"action": "original"}},
    # LinkedIn / ID headshots: a mid-grey paper backdrop, softly lit behind the head.
    "studio_backdrop": {"BackgroundReplace": {"background": "studio gradient", "colour": "#8c8f93", "glow": 0.4, "vignette": 0.35}},
    "bokeh": {"PortraitBokeh": {}},  # the defaults: about f/2 on a portrait lens
}


def _chain(object_info: dict[str, Any], stages: list[str], values: dict[str, dict[str, Any]], *, guard: bool = True,
           upscale: dict[str, Any] | None = None, prefix: str = "portrait_polish/retouched") -> list[NodeSpec]:
    # The pack's photo loader and saver: 16-bit files stay 16-bit, the ICC profile and EXIF/XMP/IPTC are kept.
    nodes = [NodeSpec("load", f"{P}LoadPhoto", values={"image": SAMPLE_IMAGE}, title="Portrait")]
    parse_values = dict(values.get("FaceParse", {}))
    if any(spec.name == "bisenet_model" for spec in input_specs(object_info[f"{P}FaceParse"])):
        # Pinned: the dropdown's default is whatever file the machine has first.
        parse_values.setdefault("bisenet_model", "parsing_bisenet.pth")
    nodes.append(NodeSpec("parse", f"{P}FaceParse", links={"image": ("load", "IMAGE")}, values=parse_values,
                          models=_models_for("FaceParse")))
    previous, previous_output = "load", "IMAGE"
    for stage in stages:
        class_type = f"{P}{stage}"
        info = object_info[class_type]
        links = {_socket(info, "IMAGE"): (previous, previous_output)}
        regions = _socket(info, "FACE_REGIONS")
        if regions:
            links[regions] = ("parse", "face_regions")
        nodes.append(NodeSpec(stage, class_type, links=links, values=values.get(stage, {}), models=_models_for(stage) or None))
        previous, previous_output = stage, "IMAGE"
    if guard:
        nodes.append(NodeSpec("guard", f"{P}IdentityGuard", values=values.get("IdentityGuard", {}),
                              links={"original": ("load", "IMAGE"), "retouched": (previous, previous_output),
                                     "face_regions": ("parse", "face_regions")},
                              models=_models_for("IdentityGuard") or None))
        previous, previous_output = "guard", "image"
    if upscale is not None:
        chosen = [v for v in upscale.values() if isinstance(v, str)]
        nodes.append(NodeSpec("upscale", f"{P}Upscale", links={_socket(object_info[f"{P}Upscale"], "IMAGE"): (previous, previous_output)},
                              values=upscale, models=_models_for("Upscale", chosen) or None))
        previous, previous_output = "upscale", "IMAGE"
    nodes.append(NodeSpec("save", f"{P}SavePhoto", values={"filename_prefix": prefix},
                          links={"images": (previous, previous_output), "photo_info": ("load", "photo_info"), "mask": ("load", "mask")}))
    return nodes


def _background_chain(object_info: dict[str, Any], kind: str) -> list[NodeSpec]:
    """``studio``: the natural polish, checked by IdentityGuard, on a grey studio backdrop;
    ``bokeh``: the photo as it is, its background lens-blurred. Both matte the person once
    (PortraitMatte, with FaceParse's hair) and hand the matte to the background node."""
    if kind == "studio":
        nodes = [n for n in _chain(object_info, ["TextureSafeSmooth", "TeethWhiten", "EyeEnhance"], {}, prefix="") if n.key != "save"]
        source = ("guard", "image")
    else:
        nodes = [NodeSpec("load", "LoadImage", values={"image": SAMPLE_IMAGE}, title="Portrait"),
                 NodeSpec("parse", f"{P}FaceParse", links={"image": ("load", "IMAGE")}, models=_models_for("FaceParse"),
                          values={"bisenet_model": "parsing_bisenet.pth"}
                          if any(s.name == "bisenet_model" for s in input_specs(object_info[f"{P}FaceParse"])) else {})]
        source = ("load", "IMAGE")
    nodes.append(NodeSpec("matte", f"{P}PortraitMatte", links={"image": source, "face_regions": ("parse", "face_regions")}))
    matte_links = {"image": source, "matte": ("matte", "alpha"), "foreground": ("matte", "foreground")}
    if kind == "studio":
        nodes.append(NodeSpec("backdrop", f"{P}BackgroundReplace", links=matte_links, values=PRESETS["studio_backdrop"]["BackgroundReplace"]))
        last, prefix = "backdrop", "portrait_polish/studio"
    else:
        nodes.append(NodeSpec("bokeh", f"{P}PortraitBokeh", links=matte_links, values=PRESETS["bokeh"]["PortraitBokeh"]))
        last, prefix = "bokeh", "portrait_polish/bokeh"
    nodes.append(NodeSpec("save", "SaveImage", links={"images": (last, "image")}, values={"filename_prefix": prefix}))
    return nodes


def workflow_specs(object_info: dict[str, Any]) -> dict[str, tuple[list[NodeSpec], str]]:
    """name -> (nodes, note shown on the canvas)."""
    all_stages = ["TextureSafeSmooth", "TeethWhiten", "EyeEnhance"]
    run_hint = "Headless: portrait-polish run {name} photos/ -o out   (add --server http://HOST:8188 to use a ComfyUI server)"
    specs = {
        "natural_headshot": (
            _chain(object_info, all_stages, PRESETS["natural_headshot"]),
            "Natural headshot polish (the default): skin evened with pores kept, teeth a little whiter, eyes a "
            "little brighter; IdentityGuard compares the result with the original and reports the similarity.",
        ),
        "profile_photo": (
            _chain(object_info, all_stages, PRESETS["profile_photo"], prefix="portrait_polish/profile"),
            "Profile photo: the subtle preset. Lighter skin work, gentle teeth and eyes; for LinkedIn-style photos "
            "that must look untouched.",
        ),
        "polished": (
            _chain(object_info, all_stages, PRESETS["polished"], prefix="portrait_polish/polished"),
            "Polished: the stronger preset for editorial looks. IdentityGuard blends the retouch back wherever it "
            "would change who the person is.",
        ),
        "skin_only": (
            _chain(object_info, ["TextureSafeSmooth"], PRESETS["natural_headshot"], prefix="portrait_polish/skin"),
            "Skin only: texture-safe smoothing (pores, freckles and moles kept), nothing else.",
        ),
        "teeth_and_eyes": (
            _chain(object_info, ["TeethWhiten", "EyeEnhance"], PRESETS["natural_headshot"], prefix="portrait_polish/teeth_eyes"),
            "Teeth and eyes only: whiter teeth within natural limits, brighter eye whites, clearer irises; skin untouched.",
        ),
        "polish_upscale_print": (
            _chain(object_info, all_stages, PRESETS["natural_headshot"], upscale=PRESETS.get("upscale", {}).get("Upscale", {}),
                   prefix="portrait_polish/print"),
            "Polish, then upscale for print: the natural polish, checked by IdentityGuard at the original size, "
            "then Real-ESRGAN upscaling (tiled, bounded memory).",
        ),
        "batch_folder": (
            _chain(object_info, all_stages, {**PRESETS["natural_headshot"], **PRESETS.get("batch", {})}, prefix="portrait_polish/batch"),
            "Batch folder: the natural polish for unattended runs over a folder. IdentityGuard outputs the ORIGINAL "
            "photo for any face that fails the check, so nothing drifted is ever delivered; its report lands in each "
            "output's sidecar JSON. " + run_hint.format(name="batch_folder"),
        ),
        "headshot_studio_backdrop": (
            _background_chain(object_info, "studio"),
            "Headshot on a studio backdrop: the natural polish, checked by IdentityGuard, then the person is matted "
            "(hair included) and put on a grey paper backdrop with a soft glow behind the head. Change the colour on "
            "BackgroundReplace (#rrggbb), or pick 'solid colour' or 'image'.",
        ),
        "portrait_bokeh": (
            _background_chain(object_info, "bokeh"),
            "Portrait bokeh: the photo untouched, its background lens-blurred (disc aperture, highlights bloom, blur "
            "grows away from the person). Raise 'blur' for a faster lens; connect a depth map to 'depth' to blur by "
            "distance.",
        ),
    }
    return {name: (nodes, note if name == "batch_folder" else f"{note}\n\n{run_hint.format(name=name)}") for name, (nodes, note) in specs.items()}


# Thumbnail crops of the astronaut (left, top, right, bottom): the face for the retouch
# workflows; the whole frame where the background is the point.
THUMBNAIL_CROPS: dict[str, tuple[int, int, int, int]] = {"headshot_studio_backdrop": (0, 0, 512, 512), "portrait_bokeh": (0, 0, 512, 512)}
FACE_CROP = (120, 10, 320, 210)


def render(object_info: dict[str, Any] | None = None) -> dict[str, tuple[dict[str, Any], dict[str, Any]]]:
    object_info = object_info or local_object_info()
    out = {}
    for name, (nodes, note) in workflow_specs(object_info).items():
        ui, api = build(nodes, object_info, note=note, workflow_id=str(uuid.uuid5(WORKFLOW_NAMESPACE, name)))
        out[name] = (ui, api)
    return out


def _dump(data: Any) -> str:
    return json.dumps(data, indent=2) + "\n"


def thumbnail(ui: dict[str, Any], path: Path, crop: tuple[int, int, int, int] = FACE_CROP) -> None:
    """Before | after on the astronaut, 512x256 JPEG."""
    import numpy as np
    from PIL import Image
    from skimage import data

    from .batch import run_workflow

    with tempfile.TemporaryDirectory() as tmp:
        sample = Path(tmp) / "astronaut.png"
        Image.fromarray(data.astronaut()).save(sample)
        summary = run_workflow(ui, sample, Path(tmp) / "out", name="thumb")
        job = summary.jobs[0]
        if job.status != "done":
            raise RuntimeError(f"thumbnail run failed: {job.message}")
        after = Image.open(Path(tmp) / "out" / job.outputs[0]).convert("RGB")
        before = Image.open(sample).convert("RGB")
    after = after.resize(before.size, Image.LANCZOS)  # the print workflow upscales
    face = crop  # by default the astronaut's face, so the retouch is visible at thumbnail size
    side = 256
    canvas = Image.new("RGB", (2 * side, side))
    canvas.paste(before.crop(face).resize((side, side), Image.LANCZOS), (0, 0))
    canvas.paste(after.crop(face).resize((side, side), Image.LANCZOS), (side, 0))
    pixels = np.asarray(canvas).copy()
    pixels[:, side - 1 : side + 1] = 255  # a thin divider
    Image.fromarray(pixels).save(path, quality=88)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="only report files that differ")
    parser.add_argument("--no-thumbnails", action="store_true")
    parser.add_argument("--only", action="append", default=[], metavar="NAME",
                        help="write only this workflow (and its thumbnail); repeatable")
    args = parser.parse_args(argv)
    stale = []
    for name, (ui, api) in render().items():
        if args.only and name not in args.only:
            continue
        files = {WORKFLOWS / "ui" / f"{name}.json": _dump(ui), WORKFLOWS / "api" / f"{name}.json": _dump(api),
                 EXAMPLES / f"{name}.json": _dump(ui)}
        for path, text in files.items():
            if not path.exists() or path.read_text() != text:
                stale.append(path)
                if not args.check:
                    path.parent.mkdir(parents=True, exist_ok=True)
                    path.write_text(text)
        if not args.check and not args.no_thumbnails:
            thumbnail(ui, EXAMPLES / f"{name}.jpg", THUMBNAIL_CROPS.get(name, FACE_CROP))
    for path in stale:
        print(("out of date: " if args.check else "wrote ") + str(path))
    return 1 if args.check and stale else 0


if __name__ == "__main__":
    sys.exit(main())
