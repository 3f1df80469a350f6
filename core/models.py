"""Model registry (``models.json``), the one resolver every node uses, and the model cache.

Search order for a model file (first hit wins):

1. every directory in ``PORTRAIT_POLISH_MODELS`` (``os.pathsep``-separated), both flat
   (``DIR/<file>``) and by folder (``DIR/<folder>/<file>``), inside and outside ComfyUI;
2. inside ComfyUI: ``folder_paths`` for the model's folder type (which includes paths
   from ``extra_model_paths.yaml``);
3. outside ComfyUI: the per-user cache, ``$XDG_CACHE_HOME/portrait-polish/models/<folder>``
   (``~/.cache/...`` by default; ``PORTRAIT_POLISH_CACHE`` overrides);
4. for models that ship inside a PyPI package (dlib's), that package's data folder.

A missing model is downloaded on first use (into the ComfyUI model folder, or the user
cache) unless ``PORTRAIT_POLISH_OFFLINE=1``; then, or when the download fails, the error
names the file, its URL and every folder searched.

Loaded models are cached per (file, device, dtype, extra key), loaded once, lazily.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, TypeVar

from . import comfy

log = logging.getLogger("portrait_polish")

PACK_ROOT = Path(__file__).resolve().parent.parent
MODELS_JSON = PACK_ROOT / "models.json"

ENV_MODELS = "PORTRAIT_POLISH_MODELS"
ENV_OFFLINE = "PORTRAIT_POLISH_OFFLINE"
ENV_CACHE = "PORTRAIT_POLISH_CACHE"

# File extensions ComfyUI's folder lists show for each of our folder types.
FOLDER_EXTENSIONS: dict[str, set[str]] = {
    "face_detection": {".onnx"},
    "mediapipe": {".task", ".tflite"},
    "face_parsing": {".pth", ".pt", ".safetensors"},
    "dlib": {".dat"},
    "face_recognition": {".onnx"},
    "upscale_models": {".pth", ".pt", ".safetensors", ".bin", ".ckpt"},
}


class ModelNotFoundError(FileNotFoundError):
    """A model file is not on disk and could not be downloaded."""


class ModelFileError(RuntimeError):
    """A model file exists but is corrupt, truncated or of an unknown kind."""


@dataclass(frozen=True)
class ModelSpec:
    id: str
    filename: str
    url: str
    sha256: str
    size: int
    license: str
    commercial_use: bool
    folder: str
    nodes: tuple[str, ...] = ()
    required: bool = False
    description: str = ""
    archive: str | None = None
    member: str | None = None
    bundled_in: str | None = None
    extra: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)

    @classmethod
    def from_json(cls, entry: dict[str, Any]) -> ModelSpec:
        known = {f for f in cls.__dataclass_fields__ if f != "extra"}
        values = {k: v for k, v in entry.items() if k in known}
        values["nodes"] = tuple(values.get("nodes", ()))
        extra = {k: v for k, v in entry.items() if k not in known}
        return cls(**values, extra=extra)


@lru_cache(maxsize=1)
def registry() -> dict[str, ModelSpec]:
    """All models in models.json, by id (read once)."""
    with open(MODELS_JSON, encoding="utf-8") as handle:
        data = json.load(handle)
    specs = [ModelSpec.from_json(entry) for entry in data["models"]]
    return {spec.id: spec for spec in specs}


def spec_for(name: str) -> ModelSpec:
    """Look a model up by id or by file name."""
    models = registry()
    if name in models:
        return models[name]
    for spec in models.values():
        if spec.filename == name:
            return spec
    raise KeyError(f"no model {name!r} in models.json; known ids: {', '.join(sorted(models))}")


def offline() -> bool:
    return os.environ.get(ENV_OFFLINE, "").strip().lower() in {"1", "true", "yes", "on"}


def env_model_dirs() -> list[Path]:
    raw = os.environ.get(ENV_MODELS, "")
    return [Path(part).expanduser() for part in raw.split(os.pathsep) if part.strip()]


def user_cache_dir() -> Path:
    if os.environ.get(ENV_CACHE):
        return Path(os.environ[ENV_CACHE]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(Path.home(), ".cache")
    return Path(base) / "portrait-polish" / "models"


def register_comfy_folders() -> None:
    """Register our model folder types with ComfyUI's ``folder_paths`` (inside ComfyUI only).

    Paths already added (by ``extra_model_paths.yaml``, which ComfyUI reads before packs
    load) are kept; our default ``models/<folder>`` is appended; each type gets its
    extension filter. ``upscale_models`` is core's own folder and is left as it is.
    """
    fp = comfy.folder_paths()
    if fp is None:
        return
    for folder, extensions in FOLDER_EXTENSIONS.items():
        if folder == "upscale_models" and folder in fp.folder_names_and_paths:
            continue
        default = os.path.join(fp.models_dir, folder)
        paths, exts = fp.folder_names_and_paths.get(folder, ([], set()))
        paths = list(paths)
        if default not in paths:
            paths.append(default)
        fp.folder_names_and_paths[folder] = (paths, set(exts) | extensions)


def comfy_folder_dirs(folder: str) -> list[Path]:
    fp = comfy.folder_paths()
    if fp is None:
        return []
    register_comfy_folders()
    try:
        return [Path(p) for p in fp.get_folder_paths(folder)]
    except Exception:  # noqa: BLE001 - unknown folder type
        return []


def bundled_dirs(spec: ModelSpec) -> list[Path]:
    """Data folder of a PyPI package that ships this model (found without importing it:
    ``import face_recognition_models`` needs pkg_resources, which new setuptools lacks)."""
    if not spec.bundled_in:
        return []
    module = spec.bundled_in.replace("-", "_")
    found = importlib.util.find_spec(module)
    if found is None or not found.submodule_search_locations:
        return []
    return [Path(location) / "models" for location in found.submodule_search_locations]


def search_dirs(spec_or_folder: ModelSpec | str) -> list[Path]:
    """Every directory searched for a model (or a folder type), in order."""
    folder = spec_or_folder.folder if isinstance(spec_or_folder, ModelSpec) else spec_or_folder
    dirs: list[Path] = []
    for base in env_model_dirs():
        dirs += [base, base / folder]
    if comfy.in_comfyui():
        dirs += comfy_folder_dirs(folder)
    else:
        dirs.append(user_cache_dir() / folder)
    if isinstance(spec_or_folder, ModelSpec):
        dirs += bundled_dirs(spec_or_folder)
    unique: list[Path] = []
    for d in dirs:
        if d not in unique:
            unique.append(d)
    return unique


def download_dir(spec: ModelSpec) -> Path:
    """Where a download of this model goes: ComfyUI's model folder, else the user cache."""
    comfy_dirs = comfy_folder_dirs(spec.folder) if comfy.in_comfyui() else []
    return comfy_dirs[0] if comfy_dirs else user_cache_dir() / spec.folder


def find_file(filename: str, folder: str) -> Path | None:
    """First existing ``filename`` in the search path of ``folder``, or None."""
    candidate = Path(filename)
    if candidate.is_absolute():
        return candidate if candidate.is_file() else None
    for directory in search_dirs(folder):
        path = directory / filename
        if path.is_file():
            return path
    return None


def list_files(folder: str) -> list[str]:
    """File names available for a folder type (for dropdowns), sorted, without duplicates."""
    extensions = FOLDER_EXTENSIONS.get(folder, set())
    names: set[str] = set()
    fp = comfy.folder_paths()
    if fp is not None:
        register_comfy_folders()
        try:
            names.update(fp.get_filename_list(folder))
        except Exception:  # noqa: BLE001
            pass
    # A flat PORTRAIT_POLISH_MODELS folder holds every kind of model side by side (a
    # Real-ESRGAN .pth next to a BiSeNet .pth), so from it a dropdown leaves out the files
    # models.json assigns to another folder type (a user's own files stay listed); its
    # <folder>/ subfolder and the other locations are this type's own and list everything.
    flat_dirs = set(env_model_dirs())
    elsewhere = {spec.filename for spec in registry().values() if spec.folder != folder}
    for directory in search_dirs(folder):
        if not directory.is_dir():
            continue
        for path in directory.iterdir():
            if not path.is_file() or (extensions and path.suffix not in extensions):
                continue
            if directory in flat_dirs and path.name in elsewhere:
                continue
            names.add(path.name)
    return sorted(names)


def not_found_message(spec: ModelSpec, searched: list[Path], reason: str = "") -> str:
    lines = [f"Portrait Polish needs the model file {spec.filename!r} ({spec.id}), and it is not on this machine."]
    if reason:
        lines.append(reason)
    lines.append(f"Download it from {spec.url}")
    lines.append(f"and put it in the '{spec.folder}' model folder, or in a folder listed in {ENV_MODELS}.")
    lines.append("Folders searched:")
    lines += [f"  {d}" for d in searched] or ["  (none)"]
    lines.append("Or run: portrait-polish models download " + spec.id)
    return "\n".join(lines)


def model_path(name: str, *, download: bool = True) -> Path:
    """Resolve a model id or file name to a path on disk, downloading it on first use.

    Raises :class:`ModelNotFoundError` naming the file, its URL and every folder searched
    when it is absent and cannot be downloaded (offline, or the download failed).
    """
    spec = spec_for(name)
    searched = search_dirs(spec)
    for directory in searched:
        path = directory / spec.filename
        if path.is_file():
            return path
    if not download or offline():
        reason = f"{ENV_OFFLINE}=1 is set, so nothing is downloaded." if offline() else ""
        raise ModelNotFoundError(not_found_message(spec, searched, reason))
    from .download import DownloadError, download_model

    target = download_dir(spec)
    try:
        return download_model(spec, target)
    except DownloadError as exc:
        raise ModelNotFoundError(not_found_message(spec, searched, f"Downloading it failed: {exc}")) from exc


_T = TypeVar("_T")
_cache: dict[tuple[Any, ...], Any] = {}
_cache_lock = threading.Lock()


def cached_model(key: tuple[Any, ...], loader: Callable[[], _T]) -> _T:
    """Load once per key (file path, device, dtype, ...), then reuse; thread-safe."""
    with _cache_lock:
        if key in _cache:
            return _cache[key]
    value = loader()
    with _cache_lock:
        return _cache.setdefault(key, value)


def clear_model_cache() -> None:
    with _cache_lock:
        _cache.clear()
