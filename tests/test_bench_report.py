"""bench/bench.py reports why a case failed, not the noise printed after the failure."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parent.parent / "bench" / "bench.py"


def _bench():  # noqa: ANN202 - the bench script as a module
    spec = importlib.util.spec_from_file_location("bench", BENCH)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("bench", module)
    spec.loader.exec_module(module)
    return module


def test_a_failed_batch_reports_its_jobs_error():
    bench = _bench()
    summary = (
        "done 0, skipped 0, exists 0, failed 4 in 0.4 s; outputs in /tmp/out0\n"
        "  failed    /tmp/in0/p0.png: execution_error: node 2 (PortraitPolishFaceParse) failed: "
        "ModelNotFoundError: Portrait Polish needs the model file 'yunet.onnx' (yunet), and it is not on this machine.\n"
        "Download it from https://example.invalid/yunet.onnx"
    )
    line = bench.error_line(RuntimeError(summary))
    assert line.startswith("ModelNotFoundError: Portrait Polish needs the model file 'yunet.onnx'")
    assert bench.error_line(ValueError("bad size")) == "ValueError: bad size"


def test_the_parent_reads_the_childs_error_row_before_any_later_output():
    bench = _bench()
    stdout = "warming up\n" + json.dumps({"error": "ModelNotFoundError: missing"}) + "\n"
    assert bench._reported_error(stdout) == "ModelNotFoundError: missing"
    assert bench._reported_error("no json here\n") is None
