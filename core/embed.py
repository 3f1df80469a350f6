"""Face embeddings for IdentityGuard: one interface, several backends, one similarity scale.

Backends (picked by name, see :data:`BACKENDS`):

- ``dlib`` (default, no download): dlib's 5-point shape predictor aligns the face and its
  face-recognition ResNet gives a 128-d descriptor. Both ``.dat`` files ship inside the PyPI
  package ``face-recognition-models`` and are loaded *by path* through
  :func:`core.models.model_path` (``import face_recognition_models`` needs pkg_resources).
- ``auraface`` and ``insightface_r50``: ArcFace-class ONNX models run by onnxruntime. The
  face is aligned to 112×112 with the standard 5-point ArcFace template (a least-squares
  similarity transform), normalised as ``(x − 127.5) / 127.5`` on the 0..255 scale, fed as
  RGB NCHW, and the 512-d output is L2-normalised.

Similarity scale (the same for every backend: 1 = identical, higher = more alike):

- ArcFace backends: cosine similarity of the L2-normalised embeddings.
- dlib: ``1 − d`` where ``d`` is the Euclidean distance of the two 128-d descriptors (dlib's
  own metric). dlib's published same-person cut-off ``d < 0.6`` becomes ``similarity > 0.4``.

The thresholds per backend are in :data:`THRESHOLDS` (see the calibration notes there and
``bench/calibrate_identity.py``).

Model inputs are 8-bit (dlib) or float32 (ONNX) *copies* made here; nothing is written back
into an image.
"""

from __future__ import annotations

import logging
import threading
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .models import ModelFileError, cached_model, model_path
from .tensors import opencv_view, to_uint8
from .timing import model_time

log = logging.getLogger("portrait_polish")

# The ArcFace 5-point template on a 112×112 crop (insightface's ``arcface_dst``), in the
# order image-left eye, image-right eye, nose tip, image-left mouth corner, image-right
# mouth corner. That is YuNet's order (subject's right eye first), so keypoints5 map
# point for point.
ARCFACE_TEMPLATE_112 = np.array(
    [
        [38.2946, 51.6963],
        [73.5318, 51.5014],
        [56.0252, 71.7366],
        [41.5493, 92.3655],
        [70.7299, 92.2041],
    ],
    dtype=np.float64,
)
ARCFACE_SIZE = 112


@dataclass(frozen=True)
class Thresholds:
    """Calibrated similarity levels for one backend (on the shared similarity scale).

    ``retouch``: the "same photo, retouched" level IdentityGuard enforces by default. A
    retouch that keeps the person scores above it; a heavy edit (strong blur, warped
    features) or another photo of the same person falls below it.
    ``same_person``: the usual verification level (two different photos of one person).
    ``calibrated``: False where the level is taken from the model family's literature
    because the weights were not available to measure it here.
    """

    retouch: float
    same_person: float
    calibrated: bool
    note: str


# Measured with bench/calibrate_identity.py on ../shared/portraits (22 faces: 21 photos, both
# faces of the couple; long side 1024 px; YuNet boxes; every score re-detects the face the
# way the guard does). dlib, similarity = 1 - distance, min / median / max:
#   original vs itself                         1.000 / 1.000 / 1.000
#   the pack's TextureSafeSmooth -> TeethWhiten -> EyeEnhance nodes at their defaults
#                                              0.831 / 0.877 / 0.930
#   mild edits (brightness +-8..15%, contrast x1.15, noise 0.02, blur sigma 0.5% of the
#   face width, bilateral skin smoothing, smoothing + brightening)
#                                              0.833 / ~0.93 / 0.983   (min over these rows)
#   moderate: blur sigma 1.5% of face width    0.662 / 0.700 / 0.815
#   moderate: warped eyes + jaw only           0.750 / 0.821 / 0.900
#   heavy: blur 4% + warped eyes and jaw       0.349 / 0.454 / 0.630
#   same person, another photo (5 pairs)       0.561 / 0.632 / 0.658
#   different people (136 pairs)              -0.065 / 0.120 / 0.398
# The retouch level 0.75 sits below every mild edit (margin 0.08) and above every heavy
# edit and every other-photo pair (margin 0.09); the in-between edits straddle it, as they
# should (a visible liquify or blur is a judgement call). 0.40 is dlib's published
# same-person cut-off (distance 0.6), which also sits above every different-people pair here.
# The mild rows are not closer to 1 because dlib's descriptor itself is that sensitive: a
# +8% brightness change moves it by 0.02..0.17 even with the very same face box on both
# sides (six photos checked). Box jitter between detections adds up to ~0.03.
THRESHOLDS: dict[str, Thresholds] = {
    "dlib": Thresholds(
        retouch=0.75,
        same_person=0.40,
        calibrated=True,
        note="similarity = 1 - dlib distance; same person = distance < 0.6 (dlib's published cut-off)",
    ),
    # ArcFace-class weights are not obtainable on the build machines, so these two are the
    # literature levels for 512-d ArcFace cosines (insightface verifies at cosine ~0.3-0.4;
    # a lightly edited copy of one photo stays above ~0.8). Re-run
    # bench/calibrate_identity.py --backend auraface once the weights are installed.
    "auraface": Thresholds(
        retouch=0.80,
        same_person=0.35,
        calibrated=False,
        note="cosine similarity of L2-normalised 512-d embeddings; levels from the ArcFace literature, not measured here",
    ),
    "insightface_r50": Thresholds(
        retouch=0.80,
        same_person=0.35,
        calibrated=False,
        note="cosine similarity of L2-normalised 512-d embeddings; levels from the ArcFace literature, not measured here",
    ),
}


@dataclass(frozen=True)
class FaceLocation:
    """Where one face is: ``box`` (x, y, w, h) and ``keypoints5`` [5, 2] in image pixels,
    YuNet order (subject's right eye, left eye, nose tip, right mouth corner, left mouth corner)."""

    box: tuple[float, float, float, float]
    keypoints5: np.ndarray


# ---------------------------------------------------------------------------------------
# Alignment


def similarity_transform(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Least-squares similarity (rotation, uniform scale, translation) mapping ``src`` onto
    ``dst`` (Umeyama 1991, no reflection). Returns the 2×3 matrix for ``cv2.warpAffine``."""
    src = np.asarray(src, np.float64)
    dst = np.asarray(dst, np.float64)
    src_mean, dst_mean = src.mean(axis=0), dst.mean(axis=0)
    src_c, dst_c = src - src_mean, dst - dst_mean
    covariance = dst_c.T @ src_c / len(src)
    u, singular, vt = np.linalg.svd(covariance)
    sign = np.eye(2)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        sign[1, 1] = -1.0
    rotation = u @ sign @ vt
    src_var = (src_c**2).sum() / len(src)
    if src_var <= 1e-12:
        raise ValueError("face keypoints are degenerate (all in one place); cannot align the face")
    scale = float(np.trace(np.diag(singular) @ sign) / src_var)
    translation = dst_mean - scale * rotation @ src_mean
    return np.hstack([scale * rotation, translation[:, None]])


def align_arcface(rgb: np.ndarray, keypoints5: np.ndarray, size: int = ARCFACE_SIZE) -> np.ndarray:
    """Warp a face to the ArcFace template: ``size``×``size``×3 float32 (same value range as
    ``rgb``), eyes/nose/mouth on the template points (scaled when ``size`` ≠ 112)."""
    import cv2

    template = ARCFACE_TEMPLATE_112 * (size / ARCFACE_SIZE)
    keypoints = np.asarray(keypoints5, np.float64)
    src = np.ascontiguousarray(rgb, dtype=np.float32)
    matrix = similarity_transform(keypoints, template)
    scale = float(np.sqrt(abs(np.linalg.det(matrix[:, :2]))))
    if scale < 0.5:
        # A large face: shrink it (area-averaged) to about twice the template size first,
        # or the bilinear warp would alias pores and hair into the 112 px crop.
        height, width = src.shape[:2]
        new_size = (max(1, round(width * 2 * scale)), max(1, round(height * 2 * scale)))
        src = cv2.resize(src, new_size, interpolation=cv2.INTER_AREA)
        keypoints = keypoints * np.array([new_size[0] / width, new_size[1] / height])
        matrix = similarity_transform(keypoints, template)
    return cv2.warpAffine(src, matrix, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=(0.0, 0.0, 0.0))


def face_window(face: FaceLocation, height: int, width: int, margin: float = 0.6) -> tuple[int, int, int, int]:
    """Integer crop window around a face (box grown by ``margin`` of its size on every side,
    clipped to the frame) so embeddings cost the same on 24 MP as on 1 MP."""
    x, y, w, h = face.box
    pts = np.asarray(face.keypoints5, np.float64)
    x0 = min(x, pts[:, 0].min()) - margin * w
    y0 = min(y, pts[:, 1].min()) - margin * h
    x1 = max(x + w, pts[:, 0].max()) + margin * w
    y1 = max(y + h, pts[:, 1].max()) + margin * h
    ix0, iy0 = max(0, int(np.floor(x0))), max(0, int(np.floor(y0)))
    ix1, iy1 = min(width, int(np.ceil(x1))), min(height, int(np.ceil(y1)))
    if ix1 <= ix0 or iy1 <= iy0:
        raise ValueError(f"face box {face.box} lies outside the {width}x{height} frame")
    return ix0, iy0, ix1, iy1


# ---------------------------------------------------------------------------------------
# Backends


class EmbeddingBackend(ABC):
    """Turns faces into embeddings and pairs of embeddings into a similarity."""

    name: str = ""
    dim: int = 0

    @abstractmethod
    def embed(self, rgb: np.ndarray, faces: list[FaceLocation]) -> np.ndarray:
        """Embeddings ``[len(faces), dim]`` for faces of one ``H×W×3`` float32 0..1 RGB frame."""

    @abstractmethod
    def similarity(self, a: np.ndarray, b: np.ndarray) -> float:
        """Similarity of two embeddings on the shared scale (1 = identical)."""

    @property
    def thresholds(self) -> Thresholds:
        return THRESHOLDS[self.name]


# Largest face (box side, px) handed to dlib as is; bigger faces are area-shrunk to it.
DLIB_FACE_PX = 400.0


class DlibBackend(EmbeddingBackend):
    """dlib 5-point alignment + face recognition ResNet (128-d), models loaded by path."""

    name = "dlib"
    dim = 128

    def __init__(self, shape_path: Path | str, resnet_path: Path | str) -> None:
        import dlib

        self.shape_path, self.resnet_path = str(shape_path), str(resnet_path)
        try:
            self.shape_predictor = dlib.shape_predictor(self.shape_path)
        except RuntimeError as exc:
            raise ModelFileError(f"could not load the dlib shape predictor {self.shape_path}: {exc}") from exc
        try:
            self.recognizer = dlib.face_recognition_model_v1(self.resnet_path)
        except RuntimeError as exc:
            raise ModelFileError(f"could not load the dlib face recognition model {self.resnet_path}: {exc}") from exc
        # dlib objects are not documented as thread-safe; ComfyUI may run nodes in threads.
        self.lock = threading.Lock()

    def embed(self, rgb: np.ndarray, faces: list[FaceLocation]) -> np.ndarray:
        import cv2
        import dlib

        height, width = rgb.shape[:2]
        out = np.zeros((len(faces), self.dim), np.float32)
        for index, face in enumerate(faces):
            x0, y0, x1, y1 = face_window(face, height, width)
            x, y, w, h = face.box
            window = rgb[y0:y1, x0:x1]
            # dlib cuts its 150 px face chip with bilinear sampling: from a big face that
            # aliases (and an 8-bit copy of a 24 MP face window costs more than the network).
            # A face wider than DLIB_FACE_PX is area-shrunk to it first, so a camera file and
            # its 1 MP copy give the network the same chip.
            factor = min(1.0, DLIB_FACE_PX / max(w, h, 1.0))
            if factor < 1.0:
                size = (max(1, round((x1 - x0) * factor)), max(1, round((y1 - y0) * factor)))
                window = cv2.resize(opencv_view(window), size, interpolation=cv2.INTER_AREA)
                factor_x, factor_y = size[0] / (x1 - x0), size[1] / (y1 - y0)
            else:
                factor_x = factor_y = 1.0
            # dlib takes 8-bit input: this uint8 copy is model input only.
            crop = to_uint8(window)
            rect = dlib.rectangle(
                int(round((x - x0) * factor_x)), int(round((y - y0) * factor_y)), int(round((x - x0 + w) * factor_x)), int(round((y - y0 + h) * factor_y))
            )
            with self.lock, model_time("recognition"):
                shape = self.shape_predictor(crop, rect)
                descriptor = self.recognizer.compute_face_descriptor(crop, shape)
            out[index] = np.asarray(descriptor, np.float32)
        return out

    def similarity(self, a: np.ndarray, b: np.ndarray) -> float:
        distance = float(np.linalg.norm(np.asarray(a, np.float64) - np.asarray(b, np.float64)))
        return float(np.clip(1.0 - distance, -1.0, 1.0))


class ArcFaceOnnxBackend(EmbeddingBackend):
    """An ArcFace-class ONNX model (input [N,3,S,S] RGB in −1..1, output [N,D])."""

    dim = 512

    def __init__(self, name: str, path: Path | str) -> None:
        import onnxruntime as ort

        self.name = name
        self.path = str(path)
        options = ort.SessionOptions()
        options.log_severity_level = 3
        try:
            self.session = ort.InferenceSession(self.path, sess_options=options, providers=_onnx_providers(ort))
        except Exception as exc:  # noqa: BLE001 - onnxruntime raises its own types for bad files
            raise ModelFileError(f"could not load the face recognition model {self.path}: {exc}") from exc
        inputs, outputs = self.session.get_inputs(), self.session.get_outputs()
        shape = list(inputs[0].shape)
        if len(inputs) != 1 or len(shape) != 4 or shape[1] not in (3, "3"):
            raise ModelFileError(f"{self.path} is not an ArcFace-style model: expected one input [N,3,S,S], got {inputs[0].name} {shape}")
        side = shape[2] if isinstance(shape[2], int) else ARCFACE_SIZE
        self.input_size = int(side)
        self.input_name = inputs[0].name
        self.output_name = outputs[0].name
        out_shape = outputs[0].shape
        if isinstance(out_shape[-1], int):
            self.dim = int(out_shape[-1])

    def preprocess(self, aligned: np.ndarray) -> np.ndarray:
        """``[N,S,S,3]`` float 0..1 RGB → the model tensor ``[N,3,S,S]``: ``(255·x − 127.5) / 127.5``."""
        tensor = (np.asarray(aligned, np.float32) * 255.0 - 127.5) / 127.5
        return np.ascontiguousarray(tensor.transpose(0, 3, 1, 2))

    def embed_aligned(self, aligned: np.ndarray) -> np.ndarray:
        """L2-normalised embeddings for already-aligned crops ``[N,S,S,3]`` float 0..1 RGB."""
        if len(aligned) == 0:
            return np.zeros((0, self.dim), np.float32)
        tensor = self.preprocess(aligned)
        with model_time("recognition"):
            raw = self.session.run([self.output_name], {self.input_name: tensor})[0]
        raw = np.asarray(raw, np.float32).reshape(len(aligned), -1)
        norms = np.linalg.norm(raw, axis=1, keepdims=True)
        return raw / np.maximum(norms, 1e-12)

    def align(self, rgb: np.ndarray, face: FaceLocation) -> np.ndarray:
        height, width = rgb.shape[:2]
        x0, y0, x1, y1 = face_window(face, height, width)
        keypoints = np.asarray(face.keypoints5, np.float64) - np.array([x0, y0], np.float64)
        return align_arcface(rgb[y0:y1, x0:x1], keypoints, self.input_size)

    def embed(self, rgb: np.ndarray, faces: list[FaceLocation]) -> np.ndarray:
        aligned = np.stack([self.align(rgb, face) for face in faces]) if faces else np.zeros((0, self.input_size, self.input_size, 3), np.float32)
        return self.embed_aligned(aligned)

    def similarity(self, a: np.ndarray, b: np.ndarray) -> float:
        a = np.asarray(a, np.float64)
        b = np.asarray(b, np.float64)
        denom = max(float(np.linalg.norm(a) * np.linalg.norm(b)), 1e-12)
        return float(np.clip(np.dot(a, b) / denom, -1.0, 1.0))


def _onnx_providers(ort) -> list[str]:  # noqa: ANN001 - the onnxruntime module
    available = ort.get_available_providers()
    return [p for p in ("CUDAExecutionProvider", "CPUExecutionProvider") if p in available] or available


# Backend name -> models.json ids it needs.
BACKENDS: dict[str, tuple[str, ...]] = {
    "dlib": ("dlib_shape5", "dlib_resnet"),
    "auraface": ("auraface",),
    "insightface_r50": ("insightface_w600k_r50",),
}
DEFAULT_BACKEND = "dlib"


def get_backend(name: str) -> EmbeddingBackend:
    """The backend called ``name``, its models resolved through models.json and loaded once."""
    if name not in BACKENDS:
        raise ValueError(f"unknown identity backend {name!r}; choose one of {', '.join(BACKENDS)}")
    if name == "dlib":
        shape = model_path("dlib_shape5")
        resnet = model_path("dlib_resnet")
        return cached_model(("identity", "dlib", str(shape), str(resnet)), lambda: DlibBackend(shape, resnet))
    path = model_path(BACKENDS[name][0])
    return cached_model(("identity", name, str(path)), lambda: ArcFaceOnnxBackend(name, path))
