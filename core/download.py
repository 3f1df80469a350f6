"""Model downloads: resumable, checksummed, atomic.

``download_model(spec, dest_dir)`` fetches one models.json entry into ``dest_dir``:

- streams with ``requests`` into ``<file>.part`` (for archives: ``<archive name>.part``),
  with connect/read timeouts, and a tqdm bar on a terminal (log lines otherwise);
- resumes a ``.part`` left by an interrupted download with an HTTP ``Range`` request (a
  server that ignores ``Range`` and answers 200 makes it start over from byte 0);
- a transfer that ends early (fewer bytes than Content-Length) is retried from where it
  stopped a few times, then refused with a message that names the file;
- unpacks ``archive: "bz2"`` (dlib's ``.dat.bz2``) and ``archive: "zip"`` (``member``);
- checks the size and sha256 of the final file BEFORE it is moved into place with
  ``os.replace`` (atomic on one file system), so the model folder never holds a partial or
  corrupt file under the real name.

Nothing here runs at import time, and nothing touches the network when
``PORTRAIT_POLISH_OFFLINE=1``.
"""

from __future__ import annotations

import bz2
import hashlib
import logging
import os
import re
import sys
import threading
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlparse

if TYPE_CHECKING:
    from .models import ModelSpec

log = logging.getLogger("portrait_polish")

CHUNK_BYTES = 1 << 20
# (connect, read) seconds: a server that accepts the connection and then stalls for a
# minute is treated as gone.
DEFAULT_TIMEOUT: tuple[float, float] = (15.0, 60.0)
# How many times a transfer that ended early is resumed before we give up.
DEFAULT_RETRIES = 3
USER_AGENT = "comfyui-portrait-polish (model download)"

_SHA256_RE = re.compile(r"^[0-9a-f]{64}$")
_locks: dict[Path, threading.Lock] = {}
_locks_guard = threading.Lock()


class DownloadError(Exception):
    """A model could not be downloaded (offline, server gone, HTTP error, truncated)."""


class CorruptFileError(DownloadError):
    """A file's size or sha256 does not match models.json (downloaded or on disk)."""


def has_checksum(spec: ModelSpec) -> bool:
    return bool(_SHA256_RE.match(spec.sha256 or ""))


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(CHUNK_BYTES), b""):
            digest.update(block)
    return digest.hexdigest()


def verify_file(spec: ModelSpec, path: Path) -> None:
    """Check that ``path`` is the file models.json describes (size, then sha256).

    Raises :class:`CorruptFileError` naming the file when it does not match, and
    :class:`DownloadError` when models.json has no checksum to compare with.
    """
    path = Path(path)
    if not has_checksum(spec):
        raise DownloadError(f"models.json has no sha256 for {spec.id} ({spec.filename}); {path} cannot be verified")
    size = path.stat().st_size
    if spec.size and size != spec.size:
        kind = "truncated" if size < spec.size else "too large"
        raise CorruptFileError(f"{path} is {kind}: {size} bytes, models.json says {spec.size} ({spec.id})")
    actual = file_sha256(path)
    if actual != spec.sha256:
        raise CorruptFileError(f"{path} is corrupt: sha256 {actual}, models.json says {spec.sha256} ({spec.id})")


def _lock_for(path: Path) -> threading.Lock:
    with _locks_guard:
        return _locks.setdefault(path.resolve(), threading.Lock())


def _payload_name(spec: ModelSpec) -> str:
    """Name of what the URL serves: the model file itself, or its archive."""
    if not spec.archive:
        return spec.filename
    name = Path(unquote(urlparse(spec.url).path)).name
    return name or f"{spec.filename}.{spec.archive}"


class _Reporter:
    """tqdm on a terminal; otherwise a log line every ~10% (or every 8 MiB without a size)."""

    def __init__(self, enabled: bool, name: str, total: int | None, start: int) -> None:
        self.name = name
        self.total = total
        self.done = start
        self._bar: Any = None
        self._next_log = 0.0
        self._enabled = enabled
        if enabled and sys.stderr.isatty():
            from tqdm import tqdm

            self._bar = tqdm(total=total, initial=start, unit="B", unit_scale=True, unit_divisor=1024, desc=name, leave=False)
        elif enabled:
            log.info("downloading %s (%s)", name, f"{total} bytes" if total else "size unknown")
            self._next_log = time.monotonic() + 2.0

    def update(self, count: int) -> None:
        self.done += count
        if self._bar is not None:
            self._bar.update(count)
        elif self._enabled and time.monotonic() >= self._next_log:
            self._next_log = time.monotonic() + 5.0
            if self.total:
                log.info("  %s: %d%% (%d/%d bytes)", self.name, 100 * self.done // self.total, self.done, self.total)
            else:
                log.info("  %s: %d bytes", self.name, self.done)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()


def _content_range_start(value: str | None) -> int | None:
    match = re.match(r"bytes (\d+)-\d+/(\d+|\*)", value or "")
    return int(match.group(1)) if match else None


def _fetch(
    url: str,
    part: Path,
    *,
    label: str,
    expected_size: int | None,
    progress: bool,
    timeout: tuple[float, float],
    retries: int,
) -> None:
    """Download ``url`` into ``part``, resuming what ``part`` already holds.

    Returns when the transfer ended cleanly with the whole body; raises DownloadError
    otherwise (the ``.part`` is kept so a later call resumes it).
    """
    import requests
    import urllib3

    attempt = 0
    while True:
        have = part.stat().st_size if part.exists() else 0
        if expected_size and have == expected_size:
            return  # a previous run got every byte; the caller checks the content
        if expected_size and have > expected_size:
            part.unlink()
            have = 0
        headers = {"User-Agent": USER_AGENT}
        if have:
            headers["Range"] = f"bytes={have}-"
        try:
            response = requests.get(url, headers=headers, stream=True, timeout=timeout, allow_redirects=True)
        except requests.Timeout as exc:
            raise DownloadError(
                f"{url} timed out (connect {timeout[0]:g}s, read {timeout[1]:g}s) while downloading {label}: {exc}"
            ) from exc
        except requests.ConnectionError as exc:
            raise DownloadError(f"cannot reach {url} to download {label} (server gone or no network): {exc}") from exc
        except requests.RequestException as exc:
            raise DownloadError(f"downloading {label} from {url} failed: {exc}") from exc

        with response:
            if have and response.status_code == 416:
                # The range starts past the end: our .part is not a prefix of this file.
                log.info("%s: server refused to resume; starting over", label)
                part.unlink(missing_ok=True)
                continue
            if response.status_code not in (200, 206):
                raise DownloadError(f"downloading {label} from {url} failed: HTTP {response.status_code} {response.reason}")
            mode = "wb"
            start = 0
            if have and response.status_code == 206:
                start = _content_range_start(response.headers.get("Content-Range")) or 0
                if start != have:
                    log.info("%s: server resumed at byte %d, not %d; starting over", label, start, have)
                    part.unlink(missing_ok=True)
                    continue
                mode = "ab"
            elif have:
                log.info("%s: server ignores Range requests; downloading from the start", label)
            length = response.headers.get("Content-Length")
            body_size = int(length) if length and length.isdigit() else None
            total = start + body_size if body_size is not None else expected_size
            if expected_size and total and total != expected_size:
                raise DownloadError(
                    f"{url} serves {total} bytes for {label}, models.json expects {expected_size}: "
                    "the upstream file changed or the URL is wrong; refusing it"
                )
            try:
                sink = open(part, mode)  # noqa: SIM115 - closed below, after the body loop
            except OSError as exc:
                raise DownloadError(f"cannot write {part} for {label}: {exc}") from exc
            reporter = _Reporter(progress, label, total, start)
            received = 0
            error: Exception | None = None
            body = _iter_body(response)
            try:
                while True:
                    # Network trouble mid-body (a cut connection, a stall) is worth a resume;
                    # a failing disk write (full, read-only) is not.
                    try:
                        chunk = next(body)
                    except StopIteration:
                        break
                    except (requests.RequestException, urllib3.exceptions.HTTPError, OSError) as exc:
                        error = exc
                        break
                    try:
                        sink.write(chunk)
                    except OSError as exc:
                        raise DownloadError(f"cannot write {part} for {label}: {exc}") from exc
                    received += len(chunk)
                    reporter.update(len(chunk))
            finally:
                sink.close()
                reporter.close()
            got = start + received
            if error is None and (body_size is None or received == body_size):
                return
            attempt += 1
            detail = f": {error}" if error else ""
            message = f"download of {label} from {url} is truncated: got {got} of {total or '?'} bytes{detail}"
            if attempt > retries:
                raise DownloadError(f"{message}; gave up after {retries} resumes (partial file kept at {part})")
            log.warning("%s; resuming (%d/%d)", message, attempt, retries)


def _iter_body(response: Any) -> Iterator[bytes]:
    # decode_content=False: a server's Content-Encoding must not change the bytes we hash.
    raw = response.raw
    while True:
        chunk = raw.read(CHUNK_BYTES, decode_content=False)
        if not chunk:
            return
        yield chunk


def _unpack(spec: ModelSpec, archive: Path, target: Path) -> None:
    """Write the model file out of ``archive`` into ``target`` (a temporary name)."""
    try:
        if spec.archive == "bz2":
            with bz2.open(archive, "rb") as source, open(target, "wb") as sink:
                for block in iter(lambda: source.read(CHUNK_BYTES), b""):
                    sink.write(block)
        elif spec.archive == "zip":
            member = spec.member or spec.filename
            with zipfile.ZipFile(archive) as bundle:
                try:
                    info = bundle.getinfo(member)
                except KeyError:
                    raise DownloadError(f"{archive.name} from {spec.url} has no member {member!r}") from None
                with bundle.open(info) as source, open(target, "wb") as sink:
                    for block in iter(lambda: source.read(CHUNK_BYTES), b""):
                        sink.write(block)
        else:
            raise DownloadError(f"models.json entry {spec.id} has unknown archive type {spec.archive!r}")
    except (OSError, EOFError, zipfile.BadZipFile) as exc:
        target.unlink(missing_ok=True)
        archive.unlink(missing_ok=True)
        raise CorruptFileError(f"the downloaded archive {archive.name} for {spec.filename} is corrupt: {exc}") from exc


def download_model(
    spec: ModelSpec,
    dest_dir: Path | str,
    *,
    progress: bool = True,
    timeout: tuple[float, float] = DEFAULT_TIMEOUT,
    retries: int = DEFAULT_RETRIES,
) -> Path:
    """Download ``spec`` into ``dest_dir`` and return the final path.

    A file already there with the right checksum is returned as it is; one with the wrong
    checksum is replaced. Raises :class:`DownloadError` (offline, server gone, HTTP error,
    truncated) or :class:`CorruptFileError` (size or sha256 mismatch; nothing is left under
    the model's real name).
    """
    from .models import ENV_OFFLINE, offline

    dest_dir = Path(dest_dir)
    final = dest_dir / spec.filename
    if offline():
        raise DownloadError(f"{ENV_OFFLINE}=1 is set: not downloading {spec.filename} from {spec.url}")
    if not has_checksum(spec):
        raise DownloadError(f"models.json has no sha256 for {spec.id} ({spec.filename}); refusing to download an unverifiable file")
    if not spec.url.startswith(("https://", "http://")):
        raise DownloadError(f"models.json entry {spec.id} has no http(s) URL: {spec.url!r}")

    with _lock_for(final):
        if final.is_file():
            try:
                verify_file(spec, final)
                return final
            except CorruptFileError as exc:
                log.warning("%s; downloading it again", exc)
        created = [d for d in (dest_dir, *dest_dir.parents) if not d.exists()]
        try:
            dest_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise DownloadError(f"cannot create the model folder {dest_dir} for {spec.filename}: {exc}") from exc
        try:
            return _download_into(spec, dest_dir, final, progress=progress, timeout=timeout, retries=retries)
        except DownloadError:
            # Leave no empty model folders behind from a download that never got a byte
            # (a kept .part, for resuming, keeps its folder).
            for directory in created:
                try:
                    directory.rmdir()
                except OSError:
                    break
            raise


def _download_into(
    spec: ModelSpec, dest_dir: Path, final: Path, *, progress: bool, timeout: tuple[float, float], retries: int
) -> Path:
    payload = dest_dir / (_payload_name(spec) + ".part")
    _fetch(
        spec.url,
        payload,
        label=spec.filename if not spec.archive else f"{spec.filename} ({payload.name[:-5]})",
        expected_size=None if spec.archive else (spec.size or None),
        progress=progress,
        timeout=timeout,
        retries=retries,
    )
    if spec.archive:
        unpacked = dest_dir / (spec.filename + ".unpack.part")
        _unpack(spec, payload, unpacked)
        candidate = unpacked
    else:
        candidate = payload
    try:
        verify_file(spec, candidate)
    except CorruptFileError as exc:
        # A corrupt .part is useless for resuming: remove it so the next try starts clean.
        candidate.unlink(missing_ok=True)
        payload.unlink(missing_ok=True)
        raise CorruptFileError(f"refused the download of {spec.filename} from {spec.url}: {exc}") from None
    os.replace(candidate, final)
    if spec.archive:
        payload.unlink(missing_ok=True)
    log.info("downloaded %s to %s", spec.filename, final)
    return final
