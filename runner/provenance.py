"""What a sidecar records about how an output was made: the IdentityGuard reports and the
models a graph uses (with their sha256 from models.json), the pack's version."""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any

from .workflow import ApiGraph


def node_sort(node_id: str) -> tuple[int, int, str]:
    return (0, int(node_id), "") if node_id.isdigit() else (1, 0, node_id)


def identity_reports(graph: ApiGraph, result, original: ApiGraph) -> list[dict[str, Any]]:
    """IdentityGuard reports: its UI output (server and in-process) or its 'report' output."""
    reports = []
    for node_id, node in sorted(graph.items(), key=lambda item: node_sort(item[0])):
        if "IdentityGuard" not in node["class_type"]:
            continue
        entry: dict[str, Any] = {"node": node_id, "title": (node.get("_meta") or {}).get("title")}
        ui = (result.outputs or {}).get(node_id) or {}
        for key, value in ui.items():
            if key != "images" and key != "portrait_polish_compare":
                entry[key] = value
        values = (getattr(result, "node_results", None) or {}).get(node_id)
        if values is not None:
            from .objectinfo import pack_classes

            cls = pack_classes()[0].get(node["class_type"])
            names = list(getattr(cls, "RETURN_NAMES", getattr(cls, "RETURN_TYPES", ())))
            for name, items in zip(names, values, strict=False):
                if any(word in name.lower() for word in ("report", "score", "similar", "passed")):
                    entry.setdefault(name, _parse_report(items))
        reports.append(entry)
    return reports


def _parse_report(items: list[Any]) -> Any:
    parsed = []
    for item in items:
        if isinstance(item, str):
            try:
                parsed.append(json.loads(item))
                continue
            except json.JSONDecodeError:
                pass
        parsed.append(item)
    return parsed[0] if len(parsed) == 1 else parsed


def models_used(graph: ApiGraph, object_info: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """Models a graph uses, with their sha256 from models.json: the required models of each
    node type in the graph and any model file chosen in a widget (e.g. the upscaler). Where a
    node has a ``backend`` choice, models that belong to another backend are left out."""
    from ..core.models import registry
    from .objectinfo import find_input

    specs = registry()
    by_file = {spec.filename: spec for spec in specs.values()}
    used: dict[str, Any] = {}

    def related(spec, backend: str) -> bool:
        return backend.split("_")[0].lower() in spec.id.lower() or backend == spec.folder

    for node in graph.values():
        plain = node["class_type"].removeprefix("PortraitPolish")
        backend = node["inputs"].get("backend")
        info = (object_info or {}).get(node["class_type"])
        spec_in = find_input(info, "backend") if info else None
        choices = [str(c) for c in (spec_in.choices or ())] if spec_in else ([backend] if isinstance(backend, str) else [])

        def fits(spec, choices=choices, backend=backend) -> bool:
            owners = [c for c in choices if related(spec, c)]
            return not owners or (isinstance(backend, str) and backend in owners)

        for spec in specs.values():
            if plain in spec.nodes and fits(spec) and (spec.required or (isinstance(backend, str) and related(spec, backend))):
                used[spec.id] = spec
        for value in node["inputs"].values():
            if isinstance(value, str) and Path(value).name in by_file and fits(by_file[Path(value).name]):
                spec = by_file[Path(value).name]
                used[spec.id] = spec
    return [{"id": s.id, "filename": s.filename, "sha256": s.sha256 if len(s.sha256) == 64 else None,
             "license": s.license, "commercial_use": s.commercial_use} for s in sorted(used.values(), key=lambda s: s.id)]


@functools.lru_cache(maxsize=1)
def pack_version() -> str:
    """The installed pack's version (read once: parsing the metadata costs ~20 ms, per image)."""
    try:
        from importlib.metadata import version

        return version("comfyui-portrait-polish")
    except Exception:  # noqa: BLE001
        return "unknown"
