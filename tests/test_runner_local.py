"""In-process batches: manifest resume, never overwriting user files, atomic outputs,
deterministic names, CSV overrides, --set checks before anything runs, caching, exit codes."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from portrait_polish.runner import outputs as outputs_module
from portrait_polish.runner.batch import MANIFEST_NAME, Batch, Manifest, collect_inputs, run_workflow
from portrait_polish.runner.cli import main
from portrait_polish.runner.core_nodes import CORE_NODE_CLASSES
from portrait_polish.runner.engine_local import InProcessEngine
from portrait_polish.runner.errors import InputError, ParameterError, WorkflowError


class Brighten:
    """A test node with a visible parameter: adds ``amount`` to every pixel."""

    RETURN_TYPES = ("IMAGE",)
    FUNCTION = "run"
    CATEGORY = "test"
    calls = 0

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"image": ("IMAGE",), "amount": ("FLOAT", {"default": 0.0, "min": 0.0, "max": 0.5, "step": 0.01}),
                             "mode": (["add", "keep"], {"default": "add"})}}

    def run(self, image, amount, mode):
        Brighten.calls += 1
        return ((image + amount).clamp(0, 1) if mode == "add" else image,)


GRAPH = {
    "1": {"class_type": "LoadImage", "inputs": {"image": "x.png"}, "_meta": {"title": "Input"}},
    "2": {"class_type": "Brighten", "inputs": {"image": ["1", 0], "amount": 0.0, "mode": "add"}, "_meta": {"title": "Light"}},
    "3": {"class_type": "SaveImage", "inputs": {"images": ["2", 0], "filename_prefix": "t"}, "_meta": {"title": "Save"}},
}


@pytest.fixture
def engine():
    eng = InProcessEngine(classes={**CORE_NODE_CLASSES, "Brighten": Brighten})
    yield eng
    eng.close()


def _images(folder: Path, names=("a.png", "b.png", "c.png"), value=40) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for index, name in enumerate(names):
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.full((24, 32 + index, 3), value + index, np.uint8)).save(folder / name)
    return folder


def _run(engine, inputs, out, **kw):
    batch = Batch(kw.pop("graph", GRAPH), out, engine=engine, progress=False, name="t", **kw)
    batch.add(*inputs)
    return batch.run()


def test_outputs_sidecars_and_manifest(engine, tmp_path):
    summary = _run(engine, [_images(tmp_path / "in")], tmp_path / "out", sets=["Light.amount=0.1"])
    assert summary.exit_code == 0 and summary.count("done") == 3
    out = tmp_path / "out"
    assert sorted(p.name for p in out.iterdir()) == ["a_t.json", "a_t.png", "b_t.json", "b_t.png", "c_t.json", "c_t.png", MANIFEST_NAME]
    pixels = np.asarray(Image.open(out / "a_t.png"))
    assert pixels.mean() == pytest.approx(40 + 25.5, abs=0.6)  # amount 0.1 = +25.5 levels
    sidecar = json.loads((out / "a_t.json").read_text())
    assert sidecar["parameters"] == {"2.amount": 0.1}
    assert sidecar["workflow"]["api"]["2"]["inputs"]["amount"] == 0.1
    assert sidecar["input_sha256"] and sidecar["output_sha256"] and sidecar["timings"]["total_seconds"] > 0
    assert sidecar["engine"] == {"engine": "in-process"}
    # PNG carries the prompt like ComfyUI's SaveImage does.
    assert json.loads(Image.open(out / "a_t.png").text["prompt"])["2"]["inputs"]["amount"] == 0.1


def test_rerun_resumes_and_redoes_nothing(engine, tmp_path):
    inputs = _images(tmp_path / "in")
    _run(engine, [inputs], tmp_path / "out")
    stamps = {p.name: p.stat().st_mtime_ns for p in (tmp_path / "out").glob("*.png")}
    Brighten.calls = 0
    summary = _run(engine, [inputs], tmp_path / "out")
    assert summary.count("skipped") == 3 and Brighten.calls == 0
    assert all(job.reason == "already_done" for job in summary.jobs)
    assert stamps == {p.name: p.stat().st_mtime_ns for p in (tmp_path / "out").glob("*.png")}
    (tmp_path / "out" / "b_t.png").unlink()  # a lost output is made again, the rest is kept
    summary = _run(engine, [inputs], tmp_path / "out")
    assert [job.status for job in summary.jobs] == ["skipped", "done", "skipped"]


def test_interrupted_manifest_line_is_ignored(tmp_path):
    path = tmp_path / MANIFEST_NAME
    path.write_text(json.dumps({"job": "k1", "status": "done", "outputs": ["a.png"]}) + "\n" + '{"job": "k2", "sta')
    (tmp_path / "a.png").write_bytes(b"x")
    manifest = Manifest(path)
    assert set(manifest.records) == {"k1"} and manifest.owner("a.png", tmp_path / "a.png") == "k1"
    assert manifest.torn_lines == 1


def test_never_overwrites_user_files_unless_asked(engine, tmp_path):
    inputs = _images(tmp_path / "in", names=("a.png",))
    out = tmp_path / "out"
    out.mkdir()
    (out / "a_t.png").write_bytes(b"the user's own file")
    summary = _run(engine, [inputs], out)
    assert summary.jobs[0].status == "exists" and summary.jobs[0].reason == "output_exists"
    assert summary.exit_code == 4 and "nothing was written" in summary.jobs[0].message
    assert (out / "a_t.png").read_bytes() == b"the user's own file"
    summary = _run(engine, [inputs], out, overwrite=True)
    assert summary.jobs[0].status == "done"
    Image.open(out / "a_t.png").load()


def test_changed_parameters_do_not_overwrite_earlier_results(engine, tmp_path):
    inputs = _images(tmp_path / "in", names=("a.png",))
    _run(engine, [inputs], tmp_path / "out", sets=["Light.amount=0.1"])
    before = (tmp_path / "out" / "a_t.png").read_bytes()
    summary = _run(engine, [inputs], tmp_path / "out", sets=["Light.amount=0.3"])
    assert summary.jobs[0].reason == "output_exists"
    assert (tmp_path / "out" / "a_t.png").read_bytes() == before


def test_atomic_outputs_leave_no_partial_file(engine, tmp_path, monkeypatch):
    inputs = _images(tmp_path / "in", names=("a.png",))

    def broken_replace(src, dst):
        raise OSError("disk full (simulated)")

    monkeypatch.setattr(outputs_module.os, "replace", broken_replace)
    summary = _run(engine, [inputs], tmp_path / "out")
    assert summary.jobs[0].status == "failed" and summary.jobs[0].reason == "io_error"
    assert [p.name for p in (tmp_path / "out").iterdir()] == [MANIFEST_NAME]  # no partial output, no temp file
    monkeypatch.undo()
    summary = _run(engine, [inputs], tmp_path / "out")
    assert summary.jobs[0].status == "done"


def test_deterministic_unique_names_for_folders(tmp_path):
    root = _images(tmp_path / "in", names=("a.png", "sub/a.png", "sub/deeper/b.jpg"))
    jobs = collect_inputs([root], recursive=True)
    assert [job.stem for job in jobs] == ["a", "sub__a", "sub__deeper__b"]
    twice = collect_inputs([root / "a.png", root / "sub" / "a.png"])
    assert len({job.stem for job in twice}) == 2 and all(job.stem.startswith("a_") for job in twice)
    assert [j.stem for j in collect_inputs([root / "a.png", root / "sub" / "a.png"])] == [j.stem for j in twice]


def test_csv_rows_override_parameters(engine, tmp_path):
    _images(tmp_path / "in", names=("a.png", "b.png"), value=100)
    (tmp_path / "jobs.csv").write_text("image,Light.amount,2.mode\nin/a.png,0.2,\nin/b.png,0.2,keep\nin/a.png,0.4,\n")
    summary = _run(engine, [tmp_path / "jobs.csv"], tmp_path / "out")
    assert summary.count("done") == 3, summary.text()
    names = [job.outputs[0] for job in summary.jobs]
    assert names == ["a_row2_t.png", "b_t.png", "a_row4_t.png"]
    means = [np.asarray(Image.open(tmp_path / "out" / n)).mean() for n in names]
    assert means == pytest.approx([100 + 51, 101, 100 + 102], abs=0.6)
    assert json.loads((tmp_path / "out" / "b_t.json").read_text())["parameters"] == {"2.amount": 0.2, "2.mode": "keep"}


def test_csv_value_errors_stop_before_anything_runs(engine, tmp_path):
    _images(tmp_path / "in", names=("a.png", "b.png"))
    (tmp_path / "jobs.csv").write_text("image,Light.amount\nin/a.png,0.2\nin/b.png,0.9\n")
    Brighten.calls = 0
    with pytest.raises(ParameterError, match=r"b.png \(CSV line 3\).*0.9 is above the maximum 0.5"):
        _run(engine, [tmp_path / "jobs.csv"], tmp_path / "out")
    assert Brighten.calls == 0 and not (tmp_path / "out").exists()
    (tmp_path / "bad.csv").write_text("picture,Light.amount\nin/a.png,0.2\n")
    with pytest.raises(InputError, match="needs an image column"):
        _run(engine, [tmp_path / "bad.csv"], tmp_path / "out")


def test_engine_caches_unchanged_nodes(engine, tmp_path):
    image = _images(tmp_path / "in", names=("a.png",)) / "a.png"
    graph = json.loads(json.dumps(GRAPH))
    graph["1"]["inputs"]["image"] = str(image)
    first = engine.run(graph)
    graph["3"]["inputs"]["filename_prefix"] = "other"
    second = engine.run(graph)
    assert first.cached == [] and second.cached == ["1", "2"]
    assert second.outputs.keys() == first.outputs.keys()
    graph["2"]["inputs"]["amount"] = 0.2
    assert engine.run(graph).cached == ["1"]
    Image.fromarray(np.full((24, 32, 3), 99, np.uint8)).save(image)  # same path, new content
    rerun = engine.run(graph)
    assert rerun.cached == [] and float(rerun.node_results["1"][0][0].mean()) == pytest.approx(99 / 255)


def test_engine_maps_over_lists_and_handles_ui_dicts():
    class Many:
        RETURN_TYPES = ("IMAGE",)
        OUTPUT_IS_LIST = (True,)
        FUNCTION = "run"

        @classmethod
        def INPUT_TYPES(cls):
            return {"required": {}}

        def run(self):
            return ([torch.zeros(1, 2, 2, 3), torch.ones(1, 2, 2, 3)],)

    class Show:
        RETURN_TYPES = ("FLOAT",)
        FUNCTION = "run"
        OUTPUT_NODE = True

        @classmethod
        def INPUT_TYPES(cls):
            return {"required": {"image": ("IMAGE",)}}

        def run(self, image):
            return {"ui": {"means": [float(image.mean())]}, "result": (float(image.mean()),)}

    eng = InProcessEngine(classes={"Many": Many, "Show": Show})
    try:
        result = eng.run({"1": {"class_type": "Many", "inputs": {}}, "2": {"class_type": "Show", "inputs": {"image": ["1", 0]}}})
    finally:
        eng.close()
    assert result.outputs["2"] == {"means": [0.0, 1.0]}  # called once per list item, like ComfyUI
    assert result.node_results["2"] == ([0.0, 1.0],)


def test_engine_lets_large_outputs_go_once_read_and_does_not_cache_them(monkeypatch):
    # A small limit stands in for the 64 MB of a real run (a 24 MP IMAGE is 288 MB).
    from portrait_polish.runner import engine_local

    monkeypatch.setattr(engine_local, "LARGE_OUTPUT_BYTES", 1000)
    seen: dict[str, int] = {"big": 0}

    class Big:
        RETURN_TYPES = ("IMAGE", "IMAGE", "FLOAT")
        FUNCTION = "run"

        @classmethod
        def INPUT_TYPES(cls):
            return {"required": {"value": ("FLOAT", {"default": 0.5})}}

        def run(self, value):
            seen["big"] += 1
            return (torch.full((1, 20, 20, 3), value), torch.zeros(1, 20, 20, 3), value)

    class Halve:
        RETURN_TYPES = ("IMAGE",)
        FUNCTION = "run"

        @classmethod
        def INPUT_TYPES(cls):
            return {"required": {"image": ("IMAGE",)}}

        def run(self, image):
            return (image * 0.5,)

    class Show:
        RETURN_TYPES = ("FLOAT",)
        FUNCTION = "run"
        OUTPUT_NODE = True

        @classmethod
        def INPUT_TYPES(cls):
            return {"required": {"image": ("IMAGE",), "value": ("FLOAT",)}}

        def run(self, image, value):
            return {"ui": {"mean": [float(image.mean()) + value]}, "result": (float(image.mean()),)}

    graph = {
        "1": {"class_type": "Big", "inputs": {"value": 0.8}},
        "2": {"class_type": "Halve", "inputs": {"image": ["1", 0]}},
        "3": {"class_type": "Show", "inputs": {"image": ["2", 0], "value": ["1", 2]}},
    }
    eng = InProcessEngine(classes={"Big": Big, "Halve": Halve, "Show": Show})
    try:
        first = eng.run(graph)
        # Big's unread second image went at once, its first once Halve read it, Halve's
        # once Show read it; the small FLOAT stays (reports are read from such outputs).
        assert first.node_results["1"][0] is engine_local.RELEASED and first.node_results["1"][1] is engine_local.RELEASED
        assert first.node_results["1"][2] == [0.8] and first.node_results["2"][0] is engine_local.RELEASED
        assert first.outputs["3"] == {"mean": [pytest.approx(0.4 + 0.8)]}
        # A rerun cannot take Big's image from the cache (it was never kept): Big runs again.
        second = eng.run(graph)
        assert seen["big"] == 2 and "1" not in second.cached and second.outputs == first.outputs
    finally:
        eng.close()


def test_graph_without_output_node(engine, tmp_path):
    graph = {k: v for k, v in GRAPH.items() if k != "3"}
    with pytest.raises(WorkflowError, match="no output node"):
        _run(engine, [_images(tmp_path / "in", names=("a.png",))], tmp_path / "out", graph=graph)


def test_missing_inputs(engine, tmp_path):
    with pytest.raises(InputError, match="does not exist"):
        _run(engine, [tmp_path / "nope.png"], tmp_path / "out")
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="has no images"):
        _run(engine, [tmp_path / "empty"], tmp_path / "out")


def test_cli_set_errors_exit_2_and_run_nothing(tmp_path, capsys):
    workflow = tmp_path / "core.json"
    workflow.write_text(json.dumps({k: v for k, v in GRAPH.items() if k != "2"} | {
        "3": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": "t"}, "_meta": {"title": "Save"}}}))
    image = _images(tmp_path / "in", names=("a.png",)) / "a.png"
    code = main(["run", str(workflow), str(image), "-o", str(tmp_path / "out"), "--set", "Save.images=3", "--json"])
    assert code == 2
    assert "is connected to node 1" in json.loads(capsys.readouterr().out)["error"]
    assert not (tmp_path / "out").exists()
    code = main(["run", str(workflow), str(image), "-o", str(tmp_path / "out"), "--set", "Save.filename_prefix=x", "--json"])
    report = json.loads(capsys.readouterr().out)
    assert code == 0 and report["done"] == 1 and report["jobs"][0]["outputs"] == ["a_core.png"]
    code = main(["run", str(workflow), str(tmp_path / "in"), "-o", str(tmp_path / "out"), "--json"])
    report = json.loads(capsys.readouterr().out)
    assert code == 0 and report["skipped"] == 1


def test_python_api_and_cli_agree(engine, tmp_path):
    inputs = _images(tmp_path / "in", names=("a.png",))
    summary = run_workflow(GRAPH, inputs, tmp_path / "api", engine=engine, sets={"Light.amount": 0.25}, name="t")
    assert summary.count("done") == 1
    pixels = np.asarray(Image.open(tmp_path / "api" / "a_t.png"))
    assert pixels.mean() == pytest.approx(40 + 63.75, abs=1.0)  # SaveImage truncates, like ComfyUI


def test_cli_bundled_name_and_print_prompt(tmp_path, capsys):
    image = _images(tmp_path / "in", names=("a.png",)) / "a.png"
    code = main(["run", "natural_headshot", str(image), "-o", str(tmp_path / "out"), "--print-prompt",
                 "--set", "TeethWhiten.strength=0.25"])
    prompt = json.loads(capsys.readouterr().out)
    assert code == 0 and not (tmp_path / "out").exists()
    teeth = next(node for node in prompt.values() if node["class_type"] == "PortraitPolishTeethWhiten")
    assert teeth["inputs"]["strength"] == 0.25


def test_in_process_work_folders_do_not_pile_up(tmp_path, monkeypatch):
    """A Batch that fails to start closes the engine it made; a killed run's work folder
    (its process gone) is removed by the next engine."""
    import subprocess
    import sys
    import tempfile

    from portrait_polish.runner import engine_local

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    stale = tmp_path / f"{engine_local.WORK_DIR_PREFIX}{int(dead.stdout)}-abc123"
    (stale / "output").mkdir(parents=True)
    live = tmp_path / f"{engine_local.WORK_DIR_PREFIX}1-xyz"  # pid 1 is alive: never touched
    live.mkdir()
    with pytest.raises(WorkflowError, match="no output node"):
        Batch({"1": GRAPH["1"]}, tmp_path / "out", progress=False)  # its own in-process engine
    assert not stale.exists() and live.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == [live.name]  # the failed Batch's own folder is gone too
