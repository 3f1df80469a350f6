"""IdentityGuard rows: time per face per backend on the device, and the whole guard.

- ``identity_embed_dlib``: one face, dlib 5-point alignment + ResNet (real bundled weights).
- ``identity_embed_onnx_r50class``: one face through the ArcFace ONNX path (alignment,
  normalisation, onnxruntime, L2) on a MADE-UP model of the same size class as insightface's
  w600k_r50 (an IR-50-shaped 3×3 conv stack, 44 M random parameters, ~5.6 GMAC): the real
  AuraFace / w600k_r50 weights are not obtainable on the build machines. AuraFace (R100) costs
  about twice this. With the real file installed, set PORTRAIT_POLISH_BENCH_ARCFACE=<path>.
- ``identity_guard_dlib_pass``: the node's work on a retouch that passes (detect both
  images, embed both faces, compare).
- ``identity_guard_dlib_blend``: a heavy edit that fails and is blended back (bisection,
  7 re-measurements).
"""

from __future__ import annotations

import os

import numpy as np
from bench_inputs import portrait_image

from bench import BenchCase

NOTE_ONNX = "made-up IR-50-sized model (random weights), not real ArcFace weights"


def _face(image):  # noqa: ANN001, ANN202
    from portrait_polish.core import identity

    rgb = image[0].numpy()
    faces = identity.detect(rgb)
    if not faces:
        raise RuntimeError("no face in the bench photo")
    return rgb, max(faces, key=lambda f: f.box[2] * f.box[3])


def _ir50_sized_model() -> bytes:
    """An ONNX model with ArcFace's signature and roughly IR-50's size and compute."""
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    nodes, inits = [], []
    name, channels = "input.1", 3

    def conv(src: str, cin: int, cout: int, stride: int, tag: str) -> str:
        w = (rng.standard_normal((cout, cin, 3, 3)) * np.sqrt(2.0 / (9 * cin))).astype(np.float32)
        inits.append(numpy_helper.from_array(w, f"{tag}_w"))
        nodes.append(helper.make_node("Conv", [src, f"{tag}_w"], [f"{tag}_c"], kernel_shape=[3, 3], pads=[1, 1, 1, 1], strides=[stride, stride]))
        nodes.append(helper.make_node("Relu", [f"{tag}_c"], [f"{tag}_r"]))
        return f"{tag}_r"

    name = conv(name, channels, 64, 2, "stem")  # 56×56
    channels = 64
    for stage, (width, convs) in enumerate([(64, 6), (128, 8), (256, 28), (512, 6)]):
        for k in range(convs):
            stride = 2 if (k == 0 and stage > 0) else 1
            name = conv(name, channels, width, stride, f"s{stage}_{k}")
            channels = width
    fc = (rng.standard_normal((512 * 7 * 7, 512)) * 0.01).astype(np.float32)
    inits.append(numpy_helper.from_array(fc, "fc_w"))
    nodes.append(helper.make_node("Flatten", [name], ["flat"], axis=1))
    nodes.append(helper.make_node("MatMul", ["flat", "fc_w"], ["embedding"]))
    graph = helper.make_graph(
        nodes,
        "ir50_sized",
        [helper.make_tensor_value_info("input.1", TensorProto.FLOAT, ["N", 3, 112, 112])],
        [helper.make_tensor_value_info("embedding", TensorProto.FLOAT, ["N", 512])],
        inits,
    )
    model = helper.make_model(graph)
    model.opset_import[0].version = 13
    model.ir_version = 8
    return model.SerializeToString()


def _embed_dlib(width: int, height: int):  # noqa: ANN202
    from portrait_polish.core.embed import get_backend

    backend = get_backend("dlib")
    rgb, face = _face(portrait_image(width, height))
    return lambda: backend.embed(rgb, [face])


def _embed_onnx(width: int, height: int):  # noqa: ANN202
    import tempfile

    from portrait_polish.core.embed import ArcFaceOnnxBackend

    path = os.environ.get("PORTRAIT_POLISH_BENCH_ARCFACE")
    if not path:
        path = os.path.join(tempfile.mkdtemp(prefix="pp-bench-"), "ir50_sized.onnx")
        with open(path, "wb") as handle:
            handle.write(_ir50_sized_model())
    backend = ArcFaceOnnxBackend("auraface", path)
    rgb, face = _face(portrait_image(width, height))
    return lambda: backend.embed(rgb, [face])


def _guard(action: str):  # noqa: ANN202
    def setup(width: int, height: int):  # noqa: ANN202
        import torch

        from portrait_polish.core.identity import guard_identity

        image = portrait_image(width, height)
        rgb, face = _face(image)
        if action == "blend":
            import sys
            from pathlib import Path

            sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
            from identity_fixtures import heavy_edit

            retouched = torch.from_numpy(heavy_edit(rgb, face.keypoints5))[None]
        else:
            retouched = image.clone()
        return lambda: guard_identity(image, retouched, backend="dlib", action=action)

    return setup


CASES: list[BenchCase] = [
    BenchCase("identity_embed_dlib", "node", "1MP", _embed_dlib, repeats=5, note="per face, dlib (real weights)"),
    BenchCase("identity_embed_dlib", "node", "24MP", _embed_dlib, repeats=5, note="per face, dlib (real weights)"),
    BenchCase("identity_embed_onnx_r50class", "node", "1MP", _embed_onnx, repeats=3, note="per face, " + NOTE_ONNX),
    BenchCase("identity_embed_onnx_r50class", "node", "24MP", _embed_onnx, repeats=3, note="per face, " + NOTE_ONNX),
    BenchCase("identity_guard_dlib_pass", "node", "1MP", _guard("report"), repeats=2, note="1 face, passes"),
    BenchCase("identity_guard_dlib_pass", "node", "24MP", _guard("report"), repeats=1, note="1 face, passes"),
    BenchCase("identity_guard_dlib_blend", "node", "1MP", _guard("blend"), repeats=1, note="1 face, heavy edit blended back"),
    BenchCase("identity_guard_dlib_blend", "node", "24MP", _guard("blend"), repeats=1, note="1 face, heavy edit blended back"),
]
