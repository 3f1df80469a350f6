"""Distributed batches on Dask: the client side of ``portrait-polish run ... --dask ADDRESS``.

``ADDRESS`` is a running scheduler (``tcp://HOST:8786``) or ``local:N`` (a LocalCluster of N
worker processes on this machine). Each job (one image) is one Dask task
(``dask_worker.run_task``), asking for one unit of the worker resource ``portrait_polish``
so each GPU box takes one job at a time. The batch (``Batch._run_distributed``) submits the
jobs a window at a time and writes each result here, in the client, through the same write
unit and manifest as every other run: the workers never touch the output folder.

Task keys and prompt ids are the job's key (the input's sha256, the workflow and its
parameters): a job submitted twice is one task while the scheduler holds it, and one prompt
on a worker's ComfyUI server.

Dask is an optional extra: nothing here imports it before a batch starts, and without it the
error names the extra to install.
"""

from __future__ import annotations

import collections
import logging
import re
import time
import uuid
from typing import Any

from .dask_worker import RESOURCE, STARTED_TOPIC, TaskOutcome, TaskSpec, object_info_task, run_task
from .engine_local import RunResult
from .errors import JobFailed, ParameterError, RunnerError, ServerUnavailable, TransientServerError
from .inputs import Job
from .outputs import sha256_bytes

log = logging.getLogger("portrait_polish")

EXTRA = 'pip install "comfyui-portrait-polish[dask]"'
TASK_RETRIES = 2  # a task that raised (its ComfyUI down, a worker-side bug) is tried this many more times
CONNECT_TIMEOUT = 10.0  # seconds to reach the scheduler before exit 3
WORKER_WAIT = 60.0  # seconds to wait for a worker with the resource before exit 3
IN_FLIGHT_BYTES = 256 * 2**20  # inputs in flight beyond two per slot stop at this many bytes
PER_SLOT = 64  # jobs in flight per slot while their bytes allow (hides the scheduler's round trips)
MAX_WINDOW = 512  # jobs in flight in all, however large the cluster
MIN_CHUNK = 8  # jobs sent to the scheduler in one call: a quarter of the window, at least this many
BYSTANDER_RESUBMITS = 3  # a job that only waited on workers that died is sent again this many times
_LOCAL = re.compile(r"^local:(\d+)$")


def import_distributed(what: str = "--dask") -> Any:
    """``distributed``, or an error (exit 2) that names the extra to install."""
    try:
        import distributed
    except ImportError:
        raise RunnerError(f"{what} needs Dask distributed, which is not installed here: {EXTRA}") from None
    return distributed


TASK_PREFIX = "portrait-polish-"
_RESEND = "-resend"


def task_key(job_key: str, resend: int = 0) -> str:
    """The job's Dask key. A job sent again after it only waited on workers that died gets a
    key of its own (``-resend1``...): the scheduler may still hold the first, erred task under
    the old key for a moment after it is released, and a new task under that key would take
    its error at once. The ComfyUI prompt id stays the job's own."""
    return f"{TASK_PREFIX}{job_key}" + (f"{_RESEND}{resend}" if resend else "")


def job_key_of(key: Any) -> str:
    """The job key a Dask task key (``task_key``) belongs to."""
    return str(key)[len(TASK_PREFIX):].split(_RESEND, 1)[0]


def prompt_id_for(job_key: str) -> str:
    """The job's ComfyUI prompt id: its key (128 bits of hex) as a UUID."""
    hexa = job_key[:32].lower()
    if len(hexa) == 32 and all(c in "0123456789abcdef" for c in hexa):
        return f"{hexa[:8]}-{hexa[8:12]}-{hexa[12:16]}-{hexa[16:20]}-{hexa[20:]}"  # str(UUID), without the object
    return str(uuid.UUID(hex=job_key[:32]))


def check_address(address: str) -> int | None:
    """The N of ``local:N`` (None for a scheduler address); bad forms are a usage error."""
    match = _LOCAL.match(address.strip())
    if match:
        workers = int(match.group(1))
        if workers < 1:
            raise ParameterError("--dask local:N needs N >= 1 workers")
        return workers
    if address.startswith("local"):
        raise ParameterError(f"--dask {address!r}: write local:N, e.g. local:2 for two worker processes on this machine")
    if not re.match(r"^([a-z]+://)?[^\s/:]+:\d+$", address.strip()):
        raise ParameterError(f"--dask {address!r} is not a scheduler address (tcp://HOST:8786) or local:N")
    return None


class DaskEngine:
    """Runs a batch's jobs as Dask tasks. Used by ``Batch`` through ``submit`` / ``next_done``
    / ``outcome`` (many jobs in flight), besides the engines' usual ``object_info``,
    ``describe``, ``cancel`` and ``close``."""

    name = "dask"

    def __init__(self, address: str, *, retries: int = TASK_RETRIES, connect_timeout: float | None = None,
                 worker_wait: float | None = None, window: int | None = None) -> None:
        self.address = address.strip()
        self.local_workers = check_address(self.address)
        self.retries = retries
        self.connect_timeout = CONNECT_TIMEOUT if connect_timeout is None else connect_timeout
        self.worker_wait = WORKER_WAIT if worker_wait is None else worker_wait
        self.fixed_window = window
        self.client: Any = None
        self.cluster: Any = None
        self._object_info: dict[str, Any] | None = None
        self._futures: dict[Any, tuple[float, int]] = {}  # live future -> (wall clock when submitted, input bytes)
        self._by_key: dict[str, Any] = {}  # job key -> its future (the handle Batch holds is the job key)
        self._pending: list[tuple[TaskSpec, str | None]] = []  # jobs not yet sent to the scheduler
        self._bytes = 0
        self._specs: dict[str, TaskSpec] = {}  # job key -> its task, while in flight
        self._resubmits: collections.Counter[str] = collections.Counter()
        self._completed: Any = None  # distributed.as_completed over the live futures, gathering their results
        self._payloads: dict[Any, Any] = {}  # finished future -> its result, or its error
        self._slots = 1
        self._slots_checked = 0.0
        self._workers: set[str] = set()  # the workers with the resource, as last seen
        self._pinned: dict[str, str] = {}  # job key -> the worker it must run on (it has the result)
        self._superseded: set[str] = set()  # task keys sent again elsewhere: their futures are ignored

    # ------------------------------------------------------------------ connecting

    def check(self) -> None:
        """Connect (or start the LocalCluster) and wait for a worker with the resource;
        ServerUnavailable (exit 3) with one clear line when that fails."""
        if self.client is not None:  # one engine may serve several batches
            return
        distributed = import_distributed()
        if not log.isEnabledFor(logging.DEBUG):
            logging.getLogger("distributed").setLevel(logging.ERROR)  # worker-loss chatter: our summary says it
        try:
            if self.local_workers is not None:
                self.cluster = distributed.LocalCluster(
                    n_workers=self.local_workers, threads_per_worker=1, processes=True, resources={RESOURCE: 1},
                    dashboard_address=None, silence_logs=logging.ERROR)
                self.client = distributed.Client(self.cluster)
            else:
                self.client = distributed.Client(self.address, timeout=self.connect_timeout)
        except (OSError, TimeoutError) as exc:
            raise ServerUnavailable(f"cannot reach the Dask scheduler at {self.address}: {_first_line(exc)}") from None
        except RuntimeError as exc:  # LocalCluster: a worker process did not start
            raise ServerUnavailable(f"cannot start the local Dask cluster ({self.address}): {_first_line(exc)}") from None
        # Results are gathered in the background as tasks finish, so the client never waits for one.
        self._completed = distributed.as_completed(with_results=True, raise_errors=False)
        deadline = time.monotonic() + self.worker_wait
        while self._count_slots() == 0:
            if time.monotonic() > deadline:
                raise ServerUnavailable(
                    f"the Dask scheduler at {self.address} has no worker with the {RESOURCE!r} resource after "
                    f"{self.worker_wait:g} s: start `portrait-polish worker --scheduler {self.address}` on each GPU box "
                    f"(or `dask worker {self.address} --nthreads 1 --resources {RESOURCE}=1`)")
            time.sleep(0.2)

    def _count_slots(self) -> int:
        try:
            info = self.client.scheduler_info(n_workers=-1)
        except TypeError:  # older distributed: every worker is listed anyway
            info = self.client.scheduler_info()
        workers = (info or {}).get("workers", {})
        self._workers = {address for address, w in workers.items() if (w.get("resources") or {}).get(RESOURCE)}
        self._slots = int(sum(float((w.get("resources") or {}).get(RESOURCE, 0)) for w in workers.values()))
        self._slots_checked = time.monotonic()
        return self._slots

    def object_info(self) -> dict[str, Any]:
        """Node definitions from a worker (its engine: in-process, or its ComfyUI)."""
        if self._object_info is None:
            future = self.client.submit(object_info_task, resources={RESOURCE: 1}, retries=self.retries, pure=False,
                                        key=f"portrait-polish-object-info-{uuid.uuid4().hex[:8]}")
            try:
                answer = future.result()
            except RunnerError as exc:
                raise ServerUnavailable(f"a Dask worker could not start its engine: {exc}") from None
            except Exception as exc:  # noqa: BLE001 - any worker-side failure is one line here
                raise ServerUnavailable(f"a Dask worker could not start its engine: {type(exc).__name__}: "
                                        f"{_first_line(exc)}") from None
            self._object_info = answer["object_info"]
            log.debug("node definitions from worker %s", answer["worker"])
        return self._object_info

    def describe(self) -> dict[str, Any]:
        return {"engine": self.name, "scheduler": self.address}

    def image_value(self, path: Any, job_key: str) -> str:
        return ""  # the worker puts its own copy of the input here

    def prompt_id(self, job_key: str) -> str:
        return prompt_id_for(job_key)

    def _floor(self) -> int:
        return max(2, 2 * self._slots)  # two per slot: a worker's next job is there when it finishes one

    def window(self) -> int:
        """How many jobs to keep in flight: at least two per slot of the cluster (workers
        joining or leaving are seen within 2 s), more (up to PER_SLOT per slot, MAX_WINDOW in
        all) while their bytes stay bounded. Many small jobs in flight, sent in few calls,
        keep the scheduler's per-call and per-round-trip costs off each job: a no-op job costs
        Dask about 1.5 ms so, 3 ms at 8 per slot (bench/cases_dask.py)."""
        if self.fixed_window:
            return self.fixed_window
        if time.monotonic() - self._slots_checked > 2.0:
            self._count_slots()
        if self._bytes > IN_FLIGHT_BYTES:
            return self._floor()
        return max(self._floor(), min(MAX_WINDOW, PER_SLOT * self._slots))

    def _chunk(self) -> int:
        """Jobs to gather before one call to the scheduler."""
        return max(MIN_CHUNK, self.window() // 4)

    # ------------------------------------------------------------------ jobs

    def submit(self, job: Job, graph: dict[str, Any], loader: str, extra_pnginfo: dict[str, Any] | None,
               timeout: float | None, prompt_id: str, worker: str | None = None) -> Any:
        """Queue one job; ``worker`` (where an interrupted run left it) is where it runs while
        that worker is in the cluster: its result cache or its ComfyUI's history has the job,
        so it is not run again. Gone, it runs anywhere."""
        data = job.input.read_bytes()
        if sha256_bytes(data) != job.input_sha256:
            raise JobFailed(f"{job.input} changed after the batch started (its sha256 differs); run again",
                            reason="input_changed")
        spec = TaskSpec(key=job.key, prompt_id=prompt_id, graph=graph, loader=loader, input_name=job.input.name,
                        input_sha256=job.input_sha256, data=data, extra_pnginfo=extra_pnginfo, timeout=timeout)
        self._pending.append((spec, worker))
        self._bytes += len(data)
        if len(self._pending) >= self._chunk():
            self._flush()
        return job.key

    def _flush(self) -> None:
        """Send the pending jobs to the scheduler: one call for those with no preferred worker."""
        pending, self._pending = self._pending, []
        # A job whose worker has its result (an interrupted run's) runs there and only there:
        # a preference alone lets Dask's work stealing move it to an idle worker, which would
        # run it a second time. A worker no longer in the cluster is no preference at all.
        pinned = [(spec, worker) for spec, worker in pending if worker in self._workers]
        plain = [spec for spec, worker in pending if worker not in self._workers]
        futures = []
        if plain:
            futures += self.client.map(run_task, plain, key=[task_key(spec.key, self._resubmits[spec.key]) for spec in plain],
                                       resources={RESOURCE: 1}, retries=self.retries, pure=False)
        for spec, worker in pinned:
            futures.append(self.client.submit(run_task, spec, key=task_key(spec.key, self._resubmits[spec.key]), resources={RESOURCE: 1},
                                              retries=self.retries, pure=False, workers=[worker],
                                              allow_other_workers=False))
            self._pinned[spec.key] = worker
        now = time.time()
        specs = plain + [spec for spec, _worker in pinned]
        for spec, future in zip(specs, futures, strict=True):
            self._futures[future] = (now, len(spec.data))
            self._by_key[spec.key] = future
            self._specs[spec.key] = spec
        self._completed.update(futures)

    def next_done(self) -> str:
        """Block until one submitted job is finished (or failed); return its handle (the job key)."""
        if self._pending and (len(self._futures) < self._floor() + self._chunk() or not self._futures):
            self._flush()  # the workers would run short: do not wait for a whole chunk
        while True:
            if self._pinned:
                self._wait_for_pinned_workers()
            future, payload = next(self._completed)
            if future.key in self._superseded:  # sent again elsewhere: its worker left
                self._superseded.discard(future.key)
                continue
            key = job_key_of(future.key)
            self._pinned.pop(key, None)
            if self._bystander(future, payload, key):
                # It only waited for a slot on workers that died (Dask sends a worker more jobs
                # than it runs at once): it never ran, so it is no suspect. Send it again.
                self._send_again(future, key)
                continue
            self._payloads[future] = payload
            return key

    def _wait_for_pinned_workers(self) -> None:
        """Wait for a result while jobs are pinned to workers; a pinned job whose worker left
        the cluster (Dask would hold it for that worker for ever) is sent again to any worker."""
        while self._pinned and not self._completed.has_ready():
            if time.monotonic() - self._slots_checked > 2.0:
                self._count_slots()
                for key in [key for key, worker in self._pinned.items() if worker not in self._workers]:
                    del self._pinned[key]
                    future = self._by_key.get(key)
                    if future is not None:
                        self._superseded.add(future.key)
                        self._send_again(future, key)
            time.sleep(0.02)

    def _send_again(self, future: Any, key: str) -> None:
        """Drop the job's task and send the job at once under a new task key, to any worker."""
        self._resubmits[key] += 1
        self._forget(future)
        spec = self._specs.pop(key)
        self._pending.append((spec, None))
        self._bytes += len(spec.data)
        self._flush()

    def _bystander(self, future: Any, payload: Any, key: str) -> bool:
        error = payload[1] if isinstance(payload, tuple) and len(payload) > 1 else payload
        if future.status != "error" or type(error).__name__ != "KilledWorker":
            return False
        if self._resubmits[key] >= BYSTANDER_RESUBMITS:
            return False
        try:
            began = {message for _time, message in self.client.get_events(STARTED_TOPIC)}
        except Exception as exc:  # noqa: BLE001 - no events: treat it as a suspect (bounded tries)
            log.debug("reading the workers' start events failed: %s", exc)
            return False
        return key not in began

    def _forget(self, future: Any) -> None:
        _submitted, size = self._futures.pop(future, (0.0, 0))
        self._bytes -= size
        self._by_key.pop(job_key_of(future.key), None)
        future.release()

    def outcome(self, job_key: str) -> RunResult:
        """The finished job's result; its failure as JobFailed (TransientServerError when its
        ComfyUI stayed down through every retry)."""
        future = self._by_key.pop(job_key)
        self._specs.pop(job_key, None)
        self._pinned.pop(job_key, None)
        submitted, size = self._futures.pop(future, (time.time(), 0))
        self._bytes -= size
        payload = self._payloads.pop(future, None)
        try:
            if isinstance(payload, BaseException) or future.status == "cancelled":
                raise JobFailed("the task was cancelled on the cluster (scheduler restarted or connection lost); "
                                "run again to finish it", reason="scheduler_lost")
            if future.status == "error":  # as_completed gives (type, exception, traceback)
                error = payload[1] if isinstance(payload, tuple) and len(payload) > 1 else payload
                raise _task_error(error if isinstance(error, BaseException) else RuntimeError(str(error)))
            outcome: TaskOutcome = payload
            result = outcome.run_result()
            if outcome.started:
                result.timings["queue_seconds"] = max(0.0, outcome.started - submitted) + \
                    float(result.timings.get("queue_seconds", 0.0))
            if outcome.reused:
                result.engine = {**(result.engine or {}), "reused": outcome.reused}
            return result
        finally:
            future.release()

    def running_on(self) -> dict[str, str]:
        """Job key -> the worker running it now (recorded on Ctrl-C, preferred on the rerun)."""
        try:
            processing = self.client.processing()
            # Jobs finished there whose result had not reached us yet: the worker's cache has them.
            holders = self.client.who_has(list(self._futures)) if self._futures else {}
        except Exception as exc:  # noqa: BLE001 - the scheduler may be gone: no preference then
            log.debug("asking the scheduler what runs where failed: %s", exc)
            return {}
        where = {job_key_of(key): worker for worker, keys in processing.items() for key in keys
                 if str(key).startswith(TASK_PREFIX)}
        where.update({job_key_of(key): workers[0] for key, workers in holders.items() if workers})
        return where

    def cancel(self) -> None:
        """Ctrl-C: cancel every job still queued or running on the cluster."""
        if self.client is not None and self._futures:
            try:
                self.client.cancel(list(self._futures), reason="portrait-polish run interrupted")
            except TypeError:  # older distributed: no reason argument
                self.client.cancel(list(self._futures))
            except Exception as exc:  # noqa: BLE001 - the scheduler may be gone already
                log.debug("cancelling on the cluster failed: %s", exc)
        self._futures.clear()
        self._by_key.clear()
        self._specs.clear()
        self._pending.clear()
        self._pinned.clear()
        self._superseded.clear()
        self._bytes = 0

    def close(self) -> None:
        for thing in (self.client, self.cluster):
            if thing is not None:
                try:
                    thing.close()
                except Exception as exc:  # noqa: BLE001 - closing a lost connection
                    log.debug("closing %s failed: %s", type(thing).__name__, exc)
        self.client = self.cluster = None


def _task_error(exc: BaseException) -> RunnerError:
    kind = type(exc).__name__
    if kind == "KilledWorker":
        return JobFailed("every worker that took this image died while running it (the scheduler's allowed-failures "
                         "is spent): it may crash or exhaust a worker (out of memory?)", reason="worker_died")
    if kind in ("TransientServerError", "ServerUnavailable"):
        return TransientServerError(f"a worker's ComfyUI could not be reached: {_first_line(exc)}")
    return JobFailed(f"the task failed on the worker: {kind}: {_first_line(exc)}", reason="worker_error")


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0][:300]
