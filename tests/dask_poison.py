"""A Dask worker preload for tests/test_runner_dask.py: a "poison" image kills the worker
process that runs it, a moment after it began (as an image that crashes a worker or
exhausts its memory would), so the test can check that such an image fails after a bounded
number of tries while the batch goes on. The image is named by its sha256 in
PORTRAIT_POLISH_TEST_POISON. A preload runs again in every restarted worker process, so
the poison stays deadly after a restart.
"""

from __future__ import annotations

import os
import time

from portrait_polish.runner import dask_worker

POISON = set(filter(None, os.environ.get("PORTRAIT_POLISH_TEST_POISON", "").split(",")))
# A process may run this preload more than once: always wrap the real function, never our own.
_run = getattr(dask_worker, "_run_unpoisoned", dask_worker._run)
dask_worker._run_unpoisoned = _run


def _poisoned_run(engine, spec, started):
    if spec.input_sha256 in POISON:
        time.sleep(0.3)  # the job is under way (the worker has told the scheduler it began)
        os._exit(1)  # then the whole worker process dies, as in a segfault
    return _run(engine, spec, started)


# run_task looks _run up in its module at each call, so it finds this one.
dask_worker._run = _poisoned_run
