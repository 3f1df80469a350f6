"""Landmark geometry for FaceParse: anti-aliased rasterising, the face's own axes, the
extended forehead, neck and head shapes, face size and crop windows.

All coordinates are continuous image or crop pixels (pixel ``i`` spans ``[i, i + 1)``),
the convention MediaPipe's normalised landmarks use.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from ..landmarks import FACE_OVAL, JAW, LEFT_IRIS_CENTER, MOUTH_CORNERS, RIGHT_IRIS_CENTER
from ..regions import clamp_crop

# Head geometry in eye-to-mouth distances: top of the hair region above the eyes, and
# neck length below the jaw line.
HEAD_TOP = 2.75
NECK_LENGTH = 1.6
# The forehead's geometry (forehead_oval): oval points above the eye line are pushed up by
# FOREHEAD_PUSH × their height above FOREHEAD_FROM, and out by TEMPLE_PUSH (all in
# eye-to-mouth distances).
FOREHEAD_FROM = 0.0
FOREHEAD_PUSH = 1.1
TEMPLE_PUSH = 0.25


def fill_polygons(shape: tuple[int, int], polygons: Sequence[np.ndarray], supersample: int = 4) -> np.ndarray:
    """Float32 coverage (0..1) of filled polygons, anti-aliased.

    OpenCV's fill snaps vertices to whole pixels and includes both edges, so the polygons
    are drawn ``supersample`` times larger inside their bounding box and area-averaged back:
    edges land within ``1/(2·supersample)`` px, and a mirrored face is drawn as the mirror
    image (at 1×, snapping would move thin regions like eye whites by up to a pixel).
    """
    import cv2

    height, width = shape
    mask = np.zeros(shape, np.float32)
    polys = [np.asarray(p, np.float64).reshape(-1, 2) for p in polygons if len(p) >= 3]
    if not polys:
        return mask
    every = np.vstack(polys)
    x0 = max(0, int(math.floor(every[:, 0].min())) - 1)
    y0 = max(0, int(math.floor(every[:, 1].min())) - 1)
    x1 = min(width, int(math.ceil(every[:, 0].max())) + 1)
    y1 = min(height, int(math.ceil(every[:, 1].max())) + 1)
    if x1 <= x0 or y1 <= y0:
        return mask
    big = np.zeros(((y1 - y0) * supersample, (x1 - x0) * supersample), np.float32)
    # Sub-pixel centres sit at integers in OpenCV's convention, hence the half-pixel shift.
    pts = [np.round((p - [x0, y0]) * supersample - 0.5).astype(np.int32).reshape(-1, 1, 2) for p in polys]
    cv2.fillPoly(big, pts, 1.0, lineType=cv2.LINE_8)
    mask[y0:y1, x0:x1] = cv2.resize(big, (x1 - x0, y1 - y0), interpolation=cv2.INTER_AREA)
    return mask


def convex_hull(points: np.ndarray) -> np.ndarray:
    import cv2

    return cv2.convexHull(np.asarray(points, np.float32)).reshape(-1, 2)


def disc(shape: tuple[int, int], center: np.ndarray, radius: float) -> np.ndarray:
    """Anti-aliased disc (coverage estimated from the distance to the rim)."""
    ys = np.arange(shape[0], dtype=np.float32)[:, None] + 0.5
    xs = np.arange(shape[1], dtype=np.float32)[None, :] + 0.5
    dist = np.sqrt((xs - center[0]) ** 2 + (ys - center[1]) ** 2)
    return np.clip(radius - dist + 0.5, 0.0, 1.0).astype(np.float32)


def face_axes(lm: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    """(eye midpoint, unit 'up' vector of the face, eye-to-mouth distance) from landmarks."""
    eye_mid = (lm[RIGHT_IRIS_CENTER] + lm[LEFT_IRIS_CENTER]) / 2
    mouth_mid = (lm[MOUTH_CORNERS[0]] + lm[MOUTH_CORNERS[1]]) / 2
    up = eye_mid - mouth_mid
    dist = float(np.hypot(*up[:2]))
    return eye_mid[:2], up[:2] / max(dist, 1e-6), max(dist, 1e-6)


def forehead_oval(lm: np.ndarray, start: float = FOREHEAD_FROM, push: float = FOREHEAD_PUSH, temple: float = TEMPLE_PUSH) -> np.ndarray:
    """Face oval with its upper part pushed up (and out at the temples) past the hairline.

    MediaPipe's oval stops on the upper forehead (0.73-0.85 eye-to-mouth distances above the
    eyes on the test portraits, whose hairlines are at 1.0-1.55); pushed up by ``push`` ×
    the height above ``start`` it ends near 1.7. The skin colour model and the hairline's
    hair test (core/parse/pipeline.py) trim whatever hair the extension takes in.
    """
    eye_mid, up, dist = face_axes(lm)
    oval = lm[list(FACE_OVAL), :2].copy()
    height = (oval - eye_mid) @ up / dist  # in eye-mouth units, > 0 above the eyes
    push = np.clip(height - start, 0.0, None) * push * dist
    across = np.array([up[1], -up[0]])
    side = np.sign((oval - eye_mid) @ across)
    lateral = np.clip(height, 0.0, 1.0) * temple * dist * side
    return oval + push[:, None] * up[None, :] + lateral[:, None] * across[None, :]


def neck_polygon(lm: np.ndarray) -> np.ndarray:
    _, up, dist = face_axes(lm)
    jaw = lm[list(JAW), :2]
    right, left = jaw[2], jaw[-3]  # below the ear lobes
    inward = (left - right) * 0.12
    bottom_right = right + inward - up * NECK_LENGTH * dist
    bottom_left = left - inward - up * NECK_LENGTH * dist
    return np.vstack([jaw, bottom_left[None], bottom_right[None]])


def head_region(shape: tuple[int, int], lm: np.ndarray) -> np.ndarray:
    """Where this face's hair can be: an ellipse over the head, wider and taller than the face."""
    import cv2

    eye_mid, up, dist = face_axes(lm)
    oval = lm[list(FACE_OVAL), :2]
    half_width = float(np.max(np.abs((oval - eye_mid) @ np.array([up[1], -up[0]]))))
    center = eye_mid + up * 0.55 * dist
    axes = (max(1, round(half_width * 1.45)), max(1, round(dist * (HEAD_TOP - 0.55))))
    angle = math.degrees(math.atan2(up[0], -up[1]))
    mask = np.zeros(shape, np.float32)
    cv2.ellipse(mask, (round(center[0]), round(center[1])), axes, angle, 0, 360, 1.0, thickness=-1)
    return mask


def face_scale_from_landmarks(lm: np.ndarray) -> float:
    """Face size in px: inter-ocular (iris-centre) distance × 2.5."""
    return float(np.hypot(*(lm[LEFT_IRIS_CENTER, :2] - lm[RIGHT_IRIS_CENTER, :2])) * 2.5)


def face_scale_from_keypoints(kps: np.ndarray) -> float:
    return float(np.hypot(*(kps[1] - kps[0])) * 2.5)


def crop_from_landmarks(lm: np.ndarray, height: int, width: int) -> tuple[int, int, int, int]:
    """Crop window holding the face, forehead, hair region and neck, along the face's own
    axes (so a tilted or sideways face gets its hair and neck room where they are)."""
    eye_mid, up, dist = face_axes(lm)
    across = np.array([-up[1], up[0]])
    oval = lm[list(FACE_OVAL), :2] - eye_mid
    half_width = float(np.max(np.abs(oval @ across)))
    lowest = float(np.min(oval @ up))  # chin, negative
    corners = [
        eye_mid + a * across * half_width * 1.5 + up * v
        for a in (-1.0, 1.0)
        for v in (HEAD_TOP * dist, lowest - NECK_LENGTH * dist)
    ]
    pts = np.array(corners)
    x0, y0 = pts.min(axis=0)
    x1, y1 = pts.max(axis=0)
    return clamp_crop(math.floor(x0), math.floor(y0), math.ceil(x1), math.ceil(y1), height, width)


def crop_window(box: tuple[float, float, float, float], height: int, width: int) -> tuple[int, int, int, int]:
    """Face box grown to take in forehead and hair (above), ears (sides) and neck (below)."""
    x, y, w, h = box
    return clamp_crop(x - 0.45 * w, y - 0.65 * h, x + 1.45 * w, y + 1.55 * h, height, width)


def grid_size(height: int, width: int, scale: float, face_px: float) -> tuple[int, int]:
    """Size of a working grid over a ``height × width`` crop on which the face (``scale``
    px wide) is about ``face_px`` wide; never larger than the crop."""
    factor = min(1.0, face_px / max(scale, 1.0))
    return max(1, round(height * factor)), max(1, round(width * factor))
