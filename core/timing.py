"""Time spent inside the models, kept apart from the pack's own work.

The retouch budget is stated against the models' own inference (YuNet, FaceLandmarker,
the selfie segmenter, the recognition network): ``bench/`` reports both, so a slow row says
whether the models or our maths cost the time. Each model call is wrapped in
:func:`model_time`; the totals are per process and per model name, cheap enough to keep on
(one ``perf_counter`` pair per call).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

_lock = threading.Lock()
_totals: dict[str, float] = {}
_calls: dict[str, int] = {}


@contextmanager
def model_time(name: str) -> Iterator[None]:
    """Add the time spent in the ``with`` block to model ``name``'s total."""
    start = time.perf_counter()
    try:
        yield
    finally:
        elapsed = time.perf_counter() - start
        with _lock:
            _totals[name] = _totals.get(name, 0.0) + elapsed
            _calls[name] = _calls.get(name, 0) + 1


def model_times() -> dict[str, float]:
    """Seconds per model name since the last :func:`reset_model_times`."""
    with _lock:
        return dict(_totals)


def model_calls() -> dict[str, int]:
    """Calls per model name since the last :func:`reset_model_times`."""
    with _lock:
        return dict(_calls)


def reset_model_times() -> None:
    with _lock:
        _totals.clear()
        _calls.clear()


__all__ = ["model_calls", "model_time", "model_times", "reset_model_times"]
