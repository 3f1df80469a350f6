"""``portrait-polish models list | download | verify``: in-process through
``runner.cli.main`` and as the installed console script, with its exit codes."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from portrait_polish.core import models
from portrait_polish.runner import cli, cli_models

YUNET = "face_detection_yunet_2026may.onnx"
SCRIPT = Path(sys.executable).with_name("portrait-polish")


@pytest.fixture()
def env(monkeypatch, tmp_path):
    """Offline, shared models on the path, a private (empty) user cache."""
    monkeypatch.setenv(models.ENV_OFFLINE, "1")
    monkeypatch.setenv(models.ENV_CACHE, str(tmp_path / "cache"))
    monkeypatch.delitem(sys.modules, "folder_paths", raising=False)
    return tmp_path


def corrupt_copy(models_dir: Path, target: Path) -> Path:
    data = bytearray((models_dir / YUNET).read_bytes())
    data[len(data) // 2] ^= 0xFF
    target.mkdir(parents=True, exist_ok=True)
    (target / YUNET).write_bytes(bytes(data))
    return target / YUNET


def test_list_shows_every_model_with_licence_required_and_location(env, models_dir, monkeypatch, capsys):
    monkeypatch.setenv(models.ENV_MODELS, str(models_dir))
    assert cli.main(["models", "list"]) == 0
    out = capsys.readouterr().out
    for spec in models.registry().values():
        line = next(line for line in out.splitlines() if line.startswith(spec.id + " "))
        assert spec.filename in line and spec.folder in line
        label = cli_models.licence_label(spec)
        assert label in line
        assert spec.license.startswith(label.removeprefix("NON-COMMERCIAL: ").removesuffix("...")[:30])
        assert (" yes " in line) == spec.required
        if spec.commercial_use:
            assert "NON-COMMERCIAL" not in line
        else:
            assert "NON-COMMERCIAL" in line
    yunet = next(line for line in out.splitlines() if line.startswith("yunet "))
    assert yunet.endswith(str(models_dir / YUNET))
    x2 = next(line for line in out.splitlines() if line.startswith("realesrgan_x2plus "))
    assert x2.endswith("MISSING")


def test_list_json_is_machine_readable(env, models_dir, monkeypatch, capsys):
    monkeypatch.setenv(models.ENV_MODELS, str(models_dir))
    assert cli.main(["models", "list", "--json"]) == 0
    rows = {row["id"]: row for row in json.loads(capsys.readouterr().out)}
    assert set(rows) == set(models.registry())
    assert rows["yunet"]["path"] == str(models_dir / YUNET)
    assert rows["realesrgan_x2plus"]["path"] is None


def test_list_flags_non_commercial_models(env, monkeypatch, capsys):
    nc = models.ModelSpec(
        id="nc_model", filename="nc.onnx", url="https://example.invalid/nc.onnx", sha256="0" * 64, size=1,
        license="CC BY-NC 4.0", commercial_use=False, folder="face_recognition",
    )
    monkeypatch.setattr(models, "registry", lambda: {"nc_model": nc})
    assert cli.main(["models", "list"]) == 0
    assert "NON-COMMERCIAL: CC BY-NC 4.0" in capsys.readouterr().out


def test_verify_all_installed_files_pass(env, models_dir, monkeypatch, capsys):
    # The official files only: ../shared/models also holds a re-saved animevideov3 copy,
    # which verify rightly refuses (see the next test).
    official = env / "official"
    official.mkdir()
    for name in (YUNET, "face_landmarker.task", "selfie_segmentation.tflite"):
        (official / name).symlink_to(models_dir / name)
    monkeypatch.setenv(models.ENV_MODELS, str(official))
    assert cli.main(["models", "verify"]) == 0
    out = capsys.readouterr().out
    assert f"ok          yunet: {official / YUNET}" in out
    assert "ok          dlib_resnet:" in out


def test_verify_refuses_a_file_that_is_not_the_official_release(env, models_dir, monkeypatch, capsys):
    monkeypatch.setenv(models.ENV_MODELS, str(models_dir))
    assert cli.main(["models", "verify", "realesr_animevideov3"]) == 1
    err = capsys.readouterr().err
    assert str(models_dir / "realesr-animevideov3.pth") in err and "models.json says 2504012" in err


def test_verify_names_the_corrupt_file_and_exits_1(env, models_dir, monkeypatch, capsys):
    bad = corrupt_copy(models_dir, env / "mine")
    monkeypatch.setenv(models.ENV_MODELS, os.pathsep.join([str(env / "mine"), str(models_dir)]))
    assert cli.main(["models", "verify"]) == 1
    err = capsys.readouterr().err
    assert "CORRUPT" in err and str(bad) in err and "sha256" in err


def test_verify_truncated_file(env, models_dir, monkeypatch, capsys):
    short = env / "short" / YUNET
    short.parent.mkdir()
    short.write_bytes((models_dir / YUNET).read_bytes()[:1000])
    monkeypatch.setenv(models.ENV_MODELS, str(short.parent))
    assert cli.main(["models", "verify", "yunet"]) == 1
    assert f"{short} is truncated" in capsys.readouterr().err


def test_verify_missing_and_unknown_ids(env, monkeypatch, capsys):
    monkeypatch.setenv(models.ENV_MODELS, str(env / "empty"))
    assert cli.main(["models", "verify", "yunet"]) == 3
    assert "MISSING     yunet" in capsys.readouterr().err
    assert cli.main(["models", "verify", "no_such_model"]) == 2
    assert "unknown model id(s): no_such_model" in capsys.readouterr().err
    # Without ids, missing models are listed but are not an error.
    assert cli.main(["models", "verify"]) == 0


def test_download_offline_says_missing_and_exits_3(env, monkeypatch, capsys):
    monkeypatch.setenv(models.ENV_MODELS, str(env / "empty"))
    assert cli.main(["models", "download", "yunet"]) == 3
    err = capsys.readouterr().err
    assert "PORTRAIT_POLISH_OFFLINE=1" in err and models.spec_for("yunet").url in err


def test_download_skips_installed_and_verified(env, models_dir, monkeypatch, capsys):
    monkeypatch.setenv(models.ENV_MODELS, str(models_dir))
    assert cli.main(["models", "download"]) == 0  # every required model is already here
    out = capsys.readouterr().out
    for spec in models.registry().values():
        if spec.required:
            assert f"ok          {spec.id}:" in out
    assert cli.main(["models", "download", "nope"]) == 2


class _Weights(BaseHTTPRequestHandler):
    files: dict[str, bytes] = {}

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        pass

    def do_GET(self) -> None:  # noqa: N802
        body = self.files.get(self.path)
        if body is None:
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture()
def weights_server():
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Weights)
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()


def _registry_served_by(base: str) -> dict[str, models.ModelSpec]:
    a, b = b"required weights" * 50, b"optional weights" * 70
    _Weights.files = {"/a.onnx": a, "/b.pth": b}
    common = {"license": "MIT", "commercial_use": True}
    return {
        "a": models.ModelSpec(id="a", filename="a.onnx", url=f"{base}/a.onnx", sha256=hashlib.sha256(a).hexdigest(),
                              size=len(a), folder="face_detection", required=True, **common),
        "b": models.ModelSpec(id="b", filename="b.pth", url=f"{base}/b.pth", sha256=hashlib.sha256(b).hexdigest(),
                              size=len(b), folder="upscale_models", required=False, **common),
        "bad": models.ModelSpec(id="bad", filename="bad.pth", url=f"{base}/b.pth", sha256="2" * 64,
                                size=len(b), folder="upscale_models", required=False, **common),
    }


def test_download_required_then_all_into_models_dir(env, weights_server, monkeypatch, capsys):
    registry = _registry_served_by(weights_server)
    monkeypatch.setattr(models, "registry", lambda: registry)
    monkeypatch.delenv(models.ENV_OFFLINE)
    monkeypatch.delenv(models.ENV_MODELS, raising=False)
    target = env / "ComfyUI" / "models"
    assert cli.main(["models", "--models-dir", str(target), "download", "--no-progress"]) == 0
    assert (target / "face_detection" / "a.onnx").read_bytes() == _Weights.files["/a.onnx"]
    assert not (target / "upscale_models").exists()  # b is optional
    capsys.readouterr()
    # --all: b arrives, "bad" is refused (checksum) with its file named, exit 1.
    assert cli.main(["models", "--models-dir", str(target), "download", "--all", "--no-progress"]) == 1
    captured = capsys.readouterr()
    assert (target / "upscale_models" / "b.pth").is_file()
    assert not (target / "upscale_models" / "bad.pth").exists()
    assert "FAILED      bad:" in captured.err and "bad.pth" in captured.err
    # Into the user cache when no --models-dir is given.
    assert cli.main(["models", "download", "b", "--no-progress"]) == 0
    assert (env / "cache" / "upscale_models" / "b.pth").is_file()


def test_download_when_the_server_is_gone_exits_1(env, monkeypatch, capsys):
    import socket

    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()
    registry = _registry_served_by(f"http://127.0.0.1:{port}")
    monkeypatch.setattr(models, "registry", lambda: registry)
    monkeypatch.delenv(models.ENV_OFFLINE)
    assert cli.main(["models", "download", "a", "--no-progress"]) == 1
    err = capsys.readouterr().err
    assert "FAILED      a:" in err and "a.onnx" in err and "cannot reach" in err


# --- the installed console script -----------------------------------------------------------


def _script(*args: str, extra_env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    command = [str(SCRIPT)] if SCRIPT.exists() else [shutil.which("portrait-polish") or "portrait-polish"]
    environment = {**os.environ, **extra_env}
    return subprocess.run([*command, *args], capture_output=True, text=True, env=environment, timeout=180)


def test_console_script_verify_and_exit_codes(models_dir, tmp_path):
    base = {"PORTRAIT_POLISH_OFFLINE": "1", "PORTRAIT_POLISH_CACHE": str(tmp_path / "cache")}
    official = tmp_path / "official"
    official.mkdir()
    for name in (YUNET, "face_landmarker.task", "selfie_segmentation.tflite"):
        (official / name).symlink_to(models_dir / name)
    good = _script("models", "verify", extra_env={**base, "PORTRAIT_POLISH_MODELS": str(official)})
    assert good.returncode == 0, good.stderr
    assert "ok          yunet:" in good.stdout
    bad = corrupt_copy(models_dir, tmp_path / "bad")
    corrupt = _script("models", "verify", "yunet", extra_env={**base, "PORTRAIT_POLISH_MODELS": str(tmp_path / "bad")})
    assert corrupt.returncode == 1 and str(bad) in corrupt.stderr
    listing = _script("models", "list", "--json", extra_env={**base, "PORTRAIT_POLISH_MODELS": str(models_dir)})
    assert listing.returncode == 0
    assert {row["id"] for row in json.loads(listing.stdout)} == set(models.registry())
    usage = _script("models", "frobnicate", extra_env=base)
    assert usage.returncode == 2
