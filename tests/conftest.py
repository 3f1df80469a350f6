"""Pytest fixtures; the helpers themselves live in helpers.py (importable from tests)."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers import SHARED_MODELS, load_pack_as_comfyui, require_shared


@pytest.fixture(scope="session")
def pack():
    return load_pack_as_comfyui()


@pytest.fixture(scope="session")
def models_dir() -> Path:
    return require_shared(SHARED_MODELS)
