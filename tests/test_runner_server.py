"""Server mode against a fake ComfyUI on 127.0.0.1 (tests/fake_comfy.py) that speaks the
protocol shapes seen on a real host and executes prompts with the in-process engine. It can
restart mid-batch (queue and history lost, files kept), drop the websocket, reject prompts,
fail a node, and be slow.
"""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from portrait_polish.runner.batch import MANIFEST_NAME, Batch
from portrait_polish.runner.cli import main
from portrait_polish.runner.engine_server import ServerEngine
from portrait_polish.runner.errors import ServerUnavailable
from portrait_polish.runner.objectinfo import pack_classes

aiohttp = pytest.importorskip("aiohttp")
from fake_comfy import CORE_GRAPH, FakeComfy, free_port  # noqa: E402


@pytest.fixture
def fake(tmp_path):
    server = FakeComfy(tmp_path / "server")
    yield server
    server.close()


def _images(folder: Path, count: int, size: int = 96) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(7)
    for index in range(count):
        pixels = rng.integers(0, 256, (size, size + index, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(folder / f"img{index:02d}.png")
    return folder


def _engine(server: FakeComfy, **kw) -> ServerEngine:
    return ServerEngine(server.url, retries=kw.pop("retries", 6), backoff=0.1, max_backoff=0.5, poll_interval=0.3, **kw)


def _run(server, inputs, out, concurrency=1, timeout=30.0, graph=None, **kw):
    engine = _engine(server)
    try:
        batch = Batch(graph or CORE_GRAPH, out, engine=engine, concurrency=concurrency, timeout=timeout, progress=False, name="core", **kw)
        batch.add(*inputs)
        return batch.run()
    finally:
        engine.close()


def _same_pixels(a: Path, b: Path) -> bool:
    return np.array_equal(np.asarray(Image.open(a)), np.asarray(Image.open(b)))


def test_normal_run_uploads_follows_websocket_downloads(fake, tmp_path):
    inputs = _images(tmp_path / "in", 3)
    summary = _run(fake, [inputs], tmp_path / "out", concurrency=2)
    assert summary.exit_code == 0, summary.text()
    assert summary.count("done") == 3
    for job in summary.jobs:
        out = tmp_path / "out" / job.outputs[0]
        assert _same_pixels(out, Path(job.input))  # LoadImage -> SaveImage is lossless for 8-bit PNGs
        sidecar = json.loads((tmp_path / "out" / job.sidecars[0]).read_text())
        assert sidecar["engine"]["comfyui_version"] == "0.3.64-fake"
        assert sidecar["prompt_id"] in fake.completed
    assert all(count == 1 for count in fake.posts.values())
    assert sum(fake.completed.values()) == 3


def test_server_restart_mid_batch_loses_nothing_and_repeats_nothing(fake, tmp_path):
    inputs = _images(tmp_path / "in", 5)
    fake.exec_delay = 0.1
    fake.restart_on_execution = 2  # goes down while running the 2nd prompt; queue and history are lost
    summary = _run(fake, [inputs], tmp_path / "out", concurrency=3)
    assert summary.exit_code == 0, summary.text()
    assert summary.count("done") == 5
    assert len(fake.completed) == 5 and all(count == 1 for count in fake.completed.values())
    assert max(fake.posts.values()) >= 2  # lost prompts were queued again under the same prompt_id
    outputs = sorted(p.name for p in (tmp_path / "out").glob("*.png"))
    assert outputs == [f"img{i:02d}_core.png" for i in range(5)]
    lines = [json.loads(line) for line in (tmp_path / "out" / MANIFEST_NAME).read_text().splitlines()]
    done = [rec["input"] for rec in lines if rec["status"] == "done"]
    assert sorted(done) == sorted(set(done)) and len(done) == 5


def test_400_node_errors_is_reported_and_not_retried(fake, tmp_path):
    fake.reject_with = {
        "error": {"type": "prompt_outputs_failed_validation", "message": "Prompt outputs failed validation", "details": "", "extra_info": {}},
        "node_errors": {"2": {"errors": [{"type": "value_bigger_than_max", "message": "Value bigger than max",
                                          "details": "filename_prefix: nope", "extra_info": {"input_name": "filename_prefix"}}],
                              "dependent_outputs": ["2"], "class_type": "SaveImage"}},
    }
    summary = _run(fake, [_images(tmp_path / "in", 2)], tmp_path / "out")
    assert summary.exit_code == 1
    assert [job.reason for job in summary.jobs] == ["node_errors", "node_errors"]
    message = summary.jobs[0].message
    assert "node 2 (SaveImage" in message and "'filename_prefix'" in message and "filename_prefix: nope" in message
    assert all(count == 1 for count in fake.posts.values())  # never retried
    assert not list((tmp_path / "out").glob("*.png"))


def test_execution_error_fails_that_image_only(fake, tmp_path):
    inputs = _images(tmp_path / "in", 2)
    Image.new("RGB", (8, 8)).save(inputs / "broken.png")  # reads fine here; the server's loader fails on it

    loader = "PortraitPolishLoadPhoto"  # the runner's loader for LoadImage on a server with the pack

    class FailingLoad(fake.engine.classes[loader]):
        def load(self, image, to_srgb=False):
            if "broken" in image:
                raise RuntimeError("the server cannot read this one")
            return super().load(image, to_srgb)

    fake.engine.classes[loader] = FailingLoad
    summary = _run(fake, [inputs], tmp_path / "out")
    by_name = {Path(job.input).name: job for job in summary.jobs}
    assert summary.exit_code == 1
    assert by_name["broken.png"].status == "failed" and by_name["broken.png"].reason == "execution_error"
    assert f"node 1 ({loader})" in by_name["broken.png"].message
    assert by_name["img00.png"].status == by_name["img01.png"].status == "done"
    records = [json.loads(line) for line in (tmp_path / "out" / MANIFEST_NAME).read_text().splitlines()]
    assert any(r["status"] == "failed" and r["reason"] == "execution_error" for r in records)


def test_dropped_websocket_falls_back_to_history_polling(fake, tmp_path):
    fake.drop_websockets = True
    fake.exec_delay = 0.2
    engine = _engine(fake)
    try:
        batch = Batch(CORE_GRAPH, tmp_path / "out", engine=engine, progress=False, name="core", timeout=20)
        batch.add(_images(tmp_path / "in", 2))
        summary = batch.run()
        assert summary.count("done") == 2, summary.text()
        assert engine.stats["history_polls"] >= 2
        assert not engine._ws_connected.is_set()
    finally:
        engine.close()


def test_unreachable_server_fails_fast_with_a_clear_message(tmp_path):
    started = time.monotonic()
    engine = ServerEngine(f"http://127.0.0.1:{free_port()}", retries=2, backoff=0.1)
    with pytest.raises(ServerUnavailable, match="cannot reach ComfyUI at http://127.0.0.1:.*connection refused"):
        Batch(CORE_GRAPH, tmp_path / "out", engine=engine, progress=False)
    assert time.monotonic() - started < 10


def test_unreachable_server_cli_exit_code(tmp_path, capsys):
    image = _images(tmp_path / "in", 1) / "img00.png"
    workflow = tmp_path / "core.json"
    workflow.write_text(json.dumps(CORE_GRAPH))
    code = main(["run", str(workflow), str(image), "-o", str(tmp_path / "out"), "--server", f"127.0.0.1:{free_port()}",
                 "--retries", "1", "--json"])
    assert code == 3
    assert "cannot reach ComfyUI" in json.loads(capsys.readouterr().out)["error"]


def test_timeout_interrupts_the_prompt(fake, tmp_path):
    fake.exec_delay = 3.0
    summary = _run(fake, [_images(tmp_path / "in", 1)], tmp_path / "out", timeout=0.8)
    assert summary.jobs[0].status == "failed" and summary.jobs[0].reason == "timeout"
    assert any("prompt_id" in body for body in fake.interrupts)


def test_cancel_interrupts_running_prompt_and_keeps_manifest_consistent(fake, tmp_path):
    fake.exec_delay = 1.0
    engine = _engine(fake)
    try:
        batch = Batch(CORE_GRAPH, tmp_path / "out", engine=engine, progress=False, name="core", concurrency=2)
        batch.add(_images(tmp_path / "in", 4))
        threading.Timer(0.5, batch._cancel).start()  # what Ctrl-C does
        summary = batch.run()
    finally:
        engine.close()
    assert summary.interrupted and summary.exit_code == 130
    assert fake.interrupts, "the running prompt was not interrupted on the server"
    records = {}
    for line in (tmp_path / "out" / MANIFEST_NAME).read_text().splitlines():
        record = json.loads(line)
        records[record["job"]] = record
    assert all(r["status"] in ("cancelled", "done") for r in records.values())
    for record in records.values():  # every output the manifest claims exists, whole
        for name in record.get("outputs", []):
            Image.open(tmp_path / "out" / name).load()
    # A rerun finishes the rest and redoes nothing.
    before = sum(fake.completed.values())
    fake.exec_delay = 0.0
    summary = _run(fake, [tmp_path / "in"], tmp_path / "out")
    assert summary.count("done") + summary.count("skipped") == 4
    assert sum(fake.completed.values()) - before == summary.count("done")


def test_resume_after_crash_recovers_finished_prompt_from_history(fake, tmp_path):
    inputs = _images(tmp_path / "in", 1)
    summary = _run(fake, [inputs], tmp_path / "out")
    manifest = tmp_path / "out" / MANIFEST_NAME
    records = [json.loads(line) for line in manifest.read_text().splitlines()]
    # Simulate a runner killed after the server finished but before the output was written.
    (tmp_path / "out" / summary.jobs[0].outputs[0]).unlink()
    (tmp_path / "out" / summary.jobs[0].sidecars[0]).unlink()
    manifest.write_text("\n".join(json.dumps(r) for r in records if r["status"] == "started") + "\n")
    executed = sum(fake.completed.values())
    summary = _run(fake, [inputs], tmp_path / "out")
    assert summary.count("done") == 1
    assert sum(fake.completed.values()) == executed  # taken from /history, not run again


def test_pack_workflow_on_fake_server_matches_in_process(fake, tmp_path, models_dir):
    """The default workflow through the server protocol gives the same pixels as in-process."""
    from helpers import portrait

    from portrait_polish.runner import run_workflow

    workflow = Path(__file__).resolve().parent.parent / "workflows" / "api" / "natural_headshot.json"
    if not workflow.exists() or "PortraitPolishFaceParse" not in pack_classes()[0]:
        pytest.skip("default workflow or its nodes are not there yet")
    frame = (portrait("obama_2.jpg", 512)[0].numpy() * 255).round().astype(np.uint8)
    image = tmp_path / "obama.png"
    Image.fromarray(frame).save(image)
    local = run_workflow(workflow, image, tmp_path / "local")
    remote_engine = _engine(fake)
    try:
        remote = run_workflow(workflow, image, tmp_path / "remote", engine=remote_engine)
    finally:
        remote_engine.close()
    assert local.count("done") == remote.count("done") == 1, (local.text(), remote.text())
    # The bar: PSNR >= 50 dB. Not bit-equality: two runs of the same graph can differ
    # by a rounding step (multi-threaded float sums in the parser), i.e. one 8-bit level.
    a = np.asarray(Image.open(tmp_path / "local" / local.jobs[0].outputs[0])).astype(np.float64)
    b = np.asarray(Image.open(tmp_path / "remote" / remote.jobs[0].outputs[0])).astype(np.float64)
    mse = float(((a - b) ** 2).mean())
    assert mse == 0.0 or 10 * np.log10(255.0**2 / mse) >= 50.0, f"PSNR {10 * np.log10(255.0**2 / mse):.1f} dB"


def test_a_url_that_answers_but_is_not_comfyui_is_exit_3(tmp_path, capsys):
    """A web server that answers HTML (a wrong port, a proxy's page): exit 3, one line."""
    import http.server

    class Page(http.server.BaseHTTPRequestHandler):
        other_paths = 404

        def do_GET(self):  # noqa: N802 - the http.server API
            body = b"<!DOCTYPE html><html><body><h1>Welcome to nginx!</h1></body></html>"
            self.send_response(200 if self.path == "/" else self.other_paths)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Page)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        image = _images(tmp_path / "in", 1) / "img00.png"
        workflow = tmp_path / "core.json"
        workflow.write_text(json.dumps(CORE_GRAPH))
        url = f"http://127.0.0.1:{server.server_address[1]}"
        code = main(["run", str(workflow), str(image), "-o", str(tmp_path / "out"), "--server", url, "--json"])
        captured = capsys.readouterr()
        report = json.loads(captured.out)
        assert code == 3 and report["exit_code"] == 3
        assert "is not a ComfyUI server" in report["error"] and "HTTP 404 (text/html)" in report["error"]
        assert "<html" not in captured.err and captured.err.strip().count("\n") == 0
        Page.other_paths = 200  # a page on every path is no better
        with pytest.raises(ServerUnavailable, match=r"not a ComfyUI server: GET /system_stats gave HTTP 200 \(text/html\)"):
            ServerEngine(url + "/", retries=0).check()
    finally:
        server.shutdown()
        server.server_close()
    assert not (tmp_path / "out").exists()


def test_rerun_waits_for_a_killed_runs_prompt_still_on_the_server(fake, tmp_path):
    """A runner killed while its prompt is queued or running: the rerun finds it on the
    server and waits for it instead of queueing the same work again."""
    inputs = _images(tmp_path / "in", 1)
    fake.exec_delay = 1.5
    out = tmp_path / "out"
    engine = _engine(fake)
    try:
        batch = Batch(CORE_GRAPH, out, engine=engine, progress=False, name="core")
        batch.add(inputs)
        job = batch.jobs[0]
        batch.manifest = None
        graph = batch._job_graph(job)
        prompt_id = "killed-runners-prompt"
        engine._post(graph, prompt_id, {})  # what the killed runner did: recorded, posted, then died
        out.mkdir()
        (out / MANIFEST_NAME).write_text(json.dumps({"job": job.key, "status": "started", "prompt_id": prompt_id,
                                                     "input": str(job.input), "workflow": "core"}) + "\n")
    finally:
        engine.close()
    summary = _run(fake, [inputs], out)
    assert summary.count("done") == 1, summary.text()
    assert fake.posts[prompt_id] == 1 and len(fake.posts) == 1  # nothing queued again
    assert sum(fake.completed.values()) == 1
    assert json.loads((out / summary.jobs[0].sidecars[0]).read_text())["prompt_id"] == prompt_id
