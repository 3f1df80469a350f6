"""``portrait-polish worker --scheduler tcp://HOST:8786 [--comfy http://127.0.0.1:8188]``

A Dask worker for distributed batches (``portrait-polish run ... --dask tcp://HOST:8786``):
Dask's own ``dask worker`` (with its nanny, which restarts a worker that died or ran out of
memory), offering the ``portrait_polish`` resource so the box takes one job at a time, and
running each job on the ComfyUI server beside it (``--comfy``) or in its own process.
"""

from __future__ import annotations

import argparse
import os
import sys

from .dask_worker import COMFY_ENV, RESOURCE
from .errors import RunnerError


def add_parser(subparsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "worker", help="serve a Dask scheduler's Portrait Polish jobs on this machine (needs the dask extra)",
        description="A Dask worker for `portrait-polish run --dask`: one job at a time, on the ComfyUI server "
                    "beside it (--comfy) or in this process. Outputs go back to the client, which writes them.",
    )
    parser.add_argument("--scheduler", required=True, metavar="ADDRESS", help="the Dask scheduler, e.g. tcp://HOST:8786")
    parser.add_argument("--comfy", metavar="URL",
                        help="run each job on this ComfyUI server (with Portrait Polish installed), e.g. "
                             "http://127.0.0.1:8188; default: in this worker's own process")
    parser.add_argument("--name", help="the worker's name in the scheduler (default: Dask's)")
    parser.add_argument("--slots", type=int, default=1,
                        help="jobs this box runs at once (default 1: one per GPU; start one worker per GPU)")
    parser.add_argument("--memory-limit", default="auto",
                        help="restart the worker past this much memory, e.g. 16GB (Dask's --memory-limit; default auto)")
    parser.add_argument("--no-nanny", action="store_true", help="no nanny process (a dead worker is not restarted)")
    parser.add_argument("--local-directory", help="the worker's scratch folder (Dask's --local-directory)")
    parser.add_argument("--death-timeout", metavar="SECONDS",
                        help="give up after this long without reaching the scheduler (default: keep trying)")
    parser.set_defaults(func=worker_command)
    return parser


def worker_command(args: argparse.Namespace) -> int:
    try:
        from .dask_engine import import_distributed

        import_distributed("portrait-polish worker")
        if args.slots < 1:
            raise RunnerError("--slots must be at least 1")
        if args.comfy:
            from .engine_server import ServerEngine

            engine = ServerEngine(args.comfy, retries=2)
            try:
                engine.check()  # not ComfyUI, or down: one clear line now, not a failed task later
            finally:
                engine.close()
            os.environ[COMFY_ENV] = engine.url  # the worker process (a child of the nanny) inherits it
        else:
            os.environ.pop(COMFY_ENV, None)
    except RunnerError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    from distributed.cli.dask_worker import main as dask_worker_main

    argv = [args.scheduler, "--nthreads", str(args.slots), "--resources", f"{RESOURCE}={args.slots}",
            "--memory-limit", str(args.memory_limit), "--no-dashboard"]
    if args.name:
        argv += ["--name", args.name]
    if args.no_nanny:
        argv.append("--no-nanny")
    if args.local_directory:
        argv += ["--local-directory", args.local_directory]
    if args.death_timeout:
        argv += ["--death-timeout", str(args.death_timeout)]
    print(f"portrait-polish worker: {args.scheduler}, {args.slots} slot(s), "
          f"{'ComfyUI at ' + args.comfy if args.comfy else 'in-process engine'}", file=sys.stderr, flush=True)
    try:
        dask_worker_main.main(args=argv, prog_name="portrait-polish worker", standalone_mode=False)
    except KeyboardInterrupt:
        return 0
    return 0
