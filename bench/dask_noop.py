"""A Dask worker preload for bench/cases_dask.py: each worker's engine is a no-op (it
returns one fixed 1x1 PNG without running anything), so a batch measures the runner's own
cost per task: Dask's scheduling and transfer, the client's manifest and write units."""

from __future__ import annotations

import io

from PIL import Image

from portrait_polish.runner import dask_worker
from portrait_polish.runner.core_nodes import CORE_NODE_CLASSES
from portrait_polish.runner.engine_local import RunResult
from portrait_polish.runner.objectinfo import local_object_info

_buffer = io.BytesIO()
Image.new("RGB", (1, 1), (128, 64, 32)).save(_buffer, format="PNG")
PNG = _buffer.getvalue()


class NoopEngine:
    name = "no-op"

    def __init__(self) -> None:
        self._object_info = local_object_info(dict(CORE_NODE_CLASSES))

    def object_info(self):
        return self._object_info

    def describe(self):
        return {"engine": self.name}

    def image_value(self, path, job_key):
        return str(path)

    def run(self, graph, extra_pnginfo=None, timeout=None):
        saves = [node_id for node_id, node in graph.items() if node["class_type"] == "SaveImage"]
        return RunResult(outputs={node_id: {"images": [{"filename": f"{node_id}.png", "subfolder": "", "type": "output"}]}
                                  for node_id in saves})

    def fetch(self, ref):
        return PNG

    def close(self):
        pass


dask_worker.set_engine(NoopEngine())
