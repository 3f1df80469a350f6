"""``portrait-polish`` command line: ``models`` (list/download/verify), ``run``, ``plan`` and ``refine``."""

from __future__ import annotations

import argparse
import logging
import sys


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="portrait-polish", description="Portrait Polish: models and headless workflow runs.")
    parser.add_argument("-v", "--verbose", action="store_true", help="more log output")
    sub = parser.add_subparsers(dest="command", required=True)
    # Each sub-command module adds its own parser (models: core/download.py CLI; run: runner).
    from . import cli_models

    cli_models.add_parser(sub)
    from . import cli_run

    cli_run.add_parser(sub)
    from . import cli_plan, refine

    cli_plan.add_parser(sub)
    refine.add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, format="%(message)s")
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
