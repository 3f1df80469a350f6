"""The per-frame loop of the background nodes, in one place.

Batch order, progress (ComfyUI's bar, tqdm on a terminal), Cancel between frames, and an
out-of-memory fallback (a frame that runs out of GPU memory is done again on the CPU). The
shared retouch kernel (core/kernel.py) will have a driver of its own; this one is kept small
and alone so it can be swapped for that one.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TypeVar

import torch

from . import comfy

log = logging.getLogger("portrait_polish")

Result = TypeVar("Result")


def for_each_frame(
    count: int, work: Callable[[int, torch.device], Result], description: str, device: torch.device | None = None
) -> list[Result]:
    """``[work(0, device), work(1, device), ...]`` in batch order, one progress step each."""
    device = device or torch.device("cpu")
    results: list[Result] = []
    with comfy.Progress(count, description) as progress:
        for index in range(count):
            comfy.throw_if_interrupted()
            try:
                results.append(work(index, device))
            except Exception as exc:
                if device.type == "cpu" or not comfy.is_out_of_memory(exc):
                    raise
                log.warning("portrait_polish: %s ran out of memory on %s for frame %d; doing it on the CPU", description, device, index)
                if device.type == "cuda":
                    torch.cuda.empty_cache()
                results.append(work(index, torch.device("cpu")))
            progress.update()
    return results
