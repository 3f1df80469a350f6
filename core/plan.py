"""Retouch plans: words -> per node and input, the value (and the words that set it).

``make_plan(prompt, specs)`` reads a prompt with the grammar (``plan_grammar.py``) and the
lexicon (``plan_lexicon.json``) and applies its intents to a starting point:

- fresh (no ``base``): the nodes' declared defaults, the natural headshot. If the prompt
  names what to retouch ("subtle teeth whitening"), only that is switched on; if it names
  nothing ("natural retouch", "LinkedIn"), the whole chain is on;
- refine (``base`` = the last values: a previous PLAN, a workflow's settings or a sidecar's):
  only what the words name changes, relative words ("a bit less", "whiter") move from the
  last values.

Every value lives on the node's own declared range (``specs``, read from INPUT_TYPES at run
time: the core never imports the nodes). Degree words are amounts on one scale for all
inputs: 0 = off, 0.5 = the input's anchor (its declared default: the natural look), 1 = its
maximum. "Natural", "realistic", "subtle", "keep it me" cap every strength at the anchor.
"""

from __future__ import annotations

import copy
from typing import Any

from .plan_grammar import Intent, read
from .plan_lexicon import lexicon
from .plan_model import SCHEMA, InputRange, NodeSpecs, Plan, Scale, ranges_from_input_types, scale_for

__all__ = ["SCHEMA", "InputRange", "NodeSpecs", "Plan", "Scale", "changed_values", "check_plan", "default_values",
           "make_plan", "plan_input_names", "ranges_from_input_types", "scale_for"]

HISTORY_DEPTH = 20  # previous plans kept inside a plan, for "undo"


# ------------------------------------------------------------------ building a plan


def default_values(specs: NodeSpecs) -> dict[str, dict[str, Any]]:
    """Each node's plan inputs at their declared defaults (plus the lexicon's own defaults,
    e.g. IdentityGuard blends back a face that fails)."""
    lex = lexicon()
    values: dict[str, dict[str, Any]] = {}
    for node, ranges in specs.items():
        info = lex.nodes.get(node)
        if info is None:
            continue
        names = plan_input_names(node, ranges)
        values[node] = {n: ranges[n].default for n in names}
        for name, value in info.get("defaults", {}).items():
            if name in ranges:
                values[node][name] = ranges[name].clamp(value)
    return values


def plan_input_names(node: str, ranges: dict[str, InputRange]) -> list[str]:
    """The inputs of ``node`` a plan speaks about (the lexicon's), in declaration order."""
    lex = lexicon()
    info = lex.nodes.get(node, {})
    wanted = set(info.get("inputs", {})) | set(info.get("idle", {})) | set(info.get("defaults", {})) | set(info.get("natural", {}))
    for target in lex.targets.values():
        if target["node"] == node:
            wanted |= set(target.get("inputs", ())) | set(target.get("with", {})) | set(target.get("protect", {}))
    return [name for name in ranges if name in wanted]


class _Builder:
    def __init__(self, specs: NodeSpecs, base: dict[str, dict[str, Any]], enabled: dict[str, bool], fresh: bool) -> None:
        self.lex = lexicon()
        self.specs = specs
        self.values = copy.deepcopy(base)
        self.enabled = dict(enabled)
        self.fresh = fresh
        self.plan = Plan()
        self.general_named: set[str] = set()
        self.touched: set[tuple[str, str]] = set()
        self.cap_targets: list[tuple[str | None, float, str]] = []

    # -- helpers
    def reason(self, key: str, words: str) -> None:
        if words:
            bucket = self.plan.reasons.setdefault(key, [])
            if words not in bucket:
                bucket.append(words)

    def set_input(self, node: str, name: str, value: Any, words: str) -> None:
        spec = self.specs.get(node, {}).get(name)
        if spec is None:
            return
        if value == "anchor":
            value = scale_for(node, name, spec).anchor
        self.values.setdefault(node, {})[name] = spec.clamp(value)
        self.reason(f"{node}.{name}", words)
        if words:
            self.touched.add((node, name))

    def target_inputs(self, target: str) -> list[tuple[str, str]]:
        entry = self.lex.targets[target]
        if entry["node"] == "*":
            return [(n, i) for n in self.values if self.enabled.get(n) for i in self.strength_inputs(n)]
        ranges = self.specs.get(entry["node"], {})
        inputs = [(entry["node"], i) for i in entry.get("inputs", ()) if i in ranges]
        if entry["node"] not in self.lex.nodes or self.lex.nodes[entry["node"]].get("optional"):
            return inputs[:1]  # a node added later: the first input it really declares
        return inputs

    def strength_inputs(self, node: str) -> list[str]:
        declared = self.lex.nodes.get(node, {}).get("inputs", {})
        return [n for n, e in declared.items() if e.get("strength") and n in self.specs.get(node, {})]

    def amount(self, node: str, name: str) -> float:
        spec = self.specs[node][name]
        return scale_for(node, name, spec).amount(float(self.values[node][name]))

    def set_amount(self, node: str, name: str, amount: float, words: str) -> None:
        spec = self.specs[node][name]
        self.set_input(node, name, scale_for(node, name, spec).value(amount), words)

    def available(self, target: str, words: str) -> bool:
        entry = self.lex.targets[target]
        node = entry["node"]
        if node == "*" or node in self.specs:
            return True
        label = self.lex.nodes.get(node, {}).get("label", node)
        message = f"not done: {label} is not available in this version (the {node} node is not installed)"
        if message not in self.plan.not_done:
            self.plan.not_done.append(message)
        self.reason(f"{node}.enabled", words)
        return False

    def enable_node(self, node: str, words: str) -> None:
        if node == "*" or self.enabled.get(node):
            return
        self.enabled[node] = True
        self.reason(f"{node}.enabled", words)
        info = self.lex.nodes.get(node, {})
        start = "defaults" if node in self.general_named or not self.fresh else "idle"
        defaults = default_values({node: self.specs[node]}).get(node, {})
        if self.fresh or not self.values.get(node):
            for name, value in defaults.items():  # what words already set stays
                if (node, name) not in self.touched:
                    self.values.setdefault(node, {})[name] = value
        if start == "idle" or self.is_off(node):
            for name, value in info.get("idle", {}).items():
                if (node, name) not in self.touched:
                    self.set_input(node, name, value, "")

    def is_off(self, node: str) -> bool:
        off = self.lex.nodes.get(node, {}).get("off", {})
        current = self.values.get(node, {})
        return bool(off) and all(current.get(k) == v for k, v in off.items() if k in current)

    def apply_with(self, target: str, words: str) -> None:
        entry = self.lex.targets[target]
        for name, value in entry.get("with", {}).items():
            self.set_input(entry["node"], name, value, words)
        if entry.get("note") and entry["note"] not in self.plan.notes:
            self.plan.notes.append(f"{target.replace('_', ' ')}: {entry['note']}")

    # -- intents
    def apply(self, intent: Intent) -> None:
        kind, target, words = intent.kind, intent.target, intent.words
        if kind in ("refuse", "reassure"):
            bucket = self.plan.not_done if kind == "refuse" else self.plan.notes
            line = f'{intent.message} ("{words}")'
            if line not in bucket:
                bucket.append(line)
            return
        if kind == "preset":
            return self.preset(target, words)
        if kind == "cap":
            self.cap_targets.append((target, intent.amount if intent.amount is not None else 0.5, words))
            return
        if kind in ("only", "except"):
            return self.scope(kind, target.split(","), words)
        if kind in ("factor", "long_edge"):
            if not self.available("upscale", words):
                return
            self.enable_node("Upscale", words)
            mode = "factor" if kind == "factor" else "long edge"
            self.set_input("Upscale", "scale_mode", mode, words)
            self.set_input("Upscale", "factor" if kind == "factor" else "long_edge", intent.amount, words)
            return
        if target is None or target not in self.lex.targets or not self.available(target, words):
            return
        node = self.lex.targets[target]["node"]
        if kind == "off":
            return self.switch_off(target, words)
        if kind == "protect":
            return self.protect(target, words)
        self.enable_node(node, words)
        self.apply_with(target, words)
        above = bool(self.lex.targets[target].get("effect_above_anchor"))
        for node_name, name in self.target_inputs(target):
            if kind in ("set", "glam"):
                if target == "all" and self.amount(node_name, name) == 0.0:
                    continue  # "everything a touch" sets what is on, switches nothing on
                amount = 0.5 + intent.amount / 2 if above else intent.amount
                self.set_amount(node_name, name, amount, words)
            elif kind == "enable":
                if target == "all" and self.amount(node_name, name) == 0.0:
                    continue
                if self.untouched(node_name, name) or self.amount(node_name, name) == 0.0:
                    self.set_amount(node_name, name, 0.75 if above else 0.5, words)
                else:
                    self.reason(f"{node_name}.{name}", words)
            elif kind == "shift":
                step = intent.amount * self.lex.data["step"]["base"]
                start = self.start_amount(node_name, name, step)
                if start is None or (target == "all" and self.amount(node_name, name) == 0.0):
                    continue  # "a bit more" never switches on what was off
                self.set_amount(node_name, name, start + step, words)
                self.touched.add((node_name, name))
            elif kind == "scale":
                self.set_input(node_name, name, float(self.values[node_name][name]) * intent.amount, words)
            elif kind == "value":
                spec = self.specs[node_name][name]
                low, high = float(spec.minimum or 0.0), float(spec.maximum or 1.0)
                self.set_input(node_name, name, low + intent.amount * (high - low), words)
            self.touched.add((node_name, name))
        if kind == "glam":
            self.plan.notes.append("pores are kept whatever the strength (TextureSafeSmooth never erases the fine band)")

    def untouched(self, node: str, name: str) -> bool:
        """True while no words have set this input: in a fresh plan it still holds a default
        or an idle value, not something the user asked for."""
        return self.fresh and (node, name) not in self.touched

    def start_amount(self, node: str, name: str, step: float) -> float | None:
        """Where a relative change starts: the last value (fresh: the declared default); an
        input that is off starts at its natural level when raised, and stays off when lowered."""
        spec = self.specs[node][name]
        scale = scale_for(node, name, spec)
        current = scale.amount(float(spec.default)) if self.untouched(node, name) and spec.default is not None else self.amount(node, name)
        idle = self.lex.nodes.get(node, {}).get("idle", {}).get(name)
        if current == 0.0 or (not self.untouched(node, name) and self.values[node][name] == idle and idle != spec.default):
            return 0.5 if step > 0 else (None if current == 0.0 else current)
        return current

    def switch_off(self, target: str, words: str) -> None:
        entry = self.lex.targets[target]
        if target == "all":
            for node in self.values:
                if not self.lex.nodes.get(node, {}).get("always") and self.enabled.get(node):
                    self.enabled[node] = False
                    self.reason(f"{node}.enabled", words)
            return
        node = entry["node"]
        if entry.get("general") or not self.enabled.get(node):
            self.enabled[node] = False
            self.reason(f"{node}.enabled", words)
            return
        idle = self.lex.nodes.get(node, {}).get("idle", {})
        for name in entry.get("inputs", ()):
            spec = self.specs[node].get(name)
            if spec is not None:
                self.set_input(node, name, idle.get(name, scale_for(node, name, spec).off), words)
        for name, value in entry.get("off_values", {}).items():
            self.set_input(node, name, value, words)
        for name, value in entry.get("with", {}).items():
            if isinstance(value, bool):
                self.set_input(node, name, not value, words)

    def protect(self, target: str, words: str) -> None:
        entry = self.lex.targets[target]
        node = entry["node"]
        for name, value in entry.get("protect", {}).items():
            spec = self.specs.get(node, {}).get(name)
            if spec is None:
                continue
            if value == "anchor":  # at most the natural level of the effect (texture: at least 1.0)
                if self.amount(node, name) > 0.5:
                    self.set_amount(node, name, 0.5, words)
                else:
                    self.reason(f"{node}.{name}", words)
            else:
                self.set_input(node, name, value, words)

    def scope(self, kind: str, targets: list[str], words: str) -> None:
        nodes = {self.lex.targets[t]["node"] for t in targets}
        for node in self.values:
            info = self.lex.nodes.get(node, {})
            if info.get("always") or info.get("optional") or info.get("default_off"):
                continue
            if (node in nodes) == (kind == "only"):
                self.enable_node(node, words)
            elif self.enabled.get(node):
                self.enabled[node] = False
                self.reason(f"{node}.enabled", words)
        if kind == "only":
            for target in targets:  # "only the dark circles": the rest of that node idles
                node = self.lex.targets[target]["node"]
                if not self.lex.targets[target].get("general") and node in self.specs:
                    named = {i for t in targets if self.lex.targets[t]["node"] == node for i in self.lex.targets[t].get("inputs", ())}
                    for name, value in self.lex.nodes.get(node, {}).get("idle", {}).items():
                        if name not in named:
                            self.set_input(node, name, value, words)
        else:
            for target in targets:
                self.switch_off(target, words)

    def preset(self, name: str, words: str) -> None:
        preset = self.lex.presets[name]
        self.plan.presets.append(name)
        for node, amounts in preset.get("amounts", {}).items():
            if node not in self.specs:
                continue
            self.enable_node(node, words)
            for input_name, amount in amounts.items():
                if input_name in self.specs[node]:
                    self.set_amount(node, input_name, float(amount), words)
        for node, values in preset.get("values", {}).items():
            for input_name, value in values.items():
                self.set_input(node, input_name, value, words)
        if preset.get("cap"):
            self.cap_targets.append((None, 0.5, words))
        if preset.get("note"):
            self.plan.notes.append(f"{preset['label']}: {preset['note']}")

    def apply_caps(self) -> None:
        for target, level, words in self.cap_targets:
            pairs = self.target_inputs(target) if target else [(n, i) for n in self.values for i in self.strength_inputs(n)]
            if target is None:
                self.plan.capped = True
                self.reason("cap", words)
                pairs += [(n, i) for n in self.values for i, e in self.lex.nodes.get(n, {}).get("inputs", {}).items()
                          if "natural" in e and i in self.specs.get(n, {})]
            for node, name in pairs:
                spec = self.specs[node][name]
                entry = self.lex.nodes[node]["inputs"].get(name, {})
                if "natural" in entry:  # texture: a floor, not a ceiling
                    floor = float(entry["natural"])
                    if float(self.values[node][name]) < floor:
                        self.set_input(node, name, floor, words)
                elif self.amount(node, name) > level + 1e-9:
                    self.set_amount(node, name, level, words)
                del spec
            for node in {n for n, _ in pairs} | ({n for n in self.values} if target is None else set()):
                for name, value in self.lex.nodes.get(node, {}).get("natural", {}).items():
                    self.set_input(node, name, value, words)


def make_plan(prompt: str, specs: NodeSpecs, base: dict[str, dict[str, Any]] | None = None,
              enabled: dict[str, bool] | None = None, previous: Plan | None = None) -> Plan:
    """Read ``prompt`` into a Plan over the nodes in ``specs``.

    ``previous`` (a Plan) or ``base`` (values, e.g. a workflow's, with ``enabled``) makes it
    a refinement: relative words move from those values and only what is named changes."""
    lex = lexicon()
    reading = read(prompt)
    commands = {i.kind for i in reading.intents}
    if previous is not None and "command_undo" in commands:
        if previous.history:
            undone = Plan.from_dict({**previous.history[-1], "schema": SCHEMA})
            undone.history = previous.history[:-1]
            undone.notes = [*undone.notes, f'undo: back to the plan before "{previous.prompt}"']
            return undone
        previous = None  # nothing to undo: the defaults
        reading.intents.append(Intent("reassure", words=prompt, message="nothing to undo: the natural defaults"))
    if "command_reset" in commands:
        previous, base, enabled = None, None, None
    if previous is not None:
        base = {n: dict(e.get("inputs", {})) for n, e in previous.nodes.items()}
        enabled = {n: bool(e.get("enabled")) for n, e in previous.nodes.items()}
    fresh = base is None
    start = default_values(specs)
    if base:
        for node, values in base.items():
            if node in start:
                start[node].update({k: v for k, v in values.items() if k in specs[node]})
    on = {node: not (lex.nodes[node].get("optional") or lex.nodes[node].get("default_off")) for node in start}
    if enabled:
        on.update({n: bool(v) for n, v in enabled.items() if n in on})
    builder = _Builder(specs, start, on, fresh)
    intents = [i for i in reading.intents if not i.kind.startswith("command_")]
    positive = [i for i in intents if i.kind in ("set", "enable", "shift", "scale", "value", "glam", "factor", "long_edge")]
    has_preset = any(i.kind == "preset" for i in intents)
    has_except = any(i.kind == "except" for i in intents)
    named = {lex.targets[i.target]["node"] for i in positive if i.target in lex.targets} - {"*"}
    builder.general_named = {lex.targets[i.target]["node"] for i in positive
                             if i.target in lex.targets and lex.targets[i.target].get("general")}
    if any(i.kind == "refuse" for i in intents):
        named.add("")  # a refused request alone switches nothing on
    if fresh and named and not has_preset and not has_except and not any(i.target == "all" for i in positive):
        for node in builder.enabled:  # "subtle teeth whitening": only what is named (switched on as named)
            if not lex.nodes[node].get("always"):
                builder.enabled[node] = False
    for kind in ("only", "except"):  # "just the eyes and teeth": one scope over every clause
        scoped = [i for i in intents if i.kind == kind]
        if scoped:
            merged = Intent(kind, ",".join(i.target for i in scoped), words="; ".join(dict.fromkeys(i.words for i in scoped)))
            intents = [i for i in intents if i.kind != kind] + [merged]
    for intent in sorted(intents, key=lambda i: (i.kind != "preset", i.kind not in ("only", "except"))):
        builder.apply(intent)
    builder.apply_caps()
    plan = builder.plan
    plan.prompt = prompt
    for node, values in builder.values.items():
        plan.nodes[node] = {"enabled": bool(builder.enabled.get(node)) or bool(lex.nodes[node].get("always")), "inputs": values}
    plan.not_understood = list(reading.not_understood)
    plan.notes = [f'read "{typo}" as "{fixed}"' for typo, fixed in reading.corrections] + plan.notes
    if previous is not None:
        plan.history = (previous.history + [previous.as_dict(with_history=False)])[-HISTORY_DEPTH:]
    return plan


def check_plan(plan: Plan, specs: NodeSpecs) -> list[str]:
    """Every plan value checked against the node's declared input (empty list = valid)."""
    problems: list[str] = []
    for node, entry in plan.nodes.items():
        ranges = specs.get(node)
        if ranges is None:
            if entry.get("enabled"):
                problems.append(f"{node}: the node is not available")
            continue
        for name, value in entry.get("inputs", {}).items():
            spec = ranges.get(name)
            if spec is None:
                problems.append(f"{node}.{name}: the node has no such input")
            elif (why := spec.problem(value)) is not None:
                problems.append(f"{node}.{name}: {why}")
    return problems


def changed_values(plan: Plan, base: dict[str, dict[str, Any]], only_reasoned: bool = False) -> dict[str, dict[str, Any]]:
    """The inputs whose value the plan changes from ``base`` (with ``only_reasoned``: only
    those some words set); a node the plan switches off gets its lexicon 'off' values (e.g.
    strength 0: the node returns its input bit-exact)."""
    lex = lexicon()
    changes: dict[str, dict[str, Any]] = {}
    for node, entry in plan.nodes.items():
        before = base.get(node, {})
        if not entry.get("enabled") and not lex.nodes.get(node, {}).get("always"):
            off = lex.nodes.get(node, {}).get("off", {})
            changes[node] = {k: v for k, v in off.items() if before and before.get(k) != v}
            continue
        changes[node] = {k: v for k, v in entry.get("inputs", {}).items()
                         if before.get(k) != v and (not only_reasoned or f"{node}.{k}" in plan.reasons)}
    return {node: values for node, values in changes.items() if values}
