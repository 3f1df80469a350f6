"""FaceParse per frame: detect, read landmarks, make each face's masks on its working grid.

1. YuNet finds faces (:mod:`core.detect`, several input sizes merged by NMS).
2. MediaPipe FaceLandmarker gives 478 landmarks (irises included) around each face.
3. The face crop is shrunk once to its working grid (face about
   :data:`~core.parse.pipeline.WORK_FACE_PX` wide) and the region masks are drawn and refined
   there (:mod:`core.parse.pipeline`), where they stay: a 24 MP photo costs little more than
   a 1 MP one.

The only 8-bit data are the copies handed to the detectors (model input). Masks are float32.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import torch

from .. import comfy, detect
from ..landmarks import FACE_OVAL, NOSE_TIP
from ..masks import Box, coordinate_grid, resize_image
from ..regions import FACE_REGION_NAMES, Face, FaceRegions, ImageFaces
from ..tensors import to_rgb, to_uint8
from .geometry import crop_from_landmarks, crop_window, face_scale_from_keypoints, face_scale_from_landmarks, grid_size
from .pipeline import WORK_FACE_PX, face_masks

log = logging.getLogger("portrait_polish")

# Detections FaceLandmarker cannot confirm are kept (box only) from this YuNet score up.
BOX_ONLY_MIN_SCORE = 0.88


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


def uint8_model_input(rgb: torch.Tensor) -> np.ndarray:
    """8-bit copy of a float RGB frame for the detectors (model input only)."""
    return to_uint8(rgb)


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


def _same_face_twice(item: ImageFaces, lm: np.ndarray) -> bool:
    return any(
        other.landmarks is not None
        and float(np.hypot(*(other.landmarks[NOSE_TIP].numpy() - lm[NOSE_TIP, :2]))) < 0.15 * other.scale
        for other in item.faces
    )


def parse_frame(rgb: torch.Tensor, options: ParseOptions) -> ImageFaces:
    """Parse one ``[H, W, 3]`` float RGB frame."""
    height, width = rgb.shape[:2]
    item = ImageFaces(height=height, width=width)
    model_input = uint8_model_input(rgb)
    found = detect.detect_faces(model_input, options.confidence, options.try_rotations)
    # Every face the detector saw, chosen or not: IdentityGuard must know the faces this
    # parse skipped on purpose (min size, max faces, "largest") without detecting again.
    item.info["detections"] = [(tuple(float(v) for v in d.box), float(d.score), np.asarray(d.keypoints5, np.float64)) for d in found]
    detections = select_faces(found, options)
    bisenet = None
    if options.backend == "bisenet" and detections:
        from .bisenet_map import bisenet_model

        bisenet = bisenet_model(options.bisenet_model)
    person = None
    if options.person and detections:
        person = torch.from_numpy(detect.person_probability(model_input))
        item.person = person
    for det in detections:
        lm = detect.face_landmarks(model_input, det)
        if lm is not None:
            oval = lm[list(FACE_OVAL), :2]
            x_min, y_min = oval.min(axis=0)
            x_max, y_max = oval.max(axis=0)
            lm_box = (float(x_min), float(y_min), float(x_max - x_min), float(y_max - y_min))
            if detect.box_iou(lm_box, det.box) < 0.3:
                # The landmarker locked on to another face in the crop: this detection is
                # not confirmed (and that other face has its own detection).
                lm = None
            elif _same_face_twice(item, lm):
                continue
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
            face.masks = box_only_masks(face)
            face.info["landmarks"] = False
            log.info(
                "portrait_polish: no landmarks for the face at %s; using its box only", [round(v) for v in det.box]
            )
        else:
            face.landmarks = torch.from_numpy(lm[:, :2].astype(np.float32))
            face.scale = face_scale_from_landmarks(lm)
            face.masks = _landmark_masks(rgb, face, lm, person, options, bisenet)
            face.info["landmarks"] = True
        item.faces.append(face)
    if not item.faces:
        log.info("portrait_polish: no face found in a %dx%d frame; its masks are empty", width, height)
    return item


def _landmark_masks(
    rgb: torch.Tensor, face: Face, lm: np.ndarray, person: torch.Tensor | None, options: ParseOptions, bisenet: torch.nn.Module | None
) -> dict[str, torch.Tensor]:
    """The region masks of a face with landmarks, on its working grid."""
    crop = face.crop_box
    grid_h, grid_w = grid_size(crop.height, crop.width, face.scale, WORK_FACE_PX)
    fy, fx = grid_h / crop.height, grid_w / crop.width
    rows, cols = crop.slices()
    # One shrink of the full-resolution crop; everything after works on the small copy.
    work_rgb = resize_image(rgb[rows, cols], (grid_h, grid_w))
    lm_work = (lm[:, :2] - np.array([crop.x0, crop.y0])) * np.array([fx, fy])
    person_grid = None
    if person is not None:
        person_grid = _person_on_crop(person, crop, (rgb.shape[0], rgb.shape[1]), (grid_h, grid_w))
    work_scale = face.scale * (fx + fy) / 2
    return face_masks(work_rgb, lm_work, work_scale, options.feather, person_grid, options.refine, bisenet)


def _person_on_crop(person: torch.Tensor, crop: Box, frame: tuple[int, int], size: tuple[int, int]) -> torch.Tensor:
    """The low-resolution person map sampled over ``crop`` on a ``size`` (h, w) grid."""
    # The person map covers the frame; the crop's grid samples it at the grid's pixel
    # centres: upsample onto the crop at full resolution's coordinates, but only at the
    # grid's own points (a window of the full-size map would be as big as the crop).
    frame_h, frame_w = frame
    scale_y, scale_x = crop.height / size[0], crop.width / size[1]
    ys = crop.y0 + (torch.arange(size[0], dtype=torch.float32) + 0.5) * scale_y
    xs = crop.x0 + (torch.arange(size[1], dtype=torch.float32) + 0.5) * scale_x
    in_h, in_w = person.shape
    py = (ys * in_h / frame_h - 0.5).clamp(0, in_h - 1)
    px = (xs * in_w / frame_w - 0.5).clamp(0, in_w - 1)
    y0 = py.floor().long()
    x0 = px.floor().long()
    y1 = (y0 + 1).clamp(max=in_h - 1)
    x1 = (x0 + 1).clamp(max=in_w - 1)
    ty, tx = (py - y0)[:, None], (px - x0)[None, :]
    p = person.to(torch.float32)
    top = p[y0][:, x0] * (1 - tx) + p[y0][:, x1] * tx
    bottom = p[y1][:, x0] * (1 - tx) + p[y1][:, x1] * tx
    return (top * (1 - ty) + bottom * ty).clamp(0.0, 1.0)


def box_only_masks(face: Face) -> dict[str, torch.Tensor]:
    """Masks for a face without landmarks: an elliptical skin estimate from its box."""
    crop = face.crop_box
    grid_h, grid_w = grid_size(crop.height, crop.width, face.scale, WORK_FACE_PX)
    fy, fx = grid_h / crop.height, grid_w / crop.width
    x, y, w, h = face.box
    cx, cy = (x + w / 2 - crop.x0) * fx, (y + h / 2 - crop.y0) * fy
    ys, xs = coordinate_grid(grid_h, grid_w, origin=(0.5, 0.5))
    inside = ((xs - cx) / (w * fx / 2)) ** 2 + ((ys - cy) / (h * fy / 2)) ** 2
    masks = {name: torch.zeros(grid_h, grid_w) for name in FACE_REGION_NAMES}
    masks["skin"] = (1.0 - inside).clamp(0.0, 0.2) / 0.2
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
