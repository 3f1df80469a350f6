"""Workflow files: load UI or API format, convert UI to API, find nodes, set and check values.

API format is ``{"<id>": {"class_type", "inputs": {name: value | [src_id, slot]}, "_meta":
{"title"}}}``; UI format is what the canvas saves (``nodes``, ``links``, ``widgets_values``).
Conversion follows what the ComfyUI front-end does when it queues a prompt: widget values are
matched to the node's declared inputs in order (skipping the extra "control after generate"
and upload widget values), links are followed through Reroute nodes and bypassed nodes,
PrimitiveNode values are inlined, muted nodes, notes and groups are dropped.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

from .errors import ParameterError, WorkflowError
from .objectinfo import CONTROL_VALUES, InputSpec, coerce_value, find_input, input_specs

ApiGraph = dict[str, dict[str, Any]]

MODE_ALWAYS = 0
MODE_MUTED = 2  # "never": the node and what only it feeds are left out
MODE_BYPASS = 4  # inputs pass straight through to outputs of the same type

VIRTUAL_NODES = {"Note", "MarkdownNote", "Reroute", "PrimitiveNode"}
LOADER_CLASSES = ("LoadImage", "PortraitPolishLoadPhoto")


def load_json(path: str | Path) -> Any:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise WorkflowError(f"workflow file {path} does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise WorkflowError(f"workflow file {path} cannot be read: {exc}") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise WorkflowError(f"workflow file {path} is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}") from None


def workflow_format(data: Any) -> str:
    """"ui" or "api" (raises WorkflowError for anything else)."""
    if isinstance(data, dict) and isinstance(data.get("nodes"), list):
        return "ui"
    if isinstance(data, dict) and isinstance(data.get("prompt"), dict) and not data.get("nodes"):
        data = data["prompt"]  # a /prompt request body or a history entry's prompt
    if isinstance(data, dict) and data and all(isinstance(v, dict) and "class_type" in v for v in data.values()):
        return "api"
    raise WorkflowError("not a ComfyUI workflow: expected UI format (with a 'nodes' list) or API format "
                        "(an object of node ids, each with 'class_type' and 'inputs')")


def load_workflow(path: str | Path, object_info: dict[str, Any] | None = None) -> tuple[ApiGraph, dict[str, Any] | None]:
    """Read a workflow file and return ``(api_graph, ui_workflow_or_None)``.

    A UI-format file needs ``object_info`` (the node definitions) for conversion."""
    data = load_json(path)
    try:
        kind = workflow_format(data)
    except WorkflowError as exc:
        raise WorkflowError(f"workflow file {path}: {exc}") from None
    if kind == "api":
        graph = data["prompt"] if "prompt" in data and "class_type" not in data.get("prompt", {}) else data
        graph = {str(k): v for k, v in graph.items()}
        for node_id, node in graph.items():
            if not isinstance(node.get("inputs", {}), dict):
                raise WorkflowError(f"workflow file {path}: node {node_id} has 'inputs' that is not an object")
            node.setdefault("inputs", {})
        return graph, None
    if object_info is None:
        raise WorkflowError(f"workflow file {path} is in UI format; converting it needs node definitions")
    try:
        return ui_to_api(data, object_info), data
    except WorkflowError as exc:
        raise WorkflowError(f"workflow file {path}: {exc}") from None


def _links(ui: dict[str, Any]) -> dict[int, tuple[int, int, int, int, str]]:
    links: dict[int, tuple[int, int, int, int, str]] = {}
    for link in ui.get("links") or []:
        if isinstance(link, dict):
            entry = (link["origin_id"], link["origin_slot"], link["target_id"], link["target_slot"], link.get("type", "*"))
            links[int(link["id"])] = entry
        elif isinstance(link, list) and len(link) >= 5:
            links[int(link[0])] = (link[1], link[2], link[3], link[4], link[5] if len(link) > 5 else "*")
        else:
            raise WorkflowError(f"malformed link {link!r}")
    return links


def ui_to_api(ui: dict[str, Any], object_info: dict[str, Any]) -> ApiGraph:
    """Convert a UI-format workflow to API format using node definitions (/object_info shape)."""
    subgraph_ids = {sg.get("id") for sg in (ui.get("definitions") or {}).get("subgraphs") or []}
    nodes = {str(node["id"]): node for node in ui["nodes"]}
    for node in nodes.values():
        if node.get("type") in subgraph_ids or node.get("subgraph"):
            raise WorkflowError(f"node {node['id']} is a subgraph; the runner does not expand subgraphs yet. "
                                "In the canvas, right-click it and choose 'Unpack Subgraph', then save again.")
    links = _links(ui)

    def resolve(link_id: int, seen: frozenset = frozenset()) -> tuple[str, Any] | None:
        """Where a link's value really comes from: ("link", [id, slot]), ("value", v) or None."""
        if link_id in seen or link_id not in links:
            return None
        origin_id, origin_slot, _t, _s, _type = links[link_id]
        origin = nodes.get(str(origin_id))
        if origin is None:
            raise WorkflowError(f"link {link_id} comes from node {origin_id}, which is not in the workflow")
        kind, mode = origin.get("type"), origin.get("mode", MODE_ALWAYS)
        seen = seen | {link_id}
        if kind == "Reroute":
            upstream = (origin.get("inputs") or [{}])[0].get("link")
            return resolve(upstream, seen) if upstream is not None else None
        if kind == "PrimitiveNode":
            values = origin.get("widgets_values") or []
            if not values:
                raise WorkflowError(f"PrimitiveNode {origin_id} has no value")
            return ("value", values[0])
        if mode == MODE_MUTED:
            return None
        if mode == MODE_BYPASS:
            outputs = origin.get("outputs") or []
            wanted = outputs[origin_slot].get("type") if origin_slot < len(outputs) else None
            candidates = [(i, inp) for i, inp in enumerate(origin.get("inputs") or [])
                          if inp.get("link") is not None and (inp.get("type") == wanted or wanted in (None, "*"))]
            # Prefer the input at the same slot number, as the front-end does.
            candidates.sort(key=lambda pair: (pair[0] != origin_slot, pair[0]))
            for _index, candidate in candidates:
                found = resolve(candidate["link"], seen)
                if found is not None:
                    return found
            return None
        return ("link", [str(origin_id), int(origin_slot)])

    graph: ApiGraph = {}
    for node_id, node in sorted(nodes.items(), key=lambda item: int(item[0]) if item[0].isdigit() else 1 << 30):
        kind = node.get("type")
        if kind in VIRTUAL_NODES or node.get("mode", MODE_ALWAYS) in (MODE_MUTED, MODE_BYPASS):
            continue
        info = object_info.get(kind)
        if info is None:
            raise WorkflowError(f"node {node_id} has type {kind!r}, which is not among the available node "
                                "definitions (is its custom node pack installed on this server?)")
        graph[node_id] = {
            "inputs": _node_inputs(node, info, resolve),
            "class_type": kind,
            "_meta": {"title": node.get("title") or info.get("display_name") or kind},
        }
    return graph


def _node_inputs(node: dict[str, Any], info: dict[str, Any], resolve) -> dict[str, Any]:
    values = node.get("widgets_values")
    by_name = {inp.get("name"): inp for inp in node.get("inputs") or []}
    specs = input_specs(info)
    if isinstance(values, dict):  # some nodes store their widgets by name
        value_at = values.get
        widget_values: list[Any] = []
    else:
        widget_values = list(values or [])
        value_at = None
    expected = sum(1 + spec.has_control_widget for spec in specs if spec.is_widget)
    spare = len(widget_values) - expected  # extra stored values (e.g. an upload widget)
    index = 0
    inputs: dict[str, Any] = {}
    for spec in specs:
        value, have_value = None, False
        if spec.is_widget:
            if value_at is not None:
                have_value = spec.name in values
                value = value_at(spec.name)
            elif index < len(widget_values):
                value, have_value = widget_values[index], True
                index += 1
                if spec.has_control_widget and index < len(widget_values) and widget_values[index] in CONTROL_VALUES:
                    index += 1
                if spec.has_upload_widget and spare > 0:
                    index += 1
                    spare -= 1
            if not have_value and "default" in spec.options:
                value, have_value = spec.options["default"], True
        socket = by_name.get(spec.name)
        if socket is not None and socket.get("link") is not None:
            found = resolve(socket["link"])
            if found is not None:
                inputs[spec.name] = found[1]
                continue
        if have_value:
            inputs[spec.name] = value
    return inputs


# ---------------------------------------------------------------- finding and setting


def find_node(graph: ApiGraph, ref: str) -> str:
    """A node id, or a node's ``_meta.title`` (exact, then case-insensitive)."""
    if ref in graph:
        return ref
    for compare in (lambda a, b: a == b, lambda a, b: a.casefold() == b.casefold()):
        hits = [nid for nid, node in graph.items() if compare(str(node.get("_meta", {}).get("title", "")), ref)]
        if len(hits) == 1:
            return hits[0]
        if len(hits) > 1:
            raise ParameterError(f"node {ref!r} is ambiguous: nodes {', '.join(hits)} have that title; use a node id")
    known = ", ".join(f"{nid} ({node.get('_meta', {}).get('title', node['class_type'])})" for nid, node in graph.items())
    raise ParameterError(f"no node {ref!r} in the workflow; nodes: {known}")


def parse_assignment(text: str) -> tuple[str, str, str]:
    """``NODE.INPUT=VALUE`` -> (node, input, value). NODE may contain dots (titles)."""
    target, sep, value = text.partition("=")
    node, dot, name = target.strip().rpartition(".")
    if not sep or not dot or not node or not name:
        raise ParameterError(f"--set {text!r}: expected NODE.INPUT=VALUE (NODE is a node id or title)")
    return node, name, value


def set_input(graph: ApiGraph, object_info: dict[str, Any], node_ref: str, name: str, raw: Any, where: str) -> tuple[str, Any]:
    """Set one widget input (validated); returns (node_id, value)."""
    node_id = find_node(graph, node_ref)
    node = graph[node_id]
    info = object_info.get(node["class_type"])
    if info is None:
        raise ParameterError(f"{where}: node {node_id} has type {node['class_type']!r}, which has no definition")
    spec = find_input(info, name)
    if spec is None:
        names = ", ".join(s.name for s in input_specs(info) if s.is_widget)
        raise ParameterError(f"{where}: node {node_id} ({node['class_type']}) has no input {name!r}; its settable inputs: {names}")
    current = node["inputs"].get(name)
    if isinstance(current, list) and len(current) == 2 and isinstance(current[0], str):
        raise ParameterError(f"{where}: input {name!r} of node {node_id} is connected to node {current[0]}; it cannot be set")
    if not spec.is_widget:
        raise ParameterError(f"{where}: input {name!r} of node {node_id} is a {spec.type} connection, not a value")
    value = coerce_value(spec, raw, where)
    node["inputs"][name] = value
    return node_id, value


def apply_sets(graph: ApiGraph, object_info: dict[str, Any], assignments: list[str] | dict[str, Any]) -> dict[str, Any]:
    """Apply ``NODE.INPUT=VALUE`` assignments (a list of strings, or {"NODE.INPUT": value});
    returns {"<node_id>.<input>": value} of what was set."""
    applied: dict[str, Any] = {}
    items = assignments.items() if isinstance(assignments, dict) else [(None, a) for a in assignments]
    for key, item in items:
        if key is None:
            node_ref, name, raw = parse_assignment(item)
            where = f"--set {item}"
        else:
            node_ref, dot, name = key.rpartition(".")
            if not dot:
                raise ParameterError(f"{key!r}: expected NODE.INPUT")
            raw, where = item, f"{key}={item!r}"
        node_id, value = set_input(graph, object_info, node_ref, name, raw, where)
        applied[f"{node_id}.{name}"] = value
    return applied


def validate_graph(graph: ApiGraph, object_info: dict[str, Any], skip: set[tuple[str, str]] = frozenset()) -> None:
    """Check every node's inputs against its declaration before anything runs: known node
    types, links to existing nodes and outputs of a matching type, required inputs present,
    widget values of the right type, within min/max, among the combo values."""
    problems: list[str] = []
    for node_id, node in graph.items():
        kind = node.get("class_type")
        info = object_info.get(kind)
        if info is None:
            problems.append(f"node {node_id}: type {kind!r} is not available")
            continue
        specs = {spec.name: spec for spec in input_specs(info)}
        for name, spec in specs.items():
            value = node["inputs"].get(name)
            where = f"node {node_id} ({node.get('_meta', {}).get('title', kind)}) input {name!r}"
            if name not in node["inputs"]:
                if spec.required:
                    problems.append(f"{where}: required input is missing")
                continue
            if _is_link(value):
                source = graph.get(value[0])
                if source is None:
                    problems.append(f"{where}: linked to node {value[0]}, which is not in the workflow")
                    continue
                src_info = object_info.get(source["class_type"], {})
                outputs = src_info.get("output", [])
                if value[1] >= len(outputs):
                    problems.append(f"{where}: node {value[0]} has no output {value[1]}")
                    continue
                produced = outputs[value[1]]
                produced = "COMBO" if isinstance(produced, list) else produced
                if spec.type != "*" and produced != "*" and not _types_match(produced, spec.type):
                    problems.append(f"{where}: expects {spec.type} but node {value[0]} output {value[1]} gives {produced}")
                continue
            if (node_id, name) in skip or not spec.is_widget:
                continue
            try:
                coerce_value(spec, value, where)
            except ParameterError as exc:
                problems.append(str(exc))
    if problems:
        raise ParameterError("the workflow does not fit the node definitions:\n  " + "\n  ".join(problems))


def _types_match(produced: str, wanted: str) -> bool:
    produced_set = set(produced.split(","))
    wanted_set = set(wanted.split(","))
    return bool(produced_set & wanted_set)


def _is_link(value: Any) -> bool:
    return isinstance(value, list) and len(value) == 2 and isinstance(value[0], str) and isinstance(value[1], int)


def loader_nodes(graph: ApiGraph) -> list[str]:
    """Image loader nodes (where the runner puts each input image), in id order."""
    found = [nid for nid, node in graph.items() if node["class_type"] in LOADER_CLASSES]
    return sorted(found, key=lambda nid: (not nid.isdigit(), int(nid) if nid.isdigit() else 0, nid))


def output_nodes(graph: ApiGraph, object_info: dict[str, Any]) -> list[str]:
    return [nid for nid, node in graph.items() if object_info.get(node["class_type"], {}).get("output_node")]


def copy_graph(graph: ApiGraph) -> ApiGraph:
    """A deep copy of an API graph (JSON data: dicts, lists and scalars; anything else is
    copied with copy.deepcopy). A batch copies its graph once per job: this is several
    times faster than deepcopy on the whole graph."""
    return _copy_json(graph)


def _copy_json(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _copy_json(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_copy_json(item) for item in value]
    if value is None or isinstance(value, str | int | float | bool):
        return value
    return copy.deepcopy(value)


def spec_of(graph: ApiGraph, object_info: dict[str, Any], node_id: str, name: str) -> InputSpec | None:
    info = object_info.get(graph[node_id]["class_type"])
    return find_input(info, name) if info else None
