"""Distributed batches on Dask (``portrait-polish run --dask local:N``), on this machine.

- natural_headshot on a LocalCluster of 1 and 2 worker processes: images per minute (a batch
  of 4 new 1 MP images per timed call; the sub-row gives images/min).
- A 10,000-task batch on 2 workers whose engine is a no-op (bench/dask_noop.py: it returns a
  fixed 1x1 PNG): the runner's own cost per task (Dask's scheduling and transfer, the
  client's manifest records and write units, the writer threads' fsyncs), with the output
  folder on disk and on tmpfs (/dev/shm) to tell the fsyncs apart. The warm-up call runs 200
  tasks; the timed call 10,000. Beside it, bare Dask on the same cluster with the same
  window (a builtin, no runner code): this machine's speed at that moment. A third row runs
  the scheduler in its own process, as a studio's ``--dask tcp://HOST:8786`` does.
"""

from __future__ import annotations

import itertools
import logging
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
from bench_inputs import portrait_image
from PIL import Image

from bench import BENCH_DIR, REPO_ROOT, BenchCase

DEFAULT_WORKFLOW = REPO_ROOT / "workflows" / "api" / "natural_headshot.json"
CORE_GRAPH = {
    "1": {"class_type": "LoadImage", "inputs": {"image": "x.png"}, "_meta": {"title": "Input"}},
    "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": "b"}, "_meta": {"title": "Save"}},
}
IMAGES_PER_CALL = 4
TASKS = 10_000


def _cluster(workers: int, preload: list[str] | None = None):
    import distributed

    from portrait_polish.runner.dask_worker import RESOURCE

    return distributed.LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, resources={RESOURCE: 1},
                                    dashboard_address=None, preload=preload or [], silence_logs=logging.ERROR)


def _separate_cluster(workers: int, preload: list[str]):
    """A scheduler in its own process and worker processes under nannies, on loopback: the
    topology of ``--dask tcp://HOST:8786`` (LocalCluster keeps its scheduler inside the
    client's process, where it shares the client's interpreter lock)."""
    from distributed.deploy.subprocess import SubprocessCluster

    from portrait_polish.runner.dask_worker import RESOURCE

    return SubprocessCluster(n_workers=workers, threads_per_worker=1, dashboard_address=None,
                             worker_class="distributed.Nanny",
                             worker_kwargs={"resources": {RESOURCE: 1}, "preload": preload},
                             silence_logs=logging.ERROR)


def _headshot_case(workers: int):
    def setup(width: int, height: int):
        from portrait_polish.runner.batch import Batch
        from portrait_polish.runner.dask_engine import DaskEngine

        folder = Path(tempfile.mkdtemp(prefix="pp-bench-dask-"))
        pixels = (portrait_image(width, height)[0].numpy() * 255).round().astype(np.uint8)
        cluster = _cluster(workers)
        engine = DaskEngine(cluster.scheduler_address)
        calls = itertools.count()

        def run() -> dict:
            call = next(calls)
            inputs = folder / f"in{call}"
            inputs.mkdir()
            for index in range(IMAGES_PER_CALL):  # new images each call: no worker cache hits
                pixels[0, 0] = [call % 256, index, 7]
                Image.fromarray(pixels).save(inputs / f"p{index}.png", compress_level=1)
            batch = Batch(DEFAULT_WORKFLOW, folder / f"out{call}", engine=engine, progress=False, name="bench")
            batch.add(inputs)
            summary = batch.run()
            if summary.count("done") != IMAGES_PER_CALL:
                raise RuntimeError(summary.text())
            per_image = summary.seconds / IMAGES_PER_CALL
            return {"rows": [(f"{60 / per_image:.1f} images/min ({workers} worker{'s' if workers > 1 else ''})",
                              per_image, 0.0)]}

        return run

    return setup


def _dask_alone(engine, count: int) -> float:
    """Seconds per task of bare Dask on the engine's cluster: ``count`` tasks of a builtin
    (bytes(100): no runner code on either side), sent and gathered as the runner does (its
    window in flight, a quarter-window per call, results as they complete). The machine's
    own speed at that moment, to read the runner's row against."""
    import distributed

    from portrait_polish.runner.dask_worker import RESOURCE

    client = engine.client
    window, chunk = engine.window(), engine._chunk()
    completed = distributed.as_completed(with_results=True)
    started = time.perf_counter()
    sent = finished = 0
    live = {}
    while finished < count:
        # Like DaskEngine: a call once a chunk's worth of room is free (or the rest is less).
        while sent < count and window - len(live) >= min(chunk, count - sent):
            size = min(chunk, count - sent)
            futures = client.map(bytes, [100] * size, key=[f"bench-alone-{sent + i}-{started}" for i in range(size)],
                                 resources={RESOURCE: 1}, pure=False)
            live.update((future.key, future) for future in futures)
            completed.update(futures)
            sent += size
        future, _result = next(completed)
        live.pop(future.key).release()
        finished += 1
    return (time.perf_counter() - started) / count


def _overhead_case(where: str, separate: bool = False):
    def setup(width: int, height: int):
        from portrait_polish.runner.batch import Batch
        from portrait_polish.runner.dask_engine import DaskEngine

        folder = Path(tempfile.mkdtemp(prefix="pp-bench-dask-"))
        out_root = Path(tempfile.mkdtemp(prefix="pp-bench-dask-out-", dir="/dev/shm" if where == "tmpfs" else None))
        inputs = folder / "in"
        inputs.mkdir()
        rng = np.random.default_rng(0)
        for index in range(TASKS):
            Image.fromarray(rng.integers(0, 256, (4, 4, 3), dtype=np.uint8)).save(inputs / f"t{index:05d}.png")
        warmup = folder / "warmup"
        warmup.mkdir()
        for path in sorted(inputs.iterdir())[:200]:
            shutil.copy(path, warmup / path.name)
        preload = [str(BENCH_DIR / "dask_noop.py")]
        cluster = _separate_cluster(2, preload) if separate else _cluster(2, preload=preload)
        engine = DaskEngine(cluster.scheduler_address)
        calls = itertools.count()

        def run() -> dict:
            call = next(calls)
            source = warmup if call == 0 else inputs
            batch = Batch(CORE_GRAPH, out_root / f"out{call}", engine=engine, progress=False, name="noop")
            batch.add(source)
            summary = batch.run()
            count = len(batch.jobs)
            if summary.count("done") != count:
                raise RuntimeError(summary.text()[:2000])
            shutil.rmtree(out_root / f"out{call}", ignore_errors=True)
            per_task = summary.seconds / count
            alone = _dask_alone(engine, count)
            topology = "scheduler in its own process" if separate else "LocalCluster"
            return {"rows": [(f"per task: {per_task * 1000:.2f} ms ({count} tasks, 2 workers, {topology}, output on {where})",
                              per_task, 0.0),
                             (f"Dask alone, same cluster and window: {alone * 1000:.2f} ms", alone, 0.0)]}

        return run

    return setup


CASES = [
    BenchCase("dask natural_headshot local:1", "workflow", "1MP", _headshot_case(1),
              note=f"{IMAGES_PER_CALL} images per call; sub-row: images/min"),
    BenchCase("dask natural_headshot local:2", "workflow", "1MP", _headshot_case(2),
              note=f"{IMAGES_PER_CALL} images per call; sub-row: images/min"),
    BenchCase("dask overhead 10k no-op tasks disk", "workflow", "native", _overhead_case("disk"),
              note="runner + Dask cost per task, fsyncs included"),
    BenchCase("dask overhead 10k no-op tasks tmpfs", "workflow", "native", _overhead_case("tmpfs"),
              note="the same with the output folder in /dev/shm"),
    BenchCase("dask overhead 10k no-op tasks scheduler apart", "workflow", "native", _overhead_case("disk", separate=True),
              note="on disk, the scheduler in its own process (as with --dask tcp://)"),
]
