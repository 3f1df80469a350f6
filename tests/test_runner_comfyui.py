"""End to end against a real ComfyUI (skipped unless COMFYUI_URL or COMFYUI_DIR is set).

COMFYUI_URL: a running server with this pack installed. COMFYUI_DIR: a ComfyUI tree with
this pack in custom_nodes; the test starts it on a free port (COMFYUI_PYTHON picks the
interpreter, default: COMFYUI_DIR/../venv/bin/python, else this one; PYTHONPATH is passed on,
e.g. for ../shared/comfy-host/shims on a machine without torchvision).

Checks: the server's node definitions turn every shipped UI workflow into exactly the
shipped API workflow; every shipped workflow runs through the server; and the server's
result agrees with the in-process engine's on the same image (PSNR >= 50 dB).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import requests
from PIL import Image

from portrait_polish.runner import run_workflow
from portrait_polish.runner.workflow import load_json, ui_to_api

pytestmark = [pytest.mark.comfyui]
REPO = Path(__file__).resolve().parent.parent
WORKFLOWS = sorted((REPO / "workflows" / "ui").glob("*.json"))


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def comfy_url(tmp_path_factory):
    url = os.environ.get("COMFYUI_URL")
    directory = os.environ.get("COMFYUI_DIR")
    if not url and not directory:
        pytest.skip("set COMFYUI_URL (a running ComfyUI) or COMFYUI_DIR (a ComfyUI tree) for end-to-end tests")
    process = None
    if not url:
        root = Path(directory)
        python = os.environ.get("COMFYUI_PYTHON") or next(
            (str(p) for p in [root.parent / "venv" / "bin" / "python"] if p.exists()), sys.executable)
        port = _free_port()
        log = open(tmp_path_factory.mktemp("comfy") / "comfy.log", "wb")  # noqa: SIM115 - closed with the process
        process = subprocess.Popen([python, "main.py", "--cpu", "--listen", "127.0.0.1", "--port", str(port)],
                                   cwd=root, stdout=log, stderr=subprocess.STDOUT)
        url = f"http://127.0.0.1:{port}"
        for _ in range(240):
            try:
                if requests.get(url + "/object_info/SaveImage", timeout=2).ok:
                    break
            except requests.RequestException:
                time.sleep(0.5)
        else:
            process.terminate()
            pytest.fail(f"ComfyUI in {root} did not start; see {log.name}")
    info = requests.get(url.rstrip("/") + "/object_info", timeout=60).json()
    if "PortraitPolishFaceParse" not in info:
        pytest.fail(f"{url} does not have Portrait Polish's nodes (IMPORT FAILED in its log?)")
    yield url.rstrip("/")
    if process is not None:
        process.terminate()
        process.wait(30)


@pytest.fixture(scope="module")
def server_info(comfy_url):
    return requests.get(comfy_url + "/object_info", timeout=60).json()


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.stem)
def test_server_definitions_convert_ui_to_shipped_api(path, server_info):
    assert ui_to_api(load_json(path), server_info) == load_json(REPO / "workflows" / "api" / path.name)


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float("inf") if mse == 0 else 10 * np.log10(255.0**2 / mse)


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.stem)
def test_server_and_in_process_agree(path, comfy_url, tmp_path, models_dir):
    from helpers import portrait

    frame = (portrait("biden_2.jpg", 512)[0].numpy() * 255).round().astype(np.uint8)
    image = tmp_path / "biden.png"
    Image.fromarray(frame).save(image)
    from test_runner_workflows import offline_sets

    sets = offline_sets(path.stem)
    remote = run_workflow(path, image, tmp_path / "server", server=comfy_url, timeout=300, sets=sets)
    local = run_workflow(REPO / "workflows" / "api" / path.name, image, tmp_path / "local", sets=sets)
    assert remote.count("done") == 1, remote.text()
    assert local.count("done") == 1, local.text()
    a = np.asarray(Image.open(tmp_path / "server" / remote.jobs[0].outputs[0]))
    b = np.asarray(Image.open(tmp_path / "local" / local.jobs[0].outputs[0]))
    assert a.shape == b.shape
    assert _psnr(a, b) >= 50.0
