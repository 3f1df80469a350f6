"""``portrait-polish run WORKFLOW INPUT... [--server URL] [--set NODE.INPUT=VALUE]...``"""

from __future__ import annotations

import argparse
import json
import logging
import sys

from .errors import EXIT_INTERRUPTED, RunnerError

log = logging.getLogger("portrait_polish")

EPILOG = """\
inputs: image files, folders (their images) and CSV files (an 'image' column plus one column
per NODE.INPUT override). NODE is a node id or its title. Exit codes: 0 all done (or skipped:
done by an earlier run with these settings), 1 some failed, 2 bad workflow/inputs/--set or
unusable output folder (nothing ran), 3 server or Dask scheduler unreachable, or not ComfyUI, 4 some inputs got
nothing because files the runner did not write hold their output names (status "exists";
1 wins over 4), 130 Ctrl-C.
"""


def add_parser(subparsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "run", help="run a workflow (UI or API format) on images, in-process or on a ComfyUI server",
        description="Run a ComfyUI workflow headless over images: in-process (default) or on a server.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("workflow", help="workflow JSON file (UI or API format), or the name of a bundled workflow")
    parser.add_argument("inputs", nargs="+", help="images, folders or CSV files")
    parser.add_argument("-o", "--output", default="out", help="output folder (default: out)")
    parser.add_argument("--set", dest="sets", action="append", default=[], metavar="NODE.INPUT=VALUE",
                        help="set a node input for every image (repeatable)")
    parser.add_argument("--prompt", metavar="WORDS",
                        help='plain words applied on top of the workflow\'s settings before --set, e.g. "a bit less smoothing"')
    parser.add_argument("--server", metavar="URL", help="queue on this ComfyUI server instead of running in-process")
    parser.add_argument("--dask", metavar="ADDRESS",
                        help="spread the batch over a Dask cluster: tcp://HOST:8786 (a running scheduler with "
                             "`portrait-polish worker`s) or local:N (N worker processes here); needs the dask extra")
    parser.add_argument("--concurrency", type=int, default=1, help="prompts in flight at once (server mode)")
    parser.add_argument("--timeout", type=float, default=None, help="wall-clock seconds allowed per image")
    parser.add_argument("--retries", type=int, default=8, help="retries for transient server faults (default 8)")
    parser.add_argument("--overwrite", action="store_true", help="replace existing output files and redo finished jobs")
    parser.add_argument("--input-node", help="node id or title of the loader that receives each image (default: the first LoadImage)")
    parser.add_argument("--recursive", action="store_true", help="include images in sub-folders of input folders")
    parser.add_argument("--format", metavar="FORMAT",
                        help="png | png16 | tiff | tiff16 | jpeg[:QUALITY] | webp[:QUALITY] (default auto: the input's "
                             "depth, TIFF for TIFF input, else PNG)")
    parser.add_argument("--to-srgb", action="store_true",
                        help="convert from the file's ICC profile to sRGB (LittleCMS) before retouching; default: keep "
                             "the file's own RGB and pass its profile through byte for byte")
    parser.add_argument("--strip-gps", action="store_true", help="leave GPS location out of the outputs' EXIF and XMP")
    parser.add_argument("--strip-metadata", action="store_true",
                        help="write no EXIF, XMP, IPTC or workflow text (the ICC profile stays)")
    parser.add_argument("--max-megapixels", type=float, metavar="MP",
                        help="refuse photos above this size (default 150, or PORTRAIT_POLISH_MAX_MEGAPIXELS; 0 = no limit); "
                             "the default workflow needs about 36 bytes of memory per pixel")
    parser.add_argument("--print-prompt", action="store_true", help="print the API-format prompt (after --set) and exit")
    parser.add_argument("--json", action="store_true", help="print the final summary as JSON on stdout")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument("-v", "--verbose", action="store_true", default=argparse.SUPPRESS,
                        help="more log output, and the native libraries' own (same as portrait-polish -v)")
    parser.set_defaults(func=run_command)
    return parser


def resolve_workflow(name: str) -> str:
    """A path, or the name of a bundled workflow ("natural_headshot" -> workflows/api/natural_headshot.json)."""
    from pathlib import Path

    path = Path(name)
    if path.exists():
        return str(path)
    bundled = Path(__file__).resolve().parent.parent / "workflows" / "api"
    for candidate in (bundled / name, bundled / f"{name}.json"):
        if candidate.is_file():
            return str(candidate)
    return name  # load_workflow reports the missing file


def run_command(args: argparse.Namespace) -> int:
    from .batch import Batch
    from .photo import PhotoOptions

    batch = None
    if getattr(args, "max_megapixels", None) is not None:
        import os

        from ..core.photo_io import MAX_MEGAPIXELS_ENV

        os.environ[MAX_MEGAPIXELS_ENV] = f"{args.max_megapixels:g}"  # read by every photo reader of this run
    try:
        sets = list(args.sets)
        if getattr(args, "prompt", None):
            from .cli_plan import prompt_sets

            plan, plan_sets, warnings = prompt_sets(resolve_workflow(args.workflow), args.prompt, args.server, args.retries)
            sets = plan_sets + sets  # the user's own --set values win
            if not args.json:
                print(plan.summary() + "".join(f"\n  {w}" for w in warnings), file=sys.stderr)
        photo = PhotoOptions(format=args.format, to_srgb=args.to_srgb, strip_gps=args.strip_gps,
                             strip_metadata=args.strip_metadata)
        batch = Batch(
            resolve_workflow(args.workflow), args.output, server=args.server, sets=sets, overwrite=args.overwrite,
            concurrency=args.concurrency, timeout=args.timeout, retries=args.retries, input_node=args.input_node,
            progress=not args.no_progress and not args.json, recursive=args.recursive, photo=photo, dask=args.dask,
        )
        batch.add(*args.inputs)
        if args.print_prompt:
            graph = batch.jobs[0].graph if batch.jobs else batch.graph
            print(json.dumps(graph, indent=2))
            return 0
        summary = batch.run()
    except RunnerError as exc:
        if args.json:
            from .summary import error_summary

            print(json.dumps(error_summary(str(exc), exc.exit_code, str(args.output)), indent=2))
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:  # before the batch ran (start-up, checks): nothing was written
        if args.json:
            from .summary import error_summary

            print(json.dumps(error_summary("interrupted before the batch started", EXIT_INTERRUPTED, str(args.output)), indent=2))
        print("interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    finally:
        if batch is not None:
            batch.close()
    if args.json:
        from .outputs import strict_json

        print(strict_json(summary.as_dict(), indent=2))
    else:
        print(summary.text(), file=sys.stderr)
    return summary.exit_code
