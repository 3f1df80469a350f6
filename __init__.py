"""Portrait Polish: natural portrait retouching nodes for ComfyUI.

This file only merges the node families' mappings (classic V1 registration). Importing
the pack defines classes and registers model folder names: no downloads, no network,
no model loading, no pip. All imports are relative because ComfyUI has its own
top-level module called ``nodes``.
"""

from .core.models import register_comfy_folders
from .nodes import background, eyes, identity, parse, skin, teeth, upscale

_FAMILIES = (parse, skin, teeth, eyes, identity, upscale, background)

NODE_CLASS_MAPPINGS: dict[str, type] = {}
NODE_DISPLAY_NAME_MAPPINGS: dict[str, str] = {}
for _family in _FAMILIES:
    NODE_CLASS_MAPPINGS.update(_family.NODE_CLASS_MAPPINGS)
    NODE_DISPLAY_NAME_MAPPINGS.update(_family.NODE_DISPLAY_NAME_MAPPINGS)

# Served at /extensions/<folder>/ by ComfyUI. The only mechanism that serves js/: pyproject
# has no [tool.comfy] web entry, so the browser loads each script once.
WEB_DIRECTORY = "./js"

register_comfy_folders()

__all__ = ["NODE_CLASS_MAPPINGS", "NODE_DISPLAY_NAME_MAPPINGS", "WEB_DIRECTORY"]
