"""The pack inside a real ComfyUI server (optional: runs only when COMFYUI_URL is set).

Start a host with the pack linked in (see ../shared/comfy-host/README.md), e.g.
``COMFY_HOST_ONLY_PACK=1 PACK_NAME=portrait_polish run_host.sh start . 8301``, then
``COMFYUI_URL=http://127.0.0.1:8301 pytest tests/test_comfy_host.py``.
"""

from __future__ import annotations

import json
import os
import urllib.request

import pytest

from portrait_polish.core.models import FOLDER_EXTENSIONS

COMFYUI_URL = os.environ.get("COMFYUI_URL", "").rstrip("/")

pytestmark = [
    pytest.mark.comfyui,
    pytest.mark.skipif(not COMFYUI_URL, reason="set COMFYUI_URL to a running ComfyUI with this pack to run these"),
]


def get_json(path: str) -> object:
    with urllib.request.urlopen(f"{COMFYUI_URL}{path}", timeout=60) as response:
        return json.load(response)


def test_every_node_is_registered_in_comfyui(pack):
    object_info = get_json("/object_info")
    assert isinstance(object_info, dict)
    missing = sorted(set(pack.NODE_CLASS_MAPPINGS) - set(object_info))
    assert missing == [], f"not in /object_info (IMPORT FAILED or an id clash?): {missing}"
    for node_id, cls in pack.NODE_CLASS_MAPPINGS.items():
        info = object_info[node_id]
        assert info["display_name"] == pack.NODE_DISPLAY_NAME_MAPPINGS.get(node_id, node_id)
        assert info["category"] == cls.CATEGORY
        assert list(info["output"]) == list(cls.RETURN_TYPES)


def test_model_folder_types_are_registered():
    folders = get_json("/models")
    assert isinstance(folders, list)
    assert set(FOLDER_EXTENSIONS) <= set(folders)
