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
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from . import comfy, detect
from .colour import rgb_to_lab
from .filters import box_filter, gaussian_blur
from .regions import FACE_REGION_NAMES, Face, FaceRegions, ImageFaces, clamp_crop
from .tensors import to_rgb

log = logging.getLogger("portrait_polish")

# Detections FaceLandmarker cannot confirm are kept (box only) from this YuNet score up.
BOX_ONLY_MIN_SCORE = 0.88
# Head geometry in eye-to-mouth distances: top of the hair region above the eyes, and
# neck length below the jaw line.
HEAD_TOP = 2.75
NECK_LENGTH = 1.6
# Face width (in pixels) of the working copy the masks are computed on.
WORK_FACE_PX = 384.0
# Edge snapping works on a grid where the face is this wide (radius in grid pixels): about
# 1 % of the face, the same at every resolution.
SNAP_FACE_PX = 192.0
SNAP_RADIUS = 2

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
FOREHEAD_POINTS = [151, 108, 337, 69, 299, 9]

# Regions whose edges are snapped to the image by the guided filter (teeth already come
# from the pixels; the mouth interior is bounded by the lips; eye whites and irises are
# too thin for the filter's window and keep their landmark edges; so do the lips, whose
# landmark contour already follows the vermilion border, while the filter, on that
# low-contrast edge, moved a closed mouth's thin upper lip by a pixel or two with the
# photo's resolution).
SNAPPED_REGIONS = (
    "skin",
    "neck",
    "hair",
    "nose",
    "left_brow",
    "right_brow",
)

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
    refine: bool = True  # pixel refinements: skin colour model, edge snapping
    person: bool = True  # run the person/background segmenter (needed for hair)
    backend: str = "mediapipe"  # or "bisenet"
    bisenet_model: str = "bisenet"  # models.json id, file name in face_parsing, or a path


# ---------------------------------------------------------------------------------------
# Rasterising


def _fill(shape: tuple[int, int], polygons: Sequence[np.ndarray], supersample: int = 4) -> np.ndarray:
    """Float32 coverage (0..1) of filled polygons, anti-aliased.

    Vertices are in continuous coordinates (pixel ``i`` spans ``[i, i + 1)``). OpenCV's
    fill snaps vertices to whole pixels and includes both edges, so the polygons are
    drawn ``supersample`` times larger inside their bounding box and area-averaged back:
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
    push = np.clip(height - 0.3, 0.0, None) * 0.8 * dist
    return oval + push[:, None] * up[None, :]


def _neck_polygon(lm: np.ndarray) -> np.ndarray:
    _, up, dist = _face_axes(lm)
    jaw = lm[JAW, :2]
    chin = lm[152, :2]
    right, left = jaw[2], jaw[-3]  # below the ear lobes
    inward = (left - right) * 0.12
    bottom_right = right + inward - up * NECK_LENGTH * dist
    bottom_left = left - inward - up * NECK_LENGTH * dist
    del chin
    return np.vstack([jaw, bottom_left[None], bottom_right[None]])


def face_scale_from_landmarks(lm: np.ndarray) -> float:
    """Face size in px: inter-ocular (iris-centre) distance × 2.5."""
    return float(np.hypot(*(lm[LEFT_IRIS_CENTER, :2] - lm[RIGHT_IRIS_CENTER, :2])) * 2.5)


def face_scale_from_keypoints(kps: np.ndarray) -> float:
    return float(np.hypot(*(kps[1] - kps[0])) * 2.5)


def crop_from_landmarks(lm: np.ndarray, height: int, width: int) -> tuple[int, int, int, int]:
    """Crop window holding the face, forehead, hair region and neck, along the face's own
    axes (so a tilted or sideways face gets its hair and neck room where they are)."""
    eye_mid, up, dist = _face_axes(lm)
    across = np.array([-up[1], up[0]])
    oval = lm[FACE_OVAL, :2] - eye_mid
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


# ---------------------------------------------------------------------------------------
# Pixel models


def teeth_likelihood(
    lab: torch.Tensor, skin_lightness: float, skin_a: float = 16.0, skin_chroma: float = 30.0
) -> torch.Tensor:
    """Soft 0..1 'this is tooth enamel' score from CIELAB ``[..., 3]``.

    Teeth are the bright, low-chroma pixels of the mouth: brighter than the dark mouth
    cavity, less red than gums, tongue and lips (whose a* is well above the skin's) and
    less saturated than the skin. Every threshold follows the face's own skin (median
    L*, a*, chroma of cheek samples), so dark and light skin, warm and cool light work.
    """
    lightness, a_star, b_star = lab[..., 0], lab[..., 1], lab[..., 2]
    chroma = torch.sqrt(a_star**2 + b_star**2)
    l_threshold = float(np.clip(0.65 * skin_lightness, 30.0, 55.0))
    a_threshold = float(np.clip(0.8 * skin_a, 10.0, 16.0))
    c_threshold = float(np.clip(0.85 * skin_chroma, 22.0, 34.0))
    bright = torch.sigmoid((lightness - l_threshold) / 4.0)
    not_red = torch.sigmoid((a_threshold - a_star) / 2.5)
    low_chroma = torch.sigmoid((c_threshold - chroma) / 4.0)
    return bright * not_red * low_chroma


# ---------------------------------------------------------------------------------------
# Per-face masks


def _sample_points(values: torch.Tensor, points: np.ndarray) -> torch.Tensor:
    """Values ``[h, w, C]`` at integer-rounded points (clipped into the image) -> ``[N, C]``."""
    height, width = values.shape[:2]
    pts = np.clip(np.floor(points).astype(int), 0, [width - 1, height - 1])
    return values[torch.from_numpy(pts[:, 1]), torch.from_numpy(pts[:, 0])]


def skin_likelihood(
    lab: torch.Tensor, samples: torch.Tensor, sample_xy: np.ndarray, tolerance: float = 1.0
) -> torch.Tensor:
    """Soft 0..1 'this pixel is this face's skin' from the face's own cheek/forehead samples.

    Works in lightness, chroma and hue. Hue must match the samples closely. Chroma may
    rise well above the samples' (freckles, moles, blush: more of the same pigment) but
    not fall far below (grey or dark hair, stubble, beard, frames, most backgrounds).
    Lightness follows a plane fitted to the samples over the face, so side light does not
    cut the shadowed half away; highlights (flash, sheen) are tolerated further, with the
    chroma the added white light removes put back.
    """
    height, width = lab.shape[:2]
    sample_chroma = torch.sqrt(samples[:, 1] ** 2 + samples[:, 2] ** 2)
    sample_hue = torch.atan2(samples[:, 2], samples[:, 1])
    c_ref = sample_chroma.median()
    h_ref = sample_hue.median()
    c_spread = torch.clamp((sample_chroma - c_ref).abs().median() * 1.5, min=3.5)
    h_spread = torch.clamp((sample_hue - h_ref).abs().median() * 1.5, min=0.09)
    # Lightness plane L = c0 + c1·x + c2·y by least squares over the samples.
    xy = torch.from_numpy(np.asarray(sample_xy, np.float32))
    design = torch.cat([torch.ones(len(xy), 1), xy / max(height, width)], dim=1)
    coeffs = torch.linalg.lstsq(design, samples[:, 0:1]).solution[:, 0]
    residual = samples[:, 0] - design @ coeffs
    l_spread = torch.clamp(residual.abs().median() * 1.5, min=7.0)
    ys = torch.arange(height, dtype=torch.float32)[:, None] / max(height, width)
    xs = torch.arange(width, dtype=torch.float32)[None, :] / max(height, width)
    l_expected = coeffs[0] + coeffs[1] * xs + coeffs[2] * ys
    lightness = lab[..., 0]
    brighter = lightness > l_expected
    l_scale = torch.where(brighter, 4.4 * l_spread, 2.2 * l_spread)
    # A highlight adds white light, which lowers chroma as it raises lightness: forgive a
    # chroma deficit in step with the lightness excess (up to 15 L*, so white cloth or
    # a white wall, far brighter still, stays out).
    highlight = 0.8 * (lightness - l_expected).clamp(0.0, 15.0)
    chroma = torch.sqrt(lab[..., 1] ** 2 + lab[..., 2] ** 2)
    chroma_gap = chroma - c_ref
    chroma_gap = torch.where(chroma_gap < 0, (chroma_gap + highlight).clamp(max=0.0), chroma_gap)
    c_scale = torch.where(chroma_gap > 0, 5.0 * c_spread, 2.2 * c_spread)
    hue_diff = torch.remainder(torch.atan2(lab[..., 2], lab[..., 1]) - h_ref + math.pi, 2 * math.pi) - math.pi
    # Hue is meaningless for near-grey pixels; weigh its error by how coloured the pixel is.
    hue_weight = (chroma / c_ref.clamp(min=1.0)).clamp(max=1.0)
    d2 = (
        ((lightness - l_expected) / l_scale) ** 2
        + (chroma_gap / c_scale) ** 2
        + (hue_diff * hue_weight / (2.2 * h_spread)) ** 2
    ) / tolerance**2
    # Skin keeps its colour: well below half the face's chroma (after forgiving highlights)
    # a pixel is white or grey cloth in shade, grey hair or a wall, however close its
    # lightness and hue. Faces with little chroma to begin with (grey photos, cold light)
    # get the floor faded out (none below 6 C*, all of it from 12 C*).
    chroma_floor = 0.6 * c_ref - 2.0
    floor_strength = float(((c_ref - 6.0) / 6.0).clamp(0.0, 1.0))
    colourful = 1.0 - floor_strength * torch.sigmoid((chroma_floor - chroma - highlight) / 1.5)
    # 1 inside the model's core, falling smoothly to 0 beyond ~1.3 spreads.
    return torch.sigmoid((1.6 - d2) * 3.0) * colourful


def fast_guided_filter(
    guide: torch.Tensor,
    source: torch.Tensor,
    radius: int,
    eps: float,
    coarse_size: tuple[int, int] | None = None,
) -> torch.Tensor:
    """Colour-guided filter with its linear coefficients computed on a coarser grid
    (He & Sun, "Fast Guided Filter", 2015): the coefficients are smooth, so upsampling them
    and applying them to the full-resolution guide keeps the edges at full resolution.

    The grid is ``coarse_size`` (h, w), or the guide's own size when None; ``radius`` is in
    grid pixels. A grid that follows the face's size rather than the photo's makes the
    snapped edges the same at any resolution of the same face.

    ``guide`` ``[1, 3, H, W]``, ``source`` ``[1, C, H, W]``; returns ``[1, C, H, W]``.
    """
    height, width = guide.shape[2:]
    small_guide, small_source = guide, source
    if coarse_size is not None and tuple(coarse_size) != (height, width):
        # Shrink with area averaging; grow bilinearly (a small face's grid is finer than its pixels).
        mode = "area" if coarse_size[0] <= height else "bilinear"
        options = {} if mode == "area" else {"align_corners": False}
        small_guide = F.interpolate(guide, size=tuple(coarse_size), mode=mode, **options)
        small_source = F.interpolate(source, size=tuple(coarse_size), mode=mode, **options)
    mean_g = box_filter(small_guide, radius)  # [1,3,h,w]
    h, w = small_guide.shape[2:]
    sigma = torch.empty(h, w, 3, 3, dtype=torch.float32)
    for i in range(3):
        for j in range(i, 3):
            value = (
                box_filter(small_guide[:, i : i + 1] * small_guide[:, j : j + 1], radius)[0, 0]
                - mean_g[0, i] * mean_g[0, j]
            )
            sigma[..., i, j] = value
            sigma[..., j, i] = value
    sigma_inv = torch.linalg.inv(sigma + eps * torch.eye(3))
    mean_s = box_filter(small_source, radius)[0]  # [C,h,w]
    cov = torch.stack(
        [
            box_filter(small_guide[:, i : i + 1] * small_source, radius)[0] - mean_g[0, i] * mean_s
            for i in range(3)
        ],
        dim=-1,
    )  # [C,h,w,3]
    a = (sigma_inv[None] @ cov[..., None])[..., 0]  # [C,h,w,3]
    b = mean_s - (a * mean_g[0].permute(1, 2, 0)[None]).sum(-1)  # [C,h,w]
    channels = source.shape[1]
    a_mean = box_filter(a.permute(0, 3, 1, 2).reshape(1, channels * 3, h, w), radius)
    b_mean = box_filter(b[None], radius)
    if (h, w) != (height, width):
        a_mean = F.interpolate(a_mean, size=(height, width), mode="bilinear", align_corners=False)
        b_mean = F.interpolate(b_mean, size=(height, width), mode="bilinear", align_corners=False)
    a_full = a_mean.reshape(channels, 3, height, width)
    return ((a_full * guide[0][None]).sum(1) + b_mean[0])[None]


def _closing(mask: torch.Tensor, radius: int) -> torch.Tensor:
    """Grey closing (max then min filter): fills dark holes narrower than ``2·radius`` px
    (pores, freckles, moles must stay inside the skin)."""
    if radius <= 0:
        return mask
    x = mask[None, None]
    x = F.max_pool2d(x, 2 * radius + 1, stride=1, padding=radius)
    x = -F.max_pool2d(-x, 2 * radius + 1, stride=1, padding=radius)
    return x[0, 0]


def _head_region(shape: tuple[int, int], lm: np.ndarray) -> np.ndarray:
    """Where this face's hair can be: an ellipse over the head, wider and taller than the face."""
    import cv2

    eye_mid, up, dist = _face_axes(lm)
    oval = lm[FACE_OVAL, :2]
    half_width = float(np.max(np.abs((oval - eye_mid) @ np.array([up[1], -up[0]]))))
    center = eye_mid + up * 0.55 * dist
    axes = (max(1, round(half_width * 1.45)), max(1, round(dist * (HEAD_TOP - 0.55))))
    angle = math.degrees(math.atan2(up[0], -up[1]))
    mask = np.zeros(shape, np.float32)
    cv2.ellipse(mask, (round(center[0]), round(center[1])), axes, angle, 0, 360, 1.0, thickness=-1)
    return mask


def _face_masks(
    crop_rgb: torch.Tensor,
    lm_crop: np.ndarray,
    feather: float,
    person: torch.Tensor | None = None,
    refine: bool = True,
    bisenet: torch.nn.Module | None = None,
) -> dict[str, torch.Tensor]:
    """Region masks on one face crop (``[h, w, 3]`` float), landmarks in crop pixels.

    ``person`` is the person probability already resampled to the crop's working size
    (see :func:`_work_size`), or None. ``refine`` turns the pixel refinements on (skin
    colour model, edge snapping); the landmark geometry is used either way.
    """
    height, width = crop_rgb.shape[:2]
    scale = face_scale_from_landmarks(lm_crop)
    work_h, work_w = _work_size(height, width, scale)
    fy, fx = work_h / height, work_w / width
    lm = lm_crop[:, :2] * np.array([fx, fy])
    shape = (work_h, work_w)
    work_rgb = crop_rgb
    if (work_h, work_w) != (height, width):
        work_rgb = F.interpolate(crop_rgb.permute(2, 0, 1)[None], size=shape, mode="area")[0].permute(1, 2, 0)
    work_rgb = work_rgb.clamp(0.0, 1.0)
    work_scale = scale * (fx + fy) / 2

    def poly(indices: Sequence[int]) -> np.ndarray:
        return lm[list(indices)]

    eye_open = {side: _fill(shape, [poly(idx)]) for side, idx in (("right", RIGHT_EYE), ("left", LEFT_EYE))}
    hard: dict[str, np.ndarray] = {}
    for side, center, ring in (
        ("right", RIGHT_IRIS_CENTER, RIGHT_IRIS_RING),
        ("left", LEFT_IRIS_CENTER, LEFT_IRIS_RING),
    ):
        radius = float(np.mean(np.hypot(*(lm[ring] - lm[center]).T)))
        # The landmark circle, clipped to the eye opening: eyelids cover part of the iris.
        iris = _disc(shape, lm[center], radius) * eye_open[side]
        hard[f"{side}_iris"] = iris
        hard[f"{side}_eye_white"] = np.clip(eye_open[side] - iris, 0.0, 1.0)
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
    head = _head_region(shape, lm)
    # Soften the head region's edge (about 8 % of the face width) so big hair fades out
    # instead of ending in a hard elliptical cut.
    head = gaussian_blur(torch.from_numpy(head), max(1.0, 0.08 * work_scale)).numpy()

    masks = {name: torch.from_numpy(value) for name, value in hard.items()}
    lab = rgb_to_lab(work_rgb)
    sample_xy = poly(CHEEK_POINTS + FOREHEAD_POINTS)
    # Only points inside the frame sample the skin (a face cut by the frame edge has
    # landmarks out there; clipping them to the edge would sample background).
    inside = (sample_xy[:, 0] >= 0) & (sample_xy[:, 0] < work_w) & (sample_xy[:, 1] >= 0) & (sample_xy[:, 1] < work_h)
    if inside.sum() >= 4:
        sample_xy = sample_xy[inside]
    samples = _sample_points(
        rgb_to_lab(gaussian_blur(work_rgb.permute(2, 0, 1), max(1.0, 0.01 * work_scale)).permute(1, 2, 0)), sample_xy
    )
    skin_lightness = float(samples[:, 0].median())

    if bisenet is not None:
        # The network decides skin/brows/eyes/lips/nose/neck/hair; landmarks still give the
        # iris circle and the left/right split, and pixels give the teeth.
        masks.update(_bisenet_regions(bisenet, work_rgb, lm, masks))
        refine = False

    if refine:
        # Skin colour model on a lightly blurred copy, closed so pores, freckles and moles
        # stay in; what is left out is large: beard, brows' stray hairs, frames, hair, hands.
        blurred_lab = rgb_to_lab(
            gaussian_blur(work_rgb.permute(2, 0, 1), max(0.5, 0.003 * work_scale)).permute(1, 2, 0)
        )
        likelihood = _closing(skin_likelihood(blurred_lab, samples, sample_xy), max(1, round(0.008 * work_scale)))
        skin_geo = masks["skin"]
        refined = skin_geo * likelihood
        # A colour model that rejects most of the face is a colour model gone wrong (odd
        # light, face paint): relax it rather than lose the face. Blended in step with how
        # much it rejects (fully relaxed at 45 % of the face kept), so a slightly different
        # exposure cannot flip the mask from one model to the other.
        kept = float(refined.sum()) / max(float(skin_geo.sum()), 1.0)
        relax = min(max((0.6 - kept) / 0.15, 0.0), 1.0)
        if relax > 0.0:
            relaxed = _closing(
                skin_likelihood(blurred_lab, samples, sample_xy, tolerance=1.8), max(1, round(0.008 * work_scale))
            )
            likelihood = likelihood + relax * (relaxed - likelihood)
            refined = skin_geo * likelihood
        masks["skin"] = refined
        neck = masks["neck"] * likelihood
        if person is not None:
            neck = neck * person
        masks["neck"] = neck

    # Teeth: mouth interior ∩ enamel-coloured pixels (gums, tongue, dark cavity excluded).
    skin_chroma = float(torch.sqrt(samples[:, 1] ** 2 + samples[:, 2] ** 2).median())
    teeth = teeth_likelihood(lab, skin_lightness, float(samples[:, 1].median()), skin_chroma)
    # Hair: person ∩ head region, minus the face and skin-coloured pixels.
    face_area = torch.from_numpy(np.maximum(oval, features))
    if bisenet is not None:
        hair = masks["hair"]
    elif person is not None:
        not_skin = 1.0 - (skin_likelihood(lab, samples, sample_xy, tolerance=1.2) if refine else torch.zeros(shape))
        hair = person * torch.from_numpy(head) * (1.0 - masks["skin"]) * not_skin
        # Inside the face oval only what is clearly not skin *above the brows* (a fringe);
        # lower down it is lashes, creases, beard or stubble, none of them head hair.
        eye_mid, up, eye_mouth = _face_axes(lm)
        ys = torch.arange(shape[0], dtype=torch.float32)[:, None] - float(eye_mid[1])
        xs = torch.arange(shape[1], dtype=torch.float32)[None, :] - float(eye_mid[0])
        height_above_eyes = xs * float(up[0]) + ys * float(up[1])
        above_brows = torch.sigmoid((height_above_eyes - 0.6 * eye_mouth) / (0.05 * eye_mouth))
        hair = hair * (1.0 - face_area * (1.0 - not_skin * above_brows))
        hair = hair * (1.0 - torch.from_numpy(features)) * (1.0 - masks["neck"])
    else:
        hair = torch.zeros(shape, dtype=torch.float32)
    masks["hair"] = hair.clamp(0.0, 1.0)

    if refine:
        # Snap edges to the image: one colour-guided filter over all regions at once.
        # Its coefficients live on a grid where the face is SNAP_FACE_PX wide whatever the
        # photo's resolution, so a face at half size snaps to the same edges.
        names = [n for n in SNAPPED_REGIONS if n in masks]
        stack = torch.stack([masks[n] for n in names])[None]
        guide = work_rgb.permute(2, 0, 1)[None]
        grid_factor = SNAP_FACE_PX / work_scale
        coarse = (max(8, round(shape[0] * grid_factor)), max(8, round(shape[1] * grid_factor)))
        snapped = fast_guided_filter(guide, stack, SNAP_RADIUS, 2e-3, coarse_size=coarse)[0].clamp(0.0, 1.0)
        for index, name in enumerate(names):
            masks[name] = snapped[index]

    # Feather: a Gaussian whose width follows the face size (≈0.4 % of the face width).
    sigma = max(0.0, feather) * 0.004 * work_scale
    if sigma > 0.3:
        names = list(masks)
        blurred = gaussian_blur(torch.stack([masks[n] for n in names])[None], sigma)[0].clamp(0.0, 1.0)
        masks = {name: blurred[i] for i, name in enumerate(names)}
    masks["teeth"] = masks["mouth_interior"] * teeth

    out: dict[str, torch.Tensor] = {}
    for name in FACE_REGION_NAMES:
        value = masks[name].to(torch.float32)
        if shape != (height, width):
            value = F.interpolate(value[None, None], size=(height, width), mode="bilinear", align_corners=False)[0, 0]
        out[name] = value.clamp(0.0, 1.0).contiguous()
    return out


def _bisenet_regions(
    model: torch.nn.Module, work_rgb: torch.Tensor, lm: np.ndarray, geometry: dict[str, torch.Tensor]
) -> dict[str, torch.Tensor]:
    """Region masks from BiSeNet's softmax probabilities, warped back onto the working crop."""
    import cv2

    from .bisenet import CELEBAMASK_LABELS, INPUT_SIZE, aligned_face_transform, parse_probabilities

    height, width = work_rgb.shape[:2]
    matrix = aligned_face_transform(lm)
    face = cv2.warpAffine(
        work_rgb.numpy(), matrix, (INPUT_SIZE, INPUT_SIZE), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT
    )
    probs = parse_probabilities(model, torch.from_numpy(face).permute(2, 0, 1)[None])[0].numpy()
    back = np.stack(
        [
            cv2.warpAffine(
                probs[c],
                matrix,
                (width, height),
                flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                borderMode=cv2.BORDER_CONSTANT,
                borderValue=0.0,
            )
            for c in range(probs.shape[0])
        ]
    )
    p = {name: torch.from_numpy(back[i]) for i, name in enumerate(CELEBAMASK_LABELS)}
    # Which side of the face each pixel is on (subject's left = towards landmark 473), so
    # the split does not depend on how the dataset named its sides.
    eye_mid = (lm[RIGHT_IRIS_CENTER] + lm[LEFT_IRIS_CENTER]) / 2
    axis = lm[LEFT_IRIS_CENTER] - lm[RIGHT_IRIS_CENTER]
    ys = torch.arange(height, dtype=torch.float32)[:, None] - float(eye_mid[1])
    xs = torch.arange(width, dtype=torch.float32)[None, :] - float(eye_mid[0])
    left_side = ((xs * float(axis[0]) + ys * float(axis[1])) > 0).to(torch.float32)
    brows = p["l_brow"] + p["r_brow"]
    eyes = p["l_eye"] + p["r_eye"]
    out = {
        "skin": p["skin"],
        "nose": p["nose"],
        "left_brow": brows * left_side,
        "right_brow": brows * (1 - left_side),
        "upper_lip": p["u_lip"],
        "lower_lip": p["l_lip"],
        "mouth_interior": p["mouth"],
        "neck": p["neck"],
        "hair": p["hair"],
    }
    for side, weight in (("left", left_side), ("right", 1 - left_side)):
        opening = eyes * weight
        iris = torch.minimum(geometry[f"{side}_iris"], opening)
        out[f"{side}_iris"] = iris
        out[f"{side}_eye_white"] = (opening - iris).clamp(0.0, 1.0)
    return {k: v.clamp(0.0, 1.0) for k, v in out.items()}


def _work_size(height: int, width: int, scale: float) -> tuple[int, int]:
    """Size of the working copy of a crop: face width about :data:`WORK_FACE_PX`, never upscaled."""
    factor = min(1.0, WORK_FACE_PX / max(scale, 1.0))
    return max(1, round(height * factor)), max(1, round(width * factor))


def _person_on_crop(
    person: torch.Tensor, crop: tuple[int, int, int, int], frame: tuple[int, int], size: tuple[int, int]
) -> torch.Tensor:
    """Sample the low-resolution person map over a crop window at ``size`` (h, w)."""
    x0, y0, x1, y1 = crop
    frame_h, frame_w = frame
    ys = y0 + (torch.arange(size[0], dtype=torch.float32) + 0.5) * (y1 - y0) / size[0]
    xs = x0 + (torch.arange(size[1], dtype=torch.float32) + 0.5) * (x1 - x0) / size[1]
    grid_y = ys / frame_h * 2 - 1
    grid_x = xs / frame_w * 2 - 1
    grid = torch.stack(torch.meshgrid(grid_x, grid_y, indexing="xy"), dim=-1)[None]
    sampled = F.grid_sample(
        person[None, None].to(torch.float32), grid, mode="bilinear", padding_mode="border", align_corners=False
    )
    return sampled[0, 0].clamp(0.0, 1.0)


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
    bisenet = _bisenet_model(options.bisenet_model) if options.backend == "bisenet" and detections else None
    person = None
    if options.person and detections:
        person = torch.from_numpy(detect.person_probability(model_input))
        item.person = person
    for det in detections:
        lm = detect.face_landmarks(model_input, det)
        if lm is not None:
            oval = lm[FACE_OVAL, :2]
            x_min, y_min = oval.min(axis=0)
            x_max, y_max = oval.max(axis=0)
            lm_box = (float(x_min), float(y_min), float(x_max - x_min), float(y_max - y_min))
            if detect.box_iou(lm_box, det.box) < 0.3:
                # The landmarker locked on to another face in the crop: this detection is
                # not confirmed (and that other face has its own detection).
                lm = None
            elif any(
                other.landmarks is not None
                and float(np.hypot(*(other.landmarks[1].numpy() - lm[1, :2]))) < 0.15 * other.scale
                for other in item.faces
            ):
                continue  # the same face found twice
        crop = crop_window(det.box, height, width) if lm is None else crop_from_landmarks(lm[:, :2], height, width)
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
            work = _work_size(y1 - y0, x1 - x0, face.scale)
            person_crop = None if person is None else _person_on_crop(person, crop, (height, width), work)
            face.masks = _face_masks(rgb[y0:y1, x0:x1], lm_crop, options.feather, person_crop, options.refine, bisenet)
            face.info["landmarks"] = True
        item.faces.append(face)
    if not item.faces:
        log.info("portrait_polish: no face found in a %dx%d frame; its masks are empty", width, height)
    return item


def _bisenet_model(name: str) -> torch.nn.Module:
    """The BiSeNet weights named by a models.json id, a file in the face_parsing folder or a path."""
    from pathlib import Path

    from .bisenet import cached_bisenet
    from .models import find_file, model_path, spec_for

    path = Path(name)
    if not path.is_file():
        try:
            spec_for(name)
            path = model_path(name)
        except KeyError:
            found = find_file(name, "face_parsing")
            if found is None:
                path = model_path("bisenet")  # explains where to put the file
            else:
                path = found
    return cached_bisenet(path, comfy.torch_device())


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
    refine: bool = True,
    person: bool = True,
    backend: str = "mediapipe",
    bisenet_model: str = "bisenet",
) -> FaceRegions:
    """Find every face of every frame of an IMAGE ``[B, H, W, C]`` and its region masks.

    Frames without a face get an empty :class:`ImageFaces` (logged, never an error), so
    the result always has one entry per frame, in order. Grey and RGBA inputs are parsed
    from their RGB view.
    """
    if backend not in ("mediapipe", "bisenet"):
        raise ValueError(f"unknown face parsing backend {backend!r}; use 'mediapipe' or 'bisenet'")
    options = ParseOptions(
        backend=backend,
        bisenet_model=bisenet_model,
        refine=refine,
        person=person,
        min_face_size=min_face_size,
        confidence=confidence,
        max_faces=max_faces,
        faces=faces,
        feather=feather,
        try_rotations=try_rotations,
    )
    rgb, _, _ = to_rgb(image)
    images: list[ImageFaces] = []
    # One progress step per frame; ComfyUI's Cancel button stops a long batch between frames.
    with comfy.Progress(rgb.shape[0], "FaceParse") as progress:
        for index in range(rgb.shape[0]):
            images.append(parse_frame(rgb[index], options))
            progress.update()
    return FaceRegions(images=images, backend=backend, info={"options": options.__dict__.copy()})


# ---------------------------------------------------------------------------------------
# Picking, growing and drawing regions (what the nodes output)

# Preview colours per region (also sent to the canvas legend).
REGION_COLOURS: dict[str, str] = {
    "skin": "#f0a040",
    "neck": "#c07830",
    "nose": "#f0e040",
    "left_brow": "#8040ff",
    "right_brow": "#4080ff",
    "left_eye_white": "#40f0f0",
    "right_eye_white": "#40f0a0",
    "left_iris": "#ff3030",
    "right_iris": "#3030ff",
    "upper_lip": "#ff3090",
    "lower_lip": "#d020d0",
    "mouth_interior": "#700020",
    "teeth": "#30ff30",
    "hair": "#804010",
    "person": "#a0a0a0",
    "background": "#202020",
}


def choose_faces(item: ImageFaces, faces: str = "all", index: int = 0) -> list[int]:
    """Indices of the faces to use: ``all``, ``largest`` or ``index`` (faces are ordered
    left to right; an index past the last face selects none)."""
    if not item.faces:
        return []
    if faces == "largest":
        return [max(range(len(item.faces)), key=lambda i: item.faces[i].area())]
    if faces == "index":
        return [index] if 0 <= index < len(item.faces) else []
    return list(range(len(item.faces)))


def _grow_feather(mask: torch.Tensor, grow_px: float, feather_px: float) -> torch.Tensor:
    """Grow (dilate, > 0) or shrink (erode, < 0) by ``grow_px`` and blur by ``feather_px``."""
    radius = int(round(abs(grow_px)))
    if radius > 0:
        x = mask[None, None]
        if grow_px > 0:
            x = F.max_pool2d(x, 2 * radius + 1, stride=1, padding=radius)
        else:
            x = -F.max_pool2d(-x, 2 * radius + 1, stride=1, padding=radius)
        mask = x[0, 0]
    if feather_px > 0.3:
        mask = gaussian_blur(mask, feather_px).clamp(0.0, 1.0)
    return mask


def region_mask(
    item: ImageFaces,
    regions: str | Sequence[str],
    faces: str = "all",
    index: int = 0,
    grow: float = 0.0,
    feather: float = 0.0,
) -> torch.Tensor:
    """Full-frame ``[H, W]`` union of ``regions`` over the chosen faces.

    ``grow`` and ``feather`` are in percent of each face's size (``Face.scale``), so one
    setting fits every face of a group photo and every resolution. ``person`` and
    ``background`` come from the frame's person mask (grown/feathered relative to the
    largest face, or not at all when there is none).
    """
    from .regions import IMAGE_REGION_NAMES, expand_region_names, person_mask

    names = expand_region_names(regions)
    face_names = [n for n in names if n in FACE_REGION_NAMES]
    out = torch.zeros(item.height, item.width, dtype=torch.float32)
    chosen = choose_faces(item, faces, index)
    for i in chosen:
        face = item.faces[i]
        if not face_names:
            break
        grow_px = grow / 100.0 * face.scale
        feather_px = feather / 100.0 * face.scale
        pad = int(math.ceil(max(grow_px, 0.0) + 3 * feather_px))
        x0, y0, x1, y1 = face.crop
        # Pad the crop so growing and feathering are not cut at the crop's edge.
        px0, py0 = max(0, x0 - pad), max(0, y0 - pad)
        px1, py1 = min(item.width, x1 + pad), min(item.height, y1 + pad)
        local = torch.zeros(py1 - py0, px1 - px0, dtype=torch.float32)
        local[y0 - py0 : y1 - py0, x0 - px0 : x1 - px0] = face.mask(face_names)
        local = _grow_feather(local, grow_px, feather_px)
        out[py0:py1, px0:px1] = torch.maximum(out[py0:py1, px0:px1], local)
    image_names = [n for n in names if n in IMAGE_REGION_NAMES]
    if image_names and item.person is not None and chosen:
        person = person_mask(item)
        assert person is not None
        scale = max(item.faces[i].scale for i in chosen)
        if "person" in image_names:
            out = torch.maximum(out, _grow_feather(person, grow / 100.0 * scale, feather / 100.0 * scale))
        if "background" in image_names:
            out = torch.maximum(out, _grow_feather(1.0 - person, grow / 100.0 * scale, feather / 100.0 * scale))
    return out


def preview_regions(
    rgb: torch.Tensor, item: ImageFaces, regions: Sequence[str] | None = None, opacity: float = 0.55
) -> torch.Tensor:
    """The frame ``[H, W, 3]`` with each region painted in its colour (and face boxes outlined)."""
    out = rgb[..., :3].clone()
    names = list(regions) if regions is not None else list(FACE_REGION_NAMES)
    for face in item.faces:
        x0, y0, x1, y1 = face.crop
        patch = out[y0:y1, x0:x1]
        for name in names:
            mask = face.masks.get(name)
            if mask is None:
                continue
            colour = torch.tensor([int(REGION_COLOURS[name][k : k + 2], 16) / 255.0 for k in (1, 3, 5)])
            weight = (mask * opacity)[..., None]
            patch = patch * (1.0 - weight) + colour * weight
        out[y0:y1, x0:x1] = patch
        # Face box outline, 2 px or 0.5 % of the face size.
        bx, by, bw, bh = (round(v) for v in face.box)
        thick = max(2, round(face.scale * 0.005))
        bx0, by0 = max(0, bx), max(0, by)
        bx1, by1 = min(item.width, bx + bw), min(item.height, by + bh)
        if bx1 > bx0 and by1 > by0:
            box_colour = torch.tensor([1.0, 1.0, 1.0])
            out[by0 : by0 + thick, bx0:bx1] = box_colour
            out[max(by0, by1 - thick) : by1, bx0:bx1] = box_colour
            out[by0:by1, bx0 : bx0 + thick] = box_colour
            out[by0:by1, max(bx0, bx1 - thick) : bx1] = box_colour
    return out.clamp(0.0, 1.0)


def mask_iou(a: torch.Tensor, b: torch.Tensor, threshold: float = 0.5) -> float:
    """IoU of two soft masks thresholded at ``threshold`` (1.0 when both are empty)."""
    ha, hb = a > threshold, b > threshold
    union = (ha | hb).sum().item()
    return 1.0 if union == 0 else (ha & hb).sum().item() / union
