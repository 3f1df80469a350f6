"""``portrait-polish refine SIDECAR --prompt "..." | --undo | --history``: multi-turn retouching.

A refinement re-runs the sidecar's recorded workflow (its API graph, with every value the run
used) on its recorded input (checked by sha256), with the words applied relative to those
values. It writes the next numbered output beside the first (``photo_natural_headshot_r1.png``,
``_r2``...; never over an existing file) and a sidecar whose ``refine`` block names its parent,
the chain's root, the step, the words and each change, so the chain can be followed
(``--history``) and undone (``--undo``: the next step re-runs the parent's settings).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import sys
from pathlib import Path
from typing import Any

from .errors import EXIT_INTERRUPTED, InputError, RunnerError, WorkflowError

STEP_SUFFIX = re.compile(r"_r(\d+)$")


def add_parser(subparsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "refine", help="re-run a finished output with a change in plain words (or undo the last change)",
        description="Re-run an output from its sidecar (recorded workflow, input and values) with a change in "
                    "plain words, relative to the last values; writes the next numbered output and a sidecar "
                    "naming its parent.",
    )
    parser.add_argument("sidecar", help="the .json sidecar of an output (e.g. out/photo_natural_headshot.json)")
    parser.add_argument("--prompt", help='the change, e.g. "a bit less smoothing, whiter teeth"')
    parser.add_argument("--undo", action="store_true", help="undo this step: re-run its parent's settings as the next step")
    parser.add_argument("--history", action="store_true", help="print the chain of refinements up to this sidecar and exit")
    parser.add_argument("--server", metavar="URL", help="run on this ComfyUI server instead of in-process")
    parser.add_argument("--json", action="store_true", help="print the result as JSON on stdout")
    parser.set_defaults(func=refine_command)
    return parser


def read_sidecar(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError(f"sidecar {path} does not exist") from None
    except (OSError, json.JSONDecodeError) as exc:
        raise InputError(f"sidecar {path} cannot be read: {exc}") from None
    graph = (data.get("workflow") or {}).get("api") if isinstance(data, dict) else None
    if not isinstance(graph, dict) or not data.get("input") or not data.get("output"):
        raise WorkflowError(f"{path} is not a portrait-polish sidecar (no recorded workflow, input and output)")
    return data


def chain(path: str | Path) -> list[tuple[Path, dict[str, Any]]]:
    """The sidecars from the root of the chain down to ``path``."""
    path = Path(path)
    links: list[tuple[Path, dict[str, Any]]] = []
    seen: set[Path] = set()
    while path is not None and path.resolve() not in seen:
        seen.add(path.resolve())
        data = read_sidecar(path)
        links.append((path, data))
        parent = (data.get("refine") or {}).get("parent")
        path = path.parent / parent if parent else None
    return list(reversed(links))


def _check_input(data: dict[str, Any]) -> Path:
    source = Path(data["input"])
    if not source.is_file():
        raise InputError(f"the recorded input {source} is missing; refine needs the original photo")
    digest = hashlib.sha256(source.read_bytes()).hexdigest()
    if data.get("input_sha256") and digest != data["input_sha256"]:
        raise InputError(f"the recorded input {source} has changed since that run (sha256 differs); refine re-runs the "
                         "same photo only")
    return source


def _next_name(folder: Path, root_stem: str, suffix: str) -> tuple[int, str]:
    steps = [int(m.group(1)) for p in folder.glob(f"{root_stem}_r*") if (m := STEP_SUFFIX.search(p.stem))
             and p.stem[: m.start()] == root_stem]
    step = max(steps, default=0) + 1
    return step, f"{root_stem}_r{step}{suffix}"


def _changes(before: dict[str, Any], after: dict[str, Any], reasons: dict[str, list[str]] | None = None) -> list[dict[str, Any]]:
    """Value changes between two API graphs, node by node."""
    out = []
    for nid, node in after.items():
        old = (before.get(nid) or {}).get("inputs", {})
        for key, value in node.get("inputs", {}).items():
            if key in old and old[key] != value and not isinstance(value, list) and key != "image":
                name = str(node.get("class_type", "")).removeprefix("PortraitPolish")
                entry = {"node": nid, "class_type": node.get("class_type"), "input": key, "from": old[key], "to": value}
                if reasons and f"{name}.{key}" in reasons:
                    entry["words"] = reasons[f"{name}.{key}"]
                out.append(entry)
    return out


def refine(sidecar: str | Path, prompt: str | None = None, *, undo: bool = False, server: str | None = None,
           engine: Any = None) -> dict[str, Any]:
    """Run one refinement step; returns {"output", "sidecar", "step", "changes", "plan", "summary"}."""
    from .batch import Batch, atomic_write
    from .cli_plan import plan_for_graph
    from .workflow import copy_graph

    path = Path(sidecar)
    data = read_sidecar(path)
    source = _check_input(data)
    graph = copy_graph(data["workflow"]["api"])
    links = chain(path)
    root_path, root = links[0]
    wants_undo = undo
    plan = None
    if prompt and not undo:
        from ..core.plan_grammar import read

        wants_undo = any(i.kind == "command_undo" for i in read(prompt).intents)
    if wants_undo:
        parent = (data.get("refine") or {}).get("parent")
        if not parent:
            raise InputError(f"nothing to undo: {path.name} is the first output of its chain")
        parent_data = read_sidecar(path.parent / parent)
        new_graph, sets = copy_graph(parent_data["workflow"]["api"]), []
    elif prompt:
        new_graph = graph
        object_info = _object_info(server, engine)
        plan, sets, warnings = plan_for_graph(graph, object_info, prompt)
        for line in warnings:
            plan.not_done.append(line)
        if not sets:
            raise InputError("the words change nothing in this workflow:\n" + plan.summary())
    else:
        raise InputError("say what to change (--prompt \"...\"), or --undo")
    root_stem = STEP_SUFFIX.sub("", Path(root["output"]).stem)
    suffix = Path(data["output"]).suffix or ".png"
    step, name = _next_name(path.parent, root_stem, suffix)
    workflow_name = (data.get("workflow") or {}).get("name") or "workflow"
    with Batch(new_graph, path.parent, server=server, engine=engine, sets=sets, name=f"r{step}", progress=False) as batch:
        jobs = batch.add(source)
        for job in jobs:
            job.stem = root_stem
        summary = batch.run()
    result = summary.jobs[0]
    if result.status != "done":
        raise RunnerError(f"the refinement did not run: {result.status}: {result.reason}: {result.message}")
    sidecar_name = next((s for s in result.sidecars if Path(s).stem == Path(name).stem), result.sidecars[0])
    new_path = path.parent / sidecar_name
    record = json.loads(new_path.read_text(encoding="utf-8"))
    record["workflow"]["name"] = workflow_name
    changes = _changes(graph, record["workflow"]["api"], plan.reasons if plan else None)
    record["refine"] = {
        "step": step, "parent": path.name, "root": root_path.name, "prompt": prompt or "",
        "undo_of": path.name if wants_undo else None, "changes": changes,
        "plan": plan.as_dict(with_history=False) if plan else None,
    }
    atomic_write(new_path, (json.dumps(record, indent=2) + "\n").encode())
    return {"output": str(path.parent / result.outputs[0]), "sidecar": str(new_path), "step": step, "changes": changes,
            "summary": plan.summary() if plan else f"undo: back to the settings of {(data.get('refine') or {}).get('parent')}"}


def _object_info(server: str | None, engine: Any) -> dict[str, Any]:
    if engine is not None:
        return engine.object_info()
    if server:
        from .engine_server import ServerEngine

        remote = ServerEngine(server)
        try:
            return remote.object_info()
        finally:
            remote.close()
    from .objectinfo import local_object_info

    return local_object_info()


def history_lines(sidecar: str | Path) -> list[str]:
    lines = []
    for path, data in chain(sidecar):
        info = data.get("refine") or {}
        what = "undo" if info.get("undo_of") else f'"{info.get("prompt")}"' if info else "first run"
        changes = ", ".join(f"{c['class_type'].removeprefix('PortraitPolish')}.{c['input']} {c['from']} -> {c['to']}"
                            for c in info.get("changes", []))
        lines.append(f"r{info.get('step', 0)}  {data['output']}  {what}" + (f"  ({changes})" if changes else ""))
        del path
    return lines


def refine_command(args: argparse.Namespace) -> int:
    try:
        if args.history:
            print("\n".join(history_lines(args.sidecar)))
            return 0
        done = refine(args.sidecar, args.prompt, undo=args.undo, server=args.server)
    except RunnerError as exc:
        if args.json:
            print(json.dumps({"error": str(exc), "exit_code": exc.exit_code}))
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    if args.json:
        print(json.dumps(done, indent=2))
    else:
        print(done["summary"], file=sys.stderr)
        for change in done["changes"]:
            print(f"  {change['class_type'].removeprefix('PortraitPolish')}.{change['input']}: {change['from']} -> {change['to']}",
                  file=sys.stderr)
        print(f"result:  {done['output']}\nsidecar: {done['sidecar']}  (step r{done['step']}, parent {Path(args.sidecar).name})")
    return 0
