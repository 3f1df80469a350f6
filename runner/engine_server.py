"""Server engine: queue API graphs on a ComfyUI server over HTTP + websocket.

Protocol (ComfyUI's server.py, as seen on a real host): inputs go up with
``POST /upload/image``; ``POST /prompt`` takes our own ``prompt_id`` and ``client_id`` (so a
retry can be made idempotent); per-prompt websocket messages go only to that client id;
``GET /history/{id}`` holds the outputs; ``GET /view`` serves the files.

Robustness: one websocket per engine, reconnecting with backoff, races a ``/history``
poller (fast when the socket is down); transient faults (connection refused, timeouts,
5xx) are retried with backoff; before a prompt is posted again (server restarted, POST
answer lost) ``/queue`` and then ``/history`` are checked, so a prompt is never run twice;
a 400 with ``node_errors`` is never retried and is reported per node and input.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlparse

import requests

from ..core.photo_io import PhotoTooLarge, UnreadableImage, check_decodes
from .engine_local import RunResult
from .errors import TOO_LARGE, UNREADABLE_INPUT, Cancelled, JobFailed, ServerUnavailable, TransientServerError

log = logging.getLogger("portrait_polish")

UPLOAD_SUBFOLDER = "portrait_polish"


@dataclass
class PromptState:
    """What the websocket told us about one prompt."""

    finished: threading.Event = field(default_factory=threading.Event)
    error: dict[str, Any] | None = None
    interrupted: bool = False
    started: float | None = None
    executed: dict[str, Any] = field(default_factory=dict)
    posted: float | None = None  # wall clock when the server accepted the prompt


def format_node_errors(body: dict[str, Any], graph: dict[str, Any] | None = None) -> str:
    """ComfyUI's 400 answer as lines a person can act on: node, input, message."""
    lines = []
    error = body.get("error") or {}
    if isinstance(error, dict) and error.get("message"):
        lines.append(str(error["message"]) + (f": {error['details']}" if error.get("details") else ""))
    for node_id, entry in (body.get("node_errors") or {}).items():
        title = ((graph or {}).get(node_id, {}).get("_meta") or {}).get("title")
        label = f"node {node_id} ({entry.get('class_type', '?')}{', ' + repr(title) if title else ''})"
        for item in entry.get("errors") or []:
            name = (item.get("extra_info") or {}).get("input_name")
            text = item.get("details") or item.get("message") or item.get("type")
            lines.append(f"{label} input {name!r}: {text}" if name else f"{label}: {text}")
    return "; ".join(lines) or json.dumps(body)[:500]


class ServerEngine:
    name = "server"

    def __init__(self, url: str, *, client_id: str | None = None, retries: int = 8, backoff: float = 0.5,
                 max_backoff: float = 8.0, request_timeout: float = 60.0, poll_interval: float = 2.0,
                 use_websocket: bool = True) -> None:
        if "://" not in url:
            url = "http://" + url
        self.url = url.rstrip("/")
        self.client_id = client_id or uuid.uuid4().hex
        self.retries = retries
        self.backoff = backoff
        self.max_backoff = max_backoff
        self.request_timeout = request_timeout
        self.poll_interval = poll_interval
        self.http = requests.Session()
        self._object_info: dict[str, Any] | None = None
        self._system_stats: dict[str, Any] | None = None
        self._waiters: dict[str, PromptState] = {}
        self._lock = threading.Lock()
        self._closed = threading.Event()
        self._cancel = threading.Event()
        self._ws_connected = threading.Event()
        self._ws_generation = 0
        self._ws: Any = None
        self._ws_thread: threading.Thread | None = None
        self._use_websocket = use_websocket
        self.stats = {"retries": 0, "reposts": 0, "ws_reconnects": 0, "history_polls": 0}

    # ------------------------------------------------------------------ HTTP

    def _request(self, method: str, path: str, *, retry: bool = True, attempts: int | None = None,
                 **kwargs: Any) -> requests.Response:
        """One HTTP request; transient faults retried with exponential backoff."""
        kwargs.setdefault("timeout", self.request_timeout)
        delay = self.backoff
        attempts = attempts or (self.retries + 1 if retry else 1)
        last = ""
        for attempt in range(attempts):
            try:
                response = self.http.request(method, self.url + path, **kwargs)
            except (requests.ConnectionError, requests.Timeout) as exc:
                last = f"{type(exc).__name__}: {_short(exc)}"
            else:
                if response.status_code < 500:
                    return response
                last = f"HTTP {response.status_code}: {response.text[:200]}"
            if attempt + 1 < attempts:
                self.stats["retries"] += 1
                log.debug("%s %s failed (%s); retrying in %.1f s", method, path, last, delay)
                if self._cancel.wait(delay) and method != "POST":
                    break
                delay = min(delay * 2, self.max_backoff)
        raise TransientServerError(f"{method} {self.url}{path} failed: {last}")

    def _json(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self._request(method, path, **kwargs)
        if response.status_code >= 400:
            raise JobFailed(f"{method} {path}: HTTP {response.status_code}: {response.text[:300]}", reason="http_error")
        return response.json()

    def check(self) -> None:
        """Fail fast, with one clear message, when the server cannot be reached or what
        answers is not ComfyUI (a web page, another service, a proxy's error page)."""
        try:
            # A few quick tries only: an unreachable server should be reported within seconds.
            response = self._request("GET", "/system_stats", timeout=10, attempts=min(self.retries + 1, 4))
        except TransientServerError as exc:
            raise ServerUnavailable(f"cannot reach ComfyUI at {self.url}: {exc}") from None
        stats = _json_body(response)
        if response.status_code in (401, 403):
            raise ServerUnavailable(f"{self.url} refused access (HTTP {response.status_code}): "
                                    "the ComfyUI server needs credentials this runner does not send")
        if response.status_code != 200 or not isinstance(stats, dict) or not isinstance(stats.get("system"), dict):
            raise ServerUnavailable(f"{self.url} answers but is not a ComfyUI server: GET /system_stats gave "
                                    f"{_what(response)}, not ComfyUI's system stats; check the --server URL")
        self._system_stats = stats

    def object_info(self) -> dict[str, Any]:
        if self._object_info is None:
            try:
                response = self._request("GET", "/object_info")
            except TransientServerError as exc:
                raise ServerUnavailable(f"cannot read node definitions from {self.url}/object_info: {exc}") from None
            info = _json_body(response)
            if response.status_code != 200 or not isinstance(info, dict):
                raise ServerUnavailable(f"{self.url} answers but is not a ComfyUI server: GET /object_info gave "
                                        f"{_what(response)}, not node definitions; check the --server URL")
            self._object_info = info
        return self._object_info

    def describe(self) -> dict[str, Any]:
        version = ((self._system_stats or {}).get("system") or {}).get("comfyui_version")
        return {"engine": self.name, "url": self.url, "comfyui_version": version}

    # ------------------------------------------------------------------ websocket

    def _ensure_websocket(self) -> None:
        if not self._use_websocket or self._ws_thread is not None:
            return
        self._ws_thread = threading.Thread(target=self._ws_loop, name="comfy-ws", daemon=True)
        self._ws_thread.start()
        self._ws_connected.wait(5.0)

    def _ws_url(self) -> str:
        parsed = urlparse(self.url)
        scheme = "wss" if parsed.scheme == "https" else "ws"
        return f"{scheme}://{parsed.netloc}{parsed.path}/ws?{urlencode({'clientId': self.client_id})}"

    def _ws_loop(self) -> None:
        import websocket

        delay = self.backoff
        while not self._closed.is_set():
            connection = None
            try:
                connection = websocket.create_connection(self._ws_url(), timeout=10)
                connection.settimeout(1.0)
                with self._lock:
                    self._ws = connection
                    self._ws_generation += 1
                if self._ws_generation > 1:
                    self.stats["ws_reconnects"] += 1
                self._ws_connected.set()
                delay = self.backoff
                while not self._closed.is_set():
                    try:
                        message = connection.recv()
                    except websocket.WebSocketTimeoutException:
                        continue
                    if isinstance(message, bytes) or not message:
                        continue  # binary frames are previews
                    self._dispatch(json.loads(message))
            except Exception as exc:  # noqa: BLE001 - any socket failure: fall back to polling, reconnect
                log.debug("websocket dropped: %s", _short(exc))
            finally:
                self._ws_connected.clear()
                if connection is not None:
                    try:
                        connection.close()
                    except Exception:  # noqa: BLE001
                        pass
            if self._closed.wait(delay):
                break
            delay = min(delay * 2, self.max_backoff)

    def _dispatch(self, message: dict[str, Any]) -> None:
        kind, data = message.get("type"), message.get("data") or {}
        state = self._waiters.get(str(data.get("prompt_id")))
        if state is None:
            return
        if kind == "execution_start":
            state.started = time.time()
        elif kind == "executed" and data.get("node") is not None:
            state.executed[str(data["node"])] = data.get("output")
        elif kind == "execution_error":
            state.error = data
            state.finished.set()
        elif kind == "execution_interrupted":
            state.interrupted = True
            state.finished.set()
        elif kind == "execution_success" or (kind == "executing" and data.get("node") is None):
            state.finished.set()

    # ------------------------------------------------------------------ jobs

    def image_value(self, path: Path, job_key: str) -> str:
        """Upload an input image (idempotent name per job) and return LoadImage's value."""
        try:  # the server decodes leniently (a truncated JPEG gives a grey block): check here first
            check_decodes(Path(path).resolve())
        except UnreadableImage as exc:
            raise JobFailed(str(exc), reason=TOO_LARGE if isinstance(exc, PhotoTooLarge) else UNREADABLE_INPUT) from None
        name = f"{job_key[:16]}_{Path(path).name}"
        data = Path(path).read_bytes()
        response = self._request("POST", "/upload/image", files={"image": (name, data)},
                                 data={"type": "input", "subfolder": UPLOAD_SUBFOLDER, "overwrite": "true"})
        if response.status_code >= 400:
            raise JobFailed(f"upload of {path} refused: HTTP {response.status_code}: {response.text[:200]}", reason="upload_failed")
        body = response.json()
        return f"{body['subfolder']}/{body['name']}" if body.get("subfolder") else body["name"]

    def fetch(self, ref: dict[str, str]) -> bytes:
        query = urlencode({"filename": ref["filename"], "subfolder": ref.get("subfolder", ""), "type": ref.get("type", "output")})
        response = self._request("GET", f"/view?{query}")
        if response.status_code != 200:
            raise JobFailed(f"download of {ref['filename']} failed: HTTP {response.status_code}", reason="download_failed")
        return response.content

    def _in_queue(self, prompt_id: str) -> bool:
        queue = self._json("GET", "/queue")
        for item in (queue.get("queue_running") or []) + (queue.get("queue_pending") or []):
            if len(item) > 1 and str(item[1]) == prompt_id:
                return True
        return False

    def _history(self, prompt_id: str) -> dict[str, Any] | None:
        self.stats["history_polls"] += 1
        body = self._json("GET", f"/history/{prompt_id}")
        entry = body.get(prompt_id) if isinstance(body, dict) else None
        return entry or None

    def _known(self, prompt_id: str) -> str | None:
        """"queued", "history" or None; queue first: a prompt leaves the queue only once its
        history entry is written, so checking in this order never misses a finished one."""
        if self._in_queue(prompt_id):
            return "queued"
        if self._history(prompt_id) is not None:
            return "history"
        return None

    def _post(self, graph: dict[str, Any], prompt_id: str, extra_data: dict[str, Any]) -> None:
        body = {"prompt": graph, "client_id": self.client_id, "prompt_id": prompt_id, "extra_data": extra_data}
        delay = self.backoff
        for attempt in range(self.retries + 1):
            try:
                response = self._request("POST", "/prompt", json=body, retry=False)
            except TransientServerError as exc:
                last = str(exc)
            else:
                if response.status_code == 200:
                    return
                try:
                    answer = response.json()
                except ValueError:
                    answer = {"error": {"message": response.text[:300]}}
                if response.status_code == 400:
                    raise JobFailed(format_node_errors(answer, graph), reason="node_errors",
                                    details={"node_errors": answer.get("node_errors") or {}, "error": answer.get("error")})
                last = f"HTTP {response.status_code}: {response.text[:200]}"
            if attempt == self.retries:
                break
            self.stats["retries"] += 1
            if self._cancel.wait(delay):
                raise Cancelled("cancelled while posting")
            delay = min(delay * 2, self.max_backoff)
            # The POST may have reached the server even though its answer did not reach us.
            try:
                if self._known(prompt_id):
                    return
            except (TransientServerError, JobFailed):
                continue
        raise TransientServerError(f"could not queue the prompt: {last}")

    def recover(self, prompt_id: str, timeout: float | None = None) -> RunResult | None:
        """The outputs of a prompt an earlier (killed or interrupted) runner queued: from
        ``/history`` if the server finished it, or by waiting for it if it is still queued or
        running, so it is never run twice. None when the server does not have it (anymore)
        or it did not succeed: then the caller queues it anew."""
        try:
            # Queue first: a prompt leaves the queue only once its history entry is written,
            # so this order never misses one that finishes in between.
            queued = self._in_queue(prompt_id)
            entry = None if queued else self._history(prompt_id)
        except JobFailed:  # an answer we cannot read: queue it anew
            return None
        # (TransientServerError goes up: the server is down after retries; queueing anew now
        # could run the prompt twice once it is back. The job fails; a rerun recovers it.)
        if entry is not None:
            if (entry.get("status") or {}).get("status_str") != "success":
                return None
            return RunResult(outputs={str(k): v for k, v in (entry.get("outputs") or {}).items()})
        if not queued:
            return None
        log.info("prompt %s from an earlier run is still on the server; waiting for it", prompt_id)
        self._ensure_websocket()
        state = PromptState(posted=time.time())
        self._waiters[prompt_id] = state
        try:
            # Its websocket messages go to the earlier runner's client id: /history tells.
            return self._follow(prompt_id, state, None, {}, timeout, time.perf_counter(), None, poll=0.5)
        except _PromptLost:
            return None
        except JobFailed as exc:
            if exc.reason == "interrupted":
                return None  # interrupted on the server: run it again
            raise
        finally:
            self._waiters.pop(prompt_id, None)

    def run(self, graph: dict[str, Any], extra_pnginfo: dict[str, Any] | None = None, timeout: float | None = None,
            prompt_id: str | None = None, reupload=None) -> RunResult:
        """Queue ``graph`` and wait for it; ``reupload()`` redoes the input upload (and
        returns the graph to post) when the server lost the prompt, e.g. after a restart."""
        self._ensure_websocket()
        prompt_id = prompt_id or str(uuid.uuid4())
        state = PromptState()
        self._waiters[prompt_id] = state
        extra = {"extra_pnginfo": extra_pnginfo} if extra_pnginfo else {}
        started = time.perf_counter()
        try:
            self._post(graph, prompt_id, extra)
            state.posted = time.time()
            return self._follow(prompt_id, state, graph, extra, timeout, started, reupload)
        finally:
            self._waiters.pop(prompt_id, None)

    def _follow(self, prompt_id: str, state: PromptState, graph: dict[str, Any] | None, extra: dict[str, Any],
                timeout: float | None, started: float, reupload, poll: float | None = None) -> RunResult:
        """Wait for a queued prompt (websocket, racing ``/history``). When the server lost it
        (restarted), post ``graph`` again under the same id; with no ``graph``, raise _PromptLost."""
        deadline = time.monotonic() + timeout if timeout else None
        generation = self._ws_generation
        suspicious = False  # the server may have restarted: check that it still knows the prompt
        reposts = 0
        last_poll = 0.0
        finished_at: float | None = None
        while True:
            if self._cancel.is_set():
                self.interrupt(prompt_id)
                raise Cancelled("cancelled")
            if deadline is not None and time.monotonic() > deadline:
                self.interrupt(prompt_id)
                raise JobFailed(f"no result within {timeout:g} s; the prompt was cancelled on the server", reason="timeout")
            connected = self._ws_connected.is_set()
            interval = self.poll_interval if connected and not suspicious else min(self.poll_interval, 0.5)
            if poll is not None:
                interval = min(interval, poll)
            finished = state.finished.wait(0.25 if finished_at is None else 0.05)
            now = time.monotonic()
            if finished and finished_at is None:
                finished_at = now
            if not finished and now - last_poll < interval:
                continue
            last_poll = now
            if self._ws_generation != generation or not connected:
                suspicious = True
                generation = self._ws_generation
            try:
                entry = self._history(prompt_id)
            except TransientServerError:
                entry = None
                suspicious = True  # down for now: keep trying until the deadline
            if entry is not None and _history_done(entry):
                return self._result(prompt_id, entry, state, started)
            if finished:
                # The socket reported the end; the history entry may lag behind, or be gone
                # if the server restarted right after: then the socket's own record serves.
                if state.error is not None or state.interrupted or (now - finished_at > 2.0 and state.executed):
                    return self._result(prompt_id, {"outputs": state.executed, "status": {}}, state, started)
                if now - finished_at > 10.0:
                    finished, finished_at, state.finished = False, None, threading.Event()
                continue
            if entry is None and suspicious:
                try:
                    if self._known(prompt_id):
                        suspicious = False
                        continue
                except TransientServerError:
                    continue
                # Lost (the server restarted before finishing it): post the same id again.
                if graph is None:
                    raise _PromptLost(prompt_id)
                reposts += 1
                self.stats["reposts"] += 1
                if reposts > self.retries:
                    raise JobFailed("the server lost the prompt too many times", reason="server_lost_prompt")
                log.info("server lost prompt %s (restarted?); queueing it again", prompt_id)
                if reupload is not None:
                    graph = reupload()
                self._post(graph, prompt_id, extra)
                suspicious = False

    def _result(self, prompt_id: str, entry: dict[str, Any], state: PromptState, started: float) -> RunResult:
        status = entry.get("status") or {}
        messages = status.get("messages") or []
        # An interrupted prompt's history also says status_str "error": tell it apart first.
        if state.interrupted or any(m and m[0] == "execution_interrupted" for m in messages):
            raise JobFailed("the prompt was interrupted on the server", reason="interrupted")
        if status.get("status_str") == "error" or state.error:
            error = state.error or next((m[1] for m in messages if m and m[0] == "execution_error"), {})
            raise JobFailed(
                f"node {error.get('node_id')} ({error.get('node_type')}) failed: "
                f"{error.get('exception_type', 'error')}: {error.get('exception_message', '').strip()}",
                reason="execution_error",
                details={k: error.get(k) for k in ("node_id", "node_type", "exception_type", "exception_message", "traceback")},
            )
        timings = {"server_seconds": time.perf_counter() - started}
        starts = [m[1].get("timestamp") for m in messages if m and m[0] == "execution_start"]
        ends = [m[1].get("timestamp") for m in messages if m and m[0] in ("execution_success",)]
        if starts and ends and starts[0] and ends[-1]:
            timings["execution_seconds"] = (ends[-1] - starts[0]) / 1000.0
            if state.posted is not None:  # time spent behind other prompts in the server's queue
                timings["queue_seconds"] = max(0.0, starts[0] / 1000.0 - state.posted)
        outputs = {str(k): v for k, v in (entry.get("outputs") or {}).items()}
        return RunResult(outputs=outputs, timings=timings)

    def interrupt(self, prompt_id: str) -> None:
        """Cancel one prompt: drop it from the queue, interrupt it if it is running."""
        for path, body in (("/queue", {"delete": [prompt_id]}), ("/interrupt", {"prompt_id": prompt_id})):
            try:
                self._request("POST", path, json=body, retry=False, timeout=5)
            except TransientServerError:
                pass

    def cancel(self) -> None:
        """Ctrl-C: every waiting run() interrupts its prompt and raises Cancelled."""
        self._cancel.set()

    def close(self) -> None:
        self._closed.set()
        with self._lock:
            if self._ws is not None:
                try:
                    self._ws.close()
                except Exception:  # noqa: BLE001
                    pass
        if self._ws_thread is not None:
            self._ws_thread.join(timeout=3)
        self.http.close()


class _PromptLost(Exception):
    """The server no longer has a prompt we were following (and we have no graph to repost)."""


def _history_done(entry: dict[str, Any]) -> bool:
    status = entry.get("status") or {}
    return bool(status.get("completed")) or status.get("status_str") in ("success", "error") or bool(entry.get("outputs"))


def _json_body(response: requests.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return None


def _what(response: requests.Response) -> str:
    """'HTTP 404 (text/html)': enough to tell what answered, without dumping the page."""
    kind = (response.headers.get("Content-Type") or "no content type").split(";")[0].strip()
    return f"HTTP {response.status_code} ({kind})"


def _short(exc: BaseException) -> str:
    text = str(exc)
    if "Connection refused" in text:
        return "connection refused"
    return text[:200]
