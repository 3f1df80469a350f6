"""IdentityGuard inside a real ComfyUI server (runs only when COMFYUI_URL is set).

Start a host with the pack linked in and the YuNet model in its ``models/face_detection``
(see ../shared/comfy-host/README.md), then
``COMFYUI_URL=http://127.0.0.1:8307 pytest tests/test_identity_e2e.py``.
The photo is scikit-image's public-domain astronaut, uploaded through ``/upload/image``.
"""

from __future__ import annotations

import io
import json
import os
import time
import urllib.request
import uuid

import numpy as np
import pytest
from helpers import astronaut

COMFYUI_URL = os.environ.get("COMFYUI_URL", "").rstrip("/")

pytestmark = [
    pytest.mark.comfyui,
    pytest.mark.skipif(not COMFYUI_URL, reason="set COMFYUI_URL to a running ComfyUI with this pack to run these"),
]


def _upload_astronaut() -> str:
    from PIL import Image

    pixels = (astronaut()[0].numpy() * 255).round().astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    boundary = uuid.uuid4().hex
    name = f"pp_identity_{boundary[:8]}.png"
    body = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="image"; filename="{name}"\r\nContent-Type: image/png\r\n\r\n'.encode()
        + buffer.getvalue()
        + f'\r\n--{boundary}\r\nContent-Disposition: form-data; name="overwrite"\r\n\r\ntrue\r\n--{boundary}--\r\n'.encode()
    )
    request = urllib.request.Request(f"{COMFYUI_URL}/upload/image", body, {"Content-Type": f"multipart/form-data; boundary={boundary}"})
    with urllib.request.urlopen(request, timeout=60) as response:
        return json.load(response)["name"]


def _run(graph: dict) -> dict:
    data = json.dumps({"prompt": graph, "client_id": uuid.uuid4().hex}).encode()
    request = urllib.request.Request(f"{COMFYUI_URL}/prompt", data, {"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=60) as response:
        prompt_id = json.load(response)["prompt_id"]
    deadline = time.time() + 300
    while time.time() < deadline:
        with urllib.request.urlopen(f"{COMFYUI_URL}/history/{prompt_id}", timeout=60) as response:
            history = json.load(response)
        if prompt_id in history:
            return history[prompt_id]
        time.sleep(0.5)
    raise TimeoutError("ComfyUI did not finish the IdentityGuard graph in 300 s")


def test_identity_guard_blends_a_heavy_blur_back_in_comfyui():
    image = _upload_astronaut()
    graph = {
        "1": {"class_type": "LoadImage", "inputs": {"image": image}},
        "2": {"class_type": "ImageBlur", "inputs": {"image": ["1", 0], "blur_radius": 15, "sigma": 6.0}},
        "3": {
            "class_type": "PortraitPolishIdentityGuard",
            "inputs": {"original": ["1", 0], "retouched": ["2", 0], "backend": "dlib", "threshold": 0.0, "action": "blend"},
        },
        "4": {"class_type": "PreviewImage", "inputs": {"images": ["3", 0]}},
    }
    result = _run(graph)
    errors = [m[1].get("exception_message") for m in result["status"].get("messages", []) if m[0] == "execution_error"]
    assert result["status"]["status_str"] == "success", errors
    ui = result["outputs"]["3"]
    rows = ui["portrait_polish_identity"]
    assert len(rows) == 1
    row = rows[0]
    assert row["status"] == "matched" and row["passed"] is False and row["score"] < row["threshold"]
    assert row["action"] == "blend" and 0 < row["blend"] <= 1 and row["final_score"] >= row["threshold"]
    # The canvas gets the before/after pair and ComfyUI's own preview of the result.
    assert ui["portrait_polish_compare"] and ui["images"]
    assert "FAIL" in ui["portrait_polish_identity_summary"][0]
