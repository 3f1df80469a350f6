"""The Dask worker side of distributed batches: one task is one image.

A task (:class:`TaskSpec`) carries the job's API graph, the input's bytes and sha256, and
the job's prompt id; :func:`run_task` runs it on this worker process's engine and returns
the saved files' bytes (:class:`TaskOutcome`). Workers never write the batch's outputs or
its manifest: the client does, through the same write unit as every other run
(``runner/outputs.py``), so a worker killed at any moment loses nothing.

The engine is one per worker process: the in-process engine, or the ComfyUI server beside
the worker when ``PORTRAIT_POLISH_COMFY`` names it (``portrait-polish worker --comfy URL``
sets it; a plain ``dask worker`` can too). Each GPU box takes one job at a time: tasks ask
for one unit of the worker resource ``portrait_polish``, and a worker offers as many units
as it has slots (one by default).

Idempotent: a task's Dask key and its ComfyUI prompt id both come from the job key (the
input's sha256 and the workflow + parameters hash). A task resubmitted after the client
was killed finds its result in this worker's result cache, or in the ComfyUI server's
queue or history under the same prompt id, instead of running again.

Failures the runner reports per image (unreadable input, a node's error, a timeout) come
back as data in the outcome and are not retried: they would fail the same way again.
Anything raised (the ComfyUI beside the worker down, a bug) is retried by Dask on any
worker, a bounded number of times; a worker that dies mid-task (killed, out of memory) has
its task rescheduled by the scheduler, until its ``allowed-failures`` is spent.
"""

from __future__ import annotations

import collections
import os
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .engine_local import RunResult, ref_id
from .errors import JobFailed
from .outputs import sha256_bytes
from .photo import saved_refs

RESOURCE = "portrait_polish"  # the worker resource a task needs one unit of
COMFY_ENV = "PORTRAIT_POLISH_COMFY"  # a worker's ComfyUI URL; unset: the in-process engine
CACHE_ENV = "PORTRAIT_POLISH_DASK_CACHE_MB"  # the result cache's budget per worker (default 512)
STARTED_TOPIC = "portrait-polish-started"  # scheduler event per job a worker begins to run (see _log_start)


@dataclass
class TaskSpec:
    key: str  # the job key: sha256 of the input's sha256, the workflow and its parameters
    prompt_id: str  # derived from the key: the same job always has the same ComfyUI prompt id
    graph: dict[str, Any]  # the job's API graph; the loader's image is filled in on the worker
    loader: str
    input_name: str
    input_sha256: str
    data: bytes
    extra_pnginfo: dict[str, Any] | None = None
    timeout: float | None = None


@dataclass
class TaskOutcome:
    outputs: dict[str, dict[str, Any]] = field(default_factory=dict)  # per output node, its UI dict
    files: dict[str, bytes] = field(default_factory=dict)  # ref_id -> the saved file's bytes
    timings: dict[str, float] = field(default_factory=dict)
    worker: dict[str, Any] = field(default_factory=dict)  # which worker and engine ran it
    started: float = 0.0  # wall clock when the worker began it
    reused: str | None = None  # "cache" / "server": a resubmitted task's earlier result, not run again
    failure: dict[str, Any] | None = None  # a JobFailed as data (message, reason, details)

    def run_result(self) -> RunResult:
        """The outcome as the engines' RunResult; raises the job's failure as JobFailed."""
        if self.failure is not None:
            raise JobFailed(self.failure["message"], reason=self.failure["reason"], details=self.failure.get("details"))
        return RunResult(outputs=self.outputs, timings=dict(self.timings), files=self.files, engine=self.worker)

    @property
    def size(self) -> int:
        return sum(len(data) for data in self.files.values())


# ------------------------------------------------------------------ this process's engine

_engine: Any = None
_engine_lock = threading.Lock()
_run_lock = threading.Lock()  # one job at a time per engine, whatever the worker's thread count
_cache: collections.OrderedDict[str, TaskOutcome] = collections.OrderedDict()
_cache_lock = threading.Lock()
_cache_bytes = 0
executions = collections.Counter()  # job key -> times this process ran it (not reused): for tests and stats


def set_engine(engine: Any) -> None:
    """Use ``engine`` for this worker process's tasks (an engine object with the in-process
    engine's interface: object_info, image_value, run, fetch, describe, close)."""
    global _engine
    with _engine_lock:
        _engine = engine


def worker_engine() -> Any:
    """This process's engine, made on first use: the ComfyUI server named by
    ``PORTRAIT_POLISH_COMFY`` (checked to be ComfyUI), else the in-process engine."""
    global _engine
    with _engine_lock:
        if _engine is None:
            url = os.environ.get(COMFY_ENV)
            if url:
                from .engine_server import ServerEngine

                engine = ServerEngine(url)
                engine.check()  # ServerUnavailable is raised: Dask retries the task, maybe elsewhere
            else:
                from .engine_local import InProcessEngine

                engine = InProcessEngine()
            _engine = engine
        return _engine


def _worker_name() -> str:
    try:
        from distributed import get_worker

        worker = get_worker()
        return str(worker.name if worker.name is not None else worker.address)
    except (ImportError, ValueError):
        return f"pid {os.getpid()}"


def describe_worker() -> dict[str, Any]:
    """What the client records about the worker: its name and its engine."""
    return {"engine": "dask", "worker": _worker_name(), "worker_engine": worker_engine().describe()}


def object_info_task() -> dict[str, Any]:
    """A worker's node definitions (the client validates the workflow against them)."""
    return {"object_info": worker_engine().object_info(), "worker": describe_worker()}


# ------------------------------------------------------------------ the result cache


def _cache_budget() -> int:
    try:
        return int(float(os.environ.get(CACHE_ENV, "512")) * 2**20)
    except ValueError:
        return 512 * 2**20


def _cached(key: str) -> TaskOutcome | None:
    with _cache_lock:
        outcome = _cache.get(key)
        if outcome is not None:
            _cache.move_to_end(key)
        return outcome


def _remember(key: str, outcome: TaskOutcome) -> None:
    """Keep a finished result, newest last, within the byte budget (a result bigger than the
    whole budget is not kept)."""
    global _cache_bytes
    budget = _cache_budget()
    if outcome.size > budget:
        return
    with _cache_lock:
        previous = _cache.pop(key, None)
        _cache_bytes -= previous.size if previous is not None else 0
        _cache[key] = outcome
        _cache_bytes += outcome.size
        while _cache_bytes > budget and _cache:
            _old_key, old = _cache.popitem(last=False)
            _cache_bytes -= old.size


# ------------------------------------------------------------------ one task


def run_task(spec: TaskSpec) -> TaskOutcome:
    """Run one image on this worker (the Dask task function)."""
    started = time.time()
    cached = _cached(spec.key)
    if cached is not None:
        return TaskOutcome(outputs=cached.outputs, files=cached.files, timings=cached.timings, worker=cached.worker,
                           started=started, reused="cache")
    if sha256_bytes(spec.data) != spec.input_sha256:
        # Cannot happen unless the bytes were damaged on the way: fail loudly, never retouch them.
        raise RuntimeError(f"{spec.input_name}: the input's bytes arrived damaged (sha256 differs); retrying")
    engine = worker_engine()
    with _run_lock:
        _log_start(spec.key)
        outcome = _run(engine, spec, started)
    if outcome.failure is None:
        _remember(spec.key, outcome)
    return outcome


def _log_start(key: str) -> None:
    """Tell the scheduler this job began here: when a worker dies, the client tells the job
    that was running (a suspect: the scheduler's allowed-failures bounds its tries) from the
    jobs that only waited there for the worker's slot (rescheduled, never failed for it)."""
    try:
        from distributed import get_worker

        get_worker().log_event(STARTED_TOPIC, key)
    except (ImportError, ValueError):  # not on a Dask worker (called directly)
        pass


def _input_folder(engine: Any) -> Path:
    dirs = getattr(engine, "dirs", None)  # the in-process engine's own input folder
    folder = Path(dirs.input) if dirs is not None else Path(tempfile.gettempdir()) / f"portrait-polish-dask-{os.getpid()}"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _run(engine: Any, spec: TaskSpec, started: float) -> TaskOutcome:
    worker = describe_worker()
    path = _input_folder(engine) / f"{spec.key[:16]}_{Path(spec.input_name).name}"
    try:
        path.write_bytes(spec.data)
        graph = {node_id: {**node, "inputs": dict(node["inputs"])} for node_id, node in spec.graph.items()}
        clock = time.perf_counter()
        try:
            result, reused = _execute(engine, spec, graph, path)
            try:
                files = _fetch(engine, result)
            except JobFailed:
                if reused is None:
                    raise
                # The server's history has the prompt but no longer its files: run it again, same id.
                result, reused = _execute(engine, spec, graph, path, recover=False)
                files = _fetch(engine, result)
        except JobFailed as exc:
            return TaskOutcome(worker=worker, started=started,
                               failure={"message": str(exc), "reason": exc.reason, "details": exc.details})
        timings = dict(result.timings or {})
        timings["worker_seconds"] = time.perf_counter() - clock
        if reused is None:
            executions[spec.key] += 1
        return TaskOutcome(outputs=result.outputs, files=files, timings=timings, worker=worker, started=started,
                           reused=reused)
    finally:
        path.unlink(missing_ok=True)


def _fetch(engine: Any, result: RunResult) -> dict[str, bytes]:
    """The bytes of every file the job saved (what the client writes into the output folder)."""
    files = {}
    for ui in result.outputs.values():
        for ref in saved_refs(ui):
            if ref.get("type", "output") == "output":
                files[ref_id(ref)] = engine.fetch(ref)
    return files


def _execute(engine: Any, spec: TaskSpec, graph: dict[str, Any], path: Path,
             recover: bool = True) -> tuple[RunResult, str | None]:
    if getattr(engine, "name", "") != "server":
        graph[spec.loader]["inputs"]["image"] = engine.image_value(path, spec.key)
        return engine.run(graph, spec.extra_pnginfo, timeout=spec.timeout), None
    # On a ComfyUI server, the prompt id is the job's own: a prompt a killed or cancelled run
    # left there is waited for or taken from /history, never queued a second time.
    if recover:
        recovered = engine.recover(spec.prompt_id, timeout=spec.timeout)
        if recovered is not None:
            return recovered, "server"

    def upload() -> dict[str, Any]:
        graph[spec.loader]["inputs"]["image"] = engine.image_value(path, spec.key)
        return graph

    return engine.run(upload(), spec.extra_pnginfo, timeout=spec.timeout, prompt_id=spec.prompt_id, reupload=upload), None
