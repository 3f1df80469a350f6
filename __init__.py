"""Portrait Polish: natural portrait retouching nodes for ComfyUI.

This file only merges the node families' mappings (classic V1 registration). Importing
the pack defines classes and registers model folder names: no downloads, no network,
no model loading, no pip. All imports are relative because ComfyUI has its own
top-level module called ``nodes``.
"""

NODE_CLASS_MAPPINGS: dict[str, type] = {}
NODE_DISPLAY_NAME_MAPPINGS: dict[str, str] = {}

# Served at /extensions/<folder>/ by ComfyUI. The only mechanism that serves js/: pyproject
# has no [tool.comfy] web entry, so the browser loads each script once.
WEB_DIRECTORY = "./js"

# ComfyUI (and pip's portrait_polish) import this file as a package. pytest, run in a clone
# whose folder name is no Python name (comfyui-portrait-polish), imports it as a plain file
# to set up the folder's "package": there is no parent package then, and nothing to register.
if __package__:
    from .core.models import register_comfy_folders
    from .nodes import background, eyes, identity, parse, photo, plan, skin, teeth, upscale

    for _family in (photo, parse, skin, teeth, eyes, identity, upscale, background, plan):
        NODE_CLASS_MAPPINGS.update(_family.NODE_CLASS_MAPPINGS)
        NODE_DISPLAY_NAME_MAPPINGS.update(_family.NODE_DISPLAY_NAME_MAPPINGS)

    register_comfy_folders()

    # Without the pack's requirements (cv2, mediapipe, ...) the nodes still load and are listed;
    # one log line names what is missing and the pip command, and each node fails with the same.
    from .core import quiet
    from .core.requirements import guard_nodes, report_missing

    report_missing()
    guard_nodes(NODE_CLASS_MAPPINGS)
    quiet.configure()  # native libraries' log chatter off unless PORTRAIT_POLISH_VERBOSE=1 (core/quiet.py)

__all__ = ["NODE_CLASS_MAPPINGS", "NODE_DISPLAY_NAME_MAPPINGS", "WEB_DIRECTORY"]
