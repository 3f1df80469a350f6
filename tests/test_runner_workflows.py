"""The bundled workflows: UI and API files agree (UI -> API conversion equals the shipped API
file), example_workflows/ mirrors them with thumbnails and model download entries, and every
workflow runs end to end in-process on a real portrait, with a sidecar that carries the
IdentityGuard report and the models used."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from portrait_polish.runner.batch import Batch
from portrait_polish.runner.engine_local import InProcessEngine
from portrait_polish.runner.objectinfo import local_object_info
from portrait_polish.runner.workflow import load_json, loader_nodes, ui_to_api, validate_graph

REPO = Path(__file__).resolve().parent.parent
# Ordered so each run shares the most nodes with the one before (the engine keeps the last run's outputs).
NAMES = ["natural_headshot", "batch_folder", "polish_upscale_print", "skin_only", "profile_photo", "polished", "teeth_and_eyes",
         "headshot_studio_backdrop", "portrait_bokeh"]
# These change the background on purpose (a new backdrop, a lens blur): judged on the person.
BACKGROUND = {"headshot_studio_backdrop", "portrait_bokeh"}
UNGUARDED = {"portrait_bokeh"}  # the photo is not retouched, so there is no IdentityGuard


def offline_sets(name: str) -> list[str]:
    """The print workflow ships with realesr-general-x4v3 (downloaded on first use); tests run
    offline, so they swap in the Real-ESRGAN compact model that ../shared/models has."""
    return ["Upscale.model_name=realesr-animevideov3.pth"] if name == "polish_upscale_print" else []


def _models_by_folder(tmp_path_factory) -> Path:
    """The shared models arranged as <folder>/<file> (the layout ComfyUI uses), so each model
    dropdown lists only its own folder's files."""
    from helpers import SHARED_MODELS, require_shared

    from portrait_polish.core.models import registry

    require_shared(SHARED_MODELS)
    root = tmp_path_factory.mktemp("models")
    for spec in registry().values():
        source = SHARED_MODELS / spec.filename
        if source.exists():
            (root / spec.folder).mkdir(exist_ok=True)
            (root / spec.folder / spec.filename).symlink_to(source)
    return root


@pytest.fixture(scope="module")
def object_info(tmp_path_factory):
    mp = pytest.MonkeyPatch()
    mp.setenv("PORTRAIT_POLISH_MODELS", str(_models_by_folder(tmp_path_factory)))
    yield local_object_info()
    mp.undo()


@pytest.fixture(scope="module")
def engine(tmp_path_factory, object_info):
    mp = pytest.MonkeyPatch()
    mp.setenv("PORTRAIT_POLISH_MODELS", str(_models_by_folder(tmp_path_factory)))
    eng = InProcessEngine()
    yield eng
    eng.close()
    mp.undo()


def test_every_workflow_is_shipped_in_both_formats_and_as_a_template():
    assert sorted(p.stem for p in (REPO / "workflows" / "ui").glob("*.json")) == sorted(NAMES)
    # ComfyUI lists <pack>/workflows/*.json as templates too: keep that level empty (no duplicates).
    assert not list((REPO / "workflows").glob("*.json"))
    assert sorted(p.stem for p in (REPO / "workflows" / "api").glob("*.json")) == sorted(NAMES)
    for name in NAMES:
        assert load_json(REPO / "example_workflows" / f"{name}.json") == load_json(REPO / "workflows" / "ui" / f"{name}.json")
        with Image.open(REPO / "example_workflows" / f"{name}.jpg") as thumb:
            assert thumb.format == "JPEG" and min(thumb.size) >= 128


@pytest.mark.parametrize("name", NAMES)
def test_ui_converts_to_the_shipped_api_file(name, object_info):
    ui = load_json(REPO / "workflows" / "ui" / f"{name}.json")
    api = load_json(REPO / "workflows" / "api" / f"{name}.json")
    assert ui_to_api(ui, object_info) == api
    validate_graph(api, object_info, skip={(nid, "image") for nid in loader_nodes(api)})


def test_ui_files_carry_the_models_their_nodes_need():
    from portrait_polish.core.models import registry

    by_file = {spec.filename: spec for spec in registry().values()}
    for name in NAMES:
        ui = load_json(REPO / "workflows" / "ui" / f"{name}.json")
        parse = next(n for n in ui["nodes"] if n["type"] == "PortraitPolishFaceParse")
        listed = {m["name"] for m in parse["properties"]["models"]}
        assert {"face_detection_yunet_2026may.onnx", "face_landmarker.task", "selfie_segmentation.tflite"} <= listed
        for node in ui["nodes"]:
            for model in node.get("properties", {}).get("models", []):
                spec = by_file[model["name"]]
                assert model == {"name": spec.filename, "url": spec.url, "directory": spec.folder}
        upscalers = [n for n in ui["nodes"] if n["type"] == "PortraitPolishUpscale"]
        for node in upscalers:
            chosen = {v for v in node["widgets_values"] if isinstance(v, str) and v in by_file}
            assert chosen and chosen <= {m["name"] for m in node["properties"]["models"]}


def _photo(tmp_path: Path, name: str, max_side: int) -> Path:
    from helpers import portrait

    frame = (portrait(name, max_side)[0].numpy() * 255).round().astype(np.uint8)
    path = tmp_path / f"{Path(name).stem}.png"
    Image.fromarray(frame).save(path)
    return path


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float("inf") if mse == 0 else 10 * np.log10(255.0**2 / mse)


@pytest.fixture(scope="module")
def photo(tmp_path_factory) -> Path:
    # One file for every workflow: the shared engine then reuses the nodes the workflows
    # have in common (LoadImage, FaceParse, ...), as its cache promises.
    return _photo(tmp_path_factory.mktemp("photo"), "biden_2.jpg", 384)  # smiling, teeth visible


@pytest.mark.parametrize("name", NAMES)
def test_workflow_runs_in_process_on_a_real_portrait(name, engine, photo, tmp_path):
    image = photo
    workflow = REPO / "workflows" / ("api" if name != "natural_headshot" else "ui") / f"{name}.json"
    with Batch(workflow, tmp_path / "out", engine=engine, progress=False, sets=offline_sets(name)) as batch:
        batch.add(image)
        summary = batch.run()
    job = summary.jobs[0]
    assert job.status == "done", job.message
    assert job.outputs == [f"biden_2_{name}.png"]
    before = np.asarray(Image.open(image))
    after = np.asarray(Image.open(tmp_path / "out" / job.outputs[0]))
    scale = 1
    if name == "polish_upscale_print":
        scale = after.shape[0] // before.shape[0]
        assert scale >= 2 and after.shape[:2] == (before.shape[0] * scale, before.shape[1] * scale)
        after = np.asarray(Image.fromarray(after).resize(before.shape[1::-1], Image.LANCZOS))
    else:
        assert after.shape == before.shape
    # A retouch, not a different picture: changed, but close to the original overall.
    assert not np.array_equal(before, after)
    assert _psnr(before, after) > (12 if name in BACKGROUND else 22 if scale > 1 else 30)
    if name in BACKGROUND:  # the middle of the frame (the face) stays close to the original
        h, w = before.shape[:2]
        assert _psnr(before[h // 4 : h // 2, w // 3 : 2 * w // 3], after[h // 4 : h // 2, w // 3 : 2 * w // 3]) > 30
    sidecar = json.loads((tmp_path / "out" / job.sidecars[0]).read_text())
    assert sidecar["workflow"]["name"] == name
    if name in UNGUARDED:
        assert not sidecar.get("identity_guard")
        return
    (guard,) = sidecar["identity_guard"]
    faces = guard["portrait_polish_identity"]
    # Each face passes, or (polished: action blend) is blended back until it does.
    assert faces and all(max(face["score"], face.get("final_score") or 0.0) >= 0.75 for face in faces if face["status"] == "matched")
    blended_back = all(face["action"] == "blend" and face["final_score"] >= 0.75 for face in faces if face["status"] == "matched" and face["score"] < 0.75)
    assert guard["passed"] == [True] or guard["passed"] is True or (name == "polished" and blended_back)
    model_ids = {m["id"] for m in sidecar["models"]}
    assert {"yunet", "face_landmarker", "dlib_resnet"} <= model_ids
    assert all(m["sha256"] is None or len(m["sha256"]) == 64 for m in sidecar["models"])


def test_a_portrait_polish_graph_records_its_guard_report(engine, photo, tmp_path):
    """The all-in-one node runs IdentityGuard inside: its report reaches the sidecar as a
    guard's does (from the node's UI outputs, which is all a server's history carries)."""
    graph = {
        "1": {"class_type": "PortraitPolishLoadPhoto", "inputs": {"image": "x.png", "to_srgb": False}},
        "2": {"class_type": "PortraitPolishPortraitPolish", "inputs": {"image": ["1", 0], "prompt": "natural retouch"}},
        "3": {"class_type": "SaveImage", "inputs": {"images": ["2", 0], "filename_prefix": "words"}},
    }
    with Batch(graph, tmp_path / "out", engine=engine, progress=False, name="words") as batch:
        batch.add(photo)
        summary = batch.run()
    job = summary.jobs[0]
    assert job.status == "done", job.message
    (guard,) = json.loads((tmp_path / "out" / job.sidecars[0]).read_text())["identity_guard"]
    assert guard["node"] == "2" and "portrait_polish_plan" not in guard
    report = guard["report"]
    assert report["schema"] == "portrait_polish.identity/1" and report["passed"] is True
    matched = [face for face in report["frames"][0]["faces"] if face["status"] == "matched"]
    assert matched and all(face["score"] >= 0.75 for face in matched)
