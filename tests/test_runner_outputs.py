"""The output folder's guarantees (runner/outputs.py): a kill between the image's rename and
its records is adopted, not lost; user files at an image's or a sidecar's name are never
replaced and the input is reported "exists" (exit 4); an unusable output folder is exit 2
with one line and a JSON summary; non-finite numbers never reach a sidecar; a torn manifest
line is skipped and never swallows the next record; one run per output folder."""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from portrait_polish.runner import outputs as outputs_module
from portrait_polish.runner.batch import MANIFEST_NAME, Batch
from portrait_polish.runner.cli import main
from portrait_polish.runner.core_nodes import CORE_NODE_CLASSES
from portrait_polish.runner.engine_local import InProcessEngine
from portrait_polish.runner.errors import OutputError, ParameterError
from portrait_polish.runner.outputs import Manifest, jsonable, strict_json


class Level:
    """A test node with a FLOAT and an INT input (for --set checks)."""

    RETURN_TYPES = ("IMAGE",)
    FUNCTION = "run"
    CATEGORY = "test"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"image": ("IMAGE",), "amount": ("FLOAT", {"default": 0.0, "min": 0.0, "max": 0.5}),
                             "steps": ("INT", {"default": 1, "min": 0, "max": 10})}}

    def run(self, image, amount, steps):
        return ((image + amount).clamp(0, 1),)


GRAPH = {
    "1": {"class_type": "LoadImage", "inputs": {"image": "x.png"}, "_meta": {"title": "Input"}},
    "2": {"class_type": "Level", "inputs": {"image": ["1", 0], "amount": 0.0, "steps": 1}, "_meta": {"title": "Level"}},
    "3": {"class_type": "SaveImage", "inputs": {"images": ["2", 0], "filename_prefix": "t"}, "_meta": {"title": "Save"}},
}


@pytest.fixture
def engine():
    eng = InProcessEngine(classes={**CORE_NODE_CLASSES, "Level": Level})
    yield eng
    eng.close()


def _images(folder: Path, names=("a.png", "b.png")) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for index, name in enumerate(names):
        Image.fromarray(np.full((16, 20 + index, 3), 60 + index, np.uint8)).save(folder / name)
    return folder


def _run(engine, inputs, out, **kw):
    batch = Batch(GRAPH, out, engine=engine, progress=False, name="t", **kw)
    batch.add(*inputs)
    return batch.run()


def _records(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / MANIFEST_NAME).read_text().splitlines()]


def test_killed_after_the_image_rename_is_adopted_not_lost(engine, tmp_path, monkeypatch):
    """The issue's case: killed just after the image is renamed into place, before its
    "done" record. The rerun adopts it (sha256 checked) instead of skipping it forever."""
    inputs = _images(tmp_path / "in", names=("a.png",))
    out = tmp_path / "out"
    real_append = Manifest.append_many  # every record goes through it (append is one record of it)

    def die_before_done(self, records, durable=True):
        if any(record.get("status") == "done" for record in records):
            raise SystemExit("killed")  # stands for kill -9: nothing after this runs
        return real_append(self, records, durable)

    monkeypatch.setattr(Manifest, "append_many", die_before_done)
    with pytest.raises(SystemExit):
        _run(engine, [inputs], out)
    monkeypatch.undo()
    assert (out / "a_t.png").is_file() and (out / "a_t.json").is_file()
    assert [r["status"] for r in _records(out)] == ["started", "writing"]
    image = (out / "a_t.png").read_bytes()
    summary = _run(engine, [inputs], out)
    job = summary.jobs[0]
    assert summary.exit_code == 0 and job.status == "done" and job.reason == "recovered", summary.text()
    assert (out / "a_t.png").read_bytes() == image  # adopted, not rewritten
    sidecar = json.loads((out / "a_t.json").read_text())
    assert sidecar["output_sha256"] == outputs_module.sha256_bytes(image) and sidecar["job"] == _records(out)[-1]["job"]
    assert _run(engine, [inputs], out).jobs[0].reason == "already_done"


def test_a_tampered_pending_output_is_redone_not_adopted(engine, tmp_path, monkeypatch):
    inputs = _images(tmp_path / "in", names=("a.png",))
    out = tmp_path / "out"
    real_replace = os.replace
    calls = []

    def die_on_second_rename(src, dst):
        calls.append(dst)
        if len(calls) == 2:  # the sidecar is in place, the image is not
            raise SystemExit("killed")
        return real_replace(src, dst)

    monkeypatch.setattr(outputs_module.os, "replace", die_on_second_rename)
    with pytest.raises(SystemExit):
        _run(engine, [inputs], out)
    monkeypatch.undo()
    assert (out / "a_t.json").is_file() and not (out / "a_t.png").exists()
    summary = _run(engine, [inputs], out)  # the sidecar is the runner's own (its sha256 is recorded): replaced
    assert summary.jobs[0].status == "done" and summary.jobs[0].reason == "", summary.text()
    sidecar = json.loads((out / "a_t.json").read_text())
    assert sidecar["output_sha256"] == outputs_module.sha256_file(out / "a_t.png")


def test_a_user_file_at_a_sidecars_name_is_never_overwritten(engine, tmp_path):
    inputs = _images(tmp_path / "in", names=("a.png", "b.png"))
    out = tmp_path / "out"
    out.mkdir()
    (out / "a_t.json").write_text("my notes, not a sidecar")
    summary = _run(engine, [inputs], out)
    by_name = {Path(job.input).name: job for job in summary.jobs}
    assert by_name["a.png"].status == "exists" and "a_t.json" in by_name["a.png"].message
    assert by_name["b.png"].status == "done"
    assert (out / "a_t.json").read_text() == "my notes, not a sidecar"
    assert not (out / "a_t.png").exists()  # nothing at all written for that input
    assert summary.exit_code == 4 and summary.as_dict()["exists"] == 1
    assert "exists 1" in summary.text()
    summary = _run(engine, [inputs], out, overwrite=True)
    assert [job.status for job in summary.jobs] == ["done", "done"]
    assert json.loads((out / "a_t.json").read_text())["output"] == "a_t.png"


def test_exists_has_its_own_exit_code_and_failed_wins(engine, tmp_path, capsys):
    workflow = tmp_path / "core.json"
    workflow.write_text(json.dumps({"1": GRAPH["1"], "3": {**GRAPH["3"], "inputs": {"images": ["1", 0], "filename_prefix": "t"}}}))
    inputs = _images(tmp_path / "in", names=("a.png",))
    (inputs / "broken.png").write_bytes(b"not a png")
    out = tmp_path / "out"
    out.mkdir()
    (out / "a_core.png").write_bytes(b"user")
    code = main(["run", str(workflow), str(inputs), "-o", str(out), "--json"])
    report = json.loads(capsys.readouterr().out)
    assert code == 1 and report["exit_code"] == 1 and report["exists"] == 1 and report["failed"] == 1
    (inputs / "broken.png").unlink()
    code = main(["run", str(workflow), str(inputs), "-o", str(out), "--json"])
    report = json.loads(capsys.readouterr().out)
    assert code == 4 and report["exists"] == 1 and report["done"] == 0 and report["jobs"][0]["status"] == "exists"


@pytest.mark.parametrize("case", ["file", "parent_is_file", "not_writable"])
def test_unusable_output_folder_is_exit_2_with_one_line_and_a_json_summary(tmp_path, capsys, case):
    workflow = tmp_path / "core.json"
    workflow.write_text(json.dumps({"1": GRAPH["1"], "3": {**GRAPH["3"], "inputs": {"images": ["1", 0], "filename_prefix": "t"}}}))
    image = _images(tmp_path / "in", names=("a.png",)) / "a.png"
    if case == "file":
        out = tmp_path / "out.txt"
        out.write_text("a file")
        expected = "is a file, not a folder"
    elif case == "parent_is_file":
        (tmp_path / "plain").write_text("a file")
        out = tmp_path / "plain" / "out"
        expected = "cannot create the output folder"
    else:
        out = tmp_path / "locked"
        out.mkdir()
        out.chmod(0o555)
        if os.access(out, os.W_OK):  # root writes anywhere: use a read-only file system instead
            out = Path("/sys/kernel")
            if not out.is_dir() or os.access(out, os.W_OK) and _writable(out):
                pytest.skip("no unwritable folder available to this user")
        expected = "cannot write into the output folder"
    code = main(["run", str(workflow), str(image), "-o", str(out), "--json"])
    captured = capsys.readouterr()
    report = json.loads(captured.out)
    assert code == 2 and report["exit_code"] == 2 and expected in report["error"]
    assert report["done"] == report["failed"] == report["exists"] == 0 and report["jobs"] == []
    assert captured.err.strip().count("\n") == 0 and expected in captured.err  # one clear line, no traceback


def _writable(folder: Path) -> bool:
    try:
        outputs_module.write_temp(folder / "probe", b"").unlink()
        return True
    except OSError:
        return False


@pytest.mark.parametrize("value", ["nan", "NaN", "inf", "-inf", "1e999", "-Infinity"])
def test_non_finite_numbers_are_refused(engine, tmp_path, value):
    inputs = _images(tmp_path / "in", names=("a.png",))
    for setting in (f"Level.amount={value}", f"Level.steps={value}"):
        with pytest.raises(ParameterError, match="not a finite number"):
            _run(engine, [inputs], tmp_path / "out", sets=[setting])
    (tmp_path / "jobs.csv").write_text(f"image,Level.amount\nin/a.png,{value}\n")
    with pytest.raises(ParameterError, match=r"CSV line 2.*not a finite number"):
        _run(engine, [tmp_path / "jobs.csv"], tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_cli_nan_is_exit_2(tmp_path, capsys):
    image = _images(tmp_path / "in", names=("a.png",)) / "a.png"
    code = main(["run", "natural_headshot", str(image), "-o", str(tmp_path / "out"), "--set", "TeethWhiten.strength=nan", "--json"])
    assert code == 2 and "not a finite number" in json.loads(capsys.readouterr().out)["error"]


def test_sidecars_and_records_are_always_valid_json():
    value = {"score": float("nan"), "list": [float("inf"), 1.5], "array": np.array([np.nan, 2.0], np.float32), "path": Path("x")}
    assert jsonable(value) == {"score": None, "list": [None, 1.5], "array": [None, 2.0], "path": "x"}
    json.loads(strict_json(value), parse_constant=lambda name: pytest.fail(f"bare {name} in JSON"))


def test_torn_manifest_line_is_skipped_and_the_next_record_gets_its_own_line(tmp_path):
    path = tmp_path / MANIFEST_NAME
    whole = json.dumps({"job": "k1", "status": "done", "outputs": ["a.png"], "sidecars": []})
    path.write_text(whole + "\n" + '{"job": "k2", "status": "don')  # a crash mid-write
    manifest = Manifest(path)
    assert set(manifest.records) == {"k1"} and manifest.torn_lines == 1
    manifest.append({"job": "k3", "status": "done", "outputs": ["c.png"], "sidecars": []})
    lines = path.read_text().splitlines()
    assert lines[1] == '{"job": "k2", "status": "don' and json.loads(lines[2])["job"] == "k3"
    again = Manifest(path)
    assert set(again.records) == {"k1", "k3"} and again.torn_lines == 1
    # An older runner glued the next record onto a torn line: that record is still read.
    path.write_text(whole + "\n" + '{"job": "k2", "sta' + json.dumps({"job": "k4", "status": "done"}) + "\n")
    assert set(Manifest(path).records) == {"k1", "k4"}


def test_one_record_is_one_write_on_an_append_descriptor(tmp_path, monkeypatch):
    writes = []
    real_write = os.write
    monkeypatch.setattr(outputs_module.os, "write", lambda fd, data: writes.append(data) or real_write(fd, data))
    manifest = Manifest(tmp_path / MANIFEST_NAME)
    manifest.acquire()
    try:
        manifest.append({"job": "k", "status": "started", "note": "x" * 5000})
    finally:
        manifest.release()
    assert len(writes) == 1 and writes[0].endswith(b"}\n") and writes[0].count(b"\n") == 1


def test_units_written_at_once_are_committed_as_one_group_and_fail_alone(tmp_path, monkeypatch):
    """Six writer threads commit at once (as a Dask run's writers do): one thread commits
    every queued unit with one "writing" write, one folder fsync and one "done" write (3
    flushes, not 3 per job); a unit whose rename fails fails alone, its record left pending,
    its temporary files removed; the other five are done with their files in place."""
    manifest = outputs_module.open_output_folder(tmp_path / "out")
    folder = tmp_path / "out"
    fsyncs, writes = [], []
    real_fsync, real_write, real_replace = os.fsync, os.write, os.replace
    monkeypatch.setattr(outputs_module.os, "fsync", lambda fd: fsyncs.append(fd) or real_fsync(fd))
    monkeypatch.setattr(outputs_module.os, "write", lambda fd, data: writes.append(data) or real_write(fd, data))

    def replace(src, dst):
        if Path(dst).name == "j3.png":
            raise OSError(5, "Input/output error")
        return real_replace(src, dst)

    monkeypatch.setattr(outputs_module.os, "replace", replace)
    outcomes: dict[int, object] = {}

    def write_unit(index: int) -> None:
        image = outputs_module.OutputFile(f"j{index}.png", f"image {index}".encode())
        sidecar = outputs_module.OutputFile(f"j{index}.json", f"sidecar {index}".encode())
        try:
            outcomes[index] = outputs_module.commit(folder, manifest, {"job": f"k{index}", "input": f"{index}.png"},
                                                    [image], [sidecar])
        except OSError as exc:
            outcomes[index] = exc

    threads = [threading.Thread(target=write_unit, args=(index,)) for index in range(6)]
    with manifest.commit_lock:  # hold the commit until all six units are queued
        for thread in threads:
            thread.start()
        deadline = time.monotonic() + 10
        while len(manifest.queued) < 6 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert len(manifest.queued) == 6
        fsyncs.clear()
        writes.clear()
    for thread in threads:
        thread.join(10)
    manifest.release()
    assert len(fsyncs) == 3 and len(writes) == 2, (fsyncs, writes)
    assert [line.count(b"\n") for line in writes] == [6, 5]  # six "writing" records, five "done"
    assert isinstance(outcomes[3], OSError)
    records = _records(folder)
    assert {r["job"] for r in records if r["status"] == "done"} == {"k0", "k1", "k2", "k4", "k5"}
    assert Manifest(folder / MANIFEST_NAME).pending.keys() == {"k3"}
    for index in (0, 1, 2, 4, 5):
        assert (folder / f"j{index}.png").read_bytes() == f"image {index}".encode()
        assert outcomes[index][f"j{index}.png"] == outputs_module.sha256_bytes(f"image {index}".encode())
    assert not (folder / "j3.png").exists()
    assert not [p.name for p in folder.iterdir() if p.name.endswith(".tmp")]


def test_one_run_per_output_folder(tmp_path):
    """A second runner on the same output folder is refused (exit 2) while the first holds
    it. (flock treats two opens of the manifest like two processes, so one process shows it.)"""
    pytest.importorskip("fcntl")
    out = tmp_path / "out"
    first = outputs_module.open_output_folder(out)
    try:
        with pytest.raises(OutputError, match="another portrait-polish run is writing into") as caught:
            outputs_module.open_output_folder(out)
        assert caught.value.exit_code == 2
    finally:
        first.release()
    outputs_module.open_output_folder(out).release()  # free again once the first let go


def test_temporary_files_of_a_killed_run_are_removed(engine, tmp_path):
    inputs = _images(tmp_path / "in", names=("a.png",))
    out = tmp_path / "out"
    out.mkdir()
    leftover = out / ".a_t.png.pp-0123abcd.tmp"
    leftover.write_bytes(b"half")
    mine = out / ".my.notes.tmp"  # not the runner's pattern: kept
    mine.write_bytes(b"mine")
    assert _run(engine, [inputs], out).count("done") == 1
    assert not leftover.exists() and mine.exists()
