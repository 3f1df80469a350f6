"""In-process engine: runs API-format graphs of the pack's nodes plus the local core nodes,
with no ComfyUI and no server.

Like ComfyUI it executes only output nodes and what they depend on, in dependency order;
calls each node's FUNCTION with its inputs (lists are mapped over the way ComfyUI maps
them, honouring INPUT_IS_LIST / OUTPUT_IS_LIST); accepts ``{"ui": ..., "result": ...}``
return dicts; and caches node outputs by input signature, so running the same graph again
with only a late parameter changed recomputes only what changed.

Memory: a large output (:data:`LARGE_OUTPUT_BYTES` or more: a 24 MP IMAGE is 288 MB) is let
go as soon as the last node that reads it has run, and one that nothing reads (FaceParse's
preview in the default workflow) right after its node ran; such outputs are not cached, and
a later run that links one recomputes that node. A run therefore holds the input photo, the
node's input and its output at a time, not every intermediate image of the graph.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..core.photo_io import PhotoTooLarge, UnreadableImage
from .core_nodes import EngineDirs, reset_dirs, set_dirs
from .errors import TOO_LARGE, UNREADABLE_INPUT, JobFailed, WorkflowError
from .objectinfo import local_object_info, pack_classes
from .workflow import ApiGraph, _is_link, output_nodes

log = logging.getLogger("portrait_polish")

WORK_DIR_PREFIX = "portrait-polish-"  # + pid + "-": a killed run's folder is removed by the next one
# Outputs at least this big are freed once read and never cached (see the module docstring).
LARGE_OUTPUT_BYTES = 64 * 2**20


class _Released:
    """Stands in for a large output that was let go (never handed to a node)."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "<released>"


RELEASED = _Released()


def _nbytes(value: Any) -> int:
    """Bytes held by the tensors (and arrays) in an output slot's value."""
    if hasattr(value, "nbytes") and hasattr(value, "shape"):
        return int(value.nbytes)
    if isinstance(value, list | tuple):
        return sum(_nbytes(item) for item in value)
    return 0


def _consumers(graph: ApiGraph, order: list[str]) -> dict[tuple[str, int], int]:
    """How many inputs of the nodes that run read each (node, output slot)."""
    counts: dict[tuple[str, int], int] = {}
    for node_id in order:
        for value in graph[node_id]["inputs"].values():
            if _is_link(value):
                key = (value[0], int(value[1]))
                counts[key] = counts.get(key, 0) + 1
    return counts


def _remove_dead_work_dirs() -> None:
    """Remove the temp work folders of in-process engines whose process is gone (kill -9)."""
    pattern = re.compile(rf"^{re.escape(WORK_DIR_PREFIX)}(\d+)-[A-Za-z0-9_]+$")
    try:
        entries = list(Path(tempfile.gettempdir()).iterdir())
    except OSError:
        return
    for path in entries:
        match = pattern.match(path.name)
        if not match or int(match.group(1)) == os.getpid():
            continue
        try:
            os.kill(int(match.group(1)), 0)
        except ProcessLookupError:
            shutil.rmtree(path, ignore_errors=True)
        except (PermissionError, OSError):
            pass  # alive (or not ours to judge)


@dataclass
class RunResult:
    """What a run produced: per output node, its UI dict (like /history outputs)."""

    outputs: dict[str, dict[str, Any]]
    node_results: dict[str, tuple[list[Any], ...]] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)  # seconds per executed node
    cached: list[str] = field(default_factory=list)
    # Set by engines that run elsewhere and bring the saved files back with the result (Dask):
    # ref_id(ref) -> bytes, and which worker/engine ran it (for the sidecar).
    files: dict[str, bytes] = field(default_factory=dict)
    engine: dict[str, Any] | None = None


def ref_id(ref: dict[str, Any]) -> str:
    """One saved file's reference (type, subfolder, name) as one string."""
    return f"{ref.get('type', 'output')}/{ref.get('subfolder', '')}/{ref['filename']}"


class InProcessEngine:
    """Runs graphs in this Python process. ``classes`` defaults to the pack + core nodes."""

    name = "in-process"

    def __init__(self, classes: dict[str, type] | None = None, names: dict[str, str] | None = None,
                 work_dir: str | Path | None = None) -> None:
        if classes is None:
            classes, names = pack_classes()
        self.classes = classes
        self._object_info = local_object_info(classes, names)
        self._own_dir = work_dir is None
        if work_dir is None:
            _remove_dead_work_dirs()
        self.work_dir = Path(work_dir) if work_dir else Path(tempfile.mkdtemp(prefix=f"{WORK_DIR_PREFIX}{os.getpid()}-"))
        self.dirs = EngineDirs(output=self.work_dir / "output", temp=self.work_dir / "temp", input=self.work_dir / "input")
        for path in (self.dirs.output, self.dirs.temp, self.dirs.input):
            path.mkdir(parents=True, exist_ok=True)
        self._cache: dict[str, tuple[tuple[list[Any], ...], dict[str, Any] | None]] = {}
        self._instances: dict[str, Any] = {}

    # The same small interface the server engine offers.
    def object_info(self) -> dict[str, Any]:
        return self._object_info

    def describe(self) -> dict[str, Any]:
        return {"engine": self.name}

    def close(self) -> None:
        self._cache.clear()
        if self._own_dir:
            shutil.rmtree(self.work_dir, ignore_errors=True)

    def image_value(self, path: Path, job_key: str) -> str:
        """What to put in LoadImage.image for this input: in-process, the path itself."""
        return str(Path(path).resolve())

    def fetch(self, ref: dict[str, str]) -> bytes:
        root = self.dirs.output if ref.get("type", "output") == "output" else self.dirs.temp
        path = (root / ref.get("subfolder", "") / ref["filename"]).resolve()
        data = path.read_bytes()
        path.unlink(missing_ok=True)  # staged output: the runner keeps its own copy
        return data

    def cancel(self) -> None:  # nothing to tell: Ctrl-C interrupts the running node itself
        pass

    # ------------------------------------------------------------------ execution

    def run(self, graph: ApiGraph, extra_pnginfo: dict[str, Any] | None = None, timeout: float | None = None) -> RunResult:
        targets = output_nodes(graph, self._object_info)
        if not targets:
            raise WorkflowError("the workflow has no output node (SaveImage or PreviewImage): nothing would be kept")
        order = execution_order(graph, targets)
        readers = _consumers(graph, order)
        token = set_dirs(self.dirs)
        results: dict[str, tuple[list[Any], ...]] = {}
        signatures: dict[str, str] = {}
        outputs: dict[str, dict[str, Any]] = {}
        timings: dict[str, float] = {}
        cached: list[str] = []
        new_cache: dict[str, tuple[tuple[list[Any], ...], dict[str, Any] | None]] = {}
        deadline = time.monotonic() + timeout if timeout else None
        try:
            for node_id in order:
                node = graph[node_id]
                cls = self.classes[node["class_type"]]
                signature = self._signature(node, signatures)
                signatures[node_id] = signature
                is_output = bool(getattr(cls, "OUTPUT_NODE", False))
                hit = self._cache.get(signature) if not is_output else None
                if hit is not None and not any(hit[0][slot] is RELEASED for (source, slot) in readers if source == node_id):
                    results[node_id], ui = hit
                    new_cache[signature] = hit
                    cached.append(node_id)
                    if ui:
                        outputs[node_id] = ui  # like ComfyUI's history: cached nodes keep their UI output
                    self._release_read(node, readers, results)
                    continue
                if deadline is not None and time.monotonic() > deadline:
                    raise JobFailed(f"timed out before node {node_id} ({node['class_type']})", reason="timeout")
                start = time.perf_counter()
                try:
                    values, ui = self._execute(node_id, node, cls, results, graph, extra_pnginfo)
                except JobFailed:
                    raise
                except UnreadableImage as exc:  # the same verdict the server engine gives before uploading
                    raise JobFailed(str(exc), reason=TOO_LARGE if isinstance(exc, PhotoTooLarge) else UNREADABLE_INPUT) from exc
                except Exception as exc:  # noqa: BLE001 - reported as the node's error, like ComfyUI's execution_error
                    raise JobFailed(
                        f"node {node_id} ({node['class_type']}) failed: {type(exc).__name__}: {exc}",
                        reason="execution_error",
                        details={"node_id": node_id, "node_type": node["class_type"],
                                 "exception_type": type(exc).__name__, "exception_message": str(exc)},
                    ) from exc
                timings[node_id] = time.perf_counter() - start
                # Large outputs nothing reads go at once; the rest when their last reader ran.
                values = tuple(
                    RELEASED if readers.get((node_id, slot), 0) == 0 and _nbytes(value) >= LARGE_OUTPUT_BYTES else value
                    for slot, value in enumerate(values)
                )
                results[node_id] = values
                if not is_output:
                    new_cache[signature] = (tuple(RELEASED if _nbytes(v) >= LARGE_OUTPUT_BYTES else v for v in values), ui)
                if ui:
                    outputs[node_id] = ui
                self._release_read(node, readers, results)
        finally:
            reset_dirs(token)
        # Keep only this run's node outputs (ComfyUI's classic cache keeps the last prompt's).
        self._cache = new_cache
        return RunResult(outputs=outputs, node_results=results, timings=timings, cached=cached)

    @staticmethod
    def _release_read(node: dict[str, Any], readers: dict[tuple[str, int], int], results: dict[str, tuple[Any, ...]]) -> None:
        """Count the reads a node just made; let go of large outputs nobody reads any more."""
        for value in node["inputs"].values():
            if not _is_link(value):
                continue
            key = (value[0], int(value[1]))
            readers[key] -= 1
            if readers[key] == 0 and _nbytes(results[key[0]][key[1]]) >= LARGE_OUTPUT_BYTES:
                slots = list(results[key[0]])
                slots[key[1]] = RELEASED
                results[key[0]] = tuple(slots)

    def _signature(self, node: dict[str, Any], signatures: dict[str, str]) -> str:
        parts = {}
        for name, value in sorted(node["inputs"].items()):
            parts[name] = ["link", signatures[value[0]], value[1]] if _is_link(value) else value
        changed = self._is_changed(node)
        if changed != changed:  # NaN: the node asks to run every time
            return uuid.uuid4().hex
        text = json.dumps([node["class_type"], parts, changed], sort_keys=True, default=str)
        return hashlib.sha256(text.encode()).hexdigest()

    def _is_changed(self, node: dict[str, Any]) -> Any:
        """ComfyUI's IS_CHANGED: part of the cache key (LoadImage: the file's content)."""
        cls = self.classes[node["class_type"]]
        if not hasattr(cls, "IS_CHANGED"):
            return None
        literals = {k: v for k, v in node["inputs"].items() if not _is_link(v)}
        token = set_dirs(self.dirs)
        try:
            return cls.IS_CHANGED(**literals)
        except Exception:  # noqa: BLE001 - it needs linked values we do not pass: run every time
            return float("nan")
        finally:
            reset_dirs(token)

    def _execute(self, node_id: str, node: dict[str, Any], cls: type, results: dict[str, tuple[list[Any], ...]],
                 graph: ApiGraph, extra_pnginfo: dict[str, Any] | None) -> tuple[tuple[list[Any], ...], dict[str, Any] | None]:
        declared = cls.INPUT_TYPES()
        hidden = declared.get("hidden") or {}
        kwargs: dict[str, list[Any]] = {}
        for name, value in node["inputs"].items():
            if _is_link(value):
                source = results[value[0]]
                if value[1] >= len(source):
                    raise WorkflowError(f"node {node_id} input {name!r}: node {value[0]} has no output {value[1]}")
                kwargs[name] = source[value[1]]
            else:
                kwargs[name] = [value]
        for name, kind in hidden.items():
            if kind == "PROMPT":
                kwargs[name] = [graph]
            elif kind == "EXTRA_PNGINFO":
                kwargs[name] = [extra_pnginfo]
            elif kind == "UNIQUE_ID":
                kwargs[name] = [node_id]
        instance = self._instances.get(node["class_type"])
        if instance is None:
            instance = self._instances[node["class_type"]] = cls()
        function = getattr(instance, cls.FUNCTION)
        returns = tuple(getattr(cls, "RETURN_TYPES", ()))
        output_is_list = list(getattr(cls, "OUTPUT_IS_LIST", [False] * len(returns)))
        if getattr(cls, "INPUT_IS_LIST", False):
            calls = [kwargs]
        else:
            length = max((len(v) for v in kwargs.values()), default=1)
            if any(len(v) == 0 for v in kwargs.values()):
                length = 0
            calls = [{k: v[min(i, len(v) - 1)] for k, v in kwargs.items()} for i in range(length)]
        slots: list[list[Any]] = [[] for _ in returns]
        ui_merged: dict[str, Any] = {}
        for call in calls:
            value = function(**call)
            ui = None
            if isinstance(value, dict):
                if "expand" in value:
                    raise WorkflowError(f"node {node_id} ({node['class_type']}) expands into a subgraph; run it on a ComfyUI server")
                ui = value.get("ui")
                value = value.get("result", ())
            value = tuple(value) if value is not None else ()
            for index in range(len(returns)):
                item = value[index] if index < len(value) else None
                if output_is_list[index] if index < len(output_is_list) else False:
                    slots[index].extend(item or [])
                else:
                    slots[index].append(item)
            for key, items in (ui or {}).items():
                ui_merged.setdefault(key, [])
                ui_merged[key].extend(items if isinstance(items, list) else [items])
        return tuple(slots), ui_merged or None


def execution_order(graph: ApiGraph, targets: list[str]) -> list[str]:
    """Dependency order of ``targets`` and everything they need (cycles are an error)."""
    order: list[str] = []
    state: dict[str, int] = {}  # 1 = visiting, 2 = done

    def visit(node_id: str, path: tuple[str, ...]) -> None:
        if state.get(node_id) == 2:
            return
        if state.get(node_id) == 1:
            raise WorkflowError(f"the workflow has a cycle: {' -> '.join(path + (node_id,))}")
        if node_id not in graph:
            raise WorkflowError(f"node {path[-1] if path else '?'} is linked to node {node_id}, which is not in the workflow")
        state[node_id] = 1
        for value in graph[node_id]["inputs"].values():
            if _is_link(value):
                visit(value[0], path + (node_id,))
        state[node_id] = 2
        order.append(node_id)

    for target in sorted(targets, key=lambda t: (len(t), t)):
        visit(target, ())
    return order
