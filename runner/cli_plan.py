"""``portrait-polish plan "..." [--json]``, and plans applied to workflows (``run --prompt``).

A plan is made over the node definitions (/object_info shape: the pack's own in-process, a
server's with ``--server``), so every value is checked against the ranges the nodes declare.
On a workflow, the workflow's own settings are the starting point: the words change what
they name ("a bit less smoothing" moves from the workflow's strength), and each change
becomes a ``--set NODE.INPUT=VALUE`` applied before the user's own ``--set`` values.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from ..core.plan import (
    NodeSpecs,
    Plan,
    changed_values,
    check_plan,
    make_plan,
    plan_input_names,
    ranges_from_input_types,
)
from ..core.plan_lexicon import lexicon
from .errors import ParameterError
from .workflow import ApiGraph

PREFIX = "PortraitPolish"


def add_parser(subparsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "plan", help="turn plain words into a retouch plan and show what each word does",
        description="Read a description of the retouch and print the plan: per node and input, the value and "
                    "the words that set it; words not understood and requests not done are listed.",
    )
    parser.add_argument("prompt", help='what you want, e.g. "subtle teeth whitening, keep it natural"')
    parser.add_argument("--json", action="store_true", help="print the plan as JSON")
    parser.add_argument("--workflow", help="refine the settings of this workflow instead of the node defaults")
    parser.set_defaults(func=plan_command)
    return parser


def specs_from_object_info(object_info: dict[str, Any]) -> NodeSpecs:
    """Plain node name -> input ranges for every lexicon node the definitions have."""
    specs: NodeSpecs = {}
    for name in lexicon().nodes:
        info = object_info.get(PREFIX + name)
        if info is not None:
            specs[name] = ranges_from_input_types(info.get("input", {}))
    return specs


def workflow_values(graph: ApiGraph, specs: NodeSpecs) -> tuple[dict[str, dict[str, Any]], dict[str, bool]]:
    """The plan inputs of each lexicon node in the graph (its first node of that type) and
    whether it is on (present, and not at its 'off' values)."""
    lex = lexicon()
    values: dict[str, dict[str, Any]] = {}
    enabled: dict[str, bool] = {name: False for name in specs}
    for node in graph.values():
        name = str(node.get("class_type", "")).removeprefix(PREFIX)
        if name not in specs or name in values:
            continue
        inputs = node.get("inputs", {})
        values[name] = {k: inputs[k] for k in plan_input_names(name, specs[name]) if k in inputs and not isinstance(inputs[k], list)}
        off = lex.nodes.get(name, {}).get("off", {})
        enabled[name] = not (off and all(values[name].get(k) == v for k, v in off.items()))
    return values, enabled


def _as_text(value: Any) -> str:
    return ("true" if value else "false") if isinstance(value, bool) else str(value)


def plan_for_graph(graph: ApiGraph, object_info: dict[str, Any], prompt: str) -> tuple[Plan, list[str], list[str]]:
    """The plan for ``prompt`` on top of ``graph``'s settings, the ``NODE.INPUT=VALUE`` sets
    that apply it, and warnings for what the workflow cannot do (a node it lacks)."""
    specs = specs_from_object_info(object_info)
    base, enabled = workflow_values(graph, specs)
    plan = make_plan(prompt, specs, base=base, enabled=enabled)
    problems = check_plan(plan, specs)
    if problems:
        raise ParameterError("the plan does not fit the node definitions: " + "; ".join(problems))
    sets: list[str] = []
    warnings: list[str] = []
    for name, values in changed_values(plan, base, only_reasoned=True).items():
        ids = [nid for nid, node in graph.items() if node.get("class_type") == PREFIX + name]
        if not ids:
            if plan.enabled(name):
                words = "; ".join(plan.reasons.get(f"{name}.enabled", [])) or prompt
                warnings.append(f'not done: the workflow has no {name} node ("{words}")')
            continue
        for nid in ids:
            sets += [f"{nid}.{key}={_as_text(value)}" for key, value in values.items()]
    return plan, sets, warnings


def prompt_sets(workflow: str | Path | dict, prompt: str, server: str | None = None, retries: int = 8) -> tuple[Plan, list[str], list[str]]:
    """``run --prompt``: load the workflow with the right node definitions and plan on it."""
    from .workflow import copy_graph, load_workflow, workflow_format

    engine = None
    try:
        if server:
            from .engine_server import ServerEngine

            engine = ServerEngine(server, retries=retries)
            object_info = engine.object_info()
        else:
            from .objectinfo import local_object_info

            object_info = local_object_info()
        if isinstance(workflow, dict):
            if workflow_format(workflow) == "ui":
                from .workflow import ui_to_api

                graph = ui_to_api(workflow, object_info)
            else:
                graph = copy_graph(workflow)
        else:
            graph, _ = load_workflow(workflow, object_info)
        return plan_for_graph(graph, object_info, prompt)
    finally:
        if engine is not None:
            engine.close()


def print_plan(plan: Plan, as_json: bool, stream=None) -> None:
    stream = stream or sys.stdout
    if as_json:
        print(plan.to_json(), file=stream)
    else:
        print(plan.summary(), file=stream)


def plan_command(args: argparse.Namespace) -> int:
    from .objectinfo import local_object_info

    object_info = local_object_info()
    if args.workflow:
        from .cli_run import resolve_workflow
        from .errors import RunnerError

        try:
            plan, sets, warnings = prompt_sets(resolve_workflow(args.workflow), args.prompt)
        except RunnerError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return exc.exit_code
        print_plan(plan, args.json)
        if not args.json:
            for line in warnings:
                print(f"  {line}")
            print("  as --set: " + (" ".join(sets) if sets else "(nothing changes)"))
        return 0
    specs = specs_from_object_info(object_info)
    plan = make_plan(args.prompt, specs)
    print_plan(plan, args.json)
    return 0


def plan_json(plan: Plan) -> dict[str, Any]:
    return json.loads(plan.to_json())
