"""js/lib/regions.js keeps its own copy of FaceParse's region names, colours and groups (the
canvas legend needs them before the node has run). The copy must match the Python side."""

from __future__ import annotations

import json
import shutil
import subprocess

import pytest
from helpers import REPO_ROOT

from portrait_polish.core.parse import REGION_COLOURS
from portrait_polish.core.regions import FACE_REGION_NAMES, REGION_GROUPS


def _js_regions() -> dict:
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed (scripts/test.sh installs it for the js tests)")
    script = (
        f"import * as r from {json.dumps((REPO_ROOT / 'js' / 'lib' / 'regions.js').as_uri())};"
        "console.log(JSON.stringify({names: r.FACE_REGION_NAMES, colours: r.FALLBACK_COLOURS, groups: r.REGION_GROUPS}));"
    )
    out = subprocess.run([node, "--input-type=module", "-e", script], capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


def test_js_region_names_colours_and_groups_match_python() -> None:
    js = _js_regions()
    assert tuple(js["names"]) == FACE_REGION_NAMES
    assert js["colours"] == REGION_COLOURS
    assert js["groups"], "regions.js lists no groups"
    for name, members in js["groups"].items():
        assert tuple(members) == tuple(REGION_GROUPS[name]), name
