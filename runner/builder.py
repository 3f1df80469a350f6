"""Build a workflow in both formats (UI for the canvas, API for the runner) from a short
description, using node definitions (/object_info shape) for widget order and defaults.

The API file is built straight from the description, not by converting the UI file, so the
test that converts UI -> API and compares it with the shipped API file checks the converter.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

from .objectinfo import input_specs

X_STEP, Y_TOP = 340, 120


@dataclass
class NodeSpec:
    key: str  # a name used for links inside the description
    class_type: str
    links: dict[str, tuple[str, str]] = field(default_factory=dict)  # input -> (source key, output name or type)
    values: dict[str, Any] = field(default_factory=dict)  # widget values (others take their defaults)
    title: str | None = None
    models: list[dict[str, str]] | None = None  # properties.models: [{name, url, directory}]
    pos: tuple[int, int] | None = None
    mode: int = 0


def _output_index(info: dict[str, Any], wanted: str, where: str) -> int:
    names = info.get("output_name") or info.get("output") or []
    for candidates in (names, info.get("output", [])):
        if wanted in candidates:
            return list(candidates).index(wanted)
    raise ValueError(f"{where}: no output {wanted!r} (outputs: {', '.join(names)})")


def _default(spec) -> Any:
    if "default" in spec.options:
        return spec.options["default"]
    if spec.choices:
        return spec.choices[0]
    return {"INT": 0, "FLOAT": 0.0, "STRING": "", "BOOLEAN": False}.get(spec.type)


def build(nodes: list[NodeSpec], object_info: dict[str, Any], note: str | None = None,
          workflow_id: str | None = None) -> tuple[dict[str, Any], dict[str, Any]]:
    """Return ``(ui_workflow, api_graph)`` for the described nodes."""
    ids = {node.key: index + 1 for index, node in enumerate(nodes)}
    infos = {}
    for node in nodes:
        if node.class_type not in object_info:
            raise ValueError(f"node {node.key}: no definition for {node.class_type}")
        infos[node.key] = object_info[node.class_type]
    links: list[list[Any]] = []
    api: dict[str, Any] = {}
    ui_nodes: list[dict[str, Any]] = []
    out_links: dict[tuple[str, int], list[int]] = {}
    link_of: dict[tuple[str, str], int] = {}
    for node in nodes:
        info = infos[node.key]
        declared = {spec.name for spec in input_specs(info)}
        for name in list(node.links) + list(node.values):
            if name not in declared:
                raise ValueError(f"node {node.key} ({node.class_type}): no input {name!r}; it has {sorted(declared)}")
        for name, (source, output) in node.links.items():
            slot = _output_index(infos[source], output, f"node {node.key} input {name}")
            spec = next(s for s in input_specs(info) if s.name == name)
            link_id = len(links) + 1
            links.append([link_id, ids[source], slot, ids[node.key], None, infos[source]["output"][slot] if spec.type == "*" else spec.type])
            out_links.setdefault((source, slot), []).append(link_id)
            link_of[(node.key, name)] = link_id
    for order, node in enumerate(nodes):
        info = infos[node.key]
        node_id = str(ids[node.key])
        inputs_api: dict[str, Any] = {}
        ui_inputs: list[dict[str, Any]] = []
        widgets: list[Any] = []
        for spec in input_specs(info):
            link_id = link_of.get((node.key, spec.name))
            if spec.is_widget:
                value = node.values.get(spec.name, _default(spec))
                widgets.append(value)
                if spec.has_control_widget:
                    widgets.append("fixed")
                if spec.has_upload_widget:
                    widgets.append("image")
            if link_id is not None:
                source, output = node.links[spec.name]
                slot = _output_index(infos[source], output, node.key)
                inputs_api[spec.name] = [str(ids[source]), slot]
            elif spec.is_widget:
                inputs_api[spec.name] = node.values.get(spec.name, _default(spec))
            entry: dict[str, Any] = {"name": spec.name, "type": "COMBO" if spec.choices is not None else spec.type, "link": link_id}
            if spec.is_widget:
                entry["widget"] = {"name": spec.name}
            if link_id is not None or spec.is_widget:
                if link_id is not None:
                    links[link_id - 1][4] = len(ui_inputs)
                ui_inputs.append(entry)
        outputs = []
        for slot, (kind, name) in enumerate(zip(info["output"], info.get("output_name") or info["output"], strict=False)):
            outputs.append({"name": name, "type": kind, "links": out_links.get((node.key, slot), []), "slot_index": slot})
        properties: dict[str, Any] = {"Node name for S&R": node.class_type}
        if node.models:
            properties["models"] = node.models
        x, y = node.pos or (40 + order * X_STEP, Y_TOP)
        ui_node = {
            "id": ids[node.key], "type": node.class_type, "pos": [x, y], "size": [300, 120 + 26 * len(widgets)],
            "flags": {}, "order": order, "mode": node.mode, "inputs": ui_inputs, "outputs": outputs,
            "properties": properties, "widgets_values": widgets,
        }
        title = node.title or info.get("display_name") or node.class_type
        if node.title and node.title != info.get("display_name"):
            ui_node["title"] = node.title
        ui_nodes.append(ui_node)
        if node.mode == 0:
            api[node_id] = {"inputs": inputs_api, "class_type": node.class_type, "_meta": {"title": title}}
    if note:
        ui_nodes.append({"id": len(nodes) + 1, "type": "Note", "pos": [40, Y_TOP + 420], "size": [520, 160], "flags": {},
                         "order": len(nodes), "mode": 0, "inputs": [], "outputs": [], "properties": {},
                         "widgets_values": [note]})
    ui = {
        "id": workflow_id or str(uuid.uuid4()), "revision": 0, "last_node_id": len(ui_nodes), "last_link_id": len(links),
        "nodes": ui_nodes, "links": links, "groups": [], "config": {},
        "extra": {"ds": {"scale": 0.8, "offset": [0, 0]}}, "version": 0.4,
    }
    return ui, api
