"""Inputs of a batch: image files, folders and CSV files -> jobs with deterministic, unique
output stems (the output names are ``<stem>_<workflow>.png``)."""

from __future__ import annotations

import csv
import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import InputError
from .workflow import ApiGraph

IMAGE_EXTENSIONS = {".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff"}
IMAGE_COLUMNS = ("image", "input", "path", "file")


@dataclass
class Job:
    input: Path
    stem: str  # deterministic output base name (before the workflow suffix)
    overrides: dict[str, Any] = field(default_factory=dict)  # "NODE.INPUT" -> raw value (CSV row)
    row: int | None = None
    graph: ApiGraph | None = None
    parameters: dict[str, Any] = field(default_factory=dict)
    key: str = ""
    input_sha256: str = ""


def collect_inputs(items: list[str | Path], recursive: bool = False) -> list[Job]:
    """Files, folders (their images, sorted) and CSV files -> jobs with unique stems."""
    jobs: list[Job] = []
    for item in items:
        path = Path(item)
        if not path.exists():
            raise InputError(f"input {path} does not exist")
        if path.is_dir():
            pattern = "**/*" if recursive else "*"
            files = sorted(p for p in path.glob(pattern) if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS
                           and not p.name.startswith("."))
            if not files:
                raise InputError(f"folder {path} has no images ({', '.join(sorted(IMAGE_EXTENSIONS))})")
            for file in files:
                relative = file.relative_to(path).with_suffix("")
                jobs.append(Job(input=file, stem="__".join(relative.parts)))
        elif path.suffix.lower() == ".csv":
            jobs.extend(_csv_jobs(path))
        elif path.suffix.lower() in IMAGE_EXTENSIONS:
            jobs.append(Job(input=path, stem=path.stem))
        else:
            raise InputError(f"input {path} is not an image ({', '.join(sorted(IMAGE_EXTENSIONS))}), a folder or a CSV file")
    make_stems_unique(jobs)
    return jobs


def _csv_jobs(path: Path) -> list[Job]:
    with open(path, newline="", encoding="utf-8-sig") as handle:
        rows = list(csv.DictReader(handle))
    if not rows:
        raise InputError(f"CSV {path} has no rows")
    columns = list(rows[0])
    image_column = next((c for c in columns if c.strip().lower() in IMAGE_COLUMNS), None)
    if image_column is None:
        raise InputError(f"CSV {path} needs an image column (one of {', '.join(IMAGE_COLUMNS)}); it has {', '.join(columns)}")
    jobs = []
    for number, row in enumerate(rows, start=2):  # line 1 is the header
        image = (row.get(image_column) or "").strip()
        if not image:
            raise InputError(f"CSV {path} line {number}: empty {image_column!r}")
        file = Path(image) if Path(image).is_absolute() else path.parent / image
        if not file.is_file():
            raise InputError(f"CSV {path} line {number}: image {file} does not exist")
        overrides = {k.strip(): v for k, v in row.items() if k != image_column and k and v not in (None, "")}
        jobs.append(Job(input=file, stem=file.stem, overrides=overrides, row=number))
    return jobs


def make_stems_unique(jobs: list[Job]) -> None:
    seen: dict[str, int] = {}
    for job in jobs:
        seen[job.stem] = seen.get(job.stem, 0) + 1
    for job in jobs:
        if seen[job.stem] > 1:
            if job.row is not None:
                job.stem = f"{job.stem}_row{job.row}"
            else:
                job.stem = f"{job.stem}_{hashlib.sha256(str(job.input.resolve()).encode()).hexdigest()[:8]}"
