"""Native libraries' chatter (MediaPipe's absl/glog lines, TensorFlow Lite's "INFO: Created
TensorFlow Lite XNNPACK delegate", OpenCV's "[ WARN:...]") stays out of the CLI by default
and shows with --verbose. A real FaceParse runs in a subprocess each way."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from portrait_polish.core import quiet

# Lines seen on this machine without the quieting (mediapipe 0.10, opencv 4.x).
CHATTER_MARKERS = ("Feedback manager requires", "Created TensorFlow Lite XNNPACK delegate",
                   "Logging before InitGoogle", "FaceBlendshapesGraph")



def _workflow() -> dict:
    """LoadImage -> FaceParse (every input at its default) -> SaveImage of its preview."""
    from portrait_polish.runner.objectinfo import input_specs, local_object_info

    info = local_object_info()["PortraitPolishFaceParse"]
    inputs = {spec.name: spec.options.get("default", (spec.choices or [None])[0])
              for spec in input_specs(info) if spec.is_widget and spec.required}
    return {
        "1": {"class_type": "LoadImage", "inputs": {"image": "x.png"}},
        "2": {"class_type": "PortraitPolishFaceParse", "inputs": {**inputs, "image": ["1", 0]}},
        "3": {"class_type": "SaveImage", "inputs": {"images": ["2", 2], "filename_prefix": "parse"}},
    }


@pytest.fixture(scope="module")
def parse_run(tmp_path_factory, models_dir):
    from skimage import data

    folder = tmp_path_factory.mktemp("quiet")
    Image.fromarray(data.astronaut()[:384, 64:448]).save(folder / "astronaut.png")
    (folder / "parse.json").write_text(json.dumps(_workflow()))
    cli = [sys.executable, "-m", "portrait_polish.runner.cli"]
    env = {k: v for k, v in os.environ.items() if k not in (quiet.VERBOSE_ENV, "OPENCV_LOG_LEVEL")}

    def run(*flags: str) -> subprocess.CompletedProcess:
        out = folder / ("out" + "".join(flags))
        result = subprocess.run([*cli, *flags, "run", str(folder / "parse.json"), str(folder / "astronaut.png"),
                                 "-o", str(out), "--no-progress"], capture_output=True, text=True, env=env, timeout=300)
        assert result.returncode == 0, result.stderr[-3000:]
        assert (out / "astronaut_parse.png").is_file()
        return result

    return run


def test_chatter_is_silent_by_default(parse_run):
    result = parse_run()
    text = result.stdout + result.stderr
    assert not [m for m in CHATTER_MARKERS if m in text], text[-3000:]
    assert "[ WARN:" not in text and "W0000" not in text
    assert "done 1" in result.stderr  # our own summary still shows


def test_chatter_shows_with_verbose(parse_run):
    result = parse_run("--verbose")
    shown = [m for m in CHATTER_MARKERS if m in result.stderr]
    assert len(shown) >= 2, result.stderr[-3000:]


def test_native_stderr_keeps_what_is_not_chatter(capfd, monkeypatch):
    monkeypatch.setattr(quiet, "_verbose", False)
    with quiet.native_stderr():
        with quiet.native_stderr():  # nests
            os.write(2, b"W0000 00:00:1796160572.482779    7450 inference_feedback_manager.cc:121] Feedback manager\n")
            os.write(2, b"INFO: Created TensorFlow Lite XNNPACK delegate for CPU.\n")
            os.write(2, b"Traceback (most recent call last): something real\n")
    assert capfd.readouterr().err == "Traceback (most recent call last): something real\n"
    monkeypatch.setattr(quiet, "_verbose", True)
    with quiet.native_stderr():
        os.write(2, b"INFO: Created TensorFlow Lite XNNPACK delegate for CPU.\n")
    assert "XNNPACK" in capfd.readouterr().err


def test_chatter_pattern():
    assert quiet.is_chatter("W0000 00:00:1796162046.212368   21590 face_landmarker_graph.cc:181] Sets FaceBlendshapesGraph")
    assert quiet.is_chatter("I0123 14:05:09.482779  7450 calculator_graph.cc:123] glog style")
    assert quiet.is_chatter("[ WARN:0@0.034] global net_impl_backend.cpp:388 setPreferableTarget Targets are not supported")
    assert quiet.is_chatter("WARNING: All log messages before absl::InitializeLog() is called are written to STDERR")
    assert not quiet.is_chatter("WARNING portrait_polish: something of ours")
    assert not quiet.is_chatter(str(Path("W0000.png")))
