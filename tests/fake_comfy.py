"""A fake ComfyUI on 127.0.0.1 for the runner's server-mode tests: it speaks the protocol
shapes seen on a real host (../shared/comfy-host/README.md): /object_info, /upload/image,
/prompt (own prompt_id, 400 with node_errors), /queue, /history, /view, /interrupt and the
/ws messages sent only to the prompt's client_id. It executes prompts with the in-process
engine, so its outputs are real. It can restart mid-batch (queue and history lost, files
kept), drop the websocket, reject prompts, fail a node, and be slow.
"""

from __future__ import annotations

import asyncio
import collections
import socket
import threading
import time
import uuid
from pathlib import Path

from aiohttp import web

from portrait_polish.runner.engine_local import InProcessEngine
from portrait_polish.runner.errors import JobFailed

CORE_GRAPH = {
    "1": {"class_type": "LoadImage", "inputs": {"image": "example.png"}, "_meta": {"title": "Input"}},
    "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": "ComfyUI"}, "_meta": {"title": "Save"}},
}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class FakeComfy:
    """A small ComfyUI look-alike. Execution is real (in-process engine on its own folders)."""

    def __init__(self, root: Path, exec_delay: float = 0.0) -> None:
        self.root = root
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.engine = InProcessEngine(work_dir=root)
        self.object_info = self.engine.object_info()
        self.exec_delay = exec_delay
        self.posts: collections.Counter[str] = collections.Counter()
        self.completed: collections.Counter[str] = collections.Counter()
        # Successful executions per SaveImage filename_prefix (the runner makes one per job).
        self.completed_prefixes: collections.Counter[str] = collections.Counter()
        self.interrupts: list[dict] = []
        self.reject_with: dict | None = None  # body of a 400 answer for every prompt
        self.drop_websockets = False  # close sockets after the first message and refuse new ones
        self.restart_on_execution: int | None = None  # restart while executing the n-th prompt (1-based)
        self.restart_down_seconds = 1.0
        self.executions_started = 0
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()
        self._reset_state()
        self._call(self._start())

    # -- lifecycle

    def _reset_state(self) -> None:
        self.queue: collections.deque = collections.deque()
        self.running: list | None = None
        self.history: dict[str, dict] = {}
        self.sockets: dict[str, set] = collections.defaultdict(set)
        self.number = 0

    def _call(self, coro, timeout: float = 30):
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout)

    async def _start(self) -> None:
        app = web.Application(client_max_size=64 * 1024**2)
        app.router.add_get("/object_info", self.h_object_info)
        app.router.add_get("/system_stats", self.h_system_stats)
        app.router.add_post("/upload/image", self.h_upload)
        app.router.add_post("/prompt", self.h_prompt)
        app.router.add_get("/queue", self.h_queue)
        app.router.add_post("/queue", self.h_queue_post)
        app.router.add_get("/history/{prompt_id}", self.h_history)
        app.router.add_get("/view", self.h_view)
        app.router.add_post("/interrupt", self.h_interrupt)
        app.router.add_get("/ws", self.h_ws)
        self.runner = web.AppRunner(app, shutdown_timeout=0.5)
        await self.runner.setup()
        self.site = web.TCPSite(self.runner, "127.0.0.1", self.port, reuse_address=True)
        await self.site.start()
        self.worker = asyncio.ensure_future(self._work())

    async def _stop(self) -> None:
        self.worker.cancel()
        for sockets in self.sockets.values():
            for ws in list(sockets):
                await ws.close()
        await self.runner.cleanup()

    async def _restart(self) -> None:
        await self._stop()
        self._reset_state()  # a restarted ComfyUI has an empty queue and history
        await asyncio.sleep(self.restart_down_seconds)
        await self._start()

    def close(self) -> None:
        self._call(self._stop())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)
        self.engine.close()

    # -- handlers

    async def h_object_info(self, request):
        return web.json_response(self.object_info)

    async def h_system_stats(self, request):
        return web.json_response({"system": {"comfyui_version": "0.3.64-fake", "os": "posix"}, "devices": []})

    async def h_upload(self, request):
        form = await request.post()
        field = form["image"]
        subfolder = form.get("subfolder", "")
        folder = self.engine.dirs.input / subfolder
        folder.mkdir(parents=True, exist_ok=True)
        (folder / field.filename).write_bytes(field.file.read())
        return web.json_response({"name": field.filename, "subfolder": subfolder, "type": "input"})

    async def h_prompt(self, request):
        body = await request.json()
        prompt, prompt_id = body["prompt"], body.get("prompt_id") or str(uuid.uuid4())
        self.posts[prompt_id] += 1
        if self.reject_with is not None:
            return web.json_response(self.reject_with, status=400)
        errors = {}
        for node_id, node in prompt.items():
            if node["class_type"] not in self.object_info:
                return web.json_response({"error": {"type": "invalid_prompt", "message": f"Cannot execute because node {node['class_type']} does not exist.", "details": f"Node ID '#{node_id}'", "extra_info": {}}, "node_errors": {}}, status=400)
            if node["class_type"] == "LoadImage" and not (self.engine.dirs.input / node["inputs"]["image"]).is_file():
                errors[node_id] = {"errors": [{"type": "custom_validation_failed", "message": "Custom validation failed for node",
                                               "details": f"image - Invalid image file: {node['inputs']['image']}",
                                               "extra_info": {"input_name": "image"}}],
                                   "dependent_outputs": [], "class_type": "LoadImage"}
        if errors:
            return web.json_response({"error": {"type": "prompt_outputs_failed_validation", "message": "Prompt outputs failed validation",
                                               "details": "", "extra_info": {}}, "node_errors": errors}, status=400)
        self.number += 1
        outputs = [nid for nid, n in prompt.items() if self.object_info[n["class_type"]]["output_node"]]
        self.queue.append([self.number, prompt_id, prompt, {"client_id": body.get("client_id"), **body.get("extra_data", {})}, outputs])
        return web.json_response({"prompt_id": prompt_id, "number": self.number, "node_errors": {}})

    async def h_queue(self, request):
        return web.json_response({"queue_running": [self.running] if self.running else [], "queue_pending": list(self.queue)})

    async def h_queue_post(self, request):
        body = await request.json()
        for prompt_id in body.get("delete", []):
            for item in list(self.queue):
                if item[1] == prompt_id:
                    self.queue.remove(item)
        return web.json_response({})

    async def h_history(self, request):
        prompt_id = request.match_info["prompt_id"]
        return web.json_response({prompt_id: self.history[prompt_id]} if prompt_id in self.history else {})

    async def h_view(self, request):
        query = request.query
        root = self.engine.dirs.output if query.get("type", "output") == "output" else self.engine.dirs.temp
        path = root / query.get("subfolder", "") / query["filename"]
        if not path.is_file():
            return web.Response(status=404)
        return web.Response(body=path.read_bytes(), content_type="image/png")

    async def h_interrupt(self, request):
        self.interrupts.append(await request.json())
        self.interrupt_flag = True
        return web.json_response({})

    async def h_ws(self, request):
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        client_id = request.query.get("clientId", uuid.uuid4().hex)
        if self.drop_websockets:
            await ws.send_json({"type": "status", "data": {"status": {"exec_info": {"queue_remaining": 0}}, "sid": client_id}})
            await ws.close()
            return ws
        self.sockets[client_id].add(ws)
        await ws.send_json({"type": "status", "data": {"status": {"exec_info": {"queue_remaining": len(self.queue)}}, "sid": client_id}})
        try:
            async for _message in ws:
                pass
        finally:
            self.sockets[client_id].discard(ws)
        return ws

    async def _send(self, client_id: str | None, kind: str, data: dict) -> None:
        for ws in list(self.sockets.get(client_id, ())):  # per-prompt messages go to that client only
            try:
                await ws.send_json({"type": kind, "data": data})
            except ConnectionError:
                pass

    # -- the worker: one prompt at a time, like ComfyUI

    async def _work(self) -> None:
        while True:
            if not self.queue:
                await asyncio.sleep(0.01)
                continue
            item = self.queue.popleft()
            self.running = item
            number, prompt_id, prompt, extra, _outputs = item
            client = extra.get("client_id")
            self.executions_started += 1
            stamp = lambda: int(time.time() * 1000)  # noqa: E731
            messages = [["execution_start", {"prompt_id": prompt_id, "timestamp": stamp()}]]
            await self._send(client, "execution_start", messages[0][1])
            if self.restart_on_execution == self.executions_started:
                self.restart_on_execution = None
                asyncio.ensure_future(self._restart())
                return
            self.interrupt_flag = False
            await asyncio.sleep(self.exec_delay)
            if self.interrupt_flag:
                messages.append(["execution_interrupted", {"prompt_id": prompt_id, "node_id": "1", "node_type": "LoadImage", "executed": [], "timestamp": stamp()}])
                await self._send(client, "execution_interrupted", messages[-1][1])
                self.history[prompt_id] = {"prompt": item, "outputs": {}, "status": {"status_str": "error", "completed": False, "messages": messages}, "meta": {}}
                self.running = None
                continue
            try:
                result = await asyncio.get_running_loop().run_in_executor(None, self.engine.run, prompt, extra.get("extra_pnginfo"))
            except JobFailed as exc:
                error = {"prompt_id": prompt_id, "node_id": exc.details.get("node_id"), "node_type": exc.details.get("node_type"),
                         "executed": [], "exception_message": exc.details.get("exception_message", str(exc)),
                         "exception_type": exc.details.get("exception_type", "Exception"), "traceback": ["..."],
                         "current_inputs": {}, "current_outputs": {}, "timestamp": stamp()}
                messages.append(["execution_error", error])
                await self._send(client, "execution_error", error)
                self.history[prompt_id] = {"prompt": item, "outputs": {}, "status": {"status_str": "error", "completed": False, "messages": messages}, "meta": {}}
                self.running = None
                continue
            for node_id, ui in result.outputs.items():
                await self._send(client, "executing", {"node": node_id, "display_node": node_id, "prompt_id": prompt_id})
                await self._send(client, "executed", {"node": node_id, "display_node": node_id, "output": ui, "prompt_id": prompt_id})
            messages.append(["execution_success", {"prompt_id": prompt_id, "timestamp": stamp()}])
            self.history[prompt_id] = {"prompt": item, "outputs": result.outputs,
                                       "status": {"status_str": "success", "completed": True, "messages": messages}, "meta": {}}
            self.completed[prompt_id] += 1
            for node in prompt.values():
                if isinstance(node["inputs"].get("filename_prefix"), str):
                    self.completed_prefixes[node["inputs"]["filename_prefix"]] += 1
            self.running = None
            await self._send(client, "execution_success", messages[-1][1])
            await self._send(client, "executing", {"node": None, "prompt_id": prompt_id})
