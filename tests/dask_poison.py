"""A Dask worker preload for tests/test_runner_dask.py: a "poison" image kills the worker
process that runs it (as an image that crashes a worker or exhausts its memory would), so
the test can check that such an image fails after a bounded number of tries while the
batch goes on. The image is named by its sha256 in PORTRAIT_POLISH_TEST_POISON. A preload
runs again in every restarted worker process, so the poison stays deadly after a restart.
"""

from __future__ import annotations

import os

from portrait_polish.runner import dask_worker

POISON = set(filter(None, os.environ.get("PORTRAIT_POLISH_TEST_POISON", "").split(",")))
# A process may run this preload more than once: always wrap the real function, never our own.
_run_task = getattr(dask_worker, "_run_task_unpoisoned", dask_worker.run_task)
dask_worker._run_task_unpoisoned = _run_task


def run_task(spec):
    if spec.input_sha256 in POISON:
        os._exit(1)  # the whole worker process dies mid-task, as in a segfault
    return _run_task(spec)


# Tasks name the function by module and name, so workers look it up here, after this patch.
dask_worker.run_task = run_task
