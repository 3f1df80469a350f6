"""FaceParse: every face of every frame, with soft region masks on a crop around each face.

Pipeline per frame (see DESIGN.md):

1. YuNet finds faces (:mod:`core.detect`, several input sizes merged by NMS).
2. MediaPipe FaceLandmarker gives 478 landmarks (irises included) on a crop around each face.
3. Region masks are drawn from landmark polygons on a *working copy* of the face crop whose
   face width is about :data:`WORK_FACE_PX` pixels (so a 24 MP photo costs what a 1 MP one
   does), refined with the pixels (teeth by colour, iris clipped to the eye opening),
   feathered in proportion to the face size and resized to the crop at full resolution.

The only 8-bit data are the copies handed to the detectors (model input). Masks are float32.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from . import detect
from .colour import rgb_to_lab
from .filters import gaussian_blur
from .regions import FACE_REGION_NAMES, Face, FaceRegions, ImageFaces, clamp_crop
from .tensors import to_rgb

log = logging.getLogger("portrait_polish")

# Detections FaceLandmarker cannot confirm are kept (box only) from this YuNet score up.
BOX_ONLY_MIN_SCORE = 0.88
# Face width (in pixels) of the working copy the masks are computed on.
WORK_FACE_PX = 384.0

# ---------------------------------------------------------------------------------------
# MediaPipe face-mesh landmark indices (canonical face model). "Left"/"right" are the
# subject's sides, as in MediaPipe: the subject's right eye is on the image's left.

FACE_OVAL = [
    10,
    338,
    297,
    332,
    284,
    251,
    389,
    356,
    454,
    323,
    361,
    288,
    397,
    365,
    379,
    378,
    400,
    377,
    152,
    148,
    176,
    149,
    150,
    136,
    172,
    58,
    132,
    93,
    234,
    127,
    162,
    21,
    54,
    103,
    67,
    109,
]
RIGHT_EYE = [33, 246, 161, 160, 159, 158, 157, 173, 133, 155, 154, 153, 145, 144, 163, 7]
LEFT_EYE = [263, 466, 388, 387, 386, 385, 384, 398, 362, 382, 381, 380, 374, 373, 390, 249]
RIGHT_BROW = [70, 63, 105, 66, 107, 55, 65, 52, 53, 46]
LEFT_BROW = [300, 293, 334, 296, 336, 285, 295, 282, 283, 276]
RIGHT_IRIS_CENTER, RIGHT_IRIS_RING = 468, [469, 470, 471, 472]
LEFT_IRIS_CENTER, LEFT_IRIS_RING = 473, [474, 475, 476, 477]
LIPS_OUTER_UPPER = [61, 185, 40, 39, 37, 0, 267, 269, 270, 409, 291]
LIPS_OUTER_LOWER = [291, 375, 321, 405, 314, 17, 84, 181, 91, 146, 61]
LIPS_INNER_UPPER = [78, 191, 80, 81, 82, 13, 312, 311, 310, 415, 308]
LIPS_INNER_LOWER = [308, 324, 318, 402, 317, 14, 87, 178, 88, 95, 78]
NOSE = [
    168,
    6,
    197,
    195,
    5,
    4,
    1,
    19,
    94,
    2,
    98,
    97,
    326,
    327,
    294,
    278,
    344,
    440,
    275,
    45,
    220,
    115,
    48,
    64,
    129,
    358,
    279,
    49,
    209,
    429,
    217,
    437,
    188,
    412,
    122,
    351,
    193,
    417,
    196,
    419,
    3,
    248,
    51,
    281,
]
# Lower jaw (image left to right along the chin), used for the neck.
JAW = [132, 58, 172, 136, 150, 149, 176, 148, 152, 377, 400, 378, 379, 365, 397, 288, 361]
# Mid-cheek points, where the skin colour model samples the face's own skin.
CHEEK_POINTS = [50, 101, 118, 117, 123, 280, 330, 347, 346, 352, 36, 266, 205, 425]

# Regions that swap under a horizontal flip.
LEFT_RIGHT_PAIRS = (("left_brow", "right_brow"), ("left_eye_white", "right_eye_white"), ("left_iris", "right_iris"))


@dataclass
class ParseOptions:
    """Knobs of :func:`parse_faces` (also the FaceParse node's widgets)."""

    min_face_size: float = 24.0
    confidence: float = 0.7
    max_faces: int = 16
    faces: str = "all"  # "all", "largest", or a face index ("0", "1", ...)
    feather: float = 1.0
    try_rotations: bool = True


# ---------------------------------------------------------------------------------------
# Rasterising


def _fill(shape: tuple[int, int], polygons: Sequence[np.ndarray]) -> np.ndarray:
    """Binary float32 mask of filled polygons (sub-pixel vertex precision)."""
    import cv2

    mask = np.zeros(shape, np.float32)
    shift = 4
    pts = [
        np.round(np.asarray(p, np.float64) * (1 << shift)).astype(np.int32).reshape(-1, 1, 2)
        for p in polygons
        if len(p) >= 3
    ]
    if pts:
        cv2.fillPoly(mask, pts, 1.0, lineType=cv2.LINE_8, shift=shift)
    return mask


def _convex_hull(points: np.ndarray) -> np.ndarray:
    import cv2

    return cv2.convexHull(np.asarray(points, np.float32)).reshape(-1, 2)


def _disc(shape: tuple[int, int], center: np.ndarray, radius: float) -> np.ndarray:
    """Anti-aliased disc (coverage estimated from the distance to the rim)."""
    ys = np.arange(shape[0], dtype=np.float32)[:, None] + 0.5
    xs = np.arange(shape[1], dtype=np.float32)[None, :] + 0.5
    dist = np.sqrt((xs - center[0]) ** 2 + (ys - center[1]) ** 2)
    return np.clip(radius - dist + 0.5, 0.0, 1.0).astype(np.float32)


# ---------------------------------------------------------------------------------------
# Geometry helpers


def _face_axes(lm: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    """(eye midpoint, unit 'up' vector of the face, eye-to-mouth distance) from landmarks."""
    eye_mid = (lm[RIGHT_IRIS_CENTER] + lm[LEFT_IRIS_CENTER]) / 2
    mouth_mid = (lm[61] + lm[291]) / 2
    up = eye_mid - mouth_mid
    dist = float(np.hypot(*up))
    return eye_mid, up / max(dist, 1e-6), max(dist, 1e-6)


def _forehead_oval(lm: np.ndarray) -> np.ndarray:
    """Face oval with its upper part pushed up to reach the hairline.

    MediaPipe's oval stops on the upper forehead; the skin colour model (and the hair mask)
    trims whatever hair the extension takes in.
    """
    eye_mid, up, dist = _face_axes(lm)
    oval = lm[FACE_OVAL, :2].copy()
    height = (oval - eye_mid) @ up / dist  # in eye-mouth units, > 0 above the eyes
    push = np.clip(height - 0.3, 0.0, None) * 0.55 * dist
    return oval + push[:, None] * up[None, :]


def _neck_polygon(lm: np.ndarray) -> np.ndarray:
    _, up, dist = _face_axes(lm)
    jaw = lm[JAW, :2]
    chin = lm[152, :2]
    right, left = jaw[2], jaw[-3]  # below the ear lobes
    inward = (left - right) * 0.12
    bottom_right = right + inward - up * 1.6 * dist
    bottom_left = left - inward - up * 1.6 * dist
    del chin
    return np.vstack([jaw, bottom_left[None], bottom_right[None]])


def face_scale_from_landmarks(lm: np.ndarray) -> float:
    """Face size in px: inter-ocular (iris-centre) distance × 2.5."""
    return float(np.hypot(*(lm[LEFT_IRIS_CENTER, :2] - lm[RIGHT_IRIS_CENTER, :2])) * 2.5)


def face_scale_from_keypoints(kps: np.ndarray) -> float:
    return float(np.hypot(*(kps[1] - kps[0])) * 2.5)


def crop_window(box: tuple[float, float, float, float], height: int, width: int) -> tuple[int, int, int, int]:
    """Face box grown to take in forehead and hair (above), ears (sides) and neck (below)."""
    x, y, w, h = box
    return clamp_crop(x - 0.45 * w, y - 0.65 * h, x + 1.45 * w, y + 1.55 * h, height, width)


# ---------------------------------------------------------------------------------------
# Pixel models


def teeth_likelihood(lab: torch.Tensor, skin_lightness: float) -> torch.Tensor:
    """Soft 0..1 'this is tooth enamel' score from CIELAB ``[..., 3]``.

    Teeth are the bright, low-chroma pixels of the mouth: brighter than the dark mouth
    cavity, far less red than gums, tongue and lips (a* well below theirs). The lightness
    threshold follows the face's own skin lightness so dark and light skin both work.
    """
    lightness, a_star, b_star = lab[..., 0], lab[..., 1], lab[..., 2]
    chroma = torch.sqrt(a_star**2 + b_star**2)
    l_threshold = float(np.clip(0.75 * skin_lightness, 38.0, 60.0))
    bright = torch.sigmoid((lightness - l_threshold) / 4.0)
    not_red = torch.sigmoid((14.0 - a_star) / 2.5)
    low_chroma = torch.sigmoid((32.0 - chroma) / 4.0)
    return bright * not_red * low_chroma


# ---------------------------------------------------------------------------------------
# Per-face masks


def _face_masks(crop_rgb: torch.Tensor, lm_crop: np.ndarray, feather: float) -> dict[str, torch.Tensor]:
    """Region masks on one face crop (``[h, w, 3]`` float), landmarks in crop pixels."""
    height, width = crop_rgb.shape[:2]
    scale = face_scale_from_landmarks(lm_crop)
    factor = min(1.0, WORK_FACE_PX / max(scale, 1.0))
    work_h, work_w = max(1, round(height * factor)), max(1, round(width * factor))
    fy, fx = work_h / height, work_w / width
    lm = lm_crop[:, :2] * np.array([fx, fy])
    shape = (work_h, work_w)
    work_rgb = crop_rgb
    if (work_h, work_w) != (height, width):
        work_rgb = F.interpolate(crop_rgb.permute(2, 0, 1)[None], size=shape, mode="area")[0].permute(1, 2, 0)
    work_scale = scale * (fx + fy) / 2

    def poly(indices: Sequence[int]) -> np.ndarray:
        return lm[list(indices)]

    eye_open = {side: _fill(shape, [poly(idx)]) for side, idx in (("right", RIGHT_EYE), ("left", LEFT_EYE))}
    iris = {}
    for side, center, ring in (
        ("right", RIGHT_IRIS_CENTER, RIGHT_IRIS_RING),
        ("left", LEFT_IRIS_CENTER, LEFT_IRIS_RING),
    ):
        radius = float(np.mean(np.hypot(*(lm[ring] - lm[center]).T)))
        iris[side] = _disc(shape, lm[center], radius) * eye_open[side]
    hard: dict[str, np.ndarray] = {}
    for side in ("right", "left"):
        hard[f"{side}_iris"] = iris[side]
        hard[f"{side}_eye_white"] = np.clip(eye_open[side] - iris[side], 0.0, 1.0)
    hard["right_brow"] = _fill(shape, [poly(RIGHT_BROW)])
    hard["left_brow"] = _fill(shape, [poly(LEFT_BROW)])
    inner = np.vstack([poly(LIPS_INNER_UPPER), poly(LIPS_INNER_LOWER)[1:-1]])
    mouth_interior = _fill(shape, [inner])
    upper = np.vstack([poly(LIPS_OUTER_UPPER), poly(LIPS_INNER_UPPER)[::-1]])
    lower = np.vstack([poly(LIPS_OUTER_LOWER), poly(LIPS_INNER_LOWER)[::-1]])
    hard["upper_lip"] = np.clip(_fill(shape, [upper]) - mouth_interior, 0.0, 1.0)
    hard["lower_lip"] = np.clip(_fill(shape, [lower]) - mouth_interior - hard["upper_lip"], 0.0, 1.0)
    hard["mouth_interior"] = mouth_interior
    hard["nose"] = _fill(shape, [_convex_hull(poly(NOSE))])
    oval = _fill(shape, [_forehead_oval(lm)])
    features = np.maximum.reduce(
        [
            eye_open["right"],
            eye_open["left"],
            hard["right_brow"],
            hard["left_brow"],
            _fill(shape, [poly(LIPS_OUTER_UPPER + LIPS_OUTER_LOWER)]),
            hard["nose"],
        ]
    )
    hard["skin"] = np.clip(oval - features, 0.0, 1.0)
    hard["neck"] = np.clip(_fill(shape, [_neck_polygon(lm)]) - oval, 0.0, 1.0)

    # Feather: a Gaussian whose width follows the face size (≈0.5 % of the face width).
    sigma = max(0.0, feather) * 0.005 * work_scale
    masks = {name: torch.from_numpy(value) for name, value in hard.items()}
    if sigma > 0.3:
        masks = {name: gaussian_blur(value, sigma).clamp(0.0, 1.0) for name, value in masks.items()}

    # Teeth: mouth interior ∩ enamel-coloured pixels.
    lab = rgb_to_lab(work_rgb.clamp(0.0, 1.0))
    cheeks = np.clip(np.round(lm[CHEEK_POINTS]).astype(int), 0, [work_w - 1, work_h - 1])
    skin_lightness = float(lab[cheeks[:, 1], cheeks[:, 0], 0].median())
    masks["teeth"] = masks["mouth_interior"] * teeth_likelihood(lab, skin_lightness)
    masks["hair"] = torch.zeros(shape, dtype=torch.float32)

    out: dict[str, torch.Tensor] = {}
    for name in FACE_REGION_NAMES:
        value = masks[name].to(torch.float32)
        if shape != (height, width):
            value = F.interpolate(value[None, None], size=(height, width), mode="bilinear", align_corners=False)[0, 0]
        out[name] = value.clamp(0.0, 1.0).contiguous()
    return out


# ---------------------------------------------------------------------------------------
# Frames


def _uint8_model_input(rgb: torch.Tensor) -> np.ndarray:
    """8-bit copy of a float RGB frame for the detectors (model input only)."""
    return (rgb.detach().to("cpu", torch.float32).clamp(0.0, 1.0) * 255.0 + 0.5).to(torch.uint8).numpy()


def select_faces(detections: list[detect.Detection], options: ParseOptions) -> list[detect.Detection]:
    """Apply min size, max_faces (largest kept) and the face choice; result left to right."""
    kept = [d for d in detections if max(d.box[2], d.box[3]) >= options.min_face_size]
    kept.sort(key=lambda d: d.box[2] * d.box[3], reverse=True)
    if options.max_faces > 0:
        kept = kept[: options.max_faces]
    choice = str(options.faces).strip().lower()
    if choice == "largest":
        kept = kept[:1]
    kept.sort(key=lambda d: (d.box[0] + d.box[2] / 2, d.box[1]))
    if choice not in ("all", "largest", ""):
        try:
            index = int(choice)
        except ValueError as exc:
            raise ValueError(f"faces must be 'all', 'largest' or a face index, got {options.faces!r}") from exc
        kept = kept[index : index + 1] if 0 <= index < len(kept) else []
    return kept


def parse_frame(rgb: torch.Tensor, options: ParseOptions) -> ImageFaces:
    """Parse one ``[H, W, 3]`` float RGB frame."""
    height, width = rgb.shape[:2]
    item = ImageFaces(height=height, width=width)
    model_input = _uint8_model_input(rgb)
    detections = select_faces(detect.detect_faces(model_input, options.confidence, options.try_rotations), options)
    for det in detections:
        lm = detect.face_landmarks(model_input, det)
        crop = crop_window(det.box, height, width)
        face = Face(box=tuple(float(v) for v in det.box), score=det.score, crop=crop)
        face.keypoints5 = torch.from_numpy(det.keypoints5.astype(np.float32))
        if lm is None and det.score < BOX_ONLY_MIN_SCORE:
            # YuNet's weaker hits that FaceLandmarker cannot confirm are mostly not faces
            # (hair, patterned cloth at low resolution).
            log.debug("portrait_polish: dropped an unconfirmed detection (score %.2f)", det.score)
            continue
        if lm is None:
            # No landmarks (extreme pose, heavy occlusion): keep the face with its box and
            # an elliptical skin estimate so downstream nodes still see it.
            face.scale = face_scale_from_keypoints(det.keypoints5)
            face.masks = _box_only_masks(face)
            face.info["landmarks"] = False
            log.info(
                "portrait_polish: no landmarks for the face at %s; using its box only", [round(v) for v in det.box]
            )
        else:
            face.landmarks = torch.from_numpy(lm[:, :2].astype(np.float32))
            face.scale = face_scale_from_landmarks(lm)
            x0, y0, x1, y1 = crop
            lm_crop = lm.copy()
            lm_crop[:, 0] -= x0
            lm_crop[:, 1] -= y0
            face.masks = _face_masks(rgb[y0:y1, x0:x1], lm_crop, options.feather)
            face.info["landmarks"] = True
        item.faces.append(face)
    if not item.faces:
        log.info("portrait_polish: no face found in a %dx%d frame; its masks are empty", width, height)
    return item


def _box_only_masks(face: Face) -> dict[str, torch.Tensor]:
    height, width = face.crop_size
    x, y, w, h = face.box
    cx, cy = x + w / 2 - face.crop[0], y + h / 2 - face.crop[1]
    ys = torch.arange(height, dtype=torch.float32)[:, None] + 0.5
    xs = torch.arange(width, dtype=torch.float32)[None, :] + 0.5
    inside = ((xs - cx) / (w / 2)) ** 2 + ((ys - cy) / (h / 2)) ** 2
    skin = (1.0 - inside).clamp(0.0, 0.2) / 0.2
    masks = {name: torch.zeros(height, width) for name in FACE_REGION_NAMES}
    masks["skin"] = skin
    return masks


def parse_faces(
    image: torch.Tensor,
    *,
    min_face_size: float = 24.0,
    confidence: float = 0.7,
    max_faces: int = 16,
    faces: str = "all",
    feather: float = 1.0,
    try_rotations: bool = True,
) -> FaceRegions:
    """Find every face of every frame of an IMAGE ``[B, H, W, C]`` and its region masks.

    Frames without a face get an empty :class:`ImageFaces` (logged, never an error), so
    the result always has one entry per frame, in order. Grey and RGBA inputs are parsed
    from their RGB view.
    """
    options = ParseOptions(
        min_face_size=min_face_size,
        confidence=confidence,
        max_faces=max_faces,
        faces=faces,
        feather=feather,
        try_rotations=try_rotations,
    )
    rgb, _, _ = to_rgb(image)
    images = [parse_frame(rgb[index], options) for index in range(rgb.shape[0])]
    return FaceRegions(images=images, backend="mediapipe", info={"options": options.__dict__.copy()})


def mask_iou(a: torch.Tensor, b: torch.Tensor, threshold: float = 0.5) -> float:
    """IoU of two soft masks thresholded at ``threshold`` (1.0 when both are empty)."""
    ha, hb = a > threshold, b > threshold
    union = (ha | hb).sum().item()
    return 1.0 if union == 0 else (ha & hb).sum().item() / union


__all__ = [
    "ParseOptions",
    "parse_faces",
    "parse_frame",
    "teeth_likelihood",
    "mask_iou",
    "crop_window",
    "LEFT_RIGHT_PAIRS",
]
