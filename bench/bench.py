"""Time and peak memory per node and per workflow, at 1 MP and 24 MP.

    python bench/bench.py                 # every case, printed as a table
    python bench/bench.py --only parse    # cases whose name contains "parse"
    python bench/bench.py --list

Cases live in ``bench/cases_*.py``; each module defines ``CASES``, a list of
:class:`BenchCase`. Every case runs in its own fresh process, so the peak resident memory
reported is that case's alone (and on CUDA, the peak allocated GPU memory as well).
Inputs are synthetic or the public-domain astronaut, resized to the case's size; set
``PORTRAIT_POLISH_BENCH_PHOTO`` to use one of your own portraits instead.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import resource
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
REPO_ROOT = BENCH_DIR.parent
sys.path.insert(0, str(BENCH_DIR))

SIZES = {"1MP": (1000, 1000), "24MP": (6000, 4000)}


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

    width, height = SIZES[case.size]
    fn = case.setup(width, height)
    fn()  # warm-up: model loading and caches are not what we time
    if torch.cuda.is_available():
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    for _ in range(case.repeats):
        fn()
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    seconds = (time.perf_counter() - start) / case.repeats
    peak_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    gpu_peak = torch.cuda.max_memory_allocated() if torch.cuda.is_available() else 0
    return {"seconds": seconds, "peak_rss": peak_rss, "gpu_peak": gpu_peak}


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
        print(json.dumps(run_one(case)))
        return 0
    selected = [c for c in cases if args.only in c.name and (not args.size or c.size == args.size)]
    if args.list:
        for c in selected:
            print(f"{c.kind:9} {c.name:40} {c.size}")
        return 0

    device = "cuda" if os.environ.get("CUDA_VISIBLE_DEVICES", "x") != "" and _cuda() else "cpu"
    print(f"device: {device}, torch threads: {os.environ.get('OMP_NUM_THREADS', 'default')}")
    header = f"{'kind':9} {'case':40} {'size':5} {'seconds':>9} {'peak RAM':>10} {'peak GPU':>10}  note"
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
            last = (proc.stderr.strip().splitlines() or ["failed"])[-1]
            print(f"{case.kind:9} {case.name:40} {case.size:5} {'error':>9} {'':>10} {'':>10}  {last[:80]}")
            continue
        row = json.loads(proc.stdout.strip().splitlines()[-1])
        gpu = f"{row['gpu_peak'] / 2**20:8.0f}MB" if row["gpu_peak"] else f"{'-':>10}"
        print(
            f"{case.kind:9} {case.name:40} {case.size:5} {row['seconds']:9.3f} "
            f"{row['peak_rss'] / 2**20:8.0f}MB {gpu}  {case.note}",
            flush=True,
        )
    return 1 if failures else 0


def _cuda() -> bool:
    try:
        import torch

        return torch.cuda.is_available()
    except ImportError:
        return False


if __name__ == "__main__":
    sys.exit(main())
