"""``portrait-polish`` command line: ``models`` (list/download/verify), ``run``, ``plan``, ``refine`` and ``worker``."""

from __future__ import annotations

import argparse
import logging
import sys


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="portrait-polish", description="Portrait Polish: models and headless workflow runs.")
    parser.add_argument("-v", "--verbose", action="store_true",
                        help="more log output, and the native libraries' own (MediaPipe, TensorFlow Lite, OpenCV)")
    sub = parser.add_subparsers(dest="command", required=True)
    # Each sub-command module adds its own parser (models: core/download.py CLI; run: runner).
    from . import cli_models

    cli_models.add_parser(sub)
    from . import cli_run

    cli_run.add_parser(sub)
    from . import cli_plan, refine

    cli_plan.add_parser(sub)
    refine.add_parser(sub)
    from . import cli_worker  # Dask itself is imported only when the command runs

    cli_worker.add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    try:
        parser = build_parser()
        args = parser.parse_args(argv)
        verbose = bool(getattr(args, "verbose", False))
        logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO, format="%(message)s")
        from ..core import quiet

        quiet.set_verbose(verbose)  # native libraries' chatter (MediaPipe, TFLite, OpenCV) only with -v
        return int(args.func(args) or 0)
    except KeyboardInterrupt:  # Ctrl-C before or after a run's own handling (start-up, printing)
        print("interrupted", file=sys.stderr)
        from .errors import EXIT_INTERRUPTED

        return EXIT_INTERRUPTED
    except BrokenPipeError:  # stdout piped into e.g. `head`, which stopped reading: not an error of ours
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # Python's own advice: no second error at exit
        return 1


if __name__ == "__main__":
    sys.exit(main())
