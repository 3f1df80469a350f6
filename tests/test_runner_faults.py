"""Fault injection: ``portrait-polish run`` killed (SIGKILL, SIGINT and SIGTERM) at random moments, in
process and in server mode (against tests/fake_comfy.py), and rerun until it completes.

After every kill and at the end: no image lost, none done twice (one "done" record per job,
an output never rewritten once done, and in server mode each job's prompt executed once),
every output with a valid sidecar that matches it, the manifest readable line by line, the
exit codes as documented (SIGINT and SIGTERM: 130; a run that finished first: 0). The kill moments are
random (seed printed on failure; set PORTRAIT_POLISH_FAULT_SEED to replay one).

A deterministic companion walks a crash through every step of the write unit in process.
"""

from __future__ import annotations

import hashlib
import json
import os
import queue
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from portrait_polish.runner import outputs as outputs_module
from portrait_polish.runner.batch import MANIFEST_NAME, Batch
from portrait_polish.runner.core_nodes import CORE_NODE_CLASSES
from portrait_polish.runner.engine_local import InProcessEngine

ROUNDS = 20  # kills per mode, at least
IMAGES = 8
BUDGET_SECONDS = 150  # per mode: the rounds must fit in bounded time
GRAPH = {
    "1": {"class_type": "LoadImage", "inputs": {"image": "x.png"}, "_meta": {"title": "Input"}},
    "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": "ComfyUI"}, "_meta": {"title": "Save"}},
}


def _images(folder: Path, count: int = IMAGES, size: int = 160) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(11)
    for index in range(count):
        Image.fromarray(rng.integers(0, 256, (size, size + index, 3), dtype=np.uint8)).save(folder / f"p{index:02d}.png")
    return folder


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _strict_json(text: str):
    def refuse(name: str):
        raise ValueError(f"not JSON: {name}")

    return json.loads(text, parse_constant=refuse)


class Forker:
    """The fork server (tests/fork_runner.py): one child process per run, killable."""

    def __init__(self, tmp: Path) -> None:
        env = {**os.environ, "TMPDIR": str(tmp)}  # killed in-process runs leave their work folders here
        self.process = subprocess.Popen([sys.executable, str(Path(__file__).with_name("fork_runner.py"))],
                                        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env)
        self.answers: queue.Queue = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()
        self.logs = tmp
        self.count = 0

    def _read(self) -> None:
        for line in self.process.stdout:
            self.answers.put(json.loads(line))

    def start(self, argv: list[str]) -> tuple[int, Path]:
        self.count += 1
        out = self.logs / f"run{self.count:03d}.out"
        request = {"argv": argv, "stdout": str(out), "stderr": str(out.with_suffix(".err"))}
        self.process.stdin.write(json.dumps(request) + "\n")
        self.process.stdin.flush()
        return self.answers.get(timeout=30)["pid"], out

    def wait(self, timeout: float = 60.0) -> int:
        return self.answers.get(timeout=timeout)["returncode"]

    def finished(self) -> int | None:
        try:
            return self.answers.get_nowait()["returncode"]
        except queue.Empty:
            return None

    def close(self) -> None:
        self.process.stdin.close()
        self.process.wait(10)


@pytest.fixture(scope="module")
def forker(tmp_path_factory):
    server = Forker(tmp_path_factory.mktemp("forker"))
    yield server
    server.close()


class Ledger:
    """What the output folder has shown so far, to catch anything lost or done twice."""

    def __init__(self, out: Path, inputs: int) -> None:
        self.out = out
        self.inputs = inputs
        self.done_files: dict[str, str] = {}  # name -> sha256 once recorded done
        self.baseline: dict[str, int] = {}  # server mode: executions per job before this folder

    def check(self, final: bool = False) -> dict[str, dict]:
        if not final and not self.out.exists():
            return {}  # killed before it made the folder
        manifest = self.out / MANIFEST_NAME
        records = []
        if manifest.exists():
            for line in manifest.read_bytes().split(b"\n"):
                if line.strip():
                    records.append(json.loads(line))  # every line whole: one write per record
        done: dict[str, dict] = {}
        for record in records:
            if record["status"] == "done":
                assert record["job"] not in done, f"job {record['input']} recorded done twice"
                done[record["job"]] = record
        for record in done.values():
            for name in record["outputs"] + record["sidecars"]:
                path = self.out / name
                assert path.is_file(), f"{name} recorded done but missing (lost)"
                assert _sha(path) == record["sha256"][name], f"{name} does not match its done record"
                assert self.done_files.setdefault(name, record["sha256"][name]) == record["sha256"][name], \
                    f"{name} rewritten after it was done"
        for image in self.out.glob("*.png"):
            sidecar = image.with_suffix(".json")
            assert sidecar.is_file(), f"{image.name} has no sidecar"
            data = _strict_json(sidecar.read_text())
            assert data["output"] == image.name and data["output_sha256"] == _sha(image), \
                f"{image.name}'s sidecar does not describe it"
        names = {p.name for p in self.out.iterdir()}
        expected = {MANIFEST_NAME} | {n for r in done.values() for n in r["outputs"] + r["sidecars"]}
        stray = {n for n in names - expected if not (n.startswith(".") and n.endswith(".tmp"))}
        pending = {n for r in records if r["status"] == "writing" for n in r["outputs"] + r["sidecars"]}
        assert stray <= pending, f"files no record accounts for: {sorted(stray - pending)}"
        if final:
            assert len(done) == self.inputs and not stray, (len(done), sorted(stray))
            assert names == expected, f"left over: {sorted(names - expected)}"
        return done


def _fault_rounds(forker: Forker, argv_for, tmp_path: Path, full_seconds: float, seed: int,
                  after_round=None, new_folder=None) -> dict[str, int]:
    """Kill runs at random moments until ROUNDS kills have landed; start a fresh output
    folder whenever a run completes. Returns counts for the report."""
    rng = random.Random(seed)
    stats = {"kills": 0, "sigkill": 0, "sigint": 0, "sigterm": 0, "completed_first": 0, "folders": 0, "left_unit_open": 0}
    started = time.monotonic()
    ledger = None
    while stats["kills"] < ROUNDS:
        assert time.monotonic() - started < BUDGET_SECONDS, f"fault rounds over {BUDGET_SECONDS} s (seed {seed})"
        if ledger is None:
            stats["folders"] += 1
            out = tmp_path / f"out{stats['folders']}"
            ledger = Ledger(out, IMAGES)
            if new_folder is not None:
                new_folder(ledger)
        # Every other kill is SIGKILL; the rest alternate Ctrl-C (SIGINT) and SIGTERM, which stops a run the same way.
        sig = signal.SIGKILL if stats["kills"] % 2 == 0 else (signal.SIGINT if stats["kills"] % 4 == 1 else signal.SIGTERM)
        pid, log = forker.start(argv_for(ledger.out))
        time.sleep(rng.uniform(0.0, full_seconds))
        code = forker.finished()
        if code is None:
            try:
                os.kill(pid, sig)
            except ProcessLookupError:  # it ended just now
                pass
            code = forker.wait()
        where = f"seed {seed}, run log {log}"
        if code in (0,):  # it finished before the signal: check, then a fresh folder
            stats["completed_first"] += 1
            ledger.check(final=True)
            ledger = None
            continue
        stats["kills"] += 1
        stats[sig.name.lower()] += 1
        stats["left_unit_open"] += int(_open_units(ledger.out) > 0)  # killed inside a write unit
        expected = {-signal.SIGKILL} if sig == signal.SIGKILL else {130}
        if sig == signal.SIGTERM:
            # A SIGTERM in the moment before cli.main installs its handler ends the process the
            # default way, as it would a fresh one during start-up: nothing has run yet (the
            # ledger check below holds either way).
            expected.add(-signal.SIGTERM)
        assert code in expected, f"exit code {code} after {sig.name}, expected {expected} ({where}): {log.with_suffix('.err').read_text()[-2000:]}"
        if sig != signal.SIGKILL and log.read_text().strip():  # Ctrl-C and SIGTERM still print the summary
            summary = json.loads(log.read_text())
            failed = [job for job in summary["jobs"] if job["status"] == "failed"]
            assert summary["exit_code"] == 130 and not failed, f"{failed} ({where})"
        ledger.check()
        if after_round is not None:
            after_round(ledger)
    # Rerun the last folder to completion: everything done, exactly once.
    if ledger is not None:
        forker.start(argv_for(ledger.out))
        code = forker.wait()
        assert code == 0, f"final rerun exit code {code} (seed {seed})"
        ledger.check(final=True)
        if after_round is not None:
            after_round(ledger)
    return stats


def _open_units(out: Path) -> int:
    """Jobs whose last "writing" record has no "done" after it (a kill inside the write unit)."""
    open_jobs: set[str] = set()
    manifest = out / MANIFEST_NAME
    if manifest.exists():
        for line in manifest.read_text().splitlines():
            record = json.loads(line)
            if record["status"] == "writing":
                open_jobs.add(record["job"])
            elif record["status"] == "done":
                open_jobs.discard(record["job"])
    return len(open_jobs)


def _seed() -> int:
    return int(os.environ.get("PORTRAIT_POLISH_FAULT_SEED") or random.SystemRandom().randrange(1 << 30))


def _timed_full_run(forker: Forker, argv: list[str], out: Path) -> float:
    """Seconds one whole uninterrupted batch takes (after a warm-up run: the fork server's
    own start-up is not part of it)."""
    seconds = []
    for attempt in range(2):
        start = time.monotonic()
        forker.start(argv + ["-o", str(out / str(attempt))])
        assert forker.wait() == 0
        seconds.append(time.monotonic() - start)
    return seconds[-1]


def test_in_process_kills_lose_nothing(forker, tmp_path):
    inputs = _images(tmp_path / "in")
    workflow = tmp_path / "core.json"
    workflow.write_text(json.dumps(GRAPH))

    def argv_for(out: Path) -> list[str]:
        return ["run", str(workflow), str(inputs), "-o", str(out), "--json", "--no-progress"]

    full = _timed_full_run(forker, argv_for(tmp_path / "calibrate"), tmp_path / "calibrate")
    seed = _seed()
    stats = _fault_rounds(forker, argv_for, tmp_path, full, seed)
    print(f"in-process: full run {full:.2f} s, {stats}, seed {seed}")
    assert stats["sigkill"] >= ROUNDS // 2 and stats["sigint"] >= ROUNDS // 4 and stats["sigterm"] >= ROUNDS // 4


def test_server_mode_kills_lose_nothing_and_run_nothing_twice(forker, tmp_path):
    pytest.importorskip("aiohttp")
    from fake_comfy import FakeComfy

    fake = FakeComfy(tmp_path / "server", exec_delay=0.05)
    try:
        inputs = _images(tmp_path / "in")
        workflow = tmp_path / "core.json"
        workflow.write_text(json.dumps(GRAPH))
        concurrency = iter([1, 2] * ROUNDS * 4)

        def argv_for(out: Path) -> list[str]:
            return ["run", str(workflow), str(inputs), "-o", str(out), "--json", "--no-progress", "--server", fake.url,
                    "--concurrency", str(next(concurrency)), "--timeout", "60"]

        def remember_executions(ledger: Ledger) -> None:
            ledger.baseline = dict(fake.completed_prefixes)  # the same jobs ran for earlier folders

        def executed_once(ledger: Ledger) -> None:
            runs = {prefix: n - ledger.baseline.get(prefix, 0) for prefix, n in fake.completed_prefixes.items()}
            twice = {prefix: n for prefix, n in runs.items() if n > 1}
            assert not twice, f"prompts executed more than once on the server: {twice}"

        full = _timed_full_run(forker, argv_for(tmp_path / "calibrate"), tmp_path / "calibrate")
        seed = _seed()
        stats = _fault_rounds(forker, argv_for, tmp_path, full, seed, after_round=executed_once,
                              new_folder=remember_executions)
        print(f"server mode: full run {full:.2f} s, {stats}, seed {seed}")
        assert stats["sigkill"] >= ROUNDS // 2 and stats["sigint"] >= ROUNDS // 4 and stats["sigterm"] >= ROUNDS // 4
    finally:
        fake.close()


# ---------------------------------------------------------------- every step, in process


class Crash(BaseException):
    """Stands for a kill -9 at one step (BaseException: no handler of the runner catches it)."""


def test_a_crash_at_every_step_of_the_write_unit_is_recovered(tmp_path, monkeypatch):
    """Crash before each manifest write and each rename of a two-image batch, then rerun:
    each time every image ends up done once, with its sidecar; a crash after a rename is
    adopted (checked by sha256), not redone."""
    inputs = _images(tmp_path / "in", count=2, size=48)
    real_replace, real_write = os.replace, os.write
    steps = {"count": 0, "crash_at": None}

    def step() -> None:
        steps["count"] += 1
        if steps["count"] == steps["crash_at"]:
            raise Crash()

    def replace(src, dst):
        step()
        return real_replace(src, dst)

    def write(fd, data):
        if isinstance(data, bytes | bytearray) and data.rstrip().endswith(b"}") and b'"job"' in data:
            step()  # a manifest record
        return real_write(fd, data)

    monkeypatch.setattr(outputs_module.os, "replace", replace)
    monkeypatch.setattr(outputs_module.os, "write", write)
    engine = InProcessEngine(classes=dict(CORE_NODE_CLASSES))
    try:
        def run(out: Path):
            batch = Batch(GRAPH, out, engine=engine, progress=False, name="core")
            batch.add(inputs)
            return batch.run()

        steps["crash_at"] = None
        run(tmp_path / "count")
        total = steps["count"]
        assert total == 2 * 5  # per job: started, writing, 2 renames, done
        adopted = 0
        for crash_at in range(1, total + 1):
            out = tmp_path / f"crash{crash_at}"
            steps.update(count=0, crash_at=crash_at)
            with pytest.raises(Crash):
                run(out)
            steps["crash_at"] = None
            summary = run(out)
            assert summary.exit_code == 0 and summary.count("done") + summary.count("skipped") == 2, summary.text()
            adopted += sum(1 for job in summary.jobs if job.reason == "recovered")
            Ledger(out, 2).check(final=True)
        assert adopted == 2  # crashing just before each job's "done" record: its files adopted
    finally:
        engine.close()
