"""Distributed batches on Dask (runner/dask_engine.py, runner/dask_worker.py), on loopback only.

- A LocalCluster of 2 worker processes: a 200-image batch with nothing lost and nothing done
  twice, a resubmitted batch served from the workers' result cache (not run again), results
  equal to the in-process runner (PSNR >= 50 dB), and a poison image (it kills every worker
  that runs it: tests/dask_poison.py) that fails after a bounded number of tries while the
  batch goes on.
- A `dask scheduler` subprocess with three worker processes: two `portrait-polish worker
  --comfy`, each beside its own test ComfyUI server (tests/fake_comfy.py), and one plain
  `dask worker` with the in-process engine. Ctrl-C mid-batch cancels on the cluster and
  leaves the manifest consistent, and the rerun finishes with every job executed once in
  all; a worker killed mid-task has its job rescheduled and written exactly once.
- An unreachable scheduler is exit 3 with one clear line; without Dask the error names the
  extra; nothing imports Dask unless --dask or worker is used.
"""

from __future__ import annotations

import collections
import hashlib
import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from helpers import REPO_ROOT, astronaut
from PIL import Image

distributed = pytest.importorskip("distributed")
import dask  # noqa: E402
from test_runner_faults import Ledger  # noqa: E402

from portrait_polish.runner import cli, dask_engine, dask_worker  # noqa: E402
from portrait_polish.runner.batch import MANIFEST_NAME, Batch, run_workflow  # noqa: E402
from portrait_polish.runner.dask_engine import DaskEngine, prompt_id_for  # noqa: E402
from portrait_polish.runner.dask_worker import RESOURCE  # noqa: E402
from portrait_polish.runner.outputs import Manifest  # noqa: E402

GRAPH = {
    "1": {"class_type": "LoadImage", "inputs": {"image": "x.png"}, "_meta": {"title": "Input"}},
    "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": "ComfyUI"}, "_meta": {"title": "Save"}},
}
POISON_ENV = "PORTRAIT_POLISH_TEST_POISON"
PRELOAD = Path(__file__).with_name("dask_poison.py")
DASK = Path(sys.executable).with_name("dask")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _images(folder: Path, count: int, size: int = 16, seed: int = 3) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for index in range(count):
        Image.fromarray(rng.integers(0, 256, (size, size + index % 7, 3), dtype=np.uint8)).save(folder / f"img{index:03d}.png")
    return folder


def _records(out: Path) -> list[dict]:
    path = out / MANIFEST_NAME
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.exists() else []


def _run(engine, inputs: Path, out: Path, graph=GRAPH, name: str = "core"):
    batch = Batch(graph, out, engine=engine, progress=False, name=name)
    batch.add(inputs)
    return batch.run()


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return float("inf") if mse == 0 else 10 * np.log10(255.0**2 / mse)


# ------------------------------------------------------------------ a LocalCluster, 2 workers


@pytest.fixture(scope="module")
def local_cluster(tmp_path_factory):
    root = tmp_path_factory.mktemp("dask-local")
    poison = root / "poison.png"
    Image.fromarray(np.full((16, 16, 3), 13, np.uint8)).save(poison)
    saved = os.environ.get(POISON_ENV)
    # The worker processes (and any the nannies restart) inherit it.
    os.environ[POISON_ENV] = hashlib.sha256(poison.read_bytes()).hexdigest()
    try:
        with dask.config.set({"distributed.scheduler.allowed-failures": 1}):  # a poison image gets 2 tries
            cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, resources={RESOURCE: 1},
                                               dashboard_address=None, preload=[str(PRELOAD)], silence_logs=logging.ERROR)
        yield SimpleNamespace(cluster=cluster, address=cluster.scheduler_address, poison=poison)
        cluster.close(timeout=10)
    finally:
        if saved is None:
            os.environ.pop(POISON_ENV, None)
        else:
            os.environ[POISON_ENV] = saved


@pytest.fixture
def local_engine(local_cluster):
    engine = DaskEngine(local_cluster.address, worker_wait=120)
    yield engine
    engine.close()


def test_local_cluster_200_images_none_lost_none_twice(local_engine, tmp_path):
    inputs = _images(tmp_path / "in", 200)
    out = tmp_path / "out"
    started = time.monotonic()
    summary = _run(local_engine, inputs, out)
    seconds = time.monotonic() - started
    assert summary.exit_code == 0 and summary.count("done") == 200, summary.text()
    done = Ledger(out, 200).check(final=True)  # one done record each, files match, nothing stray or lost
    assert seconds < 45, f"200 small images took {seconds:.1f} s"
    workers = collections.Counter()
    for job in summary.jobs:
        sidecar = json.loads((out / job.sidecars[0]).read_text())
        workers[sidecar["engine"]["worker"]] += 1
        assert sidecar["engine"]["engine"] == "dask" and sidecar["engine"]["worker_engine"] == {"engine": "in-process"}
        assert sidecar["prompt_id"] == prompt_id_for(sidecar["job"])  # the job's key, not a random id
        assert np.array_equal(np.asarray(Image.open(out / job.outputs[0])), np.asarray(Image.open(job.input)))
    assert len(workers) == 2, workers  # both workers took jobs
    assert {record["prompt_id"] for record in done.values()} == {prompt_id_for(job) for job in done}
    print(f"200 images on 2 workers: {seconds:.1f} s, per worker {dict(workers)}")

    manifest = (out / MANIFEST_NAME).read_bytes()
    summary = _run(local_engine, inputs, out)  # resume: everything is finished already
    assert summary.exit_code == 0 and summary.count("skipped") == 200
    assert (out / MANIFEST_NAME).read_bytes() == manifest  # nothing ran, nothing was written


def test_a_resubmitted_job_is_not_run_again(local_engine, tmp_path):
    """The same jobs submitted again (a new output folder, as after a client killed before it
    wrote them) come from the workers' result cache: same key, same result, not executed."""
    inputs = _images(tmp_path / "in", 4, seed=21)
    local_engine.check()

    def executions() -> collections.Counter:
        counts: collections.Counter = collections.Counter()
        for per_worker in local_engine.client.run(lambda: dict(dask_worker.executions)).values():
            counts.update(per_worker)
        return counts

    before = executions()
    first = _run(local_engine, inputs, tmp_path / "first")
    second = _run(local_engine, inputs, tmp_path / "second")
    assert first.count("done") == second.count("done") == 4
    runs = executions() - before
    assert len(runs) == 4 and set(runs.values()) == {1}, runs  # each job executed once for both batches
    for a, b in zip(first.jobs, second.jobs, strict=True):
        assert (tmp_path / "first" / a.outputs[0]).read_bytes() == (tmp_path / "second" / b.outputs[0]).read_bytes()
        sidecar = json.loads((tmp_path / "second" / b.sidecars[0]).read_text())
        assert sidecar["engine"]["reused"] == "cache"


def test_a_job_whose_worker_has_its_result_runs_there_and_one_whose_worker_left_runs_elsewhere(
        local_engine, tmp_path, monkeypatch):
    """A rerun's jobs that an interrupted run left on a worker (their "cancelled" record names
    it) are pinned to it: work stealing cannot move them to an idle worker, which would run
    them again. A job pinned to a worker that has left the cluster is sent again anywhere
    within a few seconds instead of waiting for that worker for ever."""
    inputs = _images(tmp_path / "in", 4, seed=33)
    out = tmp_path / "out"
    assert _run(local_engine, inputs, out).count("done") == 4
    local_engine.check()
    workers = local_engine.client.scheduler_info(n_workers=-1)["workers"]
    real = sorted(workers)[0]
    gone = "tcp://127.0.0.1:9"  # the engine is made to believe it is there when the jobs are sent
    done = [r for r in _records(out) if r["status"] == "done"]
    manifest = Manifest(out / MANIFEST_NAME)
    for index, record in enumerate(done):
        for name in record["outputs"] + record["sidecars"]:
            (out / name).unlink()
        manifest.append({"job": record["job"], "input": record["input"], "workflow": record["workflow"],
                         "status": "cancelled", "prompt_id": record["prompt_id"], "worker": real if index < 2 else gone})
    count_slots = local_engine._count_slots
    calls = []

    def stale_first_view() -> int:
        slots = count_slots()
        if not calls:
            local_engine._workers.add(gone)
        calls.append(1)
        return slots

    monkeypatch.setattr(local_engine, "_count_slots", stale_first_view)
    local_engine._slots_checked = 0.0  # the batch's first window() looks at the cluster
    started = time.monotonic()
    summary = _run(local_engine, inputs, out)
    assert summary.count("done") == 4, summary.text()
    assert time.monotonic() - started < 30
    names = {address: str(info.get("name")) for address, info in workers.items()}
    ran_on = {}
    for job in summary.jobs:
        sidecar = json.loads((out / job.sidecars[0]).read_text())
        ran_on[sidecar["job"]] = sidecar["engine"]["worker"]
    for index, record in enumerate(done):
        if index < 2:
            assert ran_on[record["job"]] == names[real], (ran_on, names)
        else:  # pinned to the worker that is not there, then sent again anywhere
            assert local_engine._resubmits[record["job"]] >= 1
    assert not local_engine._pinned and not local_engine._superseded
    for job in summary.jobs:  # written again (the test removed the first run's files)
        assert all((out / name).is_file() for name in job.outputs + job.sidecars)


def test_results_equal_the_in_process_runner(local_engine, tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    face = (astronaut()[0].numpy() * 255).round().astype(np.uint8)
    Image.fromarray(face).resize((256, 256), Image.LANCZOS).save(folder / "astronaut.png")
    workflow = REPO_ROOT / "workflows" / "api" / "skin_only.json"
    local = run_workflow(workflow, folder, tmp_path / "local")
    distributed_run = _run(local_engine, folder, tmp_path / "dask", graph=workflow, name="skin_only")
    assert local.exit_code == 0 and distributed_run.exit_code == 0, distributed_run.text()
    (a,), (b,) = local.jobs, distributed_run.jobs
    ours = np.asarray(Image.open(tmp_path / "local" / a.outputs[0]))
    theirs = np.asarray(Image.open(tmp_path / "dask" / b.outputs[0]))
    assert ours.shape == theirs.shape and _psnr(ours, theirs) >= 50.0, _psnr(ours, theirs)
    assert not np.array_equal(ours, np.asarray(Image.open(a.input).convert("RGB")))  # the skin was retouched
    print(f"dask vs in-process: PSNR {_psnr(ours, theirs):.1f} dB")


def test_a_poison_image_fails_after_bounded_tries_and_the_batch_goes_on(local_cluster, local_engine, tmp_path):
    inputs = _images(tmp_path / "in", 5, seed=8)
    shutil.copy(local_cluster.poison, inputs / "img002_poison.png")
    out = tmp_path / "out"
    summary = _run(local_engine, inputs, out)
    poisoned = [job for job in summary.jobs if "poison" in Path(job.input).name]
    assert len(poisoned) == 1 and poisoned[0].status == "failed" and poisoned[0].reason == "worker_died", summary.text()
    assert "died" in poisoned[0].message
    assert summary.count("done") == 5 and summary.exit_code == 1, summary.text()  # the batch went on; 1: some failed
    Ledger(out, 5).check(final=True)
    failed = [r for r in _records(out) if r["status"] == "failed"]
    assert len(failed) == 1 and failed[0]["reason"] == "worker_died"
    local_engine.client.wait_for_workers(2, timeout=180)  # the nannies restart the workers it killed


# ------------------------------------------------------------------ errors before anything runs


def test_unreachable_scheduler_exits_3_with_one_clear_line(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(dask_engine, "CONNECT_TIMEOUT", 1.0)
    image = _images(tmp_path / "in", 1) / "img000.png"
    workflow = tmp_path / "core.json"
    workflow.write_text(json.dumps(GRAPH))
    address = f"tcp://127.0.0.1:{_free_port()}"
    started = time.monotonic()
    code = cli.main(["run", str(workflow), str(image), "-o", str(tmp_path / "out"), "--dask", address, "--json"])
    captured = capsys.readouterr()
    assert code == 3 and time.monotonic() - started < 20
    assert json.loads(captured.out)["exit_code"] == 3
    lines = [line for line in captured.err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith(f"error: cannot reach the Dask scheduler at {address}"), captured.err
    assert not (tmp_path / "out").exists()  # nothing ran


def test_without_dask_the_error_names_the_extra(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "distributed", None)  # import distributed -> ImportError
    image = _images(tmp_path / "in", 1) / "img000.png"
    workflow = tmp_path / "core.json"
    workflow.write_text(json.dumps(GRAPH))
    for argv in (["run", str(workflow), str(image), "-o", str(tmp_path / "out"), "--dask", "local:1"],
                 ["worker", "--scheduler", "tcp://127.0.0.1:8786"]):
        assert cli.main(argv) == 2
        assert 'pip install "comfyui-portrait-polish[dask]"' in capsys.readouterr().err
    assert cli.main(["run", str(workflow), str(image), "--dask", "local:x"]) == 2
    assert "local:N" in capsys.readouterr().err


def test_nothing_imports_dask_unless_asked(tmp_path):
    image = _images(tmp_path / "in", 1) / "img000.png"
    workflow = tmp_path / "core.json"
    workflow.write_text(json.dumps(GRAPH))
    code = ("import sys\nfrom portrait_polish.runner import cli\n"
            f"assert cli.main(['run', {str(workflow)!r}, {str(image)!r}, '-o', {str(tmp_path / 'out')!r}, '--json']) == 0\n"
            "print(sorted(m for m in ('dask', 'distributed') if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().splitlines()[-1] == "[]"


# ------------------------------------------------------------------ a scheduler and workers as processes


@pytest.fixture(scope="module")
def process_cluster(tmp_path_factory):
    pytest.importorskip("aiohttp")
    from fake_comfy import FakeComfy

    root = tmp_path_factory.mktemp("dask-procs")
    fakes = {"comfy-a": FakeComfy(root / "a", exec_delay=0.3), "comfy-b": FakeComfy(root / "b", exec_delay=0.3)}
    address = f"tcp://127.0.0.1:{_free_port()}"
    procs: dict[str, subprocess.Popen] = {}
    logs = []

    def start(name: str, argv: list[str]) -> None:
        log = open(root / f"{name}.log", "wb")  # noqa: SIM115 - closed at teardown
        logs.append(log)
        procs[name] = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, cwd=root)

    client = None
    try:
        start("scheduler", [str(DASK), "scheduler", "--host", "127.0.0.1", "--port", address.rsplit(":", 1)[1],
                            "--no-dashboard"])
        for name, fake in fakes.items():
            start(name, [sys.executable, "-m", "portrait_polish.runner.cli", "worker", "--scheduler", address,
                         "--comfy", fake.url, "--no-nanny", "--name", name])
        start("inproc-c", [str(DASK), "worker", address, "--nthreads", "1", "--resources", f"{RESOURCE}=1",
                           "--no-nanny", "--name", "inproc-c", "--no-dashboard"])
        client = distributed.Client(address, timeout=60)
        client.wait_for_workers(3, timeout=240)
        names = {}
        for worker_address, info in client.scheduler_info(n_workers=-1)["workers"].items():
            names[info["name"]] = worker_address
            # Warm up each worker's engine (the in-process one imports the pack's nodes).
            client.submit(dask_worker.object_info_task, workers=[worker_address], resources={RESOURCE: 1},
                          pure=False).result(timeout=240)
        yield SimpleNamespace(address=address, fakes=fakes, procs=procs, client=client, names=names, root=root)
    finally:
        if client is not None:
            client.close()
        for proc in procs.values():
            if proc.poll() is None:
                proc.terminate()
        deadline = time.monotonic() + 5
        for proc in procs.values():
            try:
                proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
        for log in logs:
            log.close()
        for fake in fakes.values():
            fake.close()


def _executions(cluster, since: dict) -> collections.Counter:
    """Executions per job (key prefix) since ``since``: on each test server and on the in-process worker."""
    counts: collections.Counter = collections.Counter()
    for name, fake in cluster.fakes.items():
        for prefix, n in fake.completed_prefixes.items():
            job = prefix.split("/")[-1].split("_")[0]
            counts[job] += n - since.get(name, {}).get(prefix, 0)
    inproc = cluster.client.run(lambda: dict(dask_worker.executions), workers=[cluster.names["inproc-c"]])
    for key, n in next(iter(inproc.values())).items():
        counts[key[:16]] += n - since.get("inproc-c", {}).get(key, 0)
    return +counts


def _snapshot(cluster) -> dict:
    state = {name: dict(fake.completed_prefixes) for name, fake in cluster.fakes.items()}
    state["inproc-c"] = next(iter(cluster.client.run(lambda: dict(dask_worker.executions),
                                                     workers=[cluster.names["inproc-c"]]).values()))
    return state


def _done_count(out: Path) -> int:
    try:
        return sum(1 for r in _records(out) if r["status"] == "done")
    except (ValueError, OSError):
        return 0  # a line being written


def test_ctrl_c_cancels_on_the_cluster_and_the_rerun_runs_nothing_twice(process_cluster, tmp_path, capsys):
    inputs = _images(tmp_path / "in", 12, size=24, seed=5)
    workflow = tmp_path / "core.json"
    workflow.write_text(json.dumps(GRAPH))
    out = tmp_path / "out"
    argv = ["run", str(workflow), str(inputs), "-o", str(out), "--dask", process_cluster.address, "--json", "--no-progress"]
    before = _snapshot(process_cluster)
    main = threading.main_thread().ident

    def interrupt_after_three() -> None:
        deadline = time.monotonic() + 120
        while _done_count(out) < 3 and time.monotonic() < deadline:
            time.sleep(0.02)
        signal.pthread_kill(main, signal.SIGINT)  # Ctrl-C, in the client's main thread

    killer = threading.Thread(target=interrupt_after_three, daemon=True)
    killer.start()
    code = cli.main(argv)
    killer.join()
    summary = json.loads(capsys.readouterr().out)
    assert code == 130 and summary["interrupted"] and summary["exit_code"] == 130, summary
    assert summary["cancelled"] >= 1 and summary["failed"] == 0 and summary["done"] >= 3, summary
    Ledger(out, 12).check()  # consistent: every line whole, nothing done twice, nothing unaccounted for
    cancelled = [r for r in _records(out) if r["status"] == "cancelled"]
    assert cancelled and all(r["prompt_id"] == prompt_id_for(r["job"]) for r in cancelled)

    assert cli.main(argv) == 0
    rerun = json.loads(capsys.readouterr().out)
    assert rerun["done"] + rerun["skipped"] == 12 and rerun["skipped"] == summary["done"], rerun
    Ledger(out, 12).check(final=True)
    runs = _executions(process_cluster, before)
    # A job cancelled while a worker ran it is sent back to that worker on the rerun (the
    # cancelled record names it), which has it in its cache or its ComfyUI's history under
    # the job's prompt id: it does not run again. Only a job whose worker was not known at the
    # Ctrl-C (its result was on the way) may run a second time, on another worker.
    unhinted = {r["job"][:16] for r in cancelled if not r.get("worker")}
    twice = {job for job, n in runs.items() if n > 1}
    assert len(runs) == 12 and max(runs.values()) <= 2 and twice <= unhinted, (runs, cancelled)
    for name, fake in process_cluster.fakes.items():  # never twice on one server
        assert all(n - before[name].get(prefix, 0) <= 1 for prefix, n in fake.completed_prefixes.items())
    print(f"Ctrl-C: {len(cancelled)} cancelled ({len(cancelled) - len(unhinted)} with their worker), "
          f"{len(twice)} run twice")


def test_a_worker_killed_mid_task_is_rescheduled_and_written_once(process_cluster, tmp_path):
    inputs = _images(tmp_path / "in", 16, size=24, seed=9)
    out = tmp_path / "out"
    client, victim = process_cluster.client, "comfy-a"
    address = process_cluster.names[victim]
    before = _snapshot(process_cluster)
    killed: dict[str, list] = {}

    def kill_when_busy() -> None:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            keys = [str(k) for k in client.processing().get(address, ()) if str(k).startswith("portrait-polish-")]
            if keys:
                time.sleep(0.1)  # inside the task: its prompt is on the worker's ComfyUI
                process_cluster.procs[victim].kill()
                killed["keys"] = keys
                return
            time.sleep(0.02)

    killer = threading.Thread(target=kill_when_busy, daemon=True)
    killer.start()
    engine = DaskEngine(process_cluster.address)
    try:
        summary = _run(engine, inputs, out)
    finally:
        engine.close()
    killer.join()
    assert killed, "the worker was never seen busy"
    assert summary.exit_code == 0 and summary.count("done") == 16, summary.text()
    Ledger(out, 16).check(final=True)  # every image written exactly once, none lost
    runs = _executions(process_cluster, before)
    assert len(runs) == 16, runs
    # Only a job that ran on the victim's server can have run twice (there, and again elsewhere):
    # the one it was running, and on a slow machine at most one more that finished there just
    # before the kill, its result not yet at the scheduler. The jobs that were waiting for its
    # slot were rescheduled without running.
    twice = {job for job, n in runs.items() if n > 1}
    ran_on_victim = {prefix.split("/")[-1].split("_")[0] for prefix, n in process_cluster.fakes[victim].completed_prefixes.items()
                     if n > before[victim].get(prefix, 0)}
    detail = f"runs {dict(runs)}, ran on {victim}: {sorted(ran_on_victim)}, processing there at the kill: {killed['keys']}"
    assert len(twice) <= 2 and twice <= ran_on_victim and max(runs.values()) <= 2, detail
    for path in out.glob("*.json"):
        sidecar = json.loads(path.read_text())
        if sidecar["job"][:16] in twice:
            assert sidecar["engine"]["worker"] != victim, detail  # written from the live worker's run
    for name, fake in process_cluster.fakes.items():  # never twice on one server
        assert all(n - before[name].get(prefix, 0) <= 1 for prefix, n in fake.completed_prefixes.items())
