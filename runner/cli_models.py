"""``portrait-polish models list | download [ID...] | verify [ID...]``.

Exit codes (stable, for scripts):

- 0: everything asked for is installed and matches models.json;
- 1: a file is corrupt (size or sha256 mismatch) or a download failed;
- 2: bad usage (unknown model id, bad arguments: argparse's own code);
- 3: a model asked for is not installed (``verify ID``), or cannot be downloaded
  because ``PORTRAIT_POLISH_OFFLINE=1``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ..core import models
from ..core.download import CorruptFileError, DownloadError, download_model, has_checksum, verify_file

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_MISSING = 3

EPILOG = """\
exit codes: 0 all good; 1 a file is corrupt or a download failed; 2 bad usage (unknown
model id); 3 a model asked for is missing (or offline).

Models are looked for in PORTRAIT_POLISH_MODELS (os.pathsep-separated folders, flat or with
<folder>/ subfolders), then the per-user cache, then packages that ship them. Downloads go
to the per-user cache, or to --models-dir DIR as DIR/<folder>/<file> (use your
ComfyUI/models folder to install them for ComfyUI)."""


def add_parser(sub: Any) -> None:
    parser = sub.add_parser(
        "models",
        help="list, download and verify model files",
        description="List, download and verify the model files in models.json.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--models-dir",
        metavar="DIR",
        help="a models folder (e.g. ComfyUI/models): searched first, and downloads go to DIR/<folder>/",
    )
    actions = parser.add_subparsers(dest="models_command", required=True)

    listing = actions.add_parser("list", help="every model: file, folder, licence, required?, where it is installed")
    listing.add_argument("--json", action="store_true", help="machine-readable output")
    listing.set_defaults(func=cmd_list)

    download = actions.add_parser("download", help="download models (default: the required ones)")
    download.add_argument("ids", nargs="*", metavar="ID", help="model ids from models.json (default: the required ones)")
    download.add_argument("--all", action="store_true", help="every model in models.json")
    download.add_argument("--no-progress", action="store_true", help="no progress bar")
    download.set_defaults(func=cmd_download)

    verify = actions.add_parser("verify", help="check the sha256 of installed model files")
    verify.add_argument("ids", nargs="*", metavar="ID", help="model ids (default: every installed model)")
    verify.set_defaults(func=cmd_verify)


@contextmanager
def _models_dir(args: argparse.Namespace) -> Iterator[Path | None]:
    """``--models-dir DIR``: search DIR first (as PORTRAIT_POLISH_MODELS does) for the
    duration of the command only, and yield it as the download base."""
    if not getattr(args, "models_dir", None):
        yield None
        return
    base = Path(args.models_dir).expanduser().resolve()
    previous = os.environ.get(models.ENV_MODELS)
    os.environ[models.ENV_MODELS] = os.pathsep.join([str(base), previous]) if previous else str(base)
    try:
        yield base
    finally:
        if previous is None:
            os.environ.pop(models.ENV_MODELS, None)
        else:
            os.environ[models.ENV_MODELS] = previous


def _select(ids: list[str], default: list[models.ModelSpec]) -> list[models.ModelSpec] | None:
    if not ids:
        return default
    selected = []
    unknown = []
    for name in ids:
        try:
            selected.append(models.spec_for(name))
        except KeyError:
            unknown.append(name)
    if unknown:
        known = ", ".join(sorted(models.registry()))
        print(f"unknown model id(s): {', '.join(unknown)}; known: {known}", file=sys.stderr)
        return None
    return selected


def installed_path(spec: models.ModelSpec) -> Path | None:
    for directory in models.search_dirs(spec):
        path = directory / spec.filename
        if path.is_file():
            return path
    return None


def licence_label(spec: models.ModelSpec, width: int = 40) -> str:
    """The licence for the table: its name (the text before any explanation in brackets),
    cut to ``width``; a non-commercial one is led by a plain NON-COMMERCIAL flag.
    ``list --json`` gives the full text."""
    name = spec.license.split(" (")[0].strip() if spec.commercial_use else spec.license.strip()
    if len(name) > width:
        name = name[: width - 3].rstrip() + "..."
    return name if spec.commercial_use else f"NON-COMMERCIAL: {name}"


def cmd_list(args: argparse.Namespace) -> int:
    with _models_dir(args):
        return _list(args)


def _list(args: argparse.Namespace) -> int:
    rows = []
    for spec in models.registry().values():
        path = installed_path(spec)
        rows.append(
            {
                "id": spec.id,
                "file": spec.filename,
                "folder": spec.folder,
                "license": spec.license,
                "commercial_use": spec.commercial_use,
                "required": spec.required,
                "path": str(path) if path else None,
                "url": spec.url,
            }
        )
    if args.json:
        print(json.dumps(rows, indent=2))
        return EXIT_OK
    headers = ["id", "file", "folder", "licence", "required", "installed"]
    table = [
        [
            r["id"],
            r["file"],
            r["folder"],
            licence_label(models.spec_for(r["id"])),
            "yes" if r["required"] else "no",
            r["path"] or "MISSING",
        ]
        for r in rows
    ]
    widths = [max(len(h), *(len(row[i]) for row in table)) for i, h in enumerate(headers[:-1])]
    for row in [headers, *table]:
        print("  ".join(cell.ljust(width) for cell, width in zip(row[:-1], widths, strict=True)) + "  " + row[-1])
    missing = [r["id"] for r in rows if r["path"] is None and r["required"]]
    if missing:
        print(f"\nrequired but missing: {', '.join(missing)} (portrait-polish models download)")
    return EXIT_OK


def cmd_download(args: argparse.Namespace) -> int:
    with _models_dir(args) as base:
        return _download(args, base)


def _download(args: argparse.Namespace, base: Path | None) -> int:
    registry = list(models.registry().values())
    specs = _select(args.ids, registry if args.all else [s for s in registry if s.required])
    if specs is None:
        return EXIT_USAGE
    status = EXIT_OK
    for spec in specs:
        target_dir = base / spec.folder if base else models.download_dir(spec)
        found = installed_path(spec)
        if found is not None and found.parent != target_dir:
            # Installed elsewhere (another folder on the search path, or a package): check it.
            try:
                verify_file(spec, found)
                print(f"ok          {spec.id}: {found}")
            except CorruptFileError as exc:
                print(f"CORRUPT     {spec.id}: {exc}; delete it and run the download again", file=sys.stderr)
                status = max(status, EXIT_FAILED)
            except DownloadError as exc:
                print(f"present     {spec.id}: {found} (not verified: {exc})")
            continue
        if models.offline():
            print(
                f"MISSING     {spec.id}: {models.ENV_OFFLINE}=1 is set; get {spec.url} into {target_dir}", file=sys.stderr
            )
            status = max(status, EXIT_MISSING) if status != EXIT_FAILED else status
            continue
        try:
            path = download_model(spec, target_dir, progress=not args.no_progress)
            print(f"ok          {spec.id}: {path}")
        except DownloadError as exc:
            print(f"FAILED      {spec.id}: {exc}", file=sys.stderr)
            status = EXIT_FAILED
    return status


def cmd_verify(args: argparse.Namespace) -> int:
    with _models_dir(args):
        return _verify(args)


def _verify(args: argparse.Namespace) -> int:
    specs = _select(args.ids, list(models.registry().values()))
    if specs is None:
        return EXIT_USAGE
    explicit = bool(args.ids)
    corrupt = missing = 0
    for spec in specs:
        path = installed_path(spec)
        if path is None:
            print(f"MISSING     {spec.id}: {spec.filename}", file=sys.stderr if explicit else sys.stdout)
            missing += explicit
            continue
        if not has_checksum(spec):
            print(f"UNCHECKED   {spec.id}: {path} (models.json has no sha256 yet)")
            continue
        try:
            verify_file(spec, path)
            print(f"ok          {spec.id}: {path}")
        except CorruptFileError as exc:
            print(f"CORRUPT     {spec.id}: {exc}", file=sys.stderr)
            corrupt += 1
    if corrupt:
        return EXIT_FAILED
    if missing:
        return EXIT_MISSING
    return EXIT_OK
