"""Check a node class the way ComfyUI uses it, and call it with valid inputs.

ComfyUI reads ``INPUT_TYPES()`` to build ``/object_info`` and widgets, validates widget
values against min/max/step and combo options, calls ``getattr(instance, FUNCTION)(**inputs)``
and expects a tuple matching ``RETURN_TYPES`` (or a dict with ``result``/``ui``).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch

WIDGET_TYPES = {"INT", "FLOAT", "STRING", "BOOLEAN"}
# ComfyUI's own data types: optional sockets of these are left unconnected in a contract call.
PLAIN_TYPES = {"IMAGE", "MASK", "LATENT", "UPSCALE_MODEL"}

# Factories for non-widget input types: a valid value of that type for a contract call.
# Families add theirs here (FACE_REGIONS from a real parse, UPSCALE_MODEL from real weights).
TYPE_FACTORIES: dict[str, Callable[[], Any]] = {}

# Checks for output types: value -> bool.
TYPE_CHECKS: dict[str, Callable[[Any], bool]] = {
    "IMAGE": lambda v: isinstance(v, torch.Tensor) and v.ndim == 4 and v.shape[-1] in (1, 3, 4) and v.dtype == torch.float32,
    "MASK": lambda v: isinstance(v, torch.Tensor) and v.ndim == 3 and v.dtype == torch.float32,
    "FLOAT": lambda v: isinstance(v, float),
    "INT": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "BOOLEAN": lambda v: isinstance(v, bool),
    "STRING": lambda v: isinstance(v, str),
}


def _check_widget(name: str, kind: Any, options: dict[str, Any], problems: list[str]) -> None:
    if isinstance(kind, list):
        if not kind:
            problems.append(f"{name}: empty combo list")
        elif "default" in options and options["default"] not in kind:
            problems.append(f"{name}: default {options['default']!r} not among combo values")
        return
    if kind not in WIDGET_TYPES:
        return
    if "default" not in options:
        problems.append(f"{name}: widget has no default")
        return
    default = options["default"]
    if kind == "BOOLEAN" and not isinstance(default, bool):
        problems.append(f"{name}: BOOLEAN default {default!r} is not a bool")
    if kind == "STRING" and not isinstance(default, str):
        problems.append(f"{name}: STRING default {default!r} is not a str")
    if kind in ("INT", "FLOAT"):
        if kind == "INT" and (not isinstance(default, int) or isinstance(default, bool)):
            problems.append(f"{name}: INT default {default!r} is not an int")
        if kind == "FLOAT" and not isinstance(default, int | float):
            problems.append(f"{name}: FLOAT default {default!r} is not a number")
        lo, hi = options.get("min"), options.get("max")
        if lo is None or hi is None:
            problems.append(f"{name}: numeric widget needs min and max")
        elif not (lo <= default <= hi):
            problems.append(f"{name}: default {default} outside [{lo}, {hi}]")
        step = options.get("step")
        if step is not None and step <= 0:
            problems.append(f"{name}: step must be positive")
        if kind == "INT" and step is not None and lo is not None and (default - lo) % step:
            problems.append(f"{name}: default {default} is not on the step grid from {lo}")
        if kind == "FLOAT" and step and lo is not None:
            ticks = (default - lo) / step
            if not math.isclose(ticks, round(ticks), abs_tol=1e-6):
                problems.append(f"{name}: default {default} is not on the step grid {step} from {lo}")


def contract_problems(node_id: str, cls: type, display_name: str | None) -> list[str]:
    """Everything wrong with a node class's declaration (empty list = fine)."""
    problems: list[str] = []
    if not node_id.startswith("PortraitPolish"):
        problems.append("node id lacks the PortraitPolish prefix")
    if not display_name:
        problems.append("no display name")
    for attr in ("INPUT_TYPES", "RETURN_TYPES", "FUNCTION", "CATEGORY"):
        if not hasattr(cls, attr):
            problems.append(f"missing {attr}")
    if problems:
        return problems
    spec = cls.INPUT_TYPES()
    if not isinstance(spec, dict) or "required" not in spec:
        return ["INPUT_TYPES() must return a dict with 'required'"]
    for section in spec:
        if section not in ("required", "optional", "hidden"):
            problems.append(f"unknown INPUT_TYPES section {section!r}")
    for section in ("required", "optional"):
        for name, entry in spec.get(section, {}).items():
            if not isinstance(entry, tuple) or not entry:
                problems.append(f"{name}: input spec must be a non-empty tuple")
                continue
            kind = entry[0]
            options = entry[1] if len(entry) > 1 else {}
            if not isinstance(options, dict):
                problems.append(f"{name}: options must be a dict")
                continue
            if not options.get("tooltip"):
                problems.append(f"{name}: no tooltip")
            _check_widget(name, kind, options, problems)
    if not isinstance(cls.RETURN_TYPES, tuple):
        problems.append("RETURN_TYPES must be a tuple")
    names = getattr(cls, "RETURN_NAMES", None)
    if names is not None and len(names) != len(cls.RETURN_TYPES):
        problems.append("RETURN_NAMES and RETURN_TYPES differ in length")
    tooltips = getattr(cls, "OUTPUT_TOOLTIPS", None)
    if cls.RETURN_TYPES and (tooltips is None or len(tooltips) != len(cls.RETURN_TYPES)):
        problems.append("OUTPUT_TOOLTIPS missing or of the wrong length")
    if not callable(getattr(cls, cls.FUNCTION, None)):
        problems.append(f"FUNCTION {cls.FUNCTION!r} is not a method")
    if not cls.CATEGORY.startswith("Portrait Polish"):
        problems.append(f"CATEGORY {cls.CATEGORY!r} is not under 'Portrait Polish'")
    if not getattr(cls, "DESCRIPTION", ""):
        problems.append("no DESCRIPTION")
    return problems


def default_inputs(cls: type) -> dict[str, Any]:
    """Valid inputs for a contract call: widget defaults plus factory values for the rest."""
    inputs: dict[str, Any] = {}
    for name, entry in cls.INPUT_TYPES()["required"].items():
        kind = entry[0]
        options = entry[1] if len(entry) > 1 else {}
        if isinstance(kind, list):
            inputs[name] = options.get("default", kind[0])
        elif kind in WIDGET_TYPES:
            inputs[name] = options["default"]
        elif kind in TYPE_FACTORIES:
            inputs[name] = TYPE_FACTORIES[kind]()
        else:
            raise KeyError(f"no test factory for input type {kind!r} ({cls.__name__}.{name}); add one to TYPE_FACTORIES")
    # Optional sockets of the pack's own types (FACE_REGIONS, ...) are wired as a user of
    # the default workflow would; optional MASK / IMAGE inputs (limits, protect masks, an
    # upscale model) stay unconnected, as they are there: the node runs its real path.
    for name, entry in cls.INPUT_TYPES().get("optional", {}).items():
        kind = entry[0]
        if isinstance(kind, str) and kind not in WIDGET_TYPES and kind not in PLAIN_TYPES and kind in TYPE_FACTORIES:
            inputs[name] = TYPE_FACTORIES[kind]()
    return inputs


def call_node(cls: type, **inputs: Any) -> tuple[Any, ...]:
    """Call a node as ComfyUI's executor does and return its output tuple (``ui`` dropped)."""
    result = getattr(cls(), cls.FUNCTION)(**inputs)
    if isinstance(result, dict):
        result = result.get("result", ())
    assert isinstance(result, tuple), f"{cls.__name__}.{cls.FUNCTION} must return a tuple, got {type(result).__name__}"
    return result


def check_outputs(cls: type, result: tuple[Any, ...]) -> list[str]:
    problems: list[str] = []
    if len(result) != len(cls.RETURN_TYPES):
        return [f"returned {len(result)} values for {len(cls.RETURN_TYPES)} RETURN_TYPES"]
    for index, (kind, value) in enumerate(zip(cls.RETURN_TYPES, result, strict=True)):
        check = TYPE_CHECKS.get(kind)
        if check is not None and not check(value):
            problems.append(f"output {index} ({kind}) has the wrong type/shape: {type(value).__name__}")
    return problems
