"""The one adapter between the core and ComfyUI.

Everything ComfyUI-specific the core needs (model folders, progress bars, the compute
device, interruption, out-of-memory detection) goes through here, and every function
works when ComfyUI is absent (CI, the CLI, plain Python).
"""

from __future__ import annotations

import importlib
import logging
import sys
from contextvars import ContextVar, Token
from pathlib import Path
from types import ModuleType
from typing import Any

import torch

log = logging.getLogger("portrait_polish")


def _optional_module(name: str) -> ModuleType | None:
    """Import a ComfyUI module only when we are running inside ComfyUI.

    ComfyUI puts its own modules on sys.path; outside it, a package that happens to be
    called ``folder_paths`` or ``comfy`` must not be mistaken for it, so we also require
    the module to be importable without side effects (ImportError means: not in ComfyUI).
    """
    try:
        return importlib.import_module(name)
    except Exception:  # noqa: BLE001 - any failure means "not available here"
        return None


def folder_paths() -> ModuleType | None:
    """ComfyUI's ``folder_paths`` module, or ``None`` outside ComfyUI."""
    module = sys.modules.get("folder_paths") or _optional_module("folder_paths")
    if module is None or not hasattr(module, "folder_names_and_paths"):
        return None
    return module


def in_comfyui() -> bool:
    return folder_paths() is not None


def torch_device() -> torch.device:
    """ComfyUI's chosen device inside ComfyUI; otherwise CUDA/MPS when present, else CPU."""
    mm = _optional_module("comfy.model_management") if in_comfyui() else None
    if mm is not None and hasattr(mm, "get_torch_device"):
        try:
            return mm.get_torch_device()
        except Exception:  # noqa: BLE001
            pass
    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def free_memory_bytes(device: torch.device) -> int:
    """Free memory on ``device`` (GPU: CUDA's count; CPU: available RAM)."""
    mm = _optional_module("comfy.model_management") if in_comfyui() else None
    if mm is not None and hasattr(mm, "get_free_memory"):
        try:
            return int(mm.get_free_memory(device))
        except Exception:  # noqa: BLE001
            pass
    if device.type == "cuda":
        free, _total = torch.cuda.mem_get_info(device)
        return int(free)
    try:
        with open("/proc/meminfo", encoding="ascii") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 4 * 1024**3


def is_out_of_memory(exc: BaseException) -> bool:
    """True for CUDA/MPS/CPU allocation failures (what ComfyUI calls OOM_EXCEPTION)."""
    if isinstance(exc, torch.cuda.OutOfMemoryError | MemoryError):
        return True
    message = str(exc).lower()
    return isinstance(exc, RuntimeError) and ("out of memory" in message or "can't allocate memory" in message)


def throw_if_interrupted() -> None:
    """Honour ComfyUI's Cancel button inside long loops (no-op outside ComfyUI)."""
    if not in_comfyui():
        return
    mm = _optional_module("comfy.model_management")
    if mm is not None and hasattr(mm, "throw_exception_if_processing_interrupted"):
        mm.throw_exception_if_processing_interrupted()


class Progress:
    """A progress bar: ComfyUI's when inside ComfyUI, tqdm on a terminal, else silent."""

    def __init__(self, total: int, description: str = "") -> None:
        self.total = max(1, int(total))
        self._comfy: Any = None
        self._tqdm: Any = None
        if in_comfyui():
            utils = _optional_module("comfy.utils")
            if utils is not None and hasattr(utils, "ProgressBar"):
                self._comfy = utils.ProgressBar(self.total)
        elif description and sys.stderr.isatty():
            from tqdm import tqdm

            self._tqdm = tqdm(total=self.total, desc=description, leave=False)

    def update(self, steps: int = 1) -> None:
        throw_if_interrupted()
        if self._comfy is not None:
            self._comfy.update(steps)
        if self._tqdm is not None:
            self._tqdm.update(steps)

    def close(self) -> None:
        if self._tqdm is not None:
            self._tqdm.close()

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# ------------------------------------------------------------------ input/output folders

_IO_DIRECTORIES: ContextVar[dict[str, Path] | None] = ContextVar("portrait_polish_io_directories", default=None)


def use_io_directories(input: Path, output: Path, temp: Path) -> Token:  # noqa: A002 - ComfyUI's folder names
    """Outside ComfyUI (the in-process runner): where loader and saver nodes read and write."""
    return _IO_DIRECTORIES.set({"input": Path(input), "output": Path(output), "temp": Path(temp)})


def reset_io_directories(token: Token) -> None:
    _IO_DIRECTORIES.reset(token)


def io_directory(kind: str) -> Path | None:
    """ComfyUI's input / output / temp folder inside ComfyUI, the in-process runner's outside
    it, None when neither is set."""
    fp = folder_paths()
    getter = getattr(fp, f"get_{kind}_directory", None) if fp is not None else None
    if getter is not None:
        return Path(getter())
    directories = _IO_DIRECTORIES.get()
    return directories.get(kind) if directories else None
