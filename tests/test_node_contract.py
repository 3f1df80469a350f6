"""Every registered node, checked the way ComfyUI uses it (covers nodes added later too)."""

from __future__ import annotations

import importlib

import pytest
import torch
from helpers import astronaut, load_pack_as_comfyui
from node_contract import TYPE_FACTORIES, call_node, check_outputs, contract_problems, default_inputs

PACK = load_pack_as_comfyui()
NODE_IDS = sorted(PACK.NODE_CLASS_MAPPINGS)


def _image() -> torch.Tensor:
    return astronaut()


TYPE_FACTORIES.setdefault("IMAGE", _image)
TYPE_FACTORIES.setdefault("MASK", lambda: torch.zeros(1, 512, 512))


def _face_regions():
    """A real FaceParse result for the astronaut (one face)."""
    from portrait_polish.core.parse import parse_faces

    return parse_faces(astronaut())


TYPE_FACTORIES.setdefault("FACE_REGIONS", _face_regions)


def _photo_info():
    """What LoadPhoto outputs for a plain 8-bit PNG."""
    return importlib.import_module(f"{PACK.__name__}.core.photo_io").PhotoInfo(format="PNG", mode="RGB", bit_depth=8)


TYPE_FACTORIES.setdefault("PHOTO_INFO", _photo_info)


@pytest.fixture(autouse=True, scope="module")
def _file_folders(tmp_path_factory):
    """Input / output / temp folders for the file nodes (LoadPhoto lists the input folder's
    photos; SavePhoto writes into the output folder), as ComfyUI or the runner gives them."""
    from PIL import Image

    root = tmp_path_factory.mktemp("io")
    for kind in ("input", "output", "temp"):
        (root / kind).mkdir()
    Image.fromarray((astronaut()[0].numpy() * 255).round().astype("uint8")).save(root / "input" / "example.png")
    comfy = importlib.import_module(f"{PACK.__name__}.core.comfy")
    token = comfy.use_io_directories(root / "input", root / "output", root / "temp")
    yield root
    comfy.reset_io_directories(token)


def test_pack_exports_v1_registration():
    assert isinstance(PACK.NODE_CLASS_MAPPINGS, dict)
    assert isinstance(PACK.NODE_DISPLAY_NAME_MAPPINGS, dict)
    assert PACK.WEB_DIRECTORY == "./js"
    assert set(PACK.NODE_DISPLAY_NAME_MAPPINGS) <= set(PACK.NODE_CLASS_MAPPINGS)


@pytest.mark.parametrize("node_id", NODE_IDS)
def test_node_declaration(node_id):
    cls = PACK.NODE_CLASS_MAPPINGS[node_id]
    assert contract_problems(node_id, cls, PACK.NODE_DISPLAY_NAME_MAPPINGS.get(node_id)) == []


@pytest.mark.parametrize("node_id", NODE_IDS)
def test_node_runs_with_default_inputs(node_id):
    cls = PACK.NODE_CLASS_MAPPINGS[node_id]
    inputs = default_inputs(cls)
    result = call_node(cls, **inputs)
    assert check_outputs(cls, result) == []
    if cls.CATEGORY.endswith("/Retouch"):
        # A retouch node at its defaults on a real parsed face (the astronaut's smile shows
        # her teeth) makes a real edit, inside the face's crop only.
        image, out = inputs["image"], result[0]
        assert not torch.equal(out, image), f"{node_id} changed nothing at its defaults"
        changed = (out != image).any(-1)[0]
        x0, y0, x1, y1 = inputs["face_regions"].images[0].faces[0].crop
        inside = torch.zeros_like(changed)
        inside[y0:y1, x0:x1] = True
        assert not bool(changed[~inside].any()), f"{node_id} changed pixels outside the face crop"
