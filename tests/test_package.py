"""Packaging and registry checks: models.json schema and checksums, pyproject vs
requirements.txt, the one-OpenCV rule, the wheel's contents, and that importing the pack
(as ComfyUI does) touches no network, model file or subprocess."""

from __future__ import annotations

import importlib.metadata
import json
import os
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from helpers import REPO_ROOT, SHARED_MODELS

from portrait_polish.core import models
from portrait_polish.core.download import file_sha256

try:  # Python 3.11+
    import tomllib
except ModuleNotFoundError:  # pragma: no cover - Python 3.10
    tomllib = pytest.importorskip("tomli")

PYPROJECT = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text(encoding="utf-8"))
RAW_MODELS = json.loads((REPO_ROOT / "models.json").read_text(encoding="utf-8"))["models"]
BANNED = {"torchvision", "basicsr", "facexlib", "realesrgan"}
# The node display names of the issue (nodes that exist later are added from the pack).
KNOWN_NODES = {"FaceParse", "TextureSafeSmooth", "TeethWhiten", "EyeEnhance", "IdentityGuard", "Upscale"}
REQUIRED_KEYS = {"id", "filename", "url", "sha256", "size", "license", "commercial_use", "folder", "nodes", "required"}


def _dist_name(requirement: str) -> str:
    return re.split(r"[<>=!~;\[ ]", requirement.strip(), maxsplit=1)[0].lower().replace("_", "-")


# --- models.json --------------------------------------------------------------------------


@pytest.mark.parametrize("entry", RAW_MODELS, ids=[e.get("id", "?") for e in RAW_MODELS])
def test_models_json_entry_schema(entry):
    assert REQUIRED_KEYS <= set(entry), f"missing keys: {REQUIRED_KEYS - set(entry)}"
    assert re.fullmatch(r"[a-z0-9_]+", entry["id"])
    assert entry["url"].startswith(("https://", "http://")), entry["url"]
    assert re.fullmatch(r"[0-9a-f]{64}", entry["sha256"]), f"{entry['id']}: sha256 is {entry['sha256']!r}"
    assert isinstance(entry["size"], int) and entry["size"] > 0, f"{entry['id']}: size is {entry['size']!r}"
    assert isinstance(entry["license"], str) and entry["license"].strip()
    assert isinstance(entry["commercial_use"], bool)
    if not entry["commercial_use"]:
        text = (entry["license"] + " " + entry.get("description", "")).lower()
        assert "non-commercial" in text or "noncommercial" in text, "say plainly that the licence is non-commercial"
    assert entry["folder"] in models.FOLDER_EXTENSIONS, f"unknown folder type {entry['folder']!r}"
    # The file must show in ComfyUI's list for its folder type.
    assert Path(entry["filename"]).suffix in models.FOLDER_EXTENSIONS[entry["folder"]]
    assert Path(entry["filename"]).name == entry["filename"]
    assert isinstance(entry["nodes"], list) and entry["nodes"]
    assert isinstance(entry["required"], bool)
    assert entry.get("archive") in (None, "bz2", "zip")
    if entry.get("archive") == "zip":
        assert entry.get("member"), "a zip entry names its member"
    models.ModelSpec.from_json(entry)  # the registry can read it


def test_models_json_ids_files_and_nodes_are_consistent(pack):
    ids = [e["id"] for e in RAW_MODELS]
    files = [e["filename"] for e in RAW_MODELS]
    assert len(ids) == len(set(ids)) and len(files) == len(set(files))
    node_names = KNOWN_NODES | set(pack.NODE_DISPLAY_NAME_MAPPINGS.values())
    for entry in RAW_MODELS:
        assert set(entry["nodes"]) <= node_names, f"{entry['id']}: unknown nodes {set(entry['nodes']) - node_names}"
    assert set(models.registry()) == set(ids)
    assert any(e["required"] for e in RAW_MODELS)


# Files in ../shared/models that are re-saved copies, not the official release bytes
# (../shared/models/SOURCES.md gives these checksums); models.json keeps the official ones,
# which is what a user's download is checked against.
REPACKED_SHARED_COPIES = {
    "realesr_animevideov3": ("4e1e09ba96d08bd4b8455e8897c3242a3501e3766f359941ea894122e158a932", 2334339),
}


def test_shared_model_files_match_models_json(models_dir):
    checked = 0
    for entry in RAW_MODELS:
        path = models_dir / entry["filename"]
        if path.is_file():
            expected = REPACKED_SHARED_COPIES.get(entry["id"], (entry["sha256"], entry["size"]))
            assert (file_sha256(path), path.stat().st_size) == expected, entry["id"]
            checked += 1
    assert checked >= 3  # yunet, face_landmarker, selfie_segmentation at least


def test_bundled_dlib_files_match_models_json(monkeypatch, tmp_path):
    monkeypatch.delenv(models.ENV_MODELS, raising=False)
    monkeypatch.setenv(models.ENV_CACHE, str(tmp_path))
    bundled = [e for e in RAW_MODELS if e.get("bundled_in")]
    assert bundled
    for entry in bundled:
        path = models.model_path(entry["id"], download=False)
        assert file_sha256(path) == entry["sha256"], entry["id"]


# --- pyproject / requirements ------------------------------------------------------------


def test_requirements_txt_matches_pyproject_minus_torch():
    lines = (REPO_ROOT / "requirements.txt").read_text(encoding="utf-8").splitlines()
    requirements = sorted(line.split("#")[0].strip() for line in lines if line.split("#")[0].strip())
    runtime = sorted(dep for dep in PYPROJECT["project"]["dependencies"] if _dist_name(dep) != "torch")
    assert requirements == runtime
    assert any(_dist_name(dep) == "torch" for dep in PYPROJECT["project"]["dependencies"])


def test_no_banned_dependencies_and_one_opencv():
    project = PYPROJECT["project"]
    every = list(project["dependencies"]) + [d for group in project.get("optional-dependencies", {}).values() for d in group]
    names = {_dist_name(dep) for dep in every}
    assert not names & BANNED
    assert [n for n in names if n.startswith("opencv")] == ["opencv-contrib-python"]


def test_pyproject_metadata_for_pip_and_the_comfy_registry(pack):
    project = PYPROJECT["project"]
    assert project["name"] == "comfyui-portrait-polish"
    assert project["scripts"]["portrait-polish"] == "portrait_polish.runner.cli:main"
    assert project["requires-python"] == ">=3.10,<3.13"
    assert project["license"] == {"file": "LICENSE"} and (REPO_ROOT / "LICENSE").is_file()
    assert {"pytest", "ruff"} <= {_dist_name(d) for d in project["optional-dependencies"]["dev"]}
    comfy = PYPROJECT["tool"]["comfy"]
    for key in ("PublisherId", "DisplayName", "Icon", "requires-comfyui"):
        assert comfy.get(key), key
    # One mechanism serves js/: WEB_DIRECTORY, not also [tool.comfy] web (scripts would load twice).
    assert pack.WEB_DIRECTORY == "./js" and "web" not in comfy


def test_one_opencv_installed_and_cv2_works_with_mediapipe():
    installed = {(dist.metadata["Name"] or "").lower() for dist in importlib.metadata.distributions()}
    assert sorted(n for n in installed if n.startswith("opencv")) == ["opencv-contrib-python"]
    code = "import mediapipe, cv2, numpy; cv2.FaceDetectorYN; cv2.cvtColor(numpy.zeros((4,4,3),numpy.uint8), cv2.COLOR_RGB2GRAY); print(cv2.__file__)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr


def _tracked_copy(target: Path) -> Path:
    """The committed-or-staged files of the checkout (what a clone would have), so the
    build neither sees stray local files nor leaves a build/ folder in the repository."""
    listed = subprocess.run(["git", "-C", str(REPO_ROOT), "ls-files", "-z"], capture_output=True, timeout=60)
    if listed.returncode != 0:
        return REPO_ROOT  # not a git checkout (e.g. an unpacked sdist): build in place
    for name in listed.stdout.decode().split("\0"):
        source = REPO_ROOT / name
        if name and source.is_file():
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target / name)
    return target


def test_wheel_has_the_package_data_and_no_tests(tmp_path):
    pytest.importorskip("setuptools")
    source = _tracked_copy(tmp_path / "src")
    done = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", str(tmp_path), str(source)],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    (wheel,) = tmp_path.glob("comfyui_portrait_polish-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for package in ("core", "nodes", "runner"):
        assert f"portrait_polish/{package}/__init__.py" in names
    assert "portrait_polish/__init__.py" in names and "portrait_polish/models.json" in names
    for folder in ("js", "workflows", "example_workflows"):
        root = source / folder
        shipped = [p for p in root.rglob("*") if p.is_file() and not p.name.startswith(".")] if root.is_dir() else []
        for path in shipped:
            assert f"portrait_polish/{path.relative_to(source).as_posix()}" in names, path
    assert any(n.startswith("portrait_polish/js/") for n in names)
    assert not any(n.startswith(("portrait_polish/tests/", "tests/")) for n in names)
    assert not any("/.venv/" in n or n.startswith("portrait_polish/bench/") for n in names)
    entry_points = next(n for n in names if n.endswith("entry_points.txt"))
    assert "portrait-polish = portrait_polish.runner.cli:main" in zipfile.ZipFile(wheel).read(entry_points).decode()


# --- importing the pack has no side effects ------------------------------------------------

_IMPORT_PROBE = r"""
import gc, json, os, sys, types
MODEL_SUFFIXES = (".onnx", ".task", ".tflite", ".dat", ".pth", ".pt", ".safetensors", ".ckpt", ".bin", ".bz2")
SPAWN = ("subprocess.Popen", "os.system", "os.exec", "os.posix_spawn", "os.spawn", "os.fork", "os.forkpty")
events = []
armed = False

def hook(event, args):
    if not armed:
        return
    if event == "open" and args and isinstance(args[0], (str, bytes, os.PathLike)):
        name = os.fsdecode(args[0])
        if name.endswith(MODEL_SUFFIXES):
            events.append(["open", name])
    elif event in SPAWN or event.startswith(("socket.", "urllib.", "http.")):
        events.append([event, repr(args)[:200]])

sys.addaudithook(hook)
sys.path.insert(0, os.environ["PROBE_TESTS_DIR"])
import helpers  # torch, numpy: loaded before the probe is armed, as ComfyUI has them already

import socket
class NoNetwork(socket.socket):
    def __init__(self, *args, **kwargs):
        raise OSError("the pack opened a socket at import time")
socket.socket = NoNetwork
sys.modules["nodes"] = types.ModuleType("nodes")  # ComfyUI's own top-level module
created = None
if os.environ.get("PROBE_COMFY"):
    fp = types.ModuleType("folder_paths")
    fp.models_dir = os.environ["PROBE_COMFY"]
    fp.folder_names_and_paths = {"upscale_models": ([os.path.join(fp.models_dir, "upscale_models")], {".pth"})}
    fp.get_folder_paths = lambda name: list(fp.folder_names_and_paths[name][0])
    sys.modules["folder_paths"] = fp
armed = True
pack = helpers.load_pack_as_comfyui()
armed = False
core_models = sys.modules[helpers.PACK_MODULE_NAME + ".core.models"]
heavy = ("InferenceSession", "FaceLandmarker", "FaceDetectorYN", "ImageSegmenter", "face_recognition_model_v1",
         "shape_predictor", "Interpreter")
live = sorted({type(o).__module__ + "." + type(o).__name__ for o in gc.get_objects() if type(o).__name__ in heavy})
folders = sorted(sys.modules["folder_paths"].folder_names_and_paths) if os.environ.get("PROBE_COMFY") else []
print(json.dumps({
    "events": events,
    "nodes": sorted(pack.NODE_CLASS_MAPPINGS),
    "cache": len(core_models._cache),
    "live": live,
    "folders": folders,
    "made_dirs": os.path.exists(os.environ.get("PROBE_COMFY", "/nonexistent")),
}))
"""


@pytest.mark.parametrize("inside_comfy", [False, True], ids=["no-comfyui", "comfyui-folder_paths"])
def test_import_touches_no_network_model_file_or_subprocess(tmp_path, inside_comfy):
    env = {**os.environ, "PROBE_TESTS_DIR": str(REPO_ROOT / "tests")}
    env.pop("PORTRAIT_POLISH_OFFLINE", None)  # even online, nothing may be fetched at import
    if inside_comfy:
        env["PROBE_COMFY"] = str(tmp_path / "ComfyUI" / "models")
    done = subprocess.run([sys.executable, "-c", _IMPORT_PROBE], capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["events"] == [], report["events"]
    assert report["cache"] == 0 and report["live"] == []
    assert all(node.startswith("PortraitPolish") for node in report["nodes"])
    if inside_comfy:
        assert set(models.FOLDER_EXTENSIONS) <= set(report["folders"])
        assert report["made_dirs"] is False  # registering folder types creates no directories


# --- the console script ---------------------------------------------------------------------


def test_console_script_is_installed_and_answers_help():
    script = Path(sys.executable).with_name("portrait-polish")
    assert script.exists(), "pip install -e . gives the portrait-polish command"
    done = subprocess.run([str(script), "--help"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and "models" in done.stdout


def test_shared_models_dir_is_what_tests_use():
    assert Path(os.environ[models.ENV_MODELS]) == SHARED_MODELS or SHARED_MODELS.exists()
