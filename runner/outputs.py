"""The output folder: its manifest, and the write unit that puts one job's files in place.

One job's outputs are one recoverable unit. Every image and its sidecar are first written to
temporary names in the output folder (flushed to disk); then one "writing" record naming
them with their sha256 is appended to the manifest; the sidecars are renamed into place,
then the images; then a "done" record is appended. A kill at any moment leaves one of:

- only temporary files (removed by the next run, which holds the folder's lock);
- some or all of the files in place, each matching the "writing" record's sha256: the next
  run adopts them when all are there (and appends "done"), or else redoes the job, replacing
  them (they are the runner's own: their content matches its record);
- everything in place and recorded "done".

Units finished at the same time by several threads are committed as one group (``commit``):
their "writing" records in one write and one fsync, their renames, one fsync of the folder,
their "done" records in one write. Each unit keeps the guarantees above on its own.

A file at an output's or a sidecar's name whose content no record of this job accounts for
is someone else's (the user's, or another setting's result): it is never replaced unless
``overwrite`` is set.

Manifest records are one JSON line each, written with a single ``write`` on an ``O_APPEND``
descriptor and fsync'd; reading skips a torn line (a crash mid-write on some file systems)
and the next record starts on a line of its own.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import re
import signal
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import OutputError

MANIFEST_NAME = "portrait-polish-manifest.jsonl"
_TEMP_NAME = re.compile(r"^\..+\.pp-[0-9a-f]{8}\.tmp$")  # what temp_path() makes, and nothing else

try:  # POSIX: one run per output folder at a time (the lock dies with the process)
    import fcntl
except ImportError:  # Windows: no folder lock
    fcntl = None  # type: ignore[assignment]


# ------------------------------------------------------------------ small file helpers


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def jsonable(value: Any) -> Any:
    """``value`` as plain JSON data: arrays and tensors as lists, paths as text, and NaN or
    infinity as null (JSON has no such numbers; a sidecar must stay valid JSON)."""
    if isinstance(value, dict):
        return {str(key): jsonable(item) for key, item in value.items()}
    if isinstance(value, list | tuple | set):
        return [jsonable(item) for item in value]
    if isinstance(value, bool) or value is None or isinstance(value, str | int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if hasattr(value, "tolist"):  # numpy arrays and scalars, torch tensors
        return jsonable(value.tolist())
    return str(value)


def strict_json(value: Any, **kwargs: Any) -> str:
    """JSON text that every parser accepts (never a bare NaN or Infinity)."""
    try:  # plain data (most sidecars and records) needs no conversion pass
        return json.dumps(value, allow_nan=False, **kwargs)
    except (TypeError, ValueError):  # paths, arrays, NaN...: converted as jsonable says
        return json.dumps(jsonable(value), allow_nan=False, **kwargs)


def fsync_dir(folder: Path) -> None:
    """Make renames in ``folder`` durable (POSIX; a no-op where folders cannot be opened)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def temp_path(path: Path) -> Path:
    return path.parent / f".{path.name}.pp-{os.urandom(4).hex()}.tmp"


def write_temp(path: Path, data: bytes) -> Path:
    """Write ``data`` to a new temporary file beside ``path`` (flushed to disk) and return it."""
    temp = temp_path(path)
    try:
        with open(temp, "xb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
    return temp


def atomic_write(path: Path, data: bytes, overwrite: bool = True) -> None:
    """Write ``data`` to ``path`` via a temp file in the same folder and ``os.replace``:
    readers see the old file or the whole new one, never a partial file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = write_temp(path, data)
    try:
        if not overwrite and path.exists():
            raise FileExistsError(path)
        os.replace(temp, path)
    finally:
        temp.unlink(missing_ok=True)


@contextlib.contextmanager
def deferred_interrupt() -> Iterator[None]:
    """Hold Ctrl-C until the block is over, so a unit's renames and records are not cut in
    half by it (a kill -9 still can: that is what the "writing" record is for). Python runs
    signal handlers in the main thread only; elsewhere this does nothing."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    received: list[int] = []
    previous = signal.signal(signal.SIGINT, lambda signum, frame: received.append(signum))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
        if received and callable(previous):
            previous(signal.SIGINT, None)  # the default handler raises KeyboardInterrupt here


# ------------------------------------------------------------------ the manifest


class Manifest:
    """Append-only JSONL, one record per job event (started, writing, done, failed, exists,
    cancelled). Reading it gives each job's last record, its last "done" record and its
    pending "writing" record (one with no "done" after it), and which job's record accounts
    for each file's content (``owner``)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._fd: int | None = None
        self.records: dict[str, dict[str, Any]] = {}
        self.finished: dict[str, dict[str, Any]] = {}  # job -> its "done" record (no "writing" after it)
        self.pending: dict[str, dict[str, Any]] = {}  # job -> a "writing" record with no "done" after it
        self._claims: dict[str, dict[str | None, str]] = {}  # file name -> {sha256 (None: any): job}
        self.torn_lines = 0
        self._needs_newline = False
        self.queue_lock = threading.Lock()  # write units waiting for a group commit (see commit)
        self.commit_lock = threading.Lock()
        self.queued: list[_Unit] = []
        self._read()

    def _read(self) -> None:
        self.records.clear()
        self.finished.clear()
        self.pending.clear()
        self._claims.clear()
        self.torn_lines = 0
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            data = b""
        self._needs_newline = bool(data) and not data.endswith(b"\n")
        for line in data.split(b"\n"):
            if not line.strip():
                continue
            record = _parse_line(line)
            if record is None:
                self.torn_lines += 1
                continue
            self._remember(record)

    def _remember(self, record: dict[str, Any]) -> None:
        job, status = record["job"], record.get("status")
        self.records[job] = record
        if status == "writing":
            self.pending[job] = record
            self.finished.pop(job, None)
        elif status == "done":
            self.finished[job] = record
            self.pending.pop(job, None)
        if status in ("writing", "done"):
            hashes = record.get("sha256") or {}
            for name in list(record.get("outputs", [])) + list(record.get("sidecars", [])):
                # Records from before sha256 was kept claim the name whatever its content.
                self._claims.setdefault(name, {})[hashes.get(name)] = job

    def owner(self, name: str, path: Path) -> str | None:
        """The job whose record accounts for the file at ``path`` (named ``name``), if any."""
        claims = self._claims.get(name)
        if not claims:
            return None
        if any(key is not None for key in claims):
            try:
                job = claims.get(sha256_file(path))
            except OSError:
                job = None
            if job is not None:
                return job
        return claims.get(None)

    # -- writing

    def acquire(self) -> None:
        """Open for appending and take the folder's lock (one run per output folder); then
        read again: another run may have finished while we waited for nothing."""
        if self._fd is not None:
            return
        created = not self.path.exists()
        try:
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        except OSError as exc:
            raise OutputError(f"cannot write the manifest {self.path}: {exc.strerror or exc}") from None
        if fcntl is not None:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                os.close(fd)
                raise OutputError(f"another portrait-polish run is writing into {self.path.parent}; "
                                  "wait for it to finish or choose another output folder") from None
        self._fd = fd
        if created:
            fsync_dir(self.path.parent)
        self._read()

    def release(self) -> None:
        with self._lock:
            if self._fd is not None:
                os.close(self._fd)  # closing drops the lock
                self._fd = None

    def append(self, record: dict[str, Any], durable: bool = True) -> None:
        """Append one record; ``durable=False`` skips the fsync, for records nothing is
        recovered from (a Dask run's "started": its prompt id is the job's own key)."""
        self.append_many([record], durable)

    def append_many(self, records: list[dict[str, Any]], durable: bool = True) -> None:
        """Append records, one line each, in one write and (``durable``) one fsync: a group
        commit's records cost one disk flush however many jobs it holds."""
        now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        records = [jsonable({"time": now, **record}) for record in records]
        text = "".join(json.dumps(record, allow_nan=False, sort_keys=True) + "\n" for record in records)
        with self._lock:
            # After a torn last line, start on a line of our own instead of gluing onto it.
            data = (("\n" if self._needs_newline else "") + text).encode("utf-8")
            fd = self._fd if self._fd is not None else os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            try:
                written = os.write(fd, data)  # one write: O_APPEND puts it whole at the end
                while written < len(data):  # only on a short write (disk full): finish the line
                    written += os.write(fd, data[written:])
                if durable:
                    os.fsync(fd)
            finally:
                if fd != self._fd:
                    os.close(fd)
            self._needs_newline = False
            for record in records:
                self._remember(record)


def _parse_line(line: bytes) -> dict[str, Any] | None:
    """One manifest line as a record; a torn line (cut mid-write, maybe with the next
    record glued on by an older runner) gives the whole record it still contains, if any."""
    try:
        text = line.decode("utf-8")
    except UnicodeDecodeError:
        text = line.decode("utf-8", "replace")
    starts = [0] + [match.start() for match in re.finditer(r'\{"', text) if match.start() > 0]
    for start in starts:
        try:
            record = json.loads(text[start:])
        except ValueError:
            continue
        if isinstance(record, dict) and isinstance(record.get("job"), str):
            return record
    return None


# ------------------------------------------------------------------ the output folder


@dataclass
class OutputFile:
    name: str
    data: bytes


def open_output_folder(folder: Path) -> Manifest:
    """Create/check the output folder, take its lock, remove temporary files a killed run
    left, and return its manifest. Raises OutputError (exit 2) with one clear line when the
    folder is a file, cannot be made or cannot be written."""
    if folder.exists() and not folder.is_dir():
        raise OutputError(f"the output folder {folder} is a file, not a folder; choose another with -o")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"cannot create the output folder {folder}: {exc.strerror or exc}") from None
    try:
        write_temp(folder / ".write-check", b"").unlink()
    except OSError as exc:
        raise OutputError(f"cannot write into the output folder {folder}: {exc.strerror or exc}") from None
    manifest = Manifest(folder / MANIFEST_NAME)
    manifest.acquire()
    for path in folder.iterdir():
        if _TEMP_NAME.match(path.name):
            path.unlink(missing_ok=True)
    return manifest


@dataclass(eq=False)
class _Unit:
    """One job's write unit waiting for a group commit."""

    record: dict[str, Any]
    names: dict[str, Any]
    temps: list[tuple[Path, Path]]  # (temporary file, final path), sidecars first
    settled: bool = False
    error: BaseException | None = None


def commit(folder: Path, manifest: Manifest, record: dict[str, Any], images: list[OutputFile],
           sidecars: list[OutputFile]) -> dict[str, str]:
    """Put one job's images and sidecars in place as one recoverable unit (see the module
    docstring) and record it; returns the sha256 of each file by name.

    Units written at the same time by several threads (a Dask run's writers) are committed
    as a group: the first thread to reach the commit puts every unit queued by then in
    place, with one "writing" write, one folder fsync and one "done" write for all of them,
    instead of those three flushes per job. Each unit's temporary files are written and
    flushed by its own thread, before it joins the queue; a unit that fails (a rename)
    fails alone."""
    files = sidecars + images  # sidecars first: an image in place always has its sidecar
    hashes = {item.name: sha256_bytes(item.data) for item in files}
    names = {"outputs": [item.name for item in images], "sidecars": [item.name for item in sidecars], "sha256": hashes}
    unit = _Unit(record, names, [])
    try:
        for item in files:
            unit.temps.append((write_temp(folder / item.name, item.data), folder / item.name))
        with manifest.queue_lock:
            manifest.queued.append(unit)
        with manifest.commit_lock:  # whoever holds it commits what is queued, ours included
            if not unit.settled:
                with manifest.queue_lock:
                    units, manifest.queued = manifest.queued, []
                with deferred_interrupt():
                    _commit_units(folder, manifest, units)
        if unit.error is not None:
            raise unit.error
    finally:
        if not unit.settled:  # interrupted (Ctrl-C in the main thread) before its commit
            with manifest.queue_lock:
                queued = any(other is unit for other in manifest.queued)
                manifest.queued = [other for other in manifest.queued if other is not unit]
            if not queued:  # another thread is committing it: let that finish first
                with manifest.commit_lock:
                    pass
        for temp, _final in unit.temps:
            temp.unlink(missing_ok=True)
    return hashes


def _commit_units(folder: Path, manifest: Manifest, units: list[_Unit]) -> None:
    """Records, renames and the folder's fsync for ``units``; each unit's error is kept on
    it (and every unit is settled), never raised here: it belongs to its own thread."""
    try:
        manifest.append_many([{**unit.record, "status": "writing", **unit.names} for unit in units])
        placed = []
        for unit in units:
            try:
                for temp, final in unit.temps:
                    os.replace(temp, final)
                placed.append(unit)
            except OSError as exc:
                unit.error = exc  # its "writing" record stays pending: the next run redoes or adopts it
        if placed:
            fsync_dir(folder)
            manifest.append_many([{**unit.record, "status": "done", **unit.names} for unit in placed])
    except BaseException as exc:  # noqa: BLE001 - the manifest could not be written: every unit fails
        for unit in units:
            if unit.error is None:
                unit.error = exc
    finally:
        for unit in units:
            unit.settled = True


def intact(folder: Path, record: dict[str, Any]) -> bool:
    """True when every file a "writing"/"done" record names is in ``folder`` with the
    recorded content (records without sha256: when the files exist)."""
    hashes = record.get("sha256") or {}
    for name in list(record.get("outputs", [])) + list(record.get("sidecars", [])):
        path = folder / name
        if not path.is_file():
            return False
        if name in hashes:
            try:
                if sha256_file(path) != hashes[name]:
                    return False
            except OSError:
                return False
    return True
