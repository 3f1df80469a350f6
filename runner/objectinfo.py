"""Node definitions in the shape of ComfyUI's ``GET /object_info``.

In-process they are built from the pack's own ``NODE_CLASS_MAPPINGS`` plus the local core
nodes (LoadImage, SaveImage, PreviewImage); in server mode they are fetched from the
server. Everything else in the runner (UI->API conversion, ``--set`` validation) reads only
this shape, so it works for any node class that follows the ComfyUI V1 contract.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import ParameterError

# Widget types: the front-end draws a widget (and the UI format stores a widgets_values
# slot) for inputs of these types, unless the input is declared with forceInput.
WIDGET_TYPES = {"INT", "FLOAT", "STRING", "BOOLEAN", "COMBO"}
# The values of the extra "control after generate" widget the front-end adds after seeds.
CONTROL_VALUES = {"fixed", "increment", "decrement", "randomize"}
SEED_NAMES = {"seed", "noise_seed"}


def node_info(class_id: str, cls: type, display_name: str | None = None) -> dict[str, Any]:
    """One node class described as ComfyUI's server describes it in /object_info."""
    input_types = cls.INPUT_TYPES()
    returns = tuple(getattr(cls, "RETURN_TYPES", ()))
    info = {
        "input": input_types,
        "input_order": {section: list(values) for section, values in input_types.items()},
        "output": list(returns),
        "output_is_list": list(getattr(cls, "OUTPUT_IS_LIST", [False] * len(returns))),
        "output_name": list(getattr(cls, "RETURN_NAMES", returns)),
        "name": class_id,
        "display_name": display_name or class_id,
        "description": getattr(cls, "DESCRIPTION", ""),
        "python_module": getattr(cls, "__module__", ""),
        "category": getattr(cls, "CATEGORY", "sd"),
        "output_node": bool(getattr(cls, "OUTPUT_NODE", False)),
    }
    if hasattr(cls, "OUTPUT_TOOLTIPS"):
        info["output_tooltips"] = list(cls.OUTPUT_TOOLTIPS)
    # Round-trip through JSON so the in-process definitions look exactly like a server's
    # (tuples become lists, odd values become strings).
    return json.loads(json.dumps(info, default=str))


def pack_classes() -> tuple[dict[str, type], dict[str, str]]:
    """The pack's node classes plus the local core nodes, for the in-process engine."""
    from .. import NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS
    from .core_nodes import CORE_DISPLAY_NAMES, CORE_NODE_CLASSES

    classes = {**CORE_NODE_CLASSES, **NODE_CLASS_MAPPINGS}
    names = {**CORE_DISPLAY_NAMES, **NODE_DISPLAY_NAME_MAPPINGS}
    return classes, names


def local_object_info(classes: dict[str, type] | None = None, names: dict[str, str] | None = None) -> dict[str, Any]:
    if classes is None:
        classes, names = pack_classes()
    names = names or {}
    info = {class_id: node_info(class_id, cls, names.get(class_id)) for class_id, cls in classes.items()}
    _allow_registry_defaults(info)
    return info


def _allow_registry_defaults(info: dict[str, Any]) -> None:
    """A model dropdown lists the model files found on disk. In-process, also offer the
    pack's own models.json files of the same kind for that node: the pack's resolver finds
    or downloads them on first use (and says clearly when it cannot). So a workflow that
    names ``parsing_bisenet.pth`` stays valid on a machine that does not have it yet."""
    try:
        from ..core.models import registry

        specs = list(registry().values())
    except Exception:  # noqa: BLE001 - no registry (a foreign node set): nothing to add
        return
    model_suffixes = {Path(spec.filename).suffix for spec in specs}
    for class_id, node in info.items():
        plain = class_id.removeprefix("PortraitPolish")
        for section in ("required", "optional"):
            for raw in (node.get("input", {}).get(section) or {}).values():
                if not (isinstance(raw, list) and raw and isinstance(raw[0], list)):
                    continue
                suffixes = {Path(str(c)).suffix for c in raw[0]} & model_suffixes
                if not suffixes:
                    continue
                for spec in specs:
                    if plain in spec.nodes and Path(spec.filename).suffix in suffixes and spec.filename not in raw[0]:
                        raw[0].append(spec.filename)


@dataclass(frozen=True)
class InputSpec:
    """One declared input, normalised across the old and new /object_info shapes."""

    name: str
    type: str  # "INT", "FLOAT", "STRING", "BOOLEAN", "COMBO" or a socket type like "IMAGE"
    options: dict[str, Any]
    choices: tuple[Any, ...] | None  # combo values
    required: bool

    @property
    def is_widget(self) -> bool:
        return self.type in WIDGET_TYPES and not self.options.get("forceInput", False)

    @property
    def has_control_widget(self) -> bool:
        """The front-end adds a 'control after generate' widget (its value is stored too)."""
        if self.options.get("control_after_generate") is not None:
            return bool(self.options["control_after_generate"])
        return self.type == "INT" and self.name in SEED_NAMES

    @property
    def has_upload_widget(self) -> bool:
        return any(self.options.get(key) for key in ("image_upload", "video_upload", "audio_upload"))

    def describe(self) -> str:
        if self.choices is not None:
            shown = ", ".join(repr(c) for c in self.choices[:12])
            more = f", ... ({len(self.choices)} in all)" if len(self.choices) > 12 else ""
            return f"one of {shown}{more}" if self.choices else "a value (no choices listed)"
        parts = [self.type]
        if "min" in self.options or "max" in self.options:
            parts.append(f"in [{self.options.get('min', '-inf')}, {self.options.get('max', 'inf')}]")
        return " ".join(parts)


def input_spec(name: str, raw: Any, required: bool) -> InputSpec:
    if isinstance(raw, str):
        raw = [raw]
    kind = raw[0] if raw else "*"
    options = raw[1] if len(raw) > 1 and isinstance(raw[1], dict) else {}
    if isinstance(kind, list | tuple):
        return InputSpec(name, "COMBO", options, tuple(kind), required)
    if kind == "COMBO":
        return InputSpec(name, "COMBO", options, tuple(options.get("options", ())), required)
    return InputSpec(name, str(kind), options, None, required)


def input_specs(info: dict[str, Any]) -> list[InputSpec]:
    """Required then optional inputs, in declaration order (the widgets_values order)."""
    specs: list[InputSpec] = []
    inputs = info.get("input", {})
    order = info.get("input_order", {})
    for section in ("required", "optional"):
        declared = inputs.get(section) or {}
        for name in order.get(section, list(declared)):
            if name in declared:
                specs.append(input_spec(name, declared[name], section == "required"))
    return specs


def find_input(info: dict[str, Any], name: str) -> InputSpec | None:
    return next((spec for spec in input_specs(info) if spec.name == name), None)


_TRUE = {"true", "1", "yes", "on"}
_FALSE = {"false", "0", "no", "off"}


def coerce_value(spec: InputSpec, value: Any, where: str) -> Any:
    """Turn a command-line / CSV string (or a JSON value) into the input's type, and check
    it against the declared min/max and combo values. Raises ParameterError naming ``where``."""
    problem = None
    if spec.type == "COMBO":
        if spec.choices:
            if value in spec.choices:
                return value
            for choice in spec.choices:  # "--set x.mode=2" for a combo of numbers, etc.
                if str(choice) == str(value):
                    return choice
            raise ParameterError(f"{where}: {value!r} is not allowed; expected {spec.describe()}")
        return value
    if spec.type == "BOOLEAN":
        if isinstance(value, bool):
            return value
        text = str(value).strip().lower()
        if text in _TRUE:
            return True
        if text in _FALSE:
            return False
        raise ParameterError(f"{where}: {value!r} is not a boolean (use true or false)")
    if spec.type == "STRING":
        if isinstance(value, dict | list):
            raise ParameterError(f"{where}: expected text, got {type(value).__name__}")
        return str(value)
    if spec.type in {"INT", "FLOAT"}:
        try:
            if isinstance(value, bool):
                raise ValueError
            number = float(value)
        except (TypeError, ValueError):
            raise ParameterError(f"{where}: {value!r} is not a number; expected {spec.describe()}") from None
        if not math.isfinite(number):  # NaN and infinity pass every min/max test and are not JSON
            raise ParameterError(f"{where}: {value!r} is not a finite number; expected {spec.describe()}")
        if spec.type == "INT":
            if number != int(number):
                raise ParameterError(f"{where}: {value!r} is not a whole number; expected {spec.describe()}")
            number = int(number)
        low, high = spec.options.get("min"), spec.options.get("max")
        if low is not None and number < low:
            problem = f"{number} is below the minimum {low}"
        elif high is not None and number > high:
            problem = f"{number} is above the maximum {high}"
        if problem:
            raise ParameterError(f"{where}: {problem}")
        return number
    # Socket types (IMAGE, MASK, FACE_REGIONS...) cannot be set from text.
    raise ParameterError(f"{where}: input of type {spec.type} is a connection, not a value that can be set")
