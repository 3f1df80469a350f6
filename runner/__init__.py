"""Headless runner: load UI- or API-format workflows and run them in-process or on a ComfyUI server.

    from portrait_polish import runner
    summary = runner.run_workflow("workflows/natural_headshot.json", "photos/", "out")
    summary = runner.run_workflow(..., server="http://127.0.0.1:8188", sets=["Teeth.strength=0.3"])

Nothing is imported at package import beyond this module: the engines load on first use.
"""

from __future__ import annotations

from typing import Any

__all__ = ["Batch", "run_workflow", "load_workflow", "ui_to_api", "InProcessEngine", "ServerEngine", "Summary"]


def __getattr__(name: str) -> Any:
    if name in ("Batch", "run_workflow", "Summary"):
        from . import batch

        return getattr(batch, name)
    if name in ("load_workflow", "ui_to_api"):
        from . import workflow

        return getattr(workflow, name)
    if name == "InProcessEngine":
        from .engine_local import InProcessEngine

        return InProcessEngine
    if name == "ServerEngine":
        from .engine_server import ServerEngine

        return ServerEngine
    raise AttributeError(name)
