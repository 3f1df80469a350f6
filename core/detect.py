"""Face detection (OpenCV YuNet) and dense landmarks (MediaPipe Tasks FaceLandmarker).

Both models take 8-bit RGB/BGR input: the uint8 copies made here are *model input*, never
written back into an image. Everything returned is float (image pixel coordinates).

- :func:`detect_faces` runs YuNet on downscaled copies of a frame at a couple of sizes
  (YuNet misses faces that fill a large frame, and misses small faces in a small copy),
  merges the detections with NMS and tries 90°-rotated copies when nothing is found.
- :func:`face_landmarks` runs FaceLandmarker on a square crop around one detected face
  and maps the 478 points (irises included) back to image coordinates.

Models load lazily, once per process (``core.models.cached_model``). MediaPipe task
objects are not thread-safe, so every call into one holds its lock.
"""

from __future__ import annotations

import atexit
import logging
import math
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from .landmarks import LEFT_IRIS_CENTER, RIGHT_IRIS_CENTER, mirror_landmarks
from .models import ModelFileError, cached_model, model_path
from .timing import model_time

log = logging.getLogger("portrait_polish")

# YuNet works on a fixed-size copy; these long-side sizes cover faces from ~20 px in a
# group photo up to faces that fill the frame (which YuNet only finds at <= 640 px).
DETECTION_SIZES: tuple[int, ...] = (640, 1280)
# Crop around a face given to FaceLandmarker: side = factor × max(box w, h).
LANDMARK_CROP_FACTOR = 1.9
LANDMARK_INPUT_SIZE = 384
# Mean distance between the landmarks of a window and of its mirror image, in window
# widths. Real upright faces measure 0.002-0.007; above TRY_TURNED_ABOVE the half-turned
# window is tried as well (the lower wins); above REJECT_ABOVE the face is not confirmed.
TRY_TURNED_ABOVE = 0.008
REJECT_ABOVE = 0.04
# Refinement windows read from one shared shrunk copy of the face when the landmarker's
# window is below this fraction of the face's own resolution (camera files, not 1 MP photos).
SHARED_SHRINK_BELOW = 0.3
# Second-pass windows, as (shift across, shift along the face in window widths, size,
# turn in degrees). The landmarker's answer moves by a fraction of a pixel with where its
# window falls; the mean over these windows halves that jitter, which is what thin regions
# (eye whites, lips) need to come out the same in a mirrored, rescaled or re-exposed copy.
# The set is its own mirror image (each shift across and turn has its opposite), so a
# mirrored photo is read through mirrored windows.
REFINE_WINDOWS: tuple[tuple[float, float, float, float], ...] = (
    (0.0, 0.0, 1.0, 0.0),
    (0.04, 0.03, 0.95, 4.0),
    (-0.04, 0.03, 0.95, -4.0),
    (0.04, -0.03, 1.05, -4.0),
    (-0.04, -0.03, 1.05, 4.0),
    (0.0, 0.0, 0.9, 0.0),
    (0.0, 0.0, 1.1, 0.0),
)


@dataclass
class Detection:
    """One YuNet face: ``box`` (x, y, w, h), ``score``, ``keypoints5`` [5, 2] in image px
    (subject's right eye, left eye, nose tip, right mouth corner, left mouth corner)."""

    box: tuple[float, float, float, float]
    score: float
    keypoints5: np.ndarray
    # Found only with the frame turned by ``turn`` × 90° (np.rot90); ``upright`` is the
    # same detection in that turned frame, where the landmarker should look at it.
    turn: int = 0
    upright: Detection | None = None


# ---------------------------------------------------------------------------------------
# YuNet


class _YuNet:
    def __init__(self, path: str) -> None:
        import cv2

        try:
            self.detector = cv2.FaceDetectorYN.create(path, "", (320, 320), 0.5, 0.3, 5000)
        except cv2.error as exc:  # corrupt or foreign file
            raise ModelFileError(f"could not load the YuNet face detector from {path}: {exc}") from exc
        self.lock = threading.Lock()

    def detect(self, bgr: np.ndarray, score_threshold: float) -> np.ndarray:
        with self.lock:
            self.detector.setScoreThreshold(float(score_threshold))
            self.detector.setInputSize((bgr.shape[1], bgr.shape[0]))
            with model_time("yunet"):
                _, faces = self.detector.detect(bgr)
        return np.zeros((0, 15), np.float32) if faces is None else np.asarray(faces, np.float32)


def _yunet() -> _YuNet:
    path = model_path("yunet")
    return cached_model(("yunet", str(path)), lambda: _YuNet(str(path)))


def _nms(dets: list[Detection], iou_threshold: float = 0.4) -> list[Detection]:
    dets = sorted(dets, key=lambda d: d.score, reverse=True)
    kept: list[Detection] = []
    for det in dets:
        if all(box_iou(det.box, other.box) < iou_threshold and not _contained(det.box, other.box) for other in kept):
            kept.append(det)
    return kept


def _contained(a: tuple[float, ...], b: tuple[float, ...], fraction: float = 0.8) -> bool:
    """True when most of the smaller box lies inside the other (a face found twice at two scales)."""
    ax, ay, aw, ah = a
    bx, by, bw, bh = b
    iw = max(0.0, min(ax + aw, bx + bw) - max(ax, bx))
    ih = max(0.0, min(ay + ah, by + bh) - max(ay, by))
    smaller = min(aw * ah, bw * bh)
    return smaller > 0 and iw * ih / smaller > fraction


def box_iou(a: tuple[float, ...], b: tuple[float, ...]) -> float:
    ax, ay, aw, ah = a
    bx, by, bw, bh = b
    iw = max(0.0, min(ax + aw, bx + bw) - max(ax, bx))
    ih = max(0.0, min(ay + ah, by + bh) - max(ay, by))
    inter = iw * ih
    union = aw * ah + bw * bh - inter
    return inter / union if union > 0 else 0.0


def _resize_long_side(rgb: np.ndarray, size: int) -> tuple[np.ndarray, float]:
    import cv2

    height, width = rgb.shape[:2]
    factor = size / max(height, width)
    if abs(factor - 1.0) < 1e-3:
        return rgb, 1.0
    new_size = (max(1, round(width * factor)), max(1, round(height * factor)))
    interpolation = cv2.INTER_AREA if factor < 1 else cv2.INTER_LINEAR
    return cv2.resize(rgb, new_size, interpolation=interpolation), factor


def _detect_upright(rgb: np.ndarray, confidence: float) -> list[Detection]:
    yunet = _yunet()
    long_side = max(rgb.shape[:2])
    # Sizes to try: the fixed ladder, capped at the frame size; small frames are upsampled
    # to 320 px so tiny inputs still give YuNet enough pixels.
    sizes = sorted({min(s, long_side) for s in DETECTION_SIZES} | ({320} if long_side < 320 else set()))
    found: list[Detection] = []
    for size in sizes:
        scaled, factor = _resize_long_side(rgb, size)
        bgr = np.ascontiguousarray(scaled[:, :, ::-1])
        for row in yunet.detect(bgr, confidence):
            x, y, w, h = (float(v) / factor for v in row[:4])
            kps = row[4:14].reshape(5, 2).astype(np.float64) / factor
            found.append(Detection(box=(x, y, w, h), score=float(row[14]), keypoints5=kps))
    return _nms(found)


def _rotate_points(points: np.ndarray, k: int, height: int, width: int, continuous: bool = False) -> np.ndarray:
    """Map points from ``np.rot90(img, k)`` coordinates back to the original ``height×width`` frame.

    Pixel-index coordinates by default; ``continuous`` for coordinates where pixel ``i``
    spans ``[i, i + 1)`` (landmarks).
    """
    edge = 0 if continuous else 1
    out = points.copy()
    for step in range(k % 4, 0, -1):
        # ``rot90(a)`` maps a's (x, y) to (y, W_a - 1 - x) where W_a is a's width; undo one
        # turn at a time, from rot90(img, step) back to rot90(img, step - 1).
        inner_width = width if (step - 1) % 2 == 0 else height
        x, y = out[:, 0].copy(), out[:, 1].copy()
        out[:, 0] = inner_width - edge - y
        out[:, 1] = x
    return out


def detect_faces(rgb: np.ndarray, confidence: float = 0.6, try_rotations: bool = True) -> list[Detection]:
    """All faces in an ``H×W×3`` uint8 RGB frame, best score first.

    When nothing is found upright and ``try_rotations`` is set, the frame is also tried
    rotated by 90°, 270° and 180° (a photo saved on its side), and the detections are mapped
    back into the frame's own coordinates (``info`` of the parse records the angle).
    """
    found = _detect_upright(rgb, confidence)
    if found or not try_rotations:
        return found
    height, width = rgb.shape[:2]
    for k in (1, 3, 2):
        rotated = np.ascontiguousarray(np.rot90(rgb, k))
        dets = _detect_upright(rotated, confidence)
        if not dets:
            continue
        out = []
        for det in dets:
            x, y, w, h = det.box
            corners = np.array([[x, y], [x + w, y + h]], np.float64)
            back = _rotate_points(corners, k, height, width)
            x0, y0 = back.min(axis=0)
            x1, y1 = back.max(axis=0)
            out.append(
                Detection(
                    box=(x0, y0, x1 - x0, y1 - y0),
                    score=det.score,
                    keypoints5=_rotate_points(det.keypoints5, k, height, width),
                    turn=k,
                    upright=det,
                )
            )
        log.info("portrait_polish: faces found only with the photo turned by %d degrees", 90 * k)
        return out
    return []


# ---------------------------------------------------------------------------------------
# MediaPipe Tasks


def _mediapipe_tasks() -> tuple[Any, Any]:
    """MediaPipe's ``BaseOptions`` and ``vision`` modules.

    Importing them imports MediaPipe's audio tasks, which keep the error of a missing
    PortAudio library (``audio_record.sd_error``) at module level; its traceback holds every
    frame of the stack that first imported MediaPipe, and so the locals of the first
    FaceParse call (a 24 MP photo, its preview) for the life of the process. The traceback
    is dropped: the error itself is all MediaPipe ever re-raises.
    """
    import sys

    from mediapipe.tasks.python import BaseOptions, vision

    audio_record = sys.modules.get("mediapipe.tasks.python.audio.core.audio_record")
    stored = getattr(audio_record, "sd_error", None)
    if isinstance(stored, BaseException):
        stored.__traceback__ = None
        stored.__context__ = None
    return BaseOptions, vision


class _MediapipeTask:
    """One MediaPipe Tasks object: created once, used under a lock (tasks are not
    thread-safe), closed at interpreter exit."""

    def __init__(self, create: Callable[[], Any], path: str, what: str) -> None:
        from .quiet import native_stderr  # MediaPipe/TFLite/absl log chatter while a task is made

        try:
            with native_stderr():
                self.task = create()
        except Exception as exc:  # noqa: BLE001 - mediapipe raises RuntimeError/ValueError for bad files
            raise ModelFileError(f"could not load the MediaPipe {what} from {path}: {exc}") from exc
        self.what = what
        self.lock = threading.Lock()
        # Close while the interpreter is still intact: mediapipe's own __del__ needs its
        # dispatcher thread pool, which Python shuts down before ordinary atexit handlers.
        register = getattr(threading, "_register_atexit", atexit.register)
        register(self.close)

    def close(self) -> None:
        with self.lock:
            task, self.task = self.task, None
        if task is not None:
            try:
                task.close()
            except Exception:  # noqa: BLE001 - best effort at exit
                pass

    def _image(self, rgb: np.ndarray) -> Any:
        import mediapipe as mp

        return mp.Image(image_format=mp.ImageFormat.SRGB, data=np.ascontiguousarray(rgb))


# ---------------------------------------------------------------------------------------
# FaceLandmarker


class _Landmarker(_MediapipeTask):
    def __init__(self, path: str) -> None:
        BaseOptions, vision = _mediapipe_tasks()
        options = vision.FaceLandmarkerOptions(
            base_options=BaseOptions(model_asset_path=path),
            running_mode=vision.RunningMode.IMAGE,
            num_faces=3,
            min_face_detection_confidence=0.5,
            min_face_presence_confidence=0.5,
            min_tracking_confidence=0.3,
        )
        super().__init__(lambda: vision.FaceLandmarker.create_from_options(options), path, "face landmarker")

    def detect(self, rgb: np.ndarray) -> list[np.ndarray]:
        image = self._image(rgb)
        with self.lock:
            if self.task is None:
                raise RuntimeError("face landmarker was closed")
            with model_time("landmarks"):
                result = self.task.detect(image)
        return [np.array([[p.x, p.y, p.z] for p in face], np.float64) for face in result.face_landmarks]


def _landmarker() -> _Landmarker:
    path = model_path("face_landmarker")
    return cached_model(("face_landmarker", str(path)), lambda: _Landmarker(str(path)))


def face_window(
    rgb: np.ndarray, center: tuple[float, float], side: float, size: int, roll: float = 0.0
) -> tuple[np.ndarray, np.ndarray]:
    """Resample a square window of ``side`` px around ``center``, turned by ``roll`` radians
    so the face in it is upright, to ``size``×``size`` (parts outside the frame are black).

    Returns ``(crop, to_image)``: ``to_image`` is the 2×3 affine matrix taking crop points
    to image points, both in continuous coordinates (pixel ``i`` spans ``[i, i + 1)``, as
    MediaPipe's normalised landmarks do).
    """
    import cv2

    scale = size / side
    if scale < 0.75:
        # Shrink the window's neighbourhood with area averaging first: a rotating warp
        # interpolates linearly and would alias (noisier landmarks, less stable masks).
        cx, cy = center
        half = side * 0.75  # covers the turned square (side/2 · √2)
        x0 = max(0, int(math.floor(cx - half)))
        y0 = max(0, int(math.floor(cy - half)))
        x1 = min(rgb.shape[1], int(math.ceil(cx + half)))
        y1 = min(rgb.shape[0], int(math.ceil(cy + half)))
        if x1 - x0 >= 2 and y1 - y0 >= 2:
            factor = scale * 1.25
            region = rgb[y0:y1, x0:x1]
            new_w = max(1, round((x1 - x0) * factor))
            new_h = max(1, round((y1 - y0) * factor))
            small = cv2.resize(region, (new_w, new_h), interpolation=cv2.INTER_AREA)
            fx, fy = new_w / (x1 - x0), new_h / (y1 - y0)
            crop, to_small = face_window(small, ((cx - x0) * fx, (cy - y0) * fy), side * (fx + fy) / 2, size, roll)
            # small -> image: x = x0 + u / fx
            to_image = np.array([[1 / fx, 0.0, x0], [0.0, 1 / fy, y0]]) @ np.vstack([to_small, [0.0, 0.0, 1.0]])
            return crop, to_image
    cos, sin = math.cos(roll), math.sin(roll)
    # image -> crop (continuous): u = scale · R(-roll) · (p - center) + size / 2
    linear = scale * np.array([[cos, sin], [-sin, cos]], np.float64)
    offset = np.array([size / 2, size / 2]) - linear @ np.asarray(center, np.float64)
    # OpenCV indexes pixel centres: u_idx + 0.5 = A (x_idx + 0.5) + t.
    cv_matrix = np.hstack([linear, (offset + linear @ np.array([0.5, 0.5]) - 0.5)[:, None]])
    interpolation = cv2.INTER_AREA if scale < 1 and roll == 0.0 else cv2.INTER_LINEAR
    crop = cv2.warpAffine(
        rgb, cv_matrix, (size, size), flags=interpolation, borderMode=cv2.BORDER_CONSTANT, borderValue=(0, 0, 0)
    )
    inverse = np.linalg.inv(linear)
    to_image = np.hstack([inverse, (-inverse @ offset)[:, None]])
    return crop, to_image


def _mirror_average(direct: np.ndarray, mirrored: np.ndarray) -> np.ndarray:
    """Average landmarks (normalised crop coords) of a crop and of its mirror image.

    The landmark model is not exactly mirror-symmetric; averaging the two views makes the
    result so (a flipped photo parses to the flipped masks) and halves the jitter.
    """
    back = mirrored[list(mirror_landmarks())].copy()
    back[:, 0] = 1.0 - back[:, 0]
    return (direct + back) / 2.0


def _landmarks_in_window(
    landmarker: _Landmarker,
    rgb: np.ndarray,
    center: tuple[float, float],
    side: float,
    roll: float,
    nose: np.ndarray,
    mirror_average: bool,
) -> tuple[np.ndarray, float] | None:
    """Landmarks (image px) of the face nearest ``nose`` in a turned square window and the
    disagreement between the direct and mirrored views (window widths), or None."""
    crop, to_image = face_window(rgb, center, side, LANDMARK_INPUT_SIZE, roll)
    faces = landmarker.detect(crop)
    if not faces:
        return None

    def in_image(pts: np.ndarray) -> np.ndarray:
        out = pts.copy()
        out[:, :2] = (pts[:, :2] * LANDMARK_INPUT_SIZE) @ to_image[:, :2].T + to_image[:, 2]
        out[:, 2] = pts[:, 2] * side  # MediaPipe's z uses the x scale
        return out

    best = min(faces, key=lambda pts: float(np.hypot(*(in_image(pts)[1, :2] - nose))))
    if float(np.hypot(*(in_image(best)[1, :2] - nose))) >= side * 0.25:
        return None
    disagreement = math.inf
    mirrored_faces = landmarker.detect(np.ascontiguousarray(crop[:, ::-1]))
    if mirrored_faces:
        # The mirrored view of the same face lands on the same nose. How far the two views
        # disagree (in window widths) tells a real face from the landmarker's guess at
        # an upside-down or non-face window.
        candidates = [_mirror_average(best, m) for m in mirrored_faces]
        averaged = min(candidates, key=lambda pts: float(np.hypot(*(pts[1, :2] - best[1, :2]))))
        disagreement = 2.0 * float(np.mean(np.hypot(*(averaged[:, :2] - best[:, :2]).T)))
        if mirror_average and float(np.hypot(*(averaged[1, :2] - best[1, :2]))) < 0.05:
            best = averaged
    return in_image(best), disagreement


def _roll(right_eye: np.ndarray, left_eye: np.ndarray) -> float:
    """In-plane face rotation (radians) from the subject's right eye to the left eye."""
    dx, dy = (np.asarray(left_eye, np.float64) - np.asarray(right_eye, np.float64))[:2]
    return math.atan2(dy, dx)


def face_landmarks(rgb: np.ndarray, det: Detection, mirror_average: bool = True) -> np.ndarray | None:
    """478×3 landmarks (x, y in image px; z in the same px units) for one detection, or None.

    First pass: a square window centred on the detection, turned upright by the roll of
    YuNet's eye keypoints (tilted heads and photos on their side; upside down is tried too),
    twice as wide again if nothing is found; the face whose nose is nearest the detection's
    nose wins. Second pass: the window is re-centred and re-levelled on the first pass's
    landmarks, so the result depends on the face, not on where the detector's box fell.
    With ``mirror_average`` each pass also runs on the mirrored window.
    """
    landmarker = _landmarker()
    x, y, w, h = det.box
    center = (x + w / 2, y + h / 2)
    nose = det.keypoints5[2]
    roll = _roll(det.keypoints5[0], det.keypoints5[1])
    # Windows to try: around the box, then a wider one, then around the keypoints (a face
    # cut by the frame edge has a truncated box but YuNet still places its eyes and mouth).
    keypoint_centre = det.keypoints5.mean(axis=0)
    eye_distance = float(np.hypot(*(det.keypoints5[1] - det.keypoints5[0])))
    windows = [(center, max(w, h) * LANDMARK_CROP_FACTOR), (center, max(w, h) * LANDMARK_CROP_FACTOR * 1.5)]
    if eye_distance > 2:
        windows += [((float(keypoint_centre[0]), float(keypoint_centre[1])), eye_distance * f) for f in (4.5, 3.5)]
    tries: list[tuple[np.ndarray, float]] = []
    for extra in (0.0, math.pi):
        for window_centre, side in windows:
            found = _landmarks_in_window(landmarker, rgb, window_centre, side, roll + extra, nose, mirror_average)
            if found is not None:
                tries.append(found)
                break
        # YuNet can report an upside-down face with upright keypoints; then the
        # landmarker's two views disagree, and the half-turned window is tried as well.
        if tries and tries[-1][1] < TRY_TURNED_ABOVE:
            break
    if not tries:
        return None
    first, disagreement = min(tries, key=lambda item: item[1])
    if disagreement > REJECT_ABOVE:
        # Neither upright nor upside down do the two views agree: not a face the
        # landmarker can read (blurred background figure, pattern).
        return None
    roll = _roll(first[RIGHT_IRIS_CENTER], first[LEFT_IRIS_CENTER])
    # Extent of the face across and along its own axes, for the second window.
    cos, sin = math.cos(roll), math.sin(roll)
    face_axes = np.array([[cos, -sin], [sin, cos]])  # face-local -> image directions
    local = (first[:, :2] - first[:, :2].mean(axis=0)) @ face_axes
    extent = float((local.max(axis=0) - local.min(axis=0)).max())
    mid_local = (local.max(axis=0) + local.min(axis=0)) / 2
    mid = first[:, :2].mean(axis=0) + face_axes @ mid_local
    side = extent * LANDMARK_CROP_FACTOR * 0.9
    # A face far bigger than the landmarker's window (a camera file) is shrunk once for all
    # refinement windows, to twice the resolution the smallest of them needs; each window
    # then area-shrinks from that copy instead of from the full-resolution frame.
    source, origin, scale_xy = rgb, np.zeros(2), np.ones(2)
    if LANDMARK_INPUT_SIZE / (side * 0.9) < SHARED_SHRINK_BELOW:
        source, origin, scale_xy = _shrunk_neighbourhood(rgb, mid, side * 1.4, 2.5 * LANDMARK_INPUT_SIZE / (side * 0.9))
    window_scale = float(scale_xy.mean())
    found = []
    for across, along, scale, turn in REFINE_WINDOWS:
        offset = face_axes @ np.array([across, along]) * side
        centre = (mid + offset - origin) * scale_xy
        refined = _landmarks_in_window(
            landmarker,
            source,
            (float(centre[0]), float(centre[1])),
            side * scale * window_scale,
            roll + math.radians(turn),
            (first[1, :2] - origin) * scale_xy,
            mirror_average,
        )
        if refined is not None:
            points = refined[0].copy()
            points[:, :2] = points[:, :2] / scale_xy + origin
            points[:, 2] = points[:, 2] / window_scale
            found.append(points)
    return np.mean(found, axis=0) if found else first


def _shrunk_neighbourhood(rgb: np.ndarray, centre: np.ndarray, half: float, factor: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The frame around ``centre`` (± ``half`` px) area-shrunk by about ``factor``:
    ``(copy, origin, (fx, fy))`` with image point ``p`` at ``(p - origin) · (fx, fy)`` in
    the copy (the exact factors of its rounded size)."""
    import cv2

    height, width = rgb.shape[:2]
    x0, y0 = max(0, int(math.floor(centre[0] - half))), max(0, int(math.floor(centre[1] - half)))
    x1, y1 = min(width, int(math.ceil(centre[0] + half))), min(height, int(math.ceil(centre[1] + half)))
    size = (max(1, round((x1 - x0) * factor)), max(1, round((y1 - y0) * factor)))
    small = cv2.resize(rgb[y0:y1, x0:x1], size, interpolation=cv2.INTER_AREA)
    return small, np.array([x0, y0], np.float64), np.array([size[0] / (x1 - x0), size[1] / (y1 - y0)])


# ---------------------------------------------------------------------------------------
# Person / background (MediaPipe selfie segmentation through the Tasks ImageSegmenter)

# Long side of the copy the segmenter sees (the model itself works at 256×256).
PERSON_INPUT_SIZE = 512


class _Segmenter(_MediapipeTask):
    def __init__(self, path: str) -> None:
        BaseOptions, vision = _mediapipe_tasks()
        options = vision.ImageSegmenterOptions(
            base_options=BaseOptions(model_asset_path=path),
            running_mode=vision.RunningMode.IMAGE,
            output_confidence_masks=True,
            output_category_mask=False,
        )
        super().__init__(lambda: vision.ImageSegmenter.create_from_options(options), path, "selfie segmentation model")

    def segment(self, rgb: np.ndarray) -> np.ndarray:
        image = self._image(rgb)
        with self.lock:
            if self.task is None:
                raise RuntimeError("selfie segmenter was closed")
            with model_time("segmentation"):
                result = self.task.segment(image)
            person = np.array(result.confidence_masks[0].numpy_view(), np.float32, copy=True)
        return person.reshape(person.shape[0], person.shape[1])


def _segmenter() -> _Segmenter:
    path = model_path("selfie_segmentation")
    return cached_model(("selfie_segmentation", str(path)), lambda: _Segmenter(str(path)))


def person_probability(rgb: np.ndarray) -> np.ndarray:
    """Soft person (foreground) probability of an ``H×W×3`` uint8 RGB frame, at reduced
    resolution (long side :data:`PERSON_INPUT_SIZE`), float32 0..1."""
    scaled, _ = _resize_long_side(rgb, min(PERSON_INPUT_SIZE, max(rgb.shape[:2])))
    segmenter = _segmenter()
    # The mean of the frame's and its mirror's answers: the network is not mirror-symmetric,
    # and hair (person ∩ head) would otherwise change when a photo is flipped.
    person = segmenter.segment(scaled)
    person = (person + segmenter.segment(np.ascontiguousarray(scaled[:, ::-1]))[:, ::-1]) / 2.0
    return np.clip(person, 0.0, 1.0)
