"""Small shared pieces for node classes: ids, categories, widget specs."""

from __future__ import annotations

from typing import Any

NODE_PREFIX = "PortraitPolish"
CATEGORY = "Portrait Polish"

# The custom type FaceParse produces and the retouch nodes consume.
FACE_REGIONS = "FACE_REGIONS"

# The photo input every retouch node takes (same tooltip everywhere).
RETOUCH_IMAGE_INPUT = ("IMAGE", {"tooltip": "The photo to retouch (RGB, grey or RGBA; alpha is carried through)."})


def node_id(name: str) -> str:
    """``FaceParse`` -> ``PortraitPolishFaceParse`` (ids carry the pack prefix so they never clash)."""
    return f"{NODE_PREFIX}{name}"


def category(family: str | None = None) -> str:
    return f"{CATEGORY}/{family}" if family else CATEGORY


def float_widget(default: float, minimum: float, maximum: float, step: float, tooltip: str, **extra: Any) -> tuple[str, dict[str, Any]]:
    return ("FLOAT", {"default": default, "min": minimum, "max": maximum, "step": step, "tooltip": tooltip, **extra})


def int_widget(default: int, minimum: int, maximum: int, tooltip: str, step: int = 1, **extra: Any) -> tuple[str, dict[str, Any]]:
    return ("INT", {"default": default, "min": minimum, "max": maximum, "step": step, "tooltip": tooltip, **extra})


def bool_widget(default: bool, tooltip: str) -> tuple[str, dict[str, Any]]:
    return ("BOOLEAN", {"default": default, "tooltip": tooltip})


def combo_widget(options: list[str], default: str, tooltip: str) -> tuple[list[str], dict[str, Any]]:
    return (list(options), {"default": default, "tooltip": tooltip})


def register(mapping: dict[str, type], names: dict[str, str], cls: type, display_name: str) -> None:
    """Add ``cls`` to a family's mappings under the prefixed id and its plain display name."""
    key = node_id(display_name.replace(" ", ""))
    mapping[key] = cls
    names[key] = display_name
