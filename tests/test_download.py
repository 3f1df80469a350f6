"""The model downloader against a real HTTP server on 127.0.0.1 (started by the test).

The server serves a good file (with Range support), the same size with wrong bytes, a
transfer that stops short of its Content-Length and closes, a transfer that stops short
once and then resumes, a server that ignores Range, a bz2 and a zip archive, and a 404; a
closed port stands for a server that is gone, and a socket that never answers for a stall.
"""

from __future__ import annotations

import bz2
import hashlib
import io
import os
import socket
import threading
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from portrait_polish.core.download import (
    CorruptFileError,
    DownloadError,
    download_model,
    file_sha256,
    verify_file,
)
from portrait_polish.core.models import ModelSpec

# Random-looking but reproducible payload: 300 KiB, so several 64 KiB+ reads happen.
PAYLOAD = hashlib.sha256(b"seed").digest() * (300 * 1024 // 32)
PAYLOAD_SHA = hashlib.sha256(PAYLOAD).hexdigest()


@dataclass
class Served:
    """What the test server did: one entry per request (path, Range header, bytes sent)."""

    requests: list[tuple[str, str | None, int]] = field(default_factory=list)
    flaky_failures_left: int = 1

    def ranges(self, path: str) -> list[str | None]:
        return [rng for p, rng, _ in self.requests if p == path]


def _zip_bytes() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as bundle:
        bundle.writestr("README.txt", "not the model")
        bundle.writestr("weights/model.bin", PAYLOAD)
    return buffer.getvalue()


BZ2_PAYLOAD = bz2.compress(PAYLOAD)
ZIP_PAYLOAD = _zip_bytes()


def _make_handler(served: Served) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - silence the server log
            pass

        def _send(self, body: bytes, *, honour_range: bool = True, send_only: int | None = None) -> None:
            start = 0
            rng = self.headers.get("Range")
            if honour_range and rng and rng.startswith("bytes="):
                start = int(rng[len("bytes=") :].split("-")[0])
                if start >= len(body):
                    self.send_response(416)
                    self.send_header("Content-Range", f"bytes */{len(body)}")
                    self.send_header("Content-Length", "0")
                    served.requests.append((self.path, rng, 0))
                    self.end_headers()
                    return
                self.send_response(206)
                self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
            else:
                self.send_response(200)
            chunk = body[start:]
            self.send_header("Content-Length", str(len(chunk)))
            self.send_header("Accept-Ranges", "bytes" if honour_range else "none")
            sent = chunk if send_only is None else chunk[:send_only]
            # Recorded before the headers go out: a client that gives up on the headers alone
            # (an unwritable .part) may raise, and the test look, before we get further.
            served.requests.append((self.path, rng, len(sent)))
            self.end_headers()
            self.wfile.write(sent)
            self.wfile.flush()
            if send_only is not None:
                self.close_connection = True

        def do_GET(self) -> None:  # noqa: N802 - http.server's name
            if self.path == "/good.bin":
                self._send(PAYLOAD)
            elif self.path == "/wrong.bin":
                self._send(bytes(len(PAYLOAD)))
            elif self.path == "/truncated.bin":
                # Every response stops after 50 000 bytes and closes: Content-Length promises more.
                self._send(PAYLOAD, send_only=50_000)
            elif self.path == "/flaky.bin":
                if served.flaky_failures_left > 0:
                    served.flaky_failures_left -= 1
                    self._send(PAYLOAD, send_only=100_000)
                else:
                    self._send(PAYLOAD)
            elif self.path == "/release/model.bin":
                # GitHub release assets answer with a redirect to their storage host.
                self.send_response(302)
                self.send_header("Location", "/good.bin")
                self.send_header("Content-Length", "0")
                self.end_headers()
                served.requests.append((self.path, self.headers.get("Range"), 0))
            elif self.path == "/norange.bin":
                self._send(PAYLOAD, honour_range=False)
            elif self.path == "/model.bin.bz2":
                self._send(BZ2_PAYLOAD)
            elif self.path == "/broken.bin.bz2":
                self._send(b"BZh9 this is not bzip2 data" * 100)
            elif self.path == "/bundle.zip":
                self._send(ZIP_PAYLOAD)
            else:
                self.send_error(404)

    return Handler


@pytest.fixture()
def server() -> Iterator[tuple[str, Served]]:
    served = Served()
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _make_handler(served))
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}", served
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)


@pytest.fixture(autouse=True)
def online(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PORTRAIT_POLISH_OFFLINE", raising=False)


def spec(url: str, filename: str = "model.bin", **overrides: object) -> ModelSpec:
    values: dict[str, object] = {
        "id": "test_model",
        "filename": filename,
        "url": url,
        "sha256": PAYLOAD_SHA,
        "size": len(PAYLOAD),
        "license": "MIT",
        "commercial_use": True,
        "folder": "face_detection",
    }
    values.update(overrides)
    return ModelSpec(**values)  # type: ignore[arg-type]


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def test_good_file_lands_atomically_with_the_right_bytes(server, tmp_path):
    base, served = server
    path = download_model(spec(f"{base}/good.bin"), tmp_path / "models", progress=False)
    assert path == tmp_path / "models" / "model.bin"
    assert path.read_bytes() == PAYLOAD
    assert leftovers(tmp_path / "models") == ["model.bin"]  # no .part left behind
    # A second call finds the verified file and does not download again.
    download_model(spec(f"{base}/good.bin"), tmp_path / "models", progress=False)
    assert len(served.ranges("/good.bin")) == 1


def test_progress_logs_when_not_on_a_terminal(server, tmp_path, caplog):
    base, _ = server
    with caplog.at_level("INFO", logger="portrait_polish"):
        download_model(spec(f"{base}/good.bin"), tmp_path, progress=True)
    text = caplog.text
    assert "downloading model.bin" in text and f"{len(PAYLOAD)} bytes" in text


def test_wrong_checksum_is_refused_and_nothing_is_left(server, tmp_path):
    base, _ = server
    with pytest.raises(CorruptFileError) as info:
        download_model(spec(f"{base}/wrong.bin"), tmp_path, progress=False)
    message = str(info.value)
    assert "model.bin" in message and "sha256" in message and PAYLOAD_SHA in message
    assert leftovers(tmp_path) == []


def test_size_mismatch_announced_by_the_server_is_refused_before_downloading(server, tmp_path):
    base, served = server
    with pytest.raises(DownloadError, match=r"model\.bin.*models\.json expects 1234"):
        download_model(spec(f"{base}/good.bin", size=1234), tmp_path, progress=False)
    assert leftovers(tmp_path) == []


def test_truncated_transfer_is_refused_naming_the_file_and_keeps_the_part(server, tmp_path):
    base, served = server
    with pytest.raises(DownloadError) as info:
        download_model(spec(f"{base}/truncated.bin"), tmp_path, progress=False, retries=2)
    message = str(info.value)
    assert "model.bin" in message and "truncated" in message
    assert not (tmp_path / "model.bin").exists()
    part = tmp_path / "model.bin.part"
    assert part.exists() and 0 < part.stat().st_size < len(PAYLOAD)
    assert PAYLOAD.startswith(part.read_bytes())
    assert len(served.ranges("/truncated.bin")) == 3  # first try + 2 resumes


def test_transfer_cut_once_resumes_with_range_and_completes(server, tmp_path):
    base, served = server
    path = download_model(spec(f"{base}/flaky.bin"), tmp_path, progress=False)
    assert path.read_bytes() == PAYLOAD
    assert served.ranges("/flaky.bin") == [None, "bytes=100000-"]
    assert [sent for p, _, sent in served.requests if p == "/flaky.bin"] == [100_000, len(PAYLOAD) - 100_000]


def test_resume_from_an_existing_part_file_with_range(server, tmp_path):
    base, served = server
    (tmp_path / "model.bin.part").write_bytes(PAYLOAD[:123_456])
    path = download_model(spec(f"{base}/good.bin"), tmp_path, progress=False)
    assert path.read_bytes() == PAYLOAD
    assert served.requests == [("/good.bin", "bytes=123456-", len(PAYLOAD) - 123_456)]
    assert leftovers(tmp_path) == ["model.bin"]


def test_redirect_is_followed_and_range_kept(server, tmp_path):
    base, served = server
    (tmp_path / "model.bin.part").write_bytes(PAYLOAD[:1000])
    path = download_model(spec(f"{base}/release/model.bin"), tmp_path, progress=False)
    assert path.read_bytes() == PAYLOAD
    assert served.requests == [("/release/model.bin", "bytes=1000-", 0), ("/good.bin", "bytes=1000-", len(PAYLOAD) - 1000)]


def test_server_ignoring_range_restarts_from_zero(server, tmp_path):
    base, served = server
    (tmp_path / "model.bin.part").write_bytes(PAYLOAD[:50_000])
    path = download_model(spec(f"{base}/norange.bin"), tmp_path, progress=False)
    assert path.read_bytes() == PAYLOAD  # not the old 50 000 bytes + the whole file again
    assert served.requests == [("/norange.bin", "bytes=50000-", len(PAYLOAD))]


def test_corrupt_part_file_is_refused_then_removed(server, tmp_path):
    base, _ = server
    (tmp_path / "model.bin.part").write_bytes(b"\0" * 1000)  # not a prefix of the real file
    with pytest.raises(CorruptFileError, match="model.bin"):
        download_model(spec(f"{base}/good.bin"), tmp_path, progress=False)
    assert leftovers(tmp_path) == []
    # The next attempt starts clean and succeeds.
    assert download_model(spec(f"{base}/good.bin"), tmp_path, progress=False).read_bytes() == PAYLOAD


def test_existing_corrupt_file_is_replaced(server, tmp_path):
    base, _ = server
    (tmp_path / "model.bin").write_bytes(b"old and wrong")
    path = download_model(spec(f"{base}/good.bin"), tmp_path, progress=False)
    assert path.read_bytes() == PAYLOAD


def test_bz2_archive_is_unpacked_and_the_unpacked_file_checked(server, tmp_path):
    base, served = server
    entry = spec(f"{base}/model.bin.bz2", filename="model.dat", archive="bz2")
    path = download_model(entry, tmp_path, progress=False)
    assert path == tmp_path / "model.dat" and path.read_bytes() == PAYLOAD
    assert leftovers(tmp_path) == ["model.dat"]
    assert served.requests[0][2] == len(BZ2_PAYLOAD)


def test_bz2_archive_with_wrong_content_is_refused(server, tmp_path):
    base, _ = server
    entry = spec(f"{base}/model.bin.bz2", filename="model.dat", archive="bz2", sha256="0" * 64)
    with pytest.raises(CorruptFileError, match="model.dat"):
        download_model(entry, tmp_path, progress=False)
    assert leftovers(tmp_path) == []


def test_broken_bz2_archive_is_refused(server, tmp_path):
    base, _ = server
    entry = spec(f"{base}/broken.bin.bz2", filename="model.dat", archive="bz2")
    with pytest.raises(CorruptFileError, match=r"broken\.bin\.bz2.*model\.dat"):
        download_model(entry, tmp_path, progress=False)
    assert leftovers(tmp_path) == []


def test_zip_member_is_extracted(server, tmp_path):
    base, _ = server
    entry = spec(f"{base}/bundle.zip", archive="zip", member="weights/model.bin")
    assert download_model(entry, tmp_path, progress=False).read_bytes() == PAYLOAD
    assert leftovers(tmp_path) == ["model.bin"]


def test_zip_without_the_member_is_an_error(server, tmp_path):
    base, _ = server
    entry = spec(f"{base}/bundle.zip", archive="zip", member="weights/other.bin")
    with pytest.raises(DownloadError, match="other.bin"):
        download_model(entry, tmp_path, progress=False)


def test_http_error_names_status_and_file(server, tmp_path):
    base, _ = server
    with pytest.raises(DownloadError, match=r"model\.bin.*HTTP 404"):
        download_model(spec(f"{base}/nowhere.bin"), tmp_path, progress=False)


def test_server_gone_is_a_clear_error(tmp_path):
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()  # nothing listens there any more
    with pytest.raises(DownloadError, match=r"cannot reach .*model\.bin.*server gone"):
        download_model(spec(f"http://127.0.0.1:{port}/good.bin"), tmp_path, progress=False)
    assert leftovers(tmp_path) == []


def test_failed_first_download_leaves_no_empty_model_folders(tmp_path):
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()
    target = tmp_path / "models" / "face_detection"  # neither folder exists yet
    with pytest.raises(DownloadError):
        download_model(spec(f"http://127.0.0.1:{port}/good.bin"), target, progress=False)
    assert os.listdir(tmp_path) == []


def test_stalled_server_times_out(tmp_path):
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)  # accepts connections (kernel backlog) but never answers
    try:
        port = listener.getsockname()[1]
        with pytest.raises(DownloadError, match=r"timed out \(connect 1s, read 1s\) while downloading model\.bin"):
            download_model(spec(f"http://127.0.0.1:{port}/x"), tmp_path, progress=False, timeout=(1.0, 1.0))
    finally:
        listener.close()


def test_offline_refuses_to_touch_the_network(server, tmp_path, monkeypatch):
    base, served = server
    monkeypatch.setenv("PORTRAIT_POLISH_OFFLINE", "1")
    with pytest.raises(DownloadError, match=r"PORTRAIT_POLISH_OFFLINE=1.*model\.bin"):
        download_model(spec(f"{base}/good.bin"), tmp_path, progress=False)
    assert served.requests == []


def test_entry_without_checksum_is_not_downloaded(server, tmp_path):
    base, served = server
    with pytest.raises(DownloadError, match="no sha256"):
        download_model(spec(f"{base}/good.bin", sha256="TODO"), tmp_path, progress=False)
    assert served.requests == []


def test_verify_file(tmp_path):
    good = tmp_path / "model.bin"
    good.write_bytes(PAYLOAD)
    verify_file(spec("https://example.invalid/x"), good)
    assert file_sha256(good) == PAYLOAD_SHA
    short = tmp_path / "short.bin"
    short.write_bytes(PAYLOAD[:-1])
    with pytest.raises(CorruptFileError, match=r"short\.bin is truncated"):
        verify_file(spec("https://example.invalid/x"), short)
    flipped = bytearray(PAYLOAD)
    flipped[1000] ^= 1
    bad = tmp_path / "bad.bin"
    bad.write_bytes(bytes(flipped))
    with pytest.raises(CorruptFileError, match=r"bad\.bin is corrupt"):
        verify_file(spec("https://example.invalid/x"), bad)


def test_concurrent_downloads_of_one_file_do_not_collide(server, tmp_path):
    base, served = server
    results: list[Path | BaseException] = []

    def worker() -> None:
        try:
            results.append(download_model(spec(f"{base}/good.bin"), tmp_path, progress=False))
        except BaseException as exc:  # noqa: BLE001 - reported below
            results.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert all(isinstance(r, Path) and r.read_bytes() == PAYLOAD for r in results), results
    assert len(served.ranges("/good.bin")) == 1
    assert os.listdir(tmp_path) == ["model.bin"]


def test_unwritable_part_file_is_a_write_error_not_a_truncation(server, tmp_path):
    base, served = server
    (tmp_path / "model.bin.part").mkdir()  # open() fails whoever runs the test (root too)
    with pytest.raises(DownloadError, match=r"cannot write .*model\.bin\.part") as info:
        download_model(spec(f"{base}/good.bin"), tmp_path, progress=False)
    assert "truncated" not in str(info.value)
    assert len(served.requests) == 1  # no resume attempts
