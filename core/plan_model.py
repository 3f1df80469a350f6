"""Retouch plan data: input ranges read from INPUT_TYPES, the Plan itself (values, the words
behind them, what was not understood or not done) and the amount scale degree words use."""

from __future__ import annotations

import copy
import json
import math
from dataclasses import dataclass, field
from typing import Any

from .plan_lexicon import lexicon

SCHEMA = "portrait_polish.plan/1"


@dataclass(frozen=True)
class InputRange:
    """One widget input as a node declares it."""

    kind: str  # FLOAT, INT, BOOLEAN, STRING, COMBO
    default: Any = None
    minimum: float | None = None
    maximum: float | None = None
    step: float | None = None
    choices: tuple[Any, ...] = ()

    def clamp(self, value: Any) -> Any:
        """``value`` made valid for this input: clamped to [min, max], on the step grid."""
        if self.kind == "BOOLEAN":
            return bool(value)
        if self.kind == "COMBO":
            return value if value in self.choices else self.default
        if self.kind not in ("FLOAT", "INT"):
            return value
        number = float(value)
        if self.step and self.minimum is not None:
            number = self.minimum + round((number - self.minimum) / self.step) * self.step
        if self.minimum is not None:
            number = max(self.minimum, number)
        if self.maximum is not None:
            number = min(self.maximum, number)
        return int(round(number)) if self.kind == "INT" else round(number, 6)

    def problem(self, value: Any) -> str | None:
        """Why ``value`` is not valid for this input (None when it is)."""
        if self.kind == "BOOLEAN":
            return None if isinstance(value, bool) else f"{value!r} is not a boolean"
        if self.kind == "COMBO":
            return None if value in self.choices else f"{value!r} is not one of {list(self.choices)}"
        if self.kind in ("FLOAT", "INT"):
            if isinstance(value, bool) or not isinstance(value, int | float) or math.isnan(value):
                return f"{value!r} is not a number"
            if self.kind == "INT" and int(value) != value:
                return f"{value!r} is not a whole number"
            if self.minimum is not None and value < self.minimum:
                return f"{value} is below the minimum {self.minimum}"
            if self.maximum is not None and value > self.maximum:
                return f"{value} is above the maximum {self.maximum}"
        return None


NodeSpecs = dict[str, dict[str, InputRange]]  # plain node name -> widget input -> range


def ranges_from_input_types(input_types: dict[str, Any]) -> dict[str, InputRange]:
    """The widget inputs of a node from its ``INPUT_TYPES()`` (or a server's /object_info
    ``input``) dict; sockets (IMAGE, MASK...) are left out."""
    ranges: dict[str, InputRange] = {}
    for section in ("required", "optional"):
        for name, entry in (input_types.get(section) or {}).items():
            entry = list(entry) if isinstance(entry, list | tuple) else [entry]
            kind, options = entry[0], (entry[1] if len(entry) > 1 and isinstance(entry[1], dict) else {})
            if isinstance(kind, list | tuple):
                ranges[name] = InputRange("COMBO", options.get("default", kind[0] if kind else None), choices=tuple(kind))
            elif kind == "COMBO":
                choices = tuple(options.get("options", ()))
                ranges[name] = InputRange("COMBO", options.get("default", choices[0] if choices else None), choices=choices)
            elif kind in ("FLOAT", "INT"):
                ranges[name] = InputRange(kind, options.get("default"), options.get("min"), options.get("max"), options.get("step"))
            elif kind in ("BOOLEAN", "STRING"):
                ranges[name] = InputRange(kind, options.get("default"))
    return ranges


@dataclass
class Plan:
    """A retouch plan. ``nodes``: plain node name -> {"enabled": bool, "inputs": {name: value}}."""

    prompt: str = ""
    nodes: dict[str, dict[str, Any]] = field(default_factory=dict)
    reasons: dict[str, list[str]] = field(default_factory=dict)  # "Node.input" -> the words that set it
    not_understood: list[str] = field(default_factory=list)
    not_done: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    presets: list[str] = field(default_factory=list)
    capped: bool = False
    history: list[dict[str, Any]] = field(default_factory=list)  # earlier plans, newest last

    def enabled(self, node: str) -> bool:
        return bool(self.nodes.get(node, {}).get("enabled"))

    def inputs(self, node: str) -> dict[str, Any]:
        return dict(self.nodes.get(node, {}).get("inputs", {}))

    def as_dict(self, with_history: bool = True) -> dict[str, Any]:
        data = {"schema": SCHEMA, "prompt": self.prompt, "nodes": copy.deepcopy(self.nodes), "reasons": self.reasons,
                "not_understood": self.not_understood, "not_done": self.not_done, "notes": self.notes,
                "presets": self.presets, "capped": self.capped}
        if with_history:
            data["history"] = self.history
        return data

    def to_json(self) -> str:
        return json.dumps(self.as_dict(), indent=2, sort_keys=False)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Plan:
        if data.get("schema") != SCHEMA:
            raise ValueError(f"not a retouch plan (schema {data.get('schema')!r}, expected {SCHEMA!r})")
        fields = {k: copy.deepcopy(data[k]) for k in ("prompt", "nodes", "reasons", "not_understood", "not_done", "notes",
                                                      "presets", "capped", "history") if k in data}
        return cls(**fields)

    def summary(self) -> str:
        """A readable account: what each node will do, the words behind each value, and
        everything not understood or not done."""
        lex = lexicon()
        lines = [f'Plan for: "{self.prompt}"' if self.prompt.strip() else "Plan (no words: the natural defaults)"]
        for name in _ordered(self.nodes):
            entry, info = self.nodes[name], lex.nodes.get(name, {})
            label = f"{info.get('label', name)} ({name})"
            if info.get("always"):
                shown = ", ".join(f"{k} {_fmt(v)}" for k, v in entry.get("inputs", {}).items())
                lines.append(f"  {label}: always on" + (f" ({shown})" if shown else ""))
                continue
            if not entry.get("enabled"):
                why = self.reasons.get(f"{name}.enabled")
                lines.append(f"  {label}: off" + (f'  <- "{"; ".join(why)}"' if why else ""))
                continue
            lines.append(f"  {label}: on")
            strengths = {k for k, e in info.get("inputs", {}).items() if e.get("strength")}
            quiet = []
            for key, value in entry.get("inputs", {}).items():
                why = self.reasons.get(f"{name}.{key}")
                if why or (key in strengths and value):
                    lines.append(f"    {key} = {_fmt(value)}" + (f'  <- "{"; ".join(why)}"' if why else ""))
                else:
                    quiet.append(f"{key} {_fmt(value)}")
            if quiet:
                lines.append("    (as before: " + ", ".join(quiet) + ")")
        if self.capped:
            lines.append("  capped: every strength at most its natural level" + _why(self.reasons.get("cap")))
        for note in self.notes:
            lines.append(f"  note: {note}")
        for line in self.not_done:
            lines.append(f"  {line}")
        if self.not_understood:
            lines.append("  not understood: " + ", ".join(f'"{w}"' for w in self.not_understood))
        return "\n".join(lines)


def _why(words: list[str] | None) -> str:
    return f'  <- "{"; ".join(words)}"' if words else ""


def _fmt(value: Any) -> str:
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, float):
        return f"{value:.2f}".rstrip("0").rstrip(".") if value != int(value) else f"{value:.1f}"
    return str(value)


def _ordered(nodes: dict[str, Any]) -> list[str]:
    info = lexicon().nodes
    order = {"FaceParse": 0, "IdentityGuard": 6}
    return sorted(nodes, key=lambda n: (order.get(n, info.get(n, {}).get("order", 9)), n))


# ------------------------------------------------------------------ amounts <-> values


@dataclass(frozen=True)
class Scale:
    """Where amounts 0, 0.5 and 1 sit on one input's own range."""

    off: float
    anchor: float
    top: float

    def value(self, amount: float) -> float:
        amount = min(max(amount, 0.0), 1.0)
        if amount <= 0.5:
            return self.off + (amount / 0.5) * (self.anchor - self.off)
        return self.anchor + ((amount - 0.5) / 0.5) * (self.top - self.anchor)

    def amount(self, value: float) -> float:
        def between(a: float, b: float) -> float:
            return 0.0 if b == a else min(max((value - a) / (b - a), 0.0), 1.0)

        low = between(self.off, self.anchor)
        if low < 1.0 or self.top == self.anchor:
            return 0.5 * low
        return 0.5 + 0.5 * between(self.anchor, self.top)


def scale_for(node: str, name: str, spec: InputRange) -> Scale:
    entry = lexicon().nodes.get(node, {}).get("inputs", {}).get(name, {})
    off_value = lexicon().nodes.get(node, {}).get("off", {}).get(name)
    low, high = float(spec.minimum or 0.0), float(spec.maximum if spec.maximum is not None else 1.0)
    if entry.get("invert"):
        low, high = high, low
    off = float(off_value) if isinstance(off_value, int | float) and not isinstance(off_value, bool) else low
    top = float(entry.get("top", high))
    anchor = float(entry.get("anchor", spec.default if spec.default is not None else (off + top) / 2))
    if anchor == off:
        anchor = off + 0.5 * (top - off)
    return Scale(off, anchor, top)
