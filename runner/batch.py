"""Batches: inputs -> jobs -> outputs, with a resumable manifest, sidecars and a summary.

One job per input image (or CSV row). Each job gets the workflow with ``--set`` values and
its own overrides applied (all validated before anything runs), its image put into the
loader node, and runs on an engine (in-process or a server). Outputs get deterministic
names; each job's images, sidecars and manifest records are one recoverable unit
(``outputs.commit``), so a kill at any moment loses nothing and a rerun finishes the work
without doing anything twice. A file the runner did not write for this very job is never
replaced unless ``overwrite`` is set: that input is reported "exists" (exit code 4).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import sys
import threading
import time
import uuid
from collections import deque
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from pathlib import Path
from typing import Any

from .engine_local import ref_id
from .errors import Cancelled, InputError, JobFailed, ParameterError, RunnerError, TransientServerError, WorkflowError
from .inputs import IMAGE_EXTENSIONS, Job, collect_inputs, make_stems_unique
from .outputs import (
    MANIFEST_NAME,
    Manifest,
    OutputFile,
    atomic_write,
    commit,
    intact,
    open_output_folder,
    sha256_file,
    strict_json,
)
from .photo import PhotoOptions, planned_extension, saved_refs, use_photo_nodes
from .provenance import identity_reports, models_used, node_sort, pack_version
from .summary import JobResult, ProgressBar, Summary
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

RUNNER_PREFIX = "portrait_polish_runner"
WRITER_THREADS = 4  # distributed runs: write units in flight at once (their fsyncs overlap)

# Re-exported: the batch's public pieces live in smaller modules.
__all__ = ["Batch", "run_workflow", "Summary", "JobResult", "Job", "Manifest", "MANIFEST_NAME", "IMAGE_EXTENSIONS",
           "collect_inputs", "atomic_write", "models_used"]


class OutputExists(JobFailed):
    """A file this run did not make holds one of the job's output or sidecar names."""

    def __init__(self, message: str) -> None:
        super().__init__(message, reason="output_exists")


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("._") or "x"


def sidecar_name(output_name: str) -> str:
    """``x.png`` -> ``x.json`` (as Path.with_suffix, in plain string work: it runs per job)."""
    name = os.path.basename(output_name)
    dot = name.rfind(".")
    return (name[:dot] if 0 < dot < len(name) - 1 else name) + ".json"  # pathlib's rule for a suffix


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
                 photo: PhotoOptions | None = None, dask: str | None = None) -> None:
        self.output_dir = Path(output_dir)
        self.overwrite = overwrite
        self.concurrency = max(1, int(concurrency))
        self.timeout = timeout
        self.progress = progress
        self.recursive = recursive
        self._own_engine = engine is None
        if engine is None:
            if dask and server:
                raise ParameterError("--dask and --server do not go together: give each Dask worker its own ComfyUI "
                                     "(portrait-polish worker --scheduler ADDRESS --comfy URL)")
            if dask:
                from .dask_engine import DaskEngine

                engine = DaskEngine(dask)
            elif server:
                from .engine_server import ServerEngine

                engine = ServerEngine(server, retries=retries)
            else:
                from .engine_local import InProcessEngine

                engine = InProcessEngine()
        self.engine = engine
        self.jobs: list[Job] = []
        self._cancelled = threading.Event()
        try:
            self._load(workflow, name, sets, input_node, photo)
        except BaseException:
            self.close()  # an engine made here must not outlive a Batch that failed to start
            raise

    def _load(self, workflow: str | Path | dict, name: str | None, sets: list[str] | dict[str, Any] | None,
              input_node: str | None, photo: PhotoOptions | None) -> None:
        engine = self.engine
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
        validate_graph(self.graph, self.object_info, skip={(nid, "image") for nid in loader_nodes(self.graph)})
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
        make_stems_unique(self.jobs)
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
            job.input_sha256 = sha256_file(job.input)
        except OSError as exc:
            raise InputError(f"input {job.input} cannot be read: {exc}") from None
        canonical = copy_graph(graph)
        canonical[self.loader]["inputs"]["image"] = ""
        for node in canonical.values():
            node.pop("_meta", None)
            if not isinstance(node["inputs"].get("filename_prefix"), list):
                node["inputs"].pop("filename_prefix", None)  # the runner names its files itself
        text = json.dumps({"input": job.input_sha256, "graph": canonical, "workflow": self.name}, sort_keys=True)
        job.key = hashlib.sha256(text.encode()).hexdigest()[:32]

    # -- running

    def run(self) -> Summary:
        if not self.jobs:
            raise InputError("no inputs: give images, a folder or a CSV file")
        self.manifest = open_output_folder(self.output_dir)
        self._cancelled.clear()
        try:
            return self._run_all()
        finally:
            self.manifest.release()

    def _run_all(self) -> Summary:
        started = time.perf_counter()
        results: dict[int, JobResult] = {}
        bar = ProgressBar(len(self.jobs), enabled=self.progress)
        interrupted = False
        running: int | None = None
        try:
            if hasattr(self.engine, "submit"):  # Dask: many jobs in flight, written here as they finish
                interrupted = self._run_distributed(results, bar)
            elif self.concurrency == 1 or not hasattr(self.engine, "interrupt"):
                for index, job in enumerate(self.jobs):
                    bar.status(job.stem, "running")
                    running = index
                    results[index] = self._run_job(job)
                    bar.finished(str(job.input), results[index])
            else:
                interrupted = self._run_pool(results, bar)
        except KeyboardInterrupt:
            interrupted = True
            self._cancel()
        finally:
            bar.close()
        for index, job in enumerate(self.jobs):
            if index not in results:
                results[index] = JobResult(str(job.input), "cancelled", "interrupted",
                                           "interrupted while running" if index == running else "not run")
                interrupted = True
        interrupted = interrupted or any(r.status == "cancelled" for r in results.values())
        return Summary(
            jobs=[results[i] for i in range(len(self.jobs))], output_dir=str(self.output_dir),
            manifest=str(self.manifest.path), engine=self.engine.describe(), interrupted=interrupted,
            seconds=time.perf_counter() - started,
        )

    def _run_pool(self, results: dict[int, JobResult], bar: ProgressBar) -> bool:
        """Several prompts in flight (server mode); True when Ctrl-C stopped it."""
        with ThreadPoolExecutor(max_workers=self.concurrency) as pool:
            futures = {pool.submit(self._run_job, job): index for index, job in enumerate(self.jobs)}
            pending = set(futures)
            try:
                while pending:
                    done, pending = wait(pending, timeout=0.5, return_when=FIRST_COMPLETED)
                    for future in done:
                        index = futures[future]
                        results[index] = future.result()
                        bar.finished(str(self.jobs[index].input), results[index])
            except KeyboardInterrupt:
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
                return True
        return False

    def _run_distributed(self, results: dict[int, JobResult], bar: ProgressBar) -> bool:
        """Jobs on an engine that runs them elsewhere (Dask), a window at a time; each result
        is written here, in this process, through the same write unit as every other run, by
        a few writer threads (the units' fsyncs overlap; a unit in a thread is never cut by
        Ctrl-C). True when Ctrl-C stopped it: the jobs in flight are cancelled on the cluster."""
        engine = self.engine
        waiting = deque(range(len(self.jobs)))
        flying: dict[Any, tuple[int, float, dict[str, Any], str]] = {}  # handle -> index, started, record, prompt id
        writing: dict[Future, int] = {}
        twins: dict[str, list[int]] = {}  # key in flight -> later jobs with the same input and settings
        extra = {"workflow": self.ui} if self.ui else None

        def settle(index: int, result: JobResult) -> None:
            results[index] = result
            bar.finished(str(self.jobs[index].input), result)
            waiting.extendleft(reversed(twins.pop(self.jobs[index].key, [])))  # now skipped, as in a rerun

        written: deque[Future] = deque()  # write units done, put here by their threads

        def settle_written(block: bool) -> None:
            if block:
                written.extend(wait(writing, return_when=FIRST_COMPLETED)[0])  # the callback may come later
            while written:
                future = written.popleft()
                index = writing.pop(future, None)
                if index is not None:  # not settled already
                    settle(index, future.result())

        with ThreadPoolExecutor(max_workers=WRITER_THREADS, thread_name_prefix="portrait-polish-writer") as writers:
            try:
                while waiting or flying or writing:
                    while waiting and len(flying) < engine.window():
                        index = waiting.popleft()
                        job = self.jobs[index]
                        if job.key in twins:  # it follows its twin
                            twins[job.key].append(index)
                            continue
                        started = time.perf_counter()
                        record = {"job": job.key, "input": str(job.input), "workflow": self.name}
                        result = self._resume(job, started)
                        prompt_id = engine.prompt_id(job.key)
                        if result is None:
                            try:
                                graph = self._job_graph(job)
                                worker = (self.manifest.records.get(job.key) or {}).get("worker")
                                # Advisory (no fsync): the prompt id is the key's, nothing is recovered from it.
                                self.manifest.append({**record, "status": "started", "prompt_id": prompt_id}, durable=False)
                                handle = engine.submit(job, graph, self.loader, extra, self.timeout, prompt_id, worker)
                                flying[handle] = (index, started, record, prompt_id)
                                twins[job.key] = []
                                continue
                            except (RunnerError, OSError) as exc:
                                result = self._failure(job, record, prompt_id, started, exc)
                        results[index] = result
                        bar.finished(str(job.input), result)
                    settle_written(block=len(writing) > 4 * WRITER_THREADS)  # bounded: results wait in memory
                    if not flying:
                        if writing:
                            settle_written(block=True)
                        continue
                    handle = engine.next_done()
                    index, started, record, prompt_id = flying.pop(handle)
                    job = self.jobs[index]
                    try:
                        result = engine.outcome(handle)
                    except (RunnerError, OSError) as exc:
                        settle(index, self._failure(job, record, prompt_id, started, exc))
                        continue
                    future = writers.submit(self._write_job, job, result, prompt_id, started, record)
                    writing[future] = index
                    future.add_done_callback(written.append)
            except KeyboardInterrupt:
                where = engine.running_on()  # a rerun prefers these workers: they still have the result
                self._cancel()
                for future, index in writing.items():  # units being written are finished, never cut
                    results[index] = future.result()
                for index, _started, record, prompt_id in flying.values():
                    worker = {"worker": where[record["job"]]} if record["job"] in where else {}
                    self.manifest.append({**record, "status": "cancelled", "prompt_id": prompt_id, **worker})
                    results[index] = JobResult(str(self.jobs[index].input), "cancelled", "interrupted",
                                               "cancelled on the cluster")
                return True
        return False

    def _write_job(self, job: Job, result: Any, prompt_id: str, started: float, record: dict[str, Any]) -> JobResult:
        try:
            outputs, sidecars = self._write_outputs(job, result, prompt_id, started, record)
        except (RunnerError, OSError) as exc:
            return self._failure(job, record, prompt_id, started, exc)
        return JobResult(str(job.input), "done", outputs=outputs, sidecars=sidecars, seconds=time.perf_counter() - started)

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

    # -- one job

    def _taken(self, names: list[str], job: Job) -> list[str]:
        """Those of ``names`` held by a file this job did not write (never replaced unless overwrite)."""
        if self.overwrite:
            return []
        taken = []
        folder = os.fspath(self.output_dir)
        for name in names:
            path = os.path.join(folder, name)
            if os.path.exists(path) and self.manifest.owner(name, Path(path)) != job.key:
                taken.append(name)
        return taken

    def _exists_message(self, taken: list[str]) -> str:
        files = ", ".join(str(self.output_dir / name) for name in taken)
        return (f"{files} {'exists' if len(taken) == 1 else 'exist'} and {'was' if len(taken) == 1 else 'were'} not "
                "written by portrait-polish for these settings; nothing was written for this input (use --overwrite "
                "to replace, or choose another output folder)")

    def _resume(self, job: Job, started: float) -> JobResult | None:
        """What an earlier run already settled for ``job`` (cancelled, skipped, adopted after a
        kill, or its output names taken), or None: it needs running."""
        if self._cancelled.is_set():
            return JobResult(str(job.input), "cancelled", "interrupted", "not started")
        if not self.overwrite:
            done = self.manifest.finished.get(job.key)
            if done and all((self.output_dir / n).is_file() for n in done.get("outputs", []) + done.get("sidecars", [])):
                return JobResult(str(job.input), "skipped", "already_done", "finished in an earlier run",
                                 outputs=done.get("outputs", []), sidecars=done.get("sidecars", []))
            pending = self.manifest.pending.get(job.key)
            if pending and intact(self.output_dir, pending):
                # A killed run put every file in place (each checked by its sha256) but did not
                # record it done: adopt them.
                self.manifest.append({**{k: v for k, v in pending.items() if k != "time"}, "status": "done"})
                return JobResult(str(job.input), "done", "recovered", "outputs a killed run had written, checked by sha256",
                                 outputs=pending.get("outputs", []), sidecars=pending.get("sidecars", []),
                                 seconds=time.perf_counter() - started)
        planned = f"{job.stem}_{self.name}{planned_extension(job.graph or self.graph, job.input)}"
        taken = self._taken([planned, sidecar_name(planned)], job)
        if taken:
            return JobResult(str(job.input), "exists", "output_exists", self._exists_message(taken))
        return None

    def _failure(self, job: Job, record: dict[str, Any], prompt_id: str, started: float,
                 exc: RunnerError | OSError) -> JobResult:
        """A job that did not finish: its manifest record and its result."""
        seconds = time.perf_counter() - started
        if isinstance(exc, Cancelled) or (isinstance(exc, JobFailed) and exc.reason == "interrupted"
                                          and self._cancelled.is_set()):  # our own Ctrl-C reached it first
            self.manifest.append({**record, "status": "cancelled", "prompt_id": prompt_id})
            return JobResult(str(job.input), "cancelled", "interrupted", str(exc), seconds=seconds)
        if isinstance(exc, OutputExists):
            self.manifest.append({**record, "status": "exists", "prompt_id": prompt_id})
            return JobResult(str(job.input), "exists", exc.reason, str(exc), seconds=seconds)
        if isinstance(exc, JobFailed):
            self.manifest.append({**record, "status": "failed", "reason": exc.reason, "error": str(exc), "prompt_id": prompt_id})
            return JobResult(str(job.input), "failed", exc.reason, str(exc), seconds=seconds,
                             details=json.loads(strict_json(exc.details)))
        reason = "server_unreachable" if isinstance(exc, TransientServerError) else "io_error" if isinstance(exc, OSError) else "error"
        self.manifest.append({**record, "status": "failed", "reason": reason, "error": str(exc), "prompt_id": prompt_id})
        return JobResult(str(job.input), "failed", reason, str(exc), seconds=seconds)

    def _run_job(self, job: Job) -> JobResult:
        started = time.perf_counter()
        record = {"job": job.key, "input": str(job.input), "workflow": self.name}
        early = self._resume(job, started)
        if early is not None:
            return early
        previous = self.manifest.records.get(job.key) or {}
        prompt_id = str(uuid.uuid4())
        try:
            result = None
            if previous.get("status") in ("started", "cancelled", "writing") and previous.get("prompt_id") \
                    and hasattr(self.engine, "recover"):
                # A killed or interrupted run's prompt: the server may have finished it, or still run it.
                prompt_id = previous["prompt_id"]
                result = self.engine.recover(prompt_id, timeout=self.timeout)
            if result is None:
                prompt_id = str(uuid.uuid4())
                graph = self._job_graph(job)
                self.manifest.append({**record, "status": "started", "prompt_id": prompt_id})
                result = self._execute(job, graph, prompt_id)
            outputs, sidecars = self._write_outputs(job, result, prompt_id, started, record)
        except KeyboardInterrupt:
            if hasattr(self.engine, "interrupt"):
                self.engine.interrupt(prompt_id)  # Ctrl-C: cancel it on the server too
            self.manifest.append({**record, "status": "cancelled", "prompt_id": prompt_id})
            raise
        except (RunnerError, OSError) as exc:
            return self._failure(job, record, prompt_id, started, exc)
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

    def _output_names(self, job: Job, saved: list[tuple[str, dict[str, str]]]) -> list[str]:
        save_nodes = sorted({node_id for node_id, _ in saved}, key=node_sort)
        per_node = {n: sum(1 for nid, _ in saved if nid == n) for n in save_nodes}
        counters: dict[str, int] = {}
        names = []
        for node_id, ref in saved:
            base = f"{job.stem}_{self.name}"
            if len(save_nodes) > 1:
                title = (self.graph.get(node_id, {}).get("_meta") or {}).get("title") or node_id
                base += f"_{_slug(title)}"
            if per_node[node_id] > 1:
                counters[node_id] = counters.get(node_id, 0) + 1
                base += f"_{counters[node_id]:02d}"
            names.append(base + (Path(ref["filename"]).suffix or ".png"))
        return names

    def _timings(self, result, started: float) -> dict[str, Any]:
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
        return timings

    def _write_outputs(self, job: Job, result, prompt_id: str, started: float,
                       record: dict[str, Any]) -> tuple[list[str], list[str]]:
        saved: list[tuple[str, dict[str, str]]] = []
        for node_id, ui in sorted(result.outputs.items(), key=lambda item: node_sort(item[0])):
            for ref in saved_refs(ui):
                if ref.get("type", "output") == "output":
                    saved.append((node_id, ref))
        if not saved:
            raise JobFailed("the workflow produced no saved images (no SaveImage output)", reason="no_outputs")
        names = self._output_names(job, saved)
        taken = self._taken([n for name in names for n in (name, sidecar_name(name))], job)
        if taken:
            raise OutputExists(self._exists_message(taken))
        reports = identity_reports(job.graph or {}, result, self.graph)
        timings = self._timings(result, started)
        images, sidecars = [], []
        for name, (node_id, ref) in zip(names, saved, strict=True):
            data = result.files[ref_id(ref)] if result.files else self.engine.fetch(ref)
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
                "engine": {**self.engine.describe(), **(result.engine or {})},  # Dask: which worker ran it
                "runner": {"version": pack_version(), "python": sys.version.split()[0]},
            }
            if ref.get("photo"):
                sidecar["photo"] = ref["photo"]  # format, depth, profile and metadata kept or dropped
            images.append(OutputFile(name, data))
            sidecars.append(OutputFile(sidecar_name(name), (strict_json(sidecar, indent=2) + "\n").encode()))
        commit(self.output_dir, self.manifest, {**record, "prompt_id": prompt_id}, images, sidecars)
        return [f.name for f in images], [f.name for f in sidecars]


def run_workflow(workflow: str | Path | dict, inputs: str | Path | list[str | Path], output_dir: str | Path = "out",
                 **options: Any) -> Summary:
    """Run ``workflow`` on ``inputs`` (image, folder, CSV, or a list of them) and return the
    Summary. Options as for :class:`Batch` (server, sets, overwrite, concurrency, timeout...)."""
    items = [inputs] if isinstance(inputs, str | Path) else list(inputs)
    options.setdefault("progress", False)
    with Batch(workflow, output_dir, **options) as batch:
        batch.add(*items)
        return batch.run()
