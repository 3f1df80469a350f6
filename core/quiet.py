"""Keep native libraries' log chatter out of the CLI and the ComfyUI log unless asked for.

MediaPipe (its absl/glog logging and TensorFlow Lite) writes straight to file descriptor 2
from C++ threads while a task is created: "WARNING: Logging before InitGoogle() ...",
"W0000 00:00:... inference_feedback_manager.cc:121] Feedback manager requires a model with a
single signature inference ...", "INFO: Created TensorFlow Lite XNNPACK delegate for CPU."
No environment variable turns that off (GLOG_minloglevel and TF_CPP_MIN_LOG_LEVEL were
tried: no effect on mediapipe 0.10), so ``native_stderr()`` catches what fd 2 receives
around those calls, drops lines that look like that chatter and writes everything else
back (a traceback or a message from another thread in that moment is delayed, never lost).
OpenCV's own "[ WARN:0@...]" lines obey ``OPENCV_LOG_LEVEL``, set by ``configure()``.

Verbose (``portrait-polish --verbose`` or ``PORTRAIT_POLISH_VERBOSE=1``): nothing is touched.
The pack's own messages go through ``logging`` (logger ``portrait_polish``).
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
import tempfile
import threading
from collections.abc import Iterator

VERBOSE_ENV = "PORTRAIT_POLISH_VERBOSE"

# One native log line: glog ("W0123 14:05:09.482779  7450 file.cc:121] ...") and absl before
# its InitializeLog ("W0000 00:00:1796160572.482779    7450 file.cc:121] ...": seconds since
# the epoch), their start-up notices, TensorFlow Lite's "INFO: ..." lines, OpenCV's
# "[ WARN:0@0.034] ...".
CHATTER = re.compile(
    r"^(?:[IWEF]\d{4} \d\d:\d\d:\d+\.\d+\s+\d+ \S+:\d+\]"
    r"|WARNING: Logging before InitGoogle\(\)"
    r"|WARNING: All log messages before absl::InitializeLog\(\)"
    r"|INFO: (?:Created TensorFlow Lite|Initialized TensorFlow Lite)"
    r"|\[ ?(?:WARN|INFO|DEBUG):\d+@)"
)

_verbose: bool | None = None
_lock = threading.Lock()
_depth = 0
_saved_fd: int | None = None
_capture = None


def verbose() -> bool:
    if _verbose is not None:
        return _verbose
    return os.environ.get(VERBOSE_ENV, "").strip().lower() in ("1", "true", "yes", "on")


def set_verbose(on: bool) -> None:
    """``--verbose``: let native libraries print as they like (undoing ``configure()``)."""
    global _verbose
    _verbose = bool(on)
    if _verbose and _opencv_quieted:
        os.environ.pop("OPENCV_LOG_LEVEL", None)
        _set_opencv_level("LOG_LEVEL_ERROR", "LOG_LEVEL_WARNING")
    configure()


_opencv_quieted = False


def configure() -> None:
    """Quiet OpenCV's warnings unless verbose or the user set ``OPENCV_LOG_LEVEL`` (it is read
    when cv2 loads; if cv2 is already loaded at its default level, that is lowered directly)."""
    global _opencv_quieted
    if verbose() or "OPENCV_LOG_LEVEL" in os.environ:
        return
    os.environ["OPENCV_LOG_LEVEL"] = "ERROR"
    _opencv_quieted = True
    _set_opencv_level("LOG_LEVEL_WARNING", "LOG_LEVEL_ERROR")


def _set_opencv_level(current: str, wanted: str) -> None:
    """Set a loaded cv2's log level to ``wanted`` if it is at ``current``."""
    logging_module = getattr(getattr(sys.modules.get("cv2"), "utils", None), "logging", None)
    try:
        if logging_module is not None and logging_module.getLogLevel() == getattr(logging_module, current):
            logging_module.setLogLevel(getattr(logging_module, wanted))
    except Exception:  # noqa: BLE001 - an OpenCV build without these bindings: leave it as it is
        pass


def is_chatter(line: str) -> bool:
    return bool(CHATTER.match(line))


@contextlib.contextmanager
def native_stderr() -> Iterator[None]:
    """Around native calls that log to fd 2: drop the chatter, pass everything else on.
    Nests and works from several threads at once (the first in redirects, the last out
    restores and sorts what came)."""
    if verbose():
        yield
        return
    if not _enter():
        yield  # no usable fd 2 (e.g. pythonw): nothing to quiet
        return
    try:
        yield
    finally:
        _leave()


def _enter() -> bool:
    global _depth, _saved_fd, _capture
    with _lock:
        if _depth == 0:
            try:
                _flush_python_streams()
                capture = tempfile.TemporaryFile(mode="w+b")
                saved = os.dup(2)
                os.dup2(capture.fileno(), 2)
            except (OSError, ValueError):
                return False
            _saved_fd, _capture = saved, capture
        _depth += 1
        return True


def _leave() -> None:
    global _depth, _saved_fd, _capture
    with _lock:
        _depth -= 1
        if _depth > 0 or _saved_fd is None or _capture is None:
            return
        _flush_python_streams()
        os.dup2(_saved_fd, 2)
        os.close(_saved_fd)
        capture, _saved_fd, _capture = _capture, None, None
    capture.seek(0)
    kept = [line for line in capture.read().splitlines(keepends=True)
            if not is_chatter(line.decode("utf-8", "replace"))]
    capture.close()
    if kept:
        try:
            os.write(2, b"".join(kept))
        except OSError:
            pass


def _flush_python_streams() -> None:
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (AttributeError, OSError, ValueError):
            pass
