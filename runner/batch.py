"""Batches: inputs -> jobs -> outputs, with a resumable manifest, sidecars and a summary.

One job per input image (or CSV row). Each job gets the workflow with ``--set`` values and
its own overrides applied (all validated before anything runs), its image put into the
loader node, and runs on an engine (in-process or a server). Outputs get deterministic
names, are written atomically (temp file + ``os.replace``) and never replace a file the
runner did not write for this very job unless ``overwrite`` is set. A JSONL manifest in the
output folder records every job's start and end, so a rerun skips what is done.
"""

from __future__ import annotations

import csv
import hashlib
import json
import logging
import os
import re
import sys
import threading
import time
import uuid
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import (
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_OK,
    Cancelled,
    InputError,
    JobFailed,
    ParameterError,
    RunnerError,
    TransientServerError,
    WorkflowError,
)
from .photo import PhotoOptions, planned_extension, saved_refs, use_photo_nodes
from .workflow import (
    ApiGraph,
    apply_sets,
    copy_graph,
    find_node,
    load_workflow,
    loader_nodes,
    output_nodes,
    validate_graph,
)

log = logging.getLogger("portrait_polish")

IMAGE_EXTENSIONS = {".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff"}
MANIFEST_NAME = "portrait-polish-manifest.jsonl"
IMAGE_COLUMNS = ("image", "input", "path", "file")
RUNNER_PREFIX = "portrait_polish_runner"


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("._") or "x"


def atomic_write(path: Path, data: bytes, overwrite: bool = True) -> None:
    """Write ``data`` to ``path`` via a temp file in the same folder and ``os.replace``:
    readers see the old file or the whole new one, never a partial file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = path.parent / f".{path.name}.{uuid.uuid4().hex[:8]}.tmp"
    try:
        with open(temp, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        if not overwrite and path.exists():
            raise FileExistsError(path)
        os.replace(temp, path)
    finally:
        if temp.exists():
            temp.unlink()


# ------------------------------------------------------------------ manifest


class Manifest:
    """Append-only JSONL: one record per job event; the last record of a job wins.

    Each record is written with a single write + fsync, so an interrupted run leaves at
    most one incomplete final line, which reading ignores."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self.records: dict[str, dict[str, Any]] = {}
        self.owned: dict[str, str] = {}  # output file name -> job key that wrote it
        if path.exists():
            for line in path.read_text(encoding="utf-8").splitlines():
                try:
                    record = json.loads(line)
                except json.JSONDecodeError:
                    continue
                if isinstance(record, dict) and "job" in record:
                    self._remember(record)

    def _remember(self, record: dict[str, Any]) -> None:
        self.records[record["job"]] = record
        if record.get("status") == "done":
            for name in record.get("outputs", []) + record.get("sidecars", []):
                self.owned[name] = record["job"]

    def append(self, record: dict[str, Any]) -> None:
        record = {"time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), **record}
        line = json.dumps(record, sort_keys=True) + "\n"
        with self._lock:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with open(self.path, "a", encoding="utf-8") as handle:
                handle.write(line)
                handle.flush()
                os.fsync(handle.fileno())
            self._remember(record)


# ------------------------------------------------------------------ jobs and results


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


@dataclass
class JobResult:
    input: str
    status: str  # "done", "skipped", "failed", "cancelled"
    reason: str = ""
    message: str = ""
    outputs: list[str] = field(default_factory=list)
    sidecars: list[str] = field(default_factory=list)
    seconds: float = 0.0
    details: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        data = {"input": self.input, "status": self.status, "outputs": self.outputs, "sidecars": self.sidecars,
                "seconds": round(self.seconds, 3)}
        if self.reason:
            data["reason"] = self.reason
        if self.message:
            data["message"] = self.message
        if self.details:
            data["details"] = self.details
        return data


@dataclass
class Summary:
    jobs: list[JobResult]
    output_dir: str
    manifest: str
    engine: dict[str, Any]
    interrupted: bool = False
    seconds: float = 0.0

    def count(self, status: str) -> int:
        return sum(1 for job in self.jobs if job.status == status)

    @property
    def exit_code(self) -> int:
        if self.interrupted:
            return EXIT_INTERRUPTED
        return EXIT_FAILED if self.count("failed") else EXIT_OK

    def as_dict(self) -> dict[str, Any]:
        return {
            "done": self.count("done"), "skipped": self.count("skipped"), "failed": self.count("failed"),
            "cancelled": self.count("cancelled"), "interrupted": self.interrupted, "exit_code": self.exit_code,
            "seconds": round(self.seconds, 3), "output_dir": self.output_dir, "manifest": self.manifest,
            "engine": self.engine, "jobs": [job.as_dict() for job in self.jobs],
        }

    def text(self) -> str:
        lines = [f"done {self.count('done')}, skipped {self.count('skipped')}, failed {self.count('failed')}"
                 + (f", cancelled {self.count('cancelled')} (interrupted)" if self.interrupted else "")
                 + f" in {self.seconds:.1f} s; outputs in {self.output_dir}"]
        for job in self.jobs:
            if job.status in ("failed", "skipped", "cancelled"):
                lines.append(f"  {job.status:9} {job.input}: {job.reason}: {job.message}")
        return "\n".join(lines)


# ------------------------------------------------------------------ inputs


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
    _make_stems_unique(jobs)
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


def _make_stems_unique(jobs: list[Job]) -> None:
    seen: dict[str, int] = {}
    for job in jobs:
        seen[job.stem] = seen.get(job.stem, 0) + 1
    for job in jobs:
        if seen[job.stem] > 1:
            if job.row is not None:
                job.stem = f"{job.stem}_row{job.row}"
            else:
                job.stem = f"{job.stem}_{hashlib.sha256(str(job.input.resolve()).encode()).hexdigest()[:8]}"


# ------------------------------------------------------------------ the batch


class Batch:
    """Run one workflow over many inputs. The Python API behind ``portrait-polish run``::

        batch = Batch("workflows/natural_headshot.json", "out", sets=["Teeth.strength=0.4"])
        batch.add("photos/")            # files, folders, CSV files
        summary = batch.run()
    """

    def __init__(self, workflow: str | Path | dict, output_dir: str | Path = "out", *, server: str | None = None,
                 engine: Any = None, sets: list[str] | dict[str, Any] | None = None, overwrite: bool = False,
                 concurrency: int = 1, timeout: float | None = None, retries: int = 8, input_node: str | None = None,
                 progress: bool = True, recursive: bool = False, name: str | None = None,
                 photo: PhotoOptions | None = None) -> None:
        self.output_dir = Path(output_dir)
        self.overwrite = overwrite
        self.concurrency = max(1, int(concurrency))
        self.timeout = timeout
        self.progress = progress
        self.recursive = recursive
        self._own_engine = engine is None
        if engine is None:
            if server:
                from .engine_server import ServerEngine

                engine = ServerEngine(server, retries=retries)
            else:
                from .engine_local import InProcessEngine

                engine = InProcessEngine()
        self.engine = engine
        if hasattr(engine, "check"):
            engine.check()
        self.object_info = engine.object_info()
        if isinstance(workflow, dict):
            from .workflow import workflow_format

            if workflow_format(workflow) == "ui":
                from .workflow import ui_to_api

                self.graph, self.ui = ui_to_api(workflow, self.object_info), workflow
            else:
                self.graph, self.ui = copy_graph(workflow), None
            self.workflow_file = None
            self.name = _slug(name or "workflow")
        else:
            self.graph, self.ui = load_workflow(workflow, self.object_info)
            self.workflow_file = Path(workflow)
            self.name = _slug(name or self.workflow_file.stem)
        self.sets = apply_sets(self.graph, self.object_info, sets or [])
        validate_graph(self.graph, self.object_info, skip=self._loader_skips(self.graph))
        if not output_nodes(self.graph, self.object_info):
            raise WorkflowError("the workflow has no output node (SaveImage or PreviewImage): nothing would be kept")
        loaders = loader_nodes(self.graph)
        if input_node:
            self.loader = find_node(self.graph, input_node)
        elif loaders:
            self.loader = loaders[0]
        else:
            raise ParameterError("the workflow has no LoadImage node to put the input images into")
        # Photo files: LoadPhoto/SavePhoto keep 16 bits, the ICC profile and metadata (runner/photo.py).
        self.graph = use_photo_nodes(self.graph, self.object_info, self.loader, photo or PhotoOptions())
        self.jobs: list[Job] = []
        self._cancelled = threading.Event()

    def _loader_skips(self, graph: ApiGraph) -> set[tuple[str, str]]:
        return {(nid, "image") for nid in loader_nodes(graph)}

    # -- inputs

    def add(self, *items: str | Path, overrides: dict[str, Any] | None = None) -> list[Job]:
        """Add images, folders or CSV files; ``overrides`` ({"NODE.INPUT": value}) apply to
        these inputs only. Everything is validated now, before anything runs."""
        jobs = collect_inputs(list(items), recursive=self.recursive)
        for job in jobs:
            if overrides:
                job.overrides = {**overrides, **job.overrides}
            self._prepare(job)
        self.jobs.extend(jobs)
        _make_stems_unique(self.jobs)
        return jobs

    def _prepare(self, job: Job) -> None:
        graph = copy_graph(self.graph)
        where = f"{job.input}" + (f" (CSV line {job.row})" if job.row else "")
        try:
            applied = apply_sets(graph, self.object_info, job.overrides)
        except ParameterError as exc:
            raise ParameterError(f"{where}: {exc}") from None
        job.graph = graph
        job.parameters = {**self.sets, **applied}
        try:
            job.input_sha256 = _sha256_file(job.input)
        except OSError as exc:
            raise InputError(f"input {job.input} cannot be read: {exc}") from None
        canonical = copy_graph(graph)
        canonical[self.loader]["inputs"]["image"] = ""
        for node in canonical.values():
            node.pop("_meta", None)
        text = json.dumps({"input": job.input_sha256, "graph": canonical, "workflow": self.name}, sort_keys=True)
        job.key = hashlib.sha256(text.encode()).hexdigest()[:32]

    # -- running

    def run(self) -> Summary:
        if not self.jobs:
            raise InputError("no inputs: give images, a folder or a CSV file")
        self.output_dir.mkdir(parents=True, exist_ok=True)
        self.manifest = Manifest(self.output_dir / MANIFEST_NAME)
        started = time.perf_counter()
        results: dict[int, JobResult] = {}
        bar = _ProgressBar(len(self.jobs), enabled=self.progress)
        interrupted = False
        try:
            if self.concurrency == 1 or not hasattr(self.engine, "interrupt"):
                for index, job in enumerate(self.jobs):
                    bar.status(job.stem, "running")
                    results[index] = self._run_job(job)
                    bar.finished(index, job, results[index])
            else:
                with ThreadPoolExecutor(max_workers=self.concurrency) as pool:
                    futures = {pool.submit(self._run_job, job): index for index, job in enumerate(self.jobs)}
                    pending = set(futures)
                    try:
                        while pending:
                            done, pending = wait(pending, timeout=0.5, return_when=FIRST_COMPLETED)
                            for future in done:
                                index = futures[future]
                                results[index] = future.result()
                                bar.finished(index, self.jobs[index], results[index])
                    except KeyboardInterrupt:
                        interrupted = True
                        self._cancel()
                        for future in pending:
                            future.cancel()
                        for future, index in futures.items():
                            if future.cancelled():
                                results[index] = JobResult(str(self.jobs[index].input), "cancelled", "interrupted", "not started")
                            elif index not in results:
                                try:
                                    results[index] = future.result()
                                except Exception as exc:  # noqa: BLE001
                                    results[index] = JobResult(str(self.jobs[index].input), "cancelled", "interrupted", str(exc))
        except KeyboardInterrupt:
            interrupted = True
            self._cancel()
        finally:
            bar.close()
        for index, job in enumerate(self.jobs):
            if index not in results:
                results[index] = JobResult(str(job.input), "cancelled", "interrupted", "not run")
                interrupted = True
        interrupted = interrupted or any(r.status == "cancelled" for r in results.values())
        summary = Summary(
            jobs=[results[i] for i in range(len(self.jobs))], output_dir=str(self.output_dir),
            manifest=str(self.manifest.path), engine=self.engine.describe(), interrupted=interrupted,
            seconds=time.perf_counter() - started,
        )
        return summary

    def close(self) -> None:
        if self._own_engine:
            self.engine.close()

    def __enter__(self) -> Batch:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _cancel(self) -> None:
        self._cancelled.set()
        self.engine.cancel()

    def _planned_name(self, job: Job) -> str:
        return f"{job.stem}_{self.name}{planned_extension(job.graph or self.graph, job.input)}"

    def _blocked(self, name: str, job: Job) -> bool:
        """True when ``name`` exists in the output folder and is not this job's own file."""
        return (self.output_dir / name).exists() and not self.overwrite and self.manifest.owned.get(name) != job.key

    def _run_job(self, job: Job) -> JobResult:
        started = time.perf_counter()
        record = {"job": job.key, "input": str(job.input), "workflow": self.name}
        previous = self.manifest.records.get(job.key)
        if self._cancelled.is_set():
            return JobResult(str(job.input), "cancelled", "interrupted", "not started")
        if previous and previous.get("status") == "done" and not self.overwrite:
            outputs = previous.get("outputs", [])
            if outputs and all((self.output_dir / name).exists() for name in outputs):
                return JobResult(str(job.input), "skipped", "already_done", "finished in an earlier run",
                                 outputs=outputs, sidecars=previous.get("sidecars", []))
        planned = self._planned_name(job)
        if self._blocked(planned, job):
            return JobResult(str(job.input), "skipped", "output_exists",
                             f"{self.output_dir / planned} exists and was not written for these settings; "
                             "use --overwrite to replace it or choose another output folder")
        prompt_id = str(uuid.uuid4())
        try:
            result = None
            if previous and previous.get("status") == "started" and previous.get("prompt_id") and hasattr(self.engine, "recover"):
                result = self.engine.recover(previous["prompt_id"])  # a crashed run's prompt that the server finished
                if result is not None:
                    prompt_id = previous["prompt_id"]
            if result is None:
                graph = self._job_graph(job)
                self.manifest.append({**record, "status": "started", "prompt_id": prompt_id})
                result = self._execute(job, graph, prompt_id)
            outputs, sidecars = self._write_outputs(job, result, prompt_id, started)
        except Cancelled as exc:
            self.manifest.append({**record, "status": "cancelled", "prompt_id": prompt_id})
            return JobResult(str(job.input), "cancelled", "interrupted", str(exc), seconds=time.perf_counter() - started)
        except KeyboardInterrupt:
            if hasattr(self.engine, "interrupt"):
                self.engine.interrupt(prompt_id)  # Ctrl-C: cancel it on the server too
            self.manifest.append({**record, "status": "cancelled", "prompt_id": prompt_id})
            raise
        except JobFailed as exc:
            self.manifest.append({**record, "status": "failed", "reason": exc.reason, "error": str(exc), "prompt_id": prompt_id})
            return JobResult(str(job.input), "failed", exc.reason, str(exc), seconds=time.perf_counter() - started,
                             details=_jsonable(exc.details))
        except TransientServerError as exc:
            self.manifest.append({**record, "status": "failed", "reason": "server_unreachable", "error": str(exc), "prompt_id": prompt_id})
            return JobFailedResult(job, "server_unreachable", str(exc), started)
        except RunnerError as exc:
            self.manifest.append({**record, "status": "failed", "reason": "error", "error": str(exc), "prompt_id": prompt_id})
            return JobFailedResult(job, "error", str(exc), started)
        except OSError as exc:
            self.manifest.append({**record, "status": "failed", "reason": "io_error", "error": str(exc), "prompt_id": prompt_id})
            return JobFailedResult(job, "io_error", str(exc), started)
        self.manifest.append({**record, "status": "done", "prompt_id": prompt_id, "outputs": outputs, "sidecars": sidecars})
        return JobResult(str(job.input), "done", outputs=outputs, sidecars=sidecars, seconds=time.perf_counter() - started)

    def _job_graph(self, job: Job) -> ApiGraph:
        graph = copy_graph(job.graph)
        graph[self.loader]["inputs"]["image"] = self.engine.image_value(job.input, job.key)
        # A unique prefix per job on the engine side, so outputs of different jobs never mix;
        # the local file names are the runner's own deterministic names.
        for node_id, node in graph.items():
            if "filename_prefix" in node["inputs"] and not isinstance(node["inputs"]["filename_prefix"], list):
                node["inputs"]["filename_prefix"] = f"{RUNNER_PREFIX}/{job.key[:16]}_{node_id}"
        return graph

    def _execute(self, job: Job, graph: ApiGraph, prompt_id: str):
        extra = {"workflow": self.ui} if self.ui else None
        if getattr(self.engine, "name", "") == "server":
            return self.engine.run(graph, extra, timeout=self.timeout, prompt_id=prompt_id,
                                   reupload=lambda: self._job_graph(job))
        return self.engine.run(graph, extra, timeout=self.timeout)

    def _write_outputs(self, job: Job, result, prompt_id: str, started: float) -> tuple[list[str], list[str]]:
        saved: list[tuple[str, dict[str, str]]] = []
        for node_id, ui in sorted(result.outputs.items(), key=lambda item: _node_sort(item[0])):
            for ref in saved_refs(ui):
                if ref.get("type", "output") == "output":
                    saved.append((node_id, ref))
        if not saved:
            raise JobFailed("the workflow produced no saved images (no SaveImage output)", reason="no_outputs")
        save_nodes = sorted({node_id for node_id, _ in saved}, key=_node_sort)
        names: list[str] = []
        counters: dict[str, int] = {}
        per_node = {n: sum(1 for nid, _ in saved if nid == n) for n in save_nodes}
        for node_id, ref in saved:
            base = f"{job.stem}_{self.name}"
            if len(save_nodes) > 1:
                title = (self.graph.get(node_id, {}).get("_meta") or {}).get("title") or node_id
                base += f"_{_slug(title)}"
            if per_node[node_id] > 1:
                counters[node_id] = counters.get(node_id, 0) + 1
                base += f"_{counters[node_id]:02d}"
            suffix = Path(ref["filename"]).suffix or ".png"
            names.append(base + suffix)
        for name in names:
            if self._blocked(name, job):
                raise JobFailed(f"{self.output_dir / name} exists and was not written for these settings; "
                                "use --overwrite to replace it", reason="output_exists")
        reports = _reports(job.graph or {}, result, self.graph)
        timings: dict[str, Any] = {"total_seconds": round(time.perf_counter() - started, 4)}
        node_timings = {k: v for k, v in (result.timings or {}).items() if not k.endswith("_seconds")}
        if node_timings:
            timings["nodes_seconds"] = {k: round(v, 4) for k, v in node_timings.items()}
            timings["engine_seconds"] = round(sum(node_timings.values()), 4)
        timings.update({k: round(v, 4) for k, v in (result.timings or {}).items() if k.endswith("_seconds")})
        engine_seconds = timings.get("engine_seconds", timings.get("execution_seconds"))
        if engine_seconds is not None:
            # What the runner itself adds: hashing, upload, waiting for the result, download, writes.
            overhead = timings["total_seconds"] - engine_seconds - timings.get("queue_seconds", 0.0)
            timings["runner_overhead_seconds"] = round(max(0.0, overhead), 4)
        sidecars = []
        for name, (node_id, ref) in zip(names, saved, strict=True):
            data = self.engine.fetch(ref)
            atomic_write(self.output_dir / name, data)
            sidecar = {
                "output": name,
                "input": str(job.input),
                "input_sha256": job.input_sha256,
                "output_sha256": hashlib.sha256(data).hexdigest(),
                "job": job.key,
                "prompt_id": prompt_id,
                "save_node": node_id,
                "workflow": {"name": self.name, "file": str(self.workflow_file) if self.workflow_file else None,
                             "api": job.graph},
                "parameters": job.parameters,
                "models": models_used(job.graph or {}, self.object_info),
                "identity_guard": reports,
                "timings": timings,
                "engine": self.engine.describe(),
                "runner": {"version": _pack_version(), "python": sys.version.split()[0]},
            }
            if ref.get("photo"):
                sidecar["photo"] = ref["photo"]  # format, depth, profile and metadata kept or dropped
            sidecar_name = Path(name).with_suffix(".json").name
            atomic_write(self.output_dir / sidecar_name, (json.dumps(_jsonable(sidecar), indent=2) + "\n").encode())
            sidecars.append(sidecar_name)
        return names, sidecars


def JobFailedResult(job: Job, reason: str, message: str, started: float) -> JobResult:  # noqa: N802 - a small factory
    return JobResult(str(job.input), "failed", reason, message, seconds=time.perf_counter() - started)


def _node_sort(node_id: str) -> tuple[int, int, str]:
    return (0, int(node_id), "") if node_id.isdigit() else (1, 0, node_id)


def _reports(graph: ApiGraph, result, original: ApiGraph) -> list[dict[str, Any]]:
    """IdentityGuard reports: its UI output (server and in-process) or its 'report' output."""
    reports = []
    for node_id, node in sorted(graph.items(), key=lambda item: _node_sort(item[0])):
        if "IdentityGuard" not in node["class_type"]:
            continue
        entry: dict[str, Any] = {"node": node_id, "title": (node.get("_meta") or {}).get("title")}
        ui = (result.outputs or {}).get(node_id) or {}
        for key, value in ui.items():
            if key != "images" and key != "portrait_polish_compare":
                entry[key] = value
        values = (getattr(result, "node_results", None) or {}).get(node_id)
        if values is not None:
            from .objectinfo import pack_classes

            cls = pack_classes()[0].get(node["class_type"])
            names = list(getattr(cls, "RETURN_NAMES", getattr(cls, "RETURN_TYPES", ())))
            for name, items in zip(names, values, strict=False):
                if any(word in name.lower() for word in ("report", "score", "similar", "passed")):
                    entry.setdefault(name, _parse_report(items))
        reports.append(entry)
    return reports


def _parse_report(items: list[Any]) -> Any:
    parsed = []
    for item in items:
        if isinstance(item, str):
            try:
                parsed.append(json.loads(item))
                continue
            except json.JSONDecodeError:
                pass
        parsed.append(item)
    return parsed[0] if len(parsed) == 1 else parsed


def models_used(graph: ApiGraph, object_info: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """Models a graph uses, with their sha256 from models.json: the required models of each
    node type in the graph and any model file chosen in a widget (e.g. the upscaler). Where a
    node has a ``backend`` choice, models that belong to another backend are left out."""
    from ..core.models import registry
    from .objectinfo import find_input

    specs = registry()
    by_file = {spec.filename: spec for spec in specs.values()}
    used: dict[str, Any] = {}

    def related(spec, backend: str) -> bool:
        return backend.split("_")[0].lower() in spec.id.lower() or backend == spec.folder

    for node in graph.values():
        plain = node["class_type"].removeprefix("PortraitPolish")
        backend = node["inputs"].get("backend")
        info = (object_info or {}).get(node["class_type"])
        spec_in = find_input(info, "backend") if info else None
        choices = [str(c) for c in (spec_in.choices or ())] if spec_in else ([backend] if isinstance(backend, str) else [])

        def fits(spec, choices=choices, backend=backend) -> bool:
            owners = [c for c in choices if related(spec, c)]
            return not owners or (isinstance(backend, str) and backend in owners)

        for spec in specs.values():
            if plain in spec.nodes and fits(spec) and (spec.required or (isinstance(backend, str) and related(spec, backend))):
                used[spec.id] = spec
        for value in node["inputs"].values():
            if isinstance(value, str) and Path(value).name in by_file and fits(by_file[Path(value).name]):
                spec = by_file[Path(value).name]
                used[spec.id] = spec
    return [{"id": s.id, "filename": s.filename, "sha256": s.sha256 if len(s.sha256) == 64 else None,
             "license": s.license, "commercial_use": s.commercial_use} for s in sorted(used.values(), key=lambda s: s.id)]


def _pack_version() -> str:
    try:
        from importlib.metadata import version

        return version("comfyui-portrait-polish")
    except Exception:  # noqa: BLE001
        return "unknown"


def _jsonable(value: Any) -> Any:
    return json.loads(json.dumps(value, default=lambda o: o.tolist() if hasattr(o, "tolist") else str(o)))


class _ProgressBar:
    """tqdm bar on stderr plus one line per finished image (status, name, seconds)."""

    def __init__(self, total: int, enabled: bool) -> None:
        self.total = total
        self.enabled = enabled
        self.done = 0
        self._bar = None
        if enabled and sys.stderr.isatty():
            from tqdm import tqdm

            self._bar = tqdm(total=total, unit="img", file=sys.stderr, dynamic_ncols=True, leave=False)

    def status(self, name: str, state: str) -> None:
        if self._bar is not None:
            self._bar.set_postfix_str(f"{name}: {state}")

    def finished(self, index: int, job: Job, result: JobResult) -> None:
        self.done += 1
        if not self.enabled:
            return
        detail = result.outputs[0] if result.status in ("done", "skipped") and result.outputs else result.message
        line = f"[{self.done}/{self.total}] {result.status:8} {job.input.name} ({result.seconds:.1f} s) {detail or ''}"
        if self._bar is None:
            print(line.rstrip(), file=sys.stderr, flush=True)
            return
        self._bar.write(line.rstrip(), file=sys.stderr)
        self._bar.update(1)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()


def run_workflow(workflow: str | Path | dict, inputs: str | Path | list[str | Path], output_dir: str | Path = "out",
                 **options: Any) -> Summary:
    """Run ``workflow`` on ``inputs`` (image, folder, CSV, or a list of them) and return the
    Summary. Options as for :class:`Batch` (server, sets, overwrite, concurrency, timeout...)."""
    items = [inputs] if isinstance(inputs, str | Path) else list(inputs)
    options.setdefault("progress", False)
    with Batch(workflow, output_dir, **options) as batch:
        batch.add(*items)
        return batch.run()
