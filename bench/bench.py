"""Time and peak memory per node and per workflow, at 1 MP and 24 MP.

    python bench/bench.py                 # every case, printed as a table
    python bench/bench.py --only parse    # cases whose name contains "parse"
    python bench/bench.py --list

Cases live in ``bench/cases_*.py``; each module defines ``CASES``, a list of
:class:`BenchCase`. Every case runs in its own fresh process, so the peak resident memory
reported is that case's alone (and on CUDA, the peak allocated GPU memory as well). The
``models`` column is the time spent inside the models (YuNet, FaceLandmarker, the selfie
segmenter, the recognition network: :mod:`core.timing`) during the timed calls; the rest
is the pack's own work. A case whose call returns ``{"rows": [(name, seconds, models)]}``
gets those sub-rows printed under it (per node, from the same run).
Inputs are real photos (``cases_headshot.py``: ../shared/portraits at full size, and any
photo through ``PORTRAIT_POLISH_BENCH_PHOTO``), synthetic, or the public-domain astronaut
resized to the case's size.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import re
import resource
import subprocess
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
REPO_ROOT = BENCH_DIR.parent
sys.path.insert(0, str(BENCH_DIR))

SIZES = {"1MP": (1000, 1000), "24MP": (6000, 4000), "native": (0, 0)}


@dataclass
class BenchCase:
    """``setup(width, height)`` prepares inputs and returns the callable to time."""

    name: str
    kind: str  # "node" or "workflow"
    size: str  # a key of SIZES
    setup: Callable[[int, int], Callable[[], object]]
    repeats: int = 1
    note: str = ""


def discover() -> list[BenchCase]:
    cases: list[BenchCase] = []
    for path in sorted(BENCH_DIR.glob("cases_*.py")):
        spec = importlib.util.spec_from_file_location(path.stem, path)
        assert spec and spec.loader
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        cases.extend(module.CASES)
    return cases


def run_one(case: BenchCase) -> dict[str, object]:
    import torch

    from portrait_polish.core import timing

    width, height = SIZES[case.size]
    fn = case.setup(width, height)
    fn()  # warm-up: model loading and caches are not what we time
    if torch.cuda.is_available():
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    timing.reset_model_times()
    start = time.perf_counter()
    result = None
    for _ in range(case.repeats):
        result = fn()
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    seconds = (time.perf_counter() - start) / case.repeats
    models = sum(timing.model_times().values()) / case.repeats
    peak_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    gpu_peak = torch.cuda.max_memory_allocated() if torch.cuda.is_available() else 0
    rows = result.get("rows", []) if isinstance(result, dict) else []
    return {"seconds": seconds, "models": models, "peak_rss": peak_rss, "gpu_peak": gpu_peak, "rows": rows}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", default="", help="run only cases whose name contains this text")
    parser.add_argument("--size", choices=sorted(SIZES), help="run only this size")
    parser.add_argument("--list", action="store_true", help="list the cases and exit")
    parser.add_argument("--case", help=argparse.SUPPRESS)  # child process: run one case, print JSON
    args = parser.parse_args(argv)

    cases = discover()
    if args.case:
        case = next(c for c in cases if f"{c.name}@{c.size}" == args.case)
        try:
            print(json.dumps(run_one(case)))
        except Exception as exc:  # noqa: BLE001 - reported as the case's row
            traceback.print_exc()
            print(json.dumps({"error": error_line(exc)}), flush=True)
            return 1
        return 0
    selected = [c for c in cases if args.only in c.name and (not args.size or c.size == args.size)]
    if args.list:
        for c in selected:
            print(f"{c.kind:9} {c.name:40} {c.size}")
        return 0

    device = "cuda" if os.environ.get("CUDA_VISIBLE_DEVICES", "x") != "" and _cuda() else "cpu"
    print(f"device: {device}, torch threads: {os.environ.get('OMP_NUM_THREADS', 'default')}")
    header = f"{'kind':9} {'case':44} {'size':6} {'seconds':>8} {'models':>7} {'peak RAM':>9} {'peak GPU':>9}  note"
    print(header)
    print("-" * len(header))
    failures = 0
    for case in selected:
        proc = subprocess.run(
            [sys.executable, __file__, "--case", f"{case.name}@{case.size}"],
            capture_output=True,
            text=True,
            cwd=REPO_ROOT,
        )
        if proc.returncode != 0:
            failures += 1
            last = _reported_error(proc.stdout) or (proc.stderr.strip().splitlines() or ["failed"])[-1]
            print(f"{case.kind:9} {case.name:44} {case.size:6} {'error':>8} {'':>7} {'':>9} {'':>9}  {last[:140]}")
            continue
        row = json.loads(proc.stdout.strip().splitlines()[-1])
        gpu = f"{row['gpu_peak'] / 2**20:7.0f}MB" if row["gpu_peak"] else f"{'-':>9}"
        print(
            f"{case.kind:9} {case.name:44} {case.size:6} {row['seconds']:8.3f} {row['models']:7.3f} "
            f"{row['peak_rss'] / 2**20:7.0f}MB {gpu}  {case.note}",
            flush=True,
        )
        for name, seconds, models in row.get("rows", []):
            print(f"{'':9}   {name:42} {'':6} {seconds:8.3f} {models:7.3f}", flush=True)
    return 1 if failures else 0


def error_line(exc: BaseException) -> str:
    """The line of a failed case's error that says why: the first ``SomethingError: ...``
    in the lines under its message's first (a batch summary names each failed job's error
    after its path), else that first line."""
    lines = f"{type(exc).__name__}: {exc}".splitlines()
    for line in lines[1:]:
        found = re.search(r"\b[A-Z]\w*(?:Error|Exception): .*", line)
        if found:
            return found.group(0).strip()
    return lines[0]


def _reported_error(stdout: str) -> str | None:
    for line in reversed(stdout.strip().splitlines()):
        try:
            row = json.loads(line)
        except ValueError:
            continue
        if isinstance(row, dict) and "error" in row:
            return str(row["error"])
    return None


def _cuda() -> bool:
    try:
        import torch

        return torch.cuda.is_available()
    except ImportError:
        return False


if __name__ == "__main__":
    sys.exit(main())
