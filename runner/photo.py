"""Photo files in the runner: every workflow reads and writes through the pack's LoadPhoto and
SavePhoto, so a 16-bit TIFF comes back a 16-bit TIFF with its ICC profile and metadata.

A workflow's ComfyUI LoadImage / SaveImage nodes are swapped for them (same inputs and output
slots, the saver linked to the loader's PHOTO_INFO and MASK) when the engine has them, and the
``--format`` / ``--to-srgb`` / ``--strip-gps`` / ``--strip-metadata`` options are set on them.
An engine without them (a server with an older pack, a test engine) keeps the graph as it is;
asking for an option it cannot honour then is an error, not a silent 8-bit PNG.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..core.photo_io import DEFAULT_JPEG_QUALITY, SAVED_KEY, auto_extension, parse_format
from .errors import ParameterError, WorkflowError
from .workflow import ApiGraph, _is_link, copy_graph

LOAD_PHOTO = "PortraitPolishLoadPhoto"
SAVE_PHOTO = "PortraitPolishSavePhoto"


@dataclass(frozen=True)
class PhotoOptions:
    """How the runner writes files (the CLI's --format, --to-srgb, --strip-gps, --strip-metadata)."""

    format: str | None = None  # png | png16 | tiff | tiff16 | jpeg[:Q] | webp[:Q] | auto; None = the saver's own widget
    to_srgb: bool = False
    strip_gps: bool = False
    strip_metadata: bool = False

    def __post_init__(self) -> None:
        if self.format is not None:
            try:
                parse_format(self.format)
            except ValueError as exc:
                raise ParameterError(f"--format: {exc}") from None

    @property
    def metadata(self) -> str | None:
        return "strip all" if self.strip_metadata else "strip GPS" if self.strip_gps else None

    @property
    def requested(self) -> bool:
        return self.format not in (None, "auto", "png") or self.to_srgb or self.metadata is not None


def use_photo_nodes(graph: ApiGraph, object_info: dict[str, Any], loader: str, options: PhotoOptions) -> ApiGraph:
    """``graph`` with LoadImage/SaveImage swapped for LoadPhoto/SavePhoto and ``options`` applied."""
    if LOAD_PHOTO not in object_info or SAVE_PHOTO not in object_info:
        if options.requested:
            raise WorkflowError("this engine has no PortraitPolishLoadPhoto/SavePhoto nodes (update Portrait Polish on the "
                                "server), so --format, --to-srgb and --strip-* cannot be honoured")
        return graph
    graph = copy_graph(graph)
    for node in graph.values():
        if node["class_type"] == "LoadImage":
            node["class_type"] = LOAD_PHOTO
            node["inputs"] = {"image": node["inputs"].get("image", ""), "to_srgb": False}
    if graph[loader]["class_type"] == LOAD_PHOTO and options.to_srgb:
        graph[loader]["inputs"]["to_srgb"] = True
    fmt = parse_format(options.format) if options.format else None
    for node in graph.values():
        if node["class_type"] == "SaveImage":
            node["class_type"] = SAVE_PHOTO
            node["inputs"] = {"images": node["inputs"]["images"], "filename_prefix": node["inputs"].get("filename_prefix", "ComfyUI"),
                              "format": "auto", "quality": DEFAULT_JPEG_QUALITY, "metadata": "keep"}
        if node["class_type"] != SAVE_PHOTO:
            continue
        inputs = node["inputs"]
        if options.format is not None:
            inputs["format"] = fmt.name if fmt is not None else "auto"
            if fmt is not None and fmt.quality is not None:
                inputs["quality"] = fmt.quality
            elif fmt is not None and fmt.kind == "webp":
                inputs["quality"] = 100  # plain "webp": lossless
        if options.metadata is not None:
            inputs["metadata"] = options.metadata
        if graph[loader]["class_type"] == LOAD_PHOTO:
            if not _is_link(inputs.get("photo_info")):
                inputs["photo_info"] = [loader, 2]
            if not _is_link(inputs.get("mask")):
                inputs["mask"] = [loader, 1]
    return graph


def planned_extension(graph: ApiGraph, input_path: str | Path) -> str:
    """The extension the first saver will give this input's output (for the skip check)."""
    for node_id in sorted(graph, key=lambda n: (not n.isdigit(), int(n) if n.isdigit() else 0, n)):
        node = graph[node_id]
        if node["class_type"] == SAVE_PHOTO:
            value = node["inputs"].get("format", "auto")
            fmt = parse_format(value) if isinstance(value, str) else None
            return fmt.extension if fmt is not None else auto_extension(input_path)
    return ".png"


def saved_refs(ui: dict[str, Any] | None) -> list[dict[str, Any]]:
    """The files an output node wrote: SavePhoto's record (with what each file kept), else
    the plain ``images`` list of ComfyUI's SaveImage."""
    ui = ui or {}
    return list(ui.get(SAVED_KEY) or ui.get("images") or [])
