"""IdentityGuard backends: ArcFace alignment and the ONNX embedding path (on models this
test builds, since AuraFace/insightface weights are not obtainable here), model-file errors."""

from __future__ import annotations

import math
import os

import numpy as np
import pytest
from helpers import portrait

from portrait_polish.core import embed, identity, models
from portrait_polish.core.embed import ARCFACE_TEMPLATE_112, FaceLocation, align_arcface, get_backend
from portrait_polish.core.identity import guard_identity

onnx = pytest.importorskip("onnx")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

COLOURS = np.array([[1, 0, 0], [0, 1, 0], [0, 0, 1], [1, 1, 0], [1, 0, 1]], np.float32)


def _forward(scale: float, angle_deg: float, tx: float, ty: float) -> np.ndarray:
    a = math.radians(angle_deg)
    return np.array([[scale * math.cos(a), -scale * math.sin(a), tx], [scale * math.sin(a), scale * math.cos(a), ty]])


def synthetic_face(matrix: np.ndarray, size: tuple[int, int] = (360, 420)) -> tuple[np.ndarray, np.ndarray]:
    """Grey canvas with five coloured discs at the ArcFace template points mapped by
    ``matrix`` (template space -> image); returns (float RGB image, keypoints5)."""
    height, width = size
    image = np.full((height, width, 3), 0.5, np.float32)
    points = ARCFACE_TEMPLATE_112 @ matrix[:, :2].T + matrix[:, 2]
    ys, xs = np.mgrid[0:height, 0:width]
    radius = 3.5 * math.hypot(matrix[0, 0], matrix[1, 0])
    for point, colour in zip(points, COLOURS, strict=True):
        inside = (xs - point[0]) ** 2 + (ys - point[1]) ** 2 <= radius**2
        image[inside] = colour
    return image, points


def _centroids(aligned: np.ndarray) -> np.ndarray:
    out = []
    for colour in COLOURS:
        closeness = np.clip(1.0 - np.abs(aligned - colour).sum(axis=-1) / 0.75, 0.0, None)
        ys, xs = np.mgrid[0 : aligned.shape[0], 0 : aligned.shape[1]]
        out.append([(xs * closeness).sum() / closeness.sum(), (ys * closeness).sum() / closeness.sum()])
    return np.array(out)


@pytest.mark.parametrize("params", [(2.3, 17.0, 90.0, 60.0), (0.8, -25.0, 150.0, 200.0), (3.0, 0.0, 10.0, 5.0)])
def test_alignment_puts_the_features_on_the_template(params):
    matrix = _forward(*params)
    image, keypoints = synthetic_face(matrix)
    aligned = align_arcface(image, keypoints)
    assert aligned.shape == (112, 112, 3) and aligned.dtype == np.float32
    np.testing.assert_allclose(_centroids(aligned), ARCFACE_TEMPLATE_112, atol=0.6)


def test_similarity_transform_recovers_a_known_transform():
    matrix = _forward(1.7, 33.0, -12.0, 40.0)
    src = ARCFACE_TEMPLATE_112
    dst = src @ matrix[:, :2].T + matrix[:, 2]
    np.testing.assert_allclose(embed.similarity_transform(src, dst), matrix, atol=1e-9)


def _save(model, path) -> None:  # noqa: ANN001 - onnx ModelProto
    model.opset_import[0].version = 13
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))


def projection_model(path, seed: int = 0) -> np.ndarray:  # noqa: ANN001
    """An ArcFace-signature model, input [N,3,112,112] -> output [N,512]: 8×8 average pool,
    flatten, a fixed random projection. Returns the projection matrix [588, 512]."""
    weights = np.random.default_rng(seed).normal(size=(3 * 14 * 14, 512)).astype(np.float32)
    graph = helper.make_graph(
        [
            helper.make_node("AveragePool", ["input.1"], ["pooled"], kernel_shape=[8, 8], strides=[8, 8]),
            helper.make_node("Flatten", ["pooled"], ["flat"], axis=1),
            helper.make_node("MatMul", ["flat", "W"], ["683"]),
        ],
        "tiny_arcface",
        [helper.make_tensor_value_info("input.1", TensorProto.FLOAT, ["N", 3, 112, 112])],
        [helper.make_tensor_value_info("683", TensorProto.FLOAT, ["N", 512])],
        [numpy_helper.from_array(weights, "W")],
    )
    _save(helper.make_model(graph), path)
    return weights


def test_onnx_backend_feeds_the_model_the_aligned_normalised_nchw_rgb_tensor(tmp_path):
    path = tmp_path / "tiny.onnx"
    weights = projection_model(path)
    backend = embed.ArcFaceOnnxBackend("auraface", path)
    assert backend.input_size == 112 and backend.dim == 512

    matrix = _forward(2.0, 12.0, 70.0, 40.0)
    image, keypoints = synthetic_face(matrix)
    box = (float(keypoints[:, 0].min() - 40), float(keypoints[:, 1].min() - 60), 200.0, 240.0)
    feeds: list[np.ndarray] = []
    real_run = backend.session.run

    def spy(outputs, feed):  # noqa: ANN001
        feeds.append(next(iter(feed.values())).copy())
        return real_run(outputs, feed)

    backend.session.run = spy  # type: ignore[method-assign]
    embedding = backend.embed(image, [FaceLocation(box, keypoints)])

    # Reference tensor made independently: invert the known forward transform.
    import cv2

    image_to_template = cv2.invertAffineTransform(matrix)
    expected_crop = cv2.warpAffine(image, image_to_template, (112, 112), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=(0, 0, 0))
    expected = ((expected_crop * 255.0 - 127.5) / 127.5).transpose(2, 0, 1)[None]
    assert len(feeds) == 1 and feeds[0].shape == (1, 3, 112, 112) and feeds[0].dtype == np.float32
    # Red disc (first eye) -> channel 0 is +1 there, channels 1 and 2 are -1: RGB order, NCHW.
    ex, ey = (int(round(v)) for v in ARCFACE_TEMPLATE_112[0])
    np.testing.assert_allclose(feeds[0][0, :, ey, ex], [1.0, -1.0, -1.0], atol=0.05)
    assert np.abs(feeds[0] - expected).mean() < 0.01
    # The embedding is the model's output, L2-normalised.
    pooled = expected.reshape(1, 3, 14, 8, 14, 8).mean(axis=(3, 5)).reshape(1, -1)
    reference = pooled @ weights
    reference /= np.linalg.norm(reference)
    assert embedding.shape == (1, 512)
    assert float(np.linalg.norm(embedding[0])) == pytest.approx(1.0, abs=1e-5)
    assert float(embedding[0] @ reference[0]) > 0.999


def test_onnx_backend_through_the_resolver_and_the_guard(tmp_path, monkeypatch):
    folder = tmp_path / "face_recognition"
    folder.mkdir()
    projection_model(folder / "glintr100.onnx")
    # Our made-up model first; the shared folder still provides the YuNet detector.
    monkeypatch.setenv("PORTRAIT_POLISH_MODELS", os.pathsep.join([str(tmp_path), os.environ["PORTRAIT_POLISH_MODELS"]]))
    backend = get_backend("auraface")
    assert isinstance(backend, embed.ArcFaceOnnxBackend) and backend.path == str(folder / "glintr100.onnx")

    image = portrait("obama_1.jpg", 512)
    result = guard_identity(image, image.clone(), backend="auraface")
    assert result.backend == "auraface" and result.threshold == embed.THRESHOLDS["auraface"].retouch
    assert result.faces[0].score == pytest.approx(1.0, abs=1e-6) and result.passed
    # Batch of faces in one call: two faces, two rows.
    faces = [FaceLocation(tuple(float(v) for v in f.box), f.keypoints5) for f in identity.detect(image[0].numpy())]
    assert backend.embed(image[0].numpy(), faces * 2).shape == (2 * len(faces), 512)


def test_onnx_model_with_the_wrong_signature_is_refused_by_name(tmp_path):
    path = tmp_path / "not_arcface.onnx"
    graph = helper.make_graph(
        [helper.make_node("Relu", ["x"], ["y"])],
        "wrong",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 10])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 10])],
    )
    _save(helper.make_model(graph), path)
    with pytest.raises(models.ModelFileError, match="not_arcface.onnx"):
        embed.ArcFaceOnnxBackend("auraface", path)
    corrupt = tmp_path / "w600k_r50.onnx"
    corrupt.write_bytes(b"\x00not an onnx file" * 64)
    with pytest.raises(models.ModelFileError, match="w600k_r50.onnx"):
        embed.ArcFaceOnnxBackend("insightface_r50", corrupt)


def test_dlib_model_errors_name_the_file(tmp_path, monkeypatch):
    # A corrupt copy found first in the search path: the error names that file.
    (tmp_path / "shape_predictor_5_face_landmarks.dat").write_bytes(b"garbage" * 100)
    monkeypatch.setenv("PORTRAIT_POLISH_MODELS", str(tmp_path))
    with pytest.raises(models.ModelFileError, match="shape_predictor_5_face_landmarks.dat"):
        get_backend("dlib")
    # No copy anywhere (and offline): the error names the file, its URL and the folders.
    empty = tmp_path / "empty"
    empty.mkdir()
    monkeypatch.setenv("PORTRAIT_POLISH_MODELS", str(empty))
    monkeypatch.setenv("PORTRAIT_POLISH_CACHE", str(empty))
    monkeypatch.setenv("PORTRAIT_POLISH_OFFLINE", "1")
    monkeypatch.setattr(models, "bundled_dirs", lambda spec: [])
    with pytest.raises(models.ModelNotFoundError, match="shape_predictor_5_face_landmarks.dat") as info:
        get_backend("dlib")
    assert str(empty) in str(info.value)


def test_unknown_backend_lists_the_choices():
    with pytest.raises(ValueError, match="dlib, auraface, insightface_r50"):
        get_backend("facenet")


def test_dlib_backend_loads_from_the_bundled_package():
    backend = get_backend("dlib")
    assert isinstance(backend, embed.DlibBackend)
    assert backend.shape_path.endswith("shape_predictor_5_face_landmarks.dat")
    assert backend.resnet_path.endswith("dlib_face_recognition_resnet_model_v1.dat")
    image = portrait("obama_1.jpg", 512)[0].numpy()
    faces = identity.detect(image)
    vectors = backend.embed(image, faces)
    assert vectors.shape == (1, 128) and np.isfinite(vectors).all()
    # Embeddings are deterministic: the same pixels give the same vector.
    assert np.array_equal(vectors, backend.embed(image.copy(), faces))
