"""IdentityGuard: is the retouched face still the same person, and what to do when not.

For every frame the guard finds the faces of the original (taking the parsed ones from the
original's FACE_REGIONS when given) and of the retouched image (YuNet, score >= 0.75; a face
unmatched on one side is looked for again on the other at 0.5), matches them by position (box IoU,
then centre distance; the order faces are listed in never matters), embeds each pair with
the chosen backend (:mod:`core.embed`) and scores it on the shared similarity scale.

A face that is in the original but not found in the retouch, or a face that appears only
in the retouch, is a failure (score −1), never silently passed. Actions on failure:

- ``report``: pass the retouched image through unchanged and report;
- ``original``: replace the whole frame by the original;
- ``blend``: blend the retouched face back toward the original inside the face region only
  (the FACE_REGIONS "face" mask when given, else an ellipse from the detection box, feathered
  inside; pixels outside it stay bit-exact) and search the smallest blend amount (bisection
  on 0..1, 1/64 steps) at which the similarity reaches the threshold.

Report (JSON, schema ``portrait_polish.identity/1``; the runner writes it into sidecars and
the canvas shows it, so its keys are stable)::

    {"schema": "portrait_polish.identity/1", "backend": "dlib", "threshold": 0.75,
     "threshold_source": "auto" | "widget", "action": "blend",
     "similarity": <min input score over all faces; 1.0 when no frame has a face>,
     "passed": <every face of the retouch as given reached the threshold>,
     "frames": [{"frame": 0, "passed": true, "faces": [
         {"frame": 0, "face": 0, "score": 0.93, "threshold": 0.75, "passed": true,
          "action": "none" | "report" | "original" | "blend", "blend": 0.0,
          "final_score": 0.93 | null, "status": "matched" | "missing_in_retouched" |
          "extra_in_retouched", "box": [x, y, w, h]}]}]}

``score`` is the retouch as given; ``final_score`` is the output after the action (null for
a face that exists only in the retouch: there is nothing to compare it with). Faces are
numbered left to right (box centre x) in each frame, so face order is the same whatever
order a detector or FACE_REGIONS listed them in.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

import numpy as np
import torch

from . import comfy
from .detect import box_iou
from .embed import DEFAULT_BACKEND, EmbeddingBackend, FaceLocation, get_backend
from .masks import Box, upsample_window
from .regions import Face, FaceRegions, ImageFaces
from .tensors import check_same_size, from_rgb, opencv_view, to_rgb, to_uint8

log = logging.getLogger("portrait_polish")

ACTIONS: tuple[str, ...] = ("report", "original", "blend")
REPORT_SCHEMA = "portrait_polish.identity/1"
# Score given to a face that could not be found on one side (bottom of the scale).
MISSING_SCORE = -1.0
# Matching: a retouched face belongs to an original face when their boxes overlap this much,
# or (for a warped face whose box moved) their centres are within this fraction of the face size.
MATCH_IOU = 0.3
MATCH_CENTRE_FRACTION = 0.35
# Blend search resolution: 6 bisection steps give the amount to 1/64.
BLEND_STEPS = 6
# The region blended back when no FACE_REGIONS mask is given: an ellipse over the detection
# box (semi-axes as fractions of the box), feathered over its outer FEATHER fraction.
ELLIPSE_AXES = (0.62, 0.68)
ELLIPSE_FEATHER = 0.3
# Feathering of a FACE_REGIONS mask: grow by this fraction of the face size, blur by that.
REGION_GROW = 0.04
REGION_FEATHER = 0.04


@dataclass
class FaceReport:
    frame: int
    face: int
    score: float
    threshold: float
    passed: bool
    action: str
    blend: float
    final_score: float | None
    status: str
    box: list[float]

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


@dataclass
class GuardResult:
    image: torch.Tensor
    faces: list[FaceReport]
    frames: list[dict[str, object]]
    backend: str
    threshold: float
    threshold_source: str
    action: str
    info: dict[str, object] = field(default_factory=dict)

    @property
    def similarity(self) -> float:
        """Lowest input score over every face of every frame (1.0 when there is no face)."""
        return min((f.score for f in self.faces), default=1.0)

    @property
    def passed(self) -> bool:
        return all(f.passed for f in self.faces)

    def report(self) -> dict[str, object]:
        return {
            "schema": REPORT_SCHEMA,
            "backend": self.backend,
            "threshold": self.threshold,
            "threshold_source": self.threshold_source,
            "action": self.action,
            "similarity": self.similarity,
            "passed": self.passed,
            "frames": self.frames,
        }

    def report_json(self) -> str:
        return json.dumps(self.report(), indent=None, sort_keys=False)

    def ui_entries(self) -> list[dict[str, object]]:
        return [f.as_dict() for f in self.faces]


# ---------------------------------------------------------------------------------------
# Faces


# The detector never looks at more than this (core.detect works at 640 and 1280 px): a
# 24 MP frame is shrunk once here, in float, before its 8-bit model-input copy is made.
DETECT_MAX_SIDE = 1280
# YuNet score for a face the guard judges. On the test portraits real faces score >= 0.89
# while YuNet's false faces (hair, frame edges) reach 0.69, and a false "face" embeds to
# noise that would fail at random. A face unmatched on one side is looked for again on
# the other at the lower level (a retouch can nudge a borderline face across the cut-off).
DETECT_CONFIDENCE = 0.75
RESCUE_CONFIDENCE = 0.5


def detect(rgb: np.ndarray, confidence: float = DETECT_CONFIDENCE) -> list[FaceLocation]:
    """Faces of one float RGB frame via the pack's detector (core.detect, YuNet), in the
    frame's own pixel coordinates."""
    import cv2

    from .detect import detect_faces

    height, width = rgb.shape[:2]
    factor = min(1.0, DETECT_MAX_SIDE / max(height, width))
    small = rgb
    if factor < 1.0:
        size = (max(1, round(width * factor)), max(1, round(height * factor)))
        small = cv2.resize(opencv_view(rgb), size, interpolation=cv2.INTER_AREA)
        factor_x, factor_y = size[0] / width, size[1] / height
    else:
        factor_x = factor_y = 1.0
    out: list[FaceLocation] = []
    for d in detect_faces(to_uint8(small), confidence=confidence):
        x, y, w, h = (float(v) for v in d.box)
        kps = np.asarray(d.keypoints5, np.float64) / np.array([factor_x, factor_y])
        out.append(FaceLocation((x / factor_x, y / factor_y, w / factor_x, h / factor_y), kps))
    return out


def faces_from_regions(image_faces: ImageFaces) -> list[FaceLocation] | None:
    """FaceLocations from parsed regions, or None when a face lacks its five keypoints."""
    out: list[FaceLocation] = []
    for face in image_faces.faces:
        if face.keypoints5 is None:
            return None
        kps = face.keypoints5.detach().to("cpu", torch.float64).numpy() if isinstance(face.keypoints5, torch.Tensor) else np.asarray(face.keypoints5, np.float64)
        out.append(FaceLocation(tuple(float(v) for v in face.box), kps[:5, :2]))
    return out


def left_to_right(faces: list[FaceLocation]) -> list[int]:
    """Indices of ``faces`` ordered by box centre (x, then y): stable face numbering."""
    return sorted(range(len(faces)), key=lambda i: (faces[i].box[0] + faces[i].box[2] / 2, faces[i].box[1] + faces[i].box[3] / 2))


def _centre_distance(a: tuple[float, ...], b: tuple[float, ...]) -> float:
    return float(np.hypot(a[0] + a[2] / 2 - b[0] - b[2] / 2, a[1] + a[3] / 2 - b[1] - b[3] / 2))


def match_faces(original: list[FaceLocation], retouched: list[FaceLocation]) -> tuple[dict[int, int], list[int], list[int]]:
    """Pair faces by position. Returns ``({original index: retouched index}, unmatched
    original indices, unmatched retouched indices)``; greedy on IoU, then centre distance,
    so the result depends only on geometry, never on list order."""
    candidates: list[tuple[float, float, int, int]] = []
    for i, a in enumerate(original):
        size = max(a.box[2], a.box[3])
        for j, b in enumerate(retouched):
            iou = box_iou(a.box, b.box)
            distance = _centre_distance(a.box, b.box)
            if iou >= MATCH_IOU or distance <= MATCH_CENTRE_FRACTION * size:
                candidates.append((-iou, distance, i, j))
    pairs: dict[int, int] = {}
    used: set[int] = set()
    for _neg_iou, _distance, i, j in sorted(candidates):
        if i in pairs or j in used:
            continue
        pairs[i] = j
        used.add(j)
    missing = [i for i in range(len(original)) if i not in pairs]
    extra = [j for j in range(len(retouched)) if j not in used]
    return pairs, missing, extra


# ---------------------------------------------------------------------------------------
# Blend region


def _window_union(*windows: tuple[int, int, int, int]) -> tuple[int, int, int, int]:
    return min(w[0] for w in windows), min(w[1] for w in windows), max(w[2] for w in windows), max(w[3] for w in windows)


def ellipse_window(face: FaceLocation, height: int, width: int) -> tuple[int, int, int, int]:
    x, y, w, h = face.box
    cx, cy = x + w / 2, y + h / 2
    ax, ay = ELLIPSE_AXES[0] * w, ELLIPSE_AXES[1] * h
    x0, y0 = max(0, int(np.floor(cx - ax))), max(0, int(np.floor(cy - ay)))
    x1, y1 = min(width, int(np.ceil(cx + ax)) + 1), min(height, int(np.ceil(cy + ay)) + 1)
    return x0, y0, max(x1, x0 + 1), max(y1, y0 + 1)


def ellipse_mask(face: FaceLocation, window: tuple[int, int, int, int]) -> np.ndarray:
    """Soft ellipse over the face box on ``window``: 1 inside, smooth ramp, exactly 0 outside."""
    x0, y0, x1, y1 = window
    x, y, w, h = face.box
    cx, cy = x + w / 2, y + h / 2
    ys, xs = np.mgrid[y0:y1, x0:x1].astype(np.float64)
    r = np.hypot((xs + 0.5 - cx) / (ELLIPSE_AXES[0] * w), (ys + 0.5 - cy) / (ELLIPSE_AXES[1] * h))
    t = np.clip((1.0 - r) / ELLIPSE_FEATHER, 0.0, 1.0)
    return (t * t * (3.0 - 2.0 * t)).astype(np.float32)


def region_mask(face: Face, window: tuple[int, int, int, int]) -> np.ndarray:
    """The parsed "face" region (skin, features) of ``face`` on ``window``, grown and feathered.

    Growing and feathering happen on the face's mask grid (padded so neither is cut at the
    crop's edge); only the result is brought to full resolution, on ``window`` alone.
    """
    import cv2

    x0, y0, x1, y1 = window
    grid = face.mask("face").detach().to("cpu", torch.float32).numpy()
    if not grid.any():
        return np.zeros((y1 - y0, x1 - x0), np.float32)
    size = face.grid_scale if face.scale > 0 else max(face.box[2], face.box[3]) * face.grid_factor
    grow = max(1, int(round(REGION_GROW * size)))
    sigma = max(0.5, REGION_FEATHER * size)
    pad = grow + int(np.ceil(3 * sigma)) + 1
    grown = cv2.dilate(np.pad(grid, pad), cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * grow + 1, 2 * grow + 1)))
    feathered = cv2.GaussianBlur(grown, (0, 0), sigmaX=sigma, sigmaY=sigma, borderType=cv2.BORDER_CONSTANT)
    crop = face.crop_box
    local = Box(x0, y0, x1, y1).shift(-crop.x0, -crop.y0)
    layers = upsample_window(torch.from_numpy(np.stack([grown, feathered])), crop.size, local, grid_size=face.grid_size, offset=(float(pad), float(pad)))
    grown_up, feathered_up = layers[0].numpy(), layers[1].numpy()
    # Confined to the grown region so everything outside it stays bit-exact.
    return np.where(grown_up > 0, np.minimum(feathered_up * 2.0, 1.0), 0.0).astype(np.float32)


def blend_region(
    original_face: FaceLocation,
    retouched_face: FaceLocation | None,
    parsed: Face | None,
    height: int,
    width: int,
) -> tuple[tuple[int, int, int, int], np.ndarray]:
    """Window and soft mask of the face region to blend back (original and retouched boxes
    both covered, so a feature the retouch moved is brought back too)."""
    windows = [ellipse_window(original_face, height, width)]
    if retouched_face is not None:
        windows.append(ellipse_window(retouched_face, height, width))
    if parsed is not None:
        windows.append(tuple(int(v) for v in parsed.crop))  # type: ignore[arg-type]
    window = _window_union(*windows)
    window = (max(0, window[0]), max(0, window[1]), min(width, window[2]), min(height, window[3]))
    if parsed is not None:
        mask = region_mask(parsed, window)
        if retouched_face is not None:
            mask = np.maximum(mask, ellipse_mask(retouched_face, window) * (mask.max() > 0))
        if mask.any():
            return window, mask
    mask = ellipse_mask(original_face, window)
    if retouched_face is not None:
        mask = np.maximum(mask, ellipse_mask(retouched_face, window))
    return window, mask


def blend_patch(retouched: np.ndarray, original: np.ndarray, window: tuple[int, int, int, int], mask: np.ndarray, amount: float) -> np.ndarray:
    """The ``window`` of ``retouched`` with ``amount·mask`` of the original mixed in; exactly
    the retouched pixels wherever that weight is 0."""
    x0, y0, x1, y1 = window
    ret = retouched[y0:y1, x0:x1]
    if amount <= 0:
        return ret.copy()
    weight = (np.float32(amount) * mask)[..., None]
    mixed = ret + weight * (original[y0:y1, x0:x1] - ret)
    return np.where(weight > 0, mixed, ret).astype(np.float32)


def apply_blend(retouched: np.ndarray, original: np.ndarray, window: tuple[int, int, int, int], mask: np.ndarray, amount: float) -> np.ndarray:
    """A copy of the frame with :func:`blend_patch` written into its window."""
    out = retouched.copy()
    x0, y0, x1, y1 = window
    out[y0:y1, x0:x1] = blend_patch(retouched, original, window, mask, amount)
    return out


# ---------------------------------------------------------------------------------------
# The guard


class _FrameScorer:
    """Scores candidate frames against one original face (re-detecting near it)."""

    def __init__(self, backend: EmbeddingBackend, original_face: FaceLocation, original_embedding: np.ndarray) -> None:
        self.backend = backend
        self.face = original_face
        self.embedding = original_embedding

    def locate(self, rgb: np.ndarray) -> FaceLocation | None:
        # The whole frame, exactly as the first measurement did: detecting on a crop gives
        # YuNet a different input scale, and the box jitter alone moves a dlib score by
        # up to ~0.05, enough to flip a verdict near the threshold.
        for confidence in (DETECT_CONFIDENCE, RESCUE_CONFIDENCE):
            found = detect(rgb, confidence)
            pairs, _missing, _extra = match_faces([self.face], found)
            if 0 in pairs:
                return found[pairs[0]]
        return None

    def score(self, rgb: np.ndarray) -> tuple[float, FaceLocation | None]:
        face = self.locate(rgb)
        if face is None:
            return MISSING_SCORE, None
        embedding = self.backend.embed(rgb, [face])[0]
        return self.backend.similarity(self.embedding, embedding), face


def search_blend(
    scorer: _FrameScorer,
    frame: np.ndarray,
    original: np.ndarray,
    window: tuple[int, int, int, int],
    mask: np.ndarray,
    threshold: float,
    steps: int = BLEND_STEPS,
) -> tuple[float, float]:
    """Smallest blend amount (to 1/2**steps) that brings the face to ``threshold``.

    ``frame`` (the retouched frame, a working copy) is blended IN PLACE inside ``window``
    and left holding the chosen amount. Returns ``(amount, score at that amount)``. When
    even a full blend (1.0) stays below the threshold, the full blend is kept.
    """
    x0, y0, x1, y1 = window
    base = frame[y0:y1, x0:x1].copy()
    reference = np.ascontiguousarray(original[y0:y1, x0:x1])
    window_mask = mask

    def trial(amount: float) -> float:
        weight = (np.float32(amount) * window_mask)[..., None]
        frame[y0:y1, x0:x1] = np.where(weight > 0, base + weight * (reference - base), base)
        return scorer.score(frame)[0]

    full_score = trial(1.0)
    if full_score < threshold:
        return 1.0, full_score
    lo, hi, hi_score = 0.0, 1.0, full_score
    for _ in range(steps):
        comfy.throw_if_interrupted()
        mid = (lo + hi) / 2
        score = trial(mid)
        if score >= threshold:
            hi, hi_score = mid, score
        else:
            lo = mid
    trial(hi)
    return hi, hi_score


def resolve_threshold(backend: str, threshold: float | None) -> tuple[float, str]:
    """``threshold`` when given (> 0), else the backend's calibrated retouch level."""
    if threshold is not None and threshold > 0:
        return float(threshold), "widget"
    from .embed import THRESHOLDS

    return THRESHOLDS[backend].retouch, "auto"


def guard_identity(
    original: torch.Tensor,
    retouched: torch.Tensor,
    backend: str = DEFAULT_BACKEND,
    threshold: float | None = None,
    action: str = "report",
    regions: FaceRegions | None = None,
    progress: Callable[[], None] | None = None,
) -> GuardResult:
    """Check (and on failure correct) every face of ``retouched`` against ``original``.

    ``original`` may be one frame for a batch of retouches, or the same batch size.
    ``regions`` (optional) is FaceParse output *of the original*: its faces (keypoints) are
    used for the original and its face masks shape the blend region; the original is still
    run through the detector so faces FaceParse skipped on purpose are known faces, not new
    ones. ``progress`` is called once per frame.
    """
    if action not in ACTIONS:
        raise ValueError(f"unknown action {action!r}; choose one of {', '.join(ACTIONS)}")
    # to_rgb validates and normalises (as_image_batch) once per input: on 24 MP that check
    # is a noticeable part of the guard's time, so it is not repeated.
    orig_rgb, _orig_channels, _orig_alpha = to_rgb(original)
    ret_rgb, channels, alpha = to_rgb(retouched)
    # The retouch in its own layout (grey stays one channel, RGBA keeps its alpha), bit-exact.
    retouched = ret_rgb if channels == 3 else ret_rgb[..., :1] if channels == 1 else from_rgb(ret_rgb, channels, alpha)
    original = orig_rgb
    if tuple(original.shape[1:3]) != tuple(retouched.shape[1:3]):
        try:
            check_same_size(original, retouched, "the original", "the retouched image")
        except ValueError as exc:
            raise ValueError(
                f"IdentityGuard: {exc}. It compares each face in place, so resize or upscale the original the same "
                "way as the retouch, or put the guard before the resize/upscale."
            ) from None
    batch = retouched.shape[0]
    if original.shape[0] not in (1, batch):
        raise ValueError(f"IdentityGuard: the original batch has {original.shape[0]} frames but the retouched batch has {batch}; give one original or one per retouched frame")
    height, width = retouched.shape[1], retouched.shape[2]
    parsed_frames = regions.for_batch(original.shape[0], height, width) if regions is not None else None
    threshold_value, threshold_source = resolve_threshold(backend, threshold)
    model = get_backend(backend)

    ret_np = ret_rgb.detach().to("cpu", torch.float32).numpy()
    orig_np = orig_rgb.detach().to("cpu", torch.float32).numpy()
    # The output is allocated on the first correction only (a 24 MP batch that passes is
    # not copied), and each corrected frame is written into it at once (never kept aside).
    output: torch.Tensor | None = None

    def write_frame(frame: int, frame_rgb: np.ndarray) -> None:
        nonlocal output
        touched = np.any(frame_rgb != ret_np[frame], axis=-1)
        if not touched.any():
            return
        if output is None:
            output = retouched.clone()
        frame_alpha = alpha[frame : frame + 1] if alpha is not None else None
        restored = from_rgb(torch.from_numpy(frame_rgb[None]), channels, frame_alpha)[0]
        # Only pixels the action changed are taken from the RGB result; every other pixel
        # stays the retouched input's own value (bit-exact, grey and RGBA included).
        output[frame] = torch.where(torch.from_numpy(touched)[..., None], restored, retouched[frame])

    # Original faces and embeddings, once per original frame.
    original_cache: dict[int, tuple[list[FaceLocation], list[Face | None], np.ndarray]] = {}

    def original_faces(index: int) -> tuple[list[FaceLocation], list[Face | None], np.ndarray]:
        if index not in original_cache:
            rgb = orig_np[index]
            known = parsed_frames[index].info.get("detections") if parsed_frames is not None else None
            if isinstance(known, list):
                # FaceParse already ran the same detector on this original.
                detected = [FaceLocation(box, kps) for box, score, kps in known if score >= DETECT_CONFIDENCE]
            else:
                detected = detect(rgb)
            faces = faces_from_regions(parsed_frames[index]) if parsed_frames is not None else None
            if faces is not None:
                parsed_faces: list[Face | None] = list(parsed_frames[index].faces)  # type: ignore[index]
                # FaceParse may skip faces on purpose (min size, max faces, "largest"); the
                # guard must still know they are there, or it would call them new faces.
                _pairs, _missing, unparsed = match_faces(faces, detected)
                faces = faces + [detected[j] for j in unparsed]
                parsed_faces += [None] * len(unparsed)
            else:
                faces, parsed_faces = detected, [None] * len(detected)
            embeddings = model.embed(rgb, faces) if faces else np.zeros((0, model.dim), np.float32)
            original_cache[index] = (faces, parsed_faces, embeddings)
        return original_cache[index]

    all_faces: list[FaceReport] = []
    frames: list[dict[str, object]] = []
    for frame in range(batch):
        comfy.throw_if_interrupted()
        orig_index = frame if original.shape[0] == batch else 0
        cached_faces, cached_parsed, embeddings = original_faces(orig_index)
        faces, parsed_faces = list(cached_faces), list(cached_parsed)
        ret_faces = detect(ret_np[frame])
        pairs, missing, extra = match_faces(faces, ret_faces)
        # A face right at the detector's confidence cut-off can drop out on one side after a
        # harmless edit: look again at low confidence before calling it missing or new.
        if missing:
            rescue = [f for f in detect(ret_np[frame], RESCUE_CONFIDENCE) if not any(box_iou(f.box, g.box) > MATCH_IOU for g in ret_faces)]
            found, _m, _e = match_faces([faces[i] for i in missing], rescue)
            for k, i in enumerate(missing):
                if k in found:
                    ret_faces.append(rescue[found[k]])
                    pairs[i] = len(ret_faces) - 1
            missing = [i for i in missing if i not in pairs]
        if extra:
            rescue = [f for f in detect(orig_np[orig_index], RESCUE_CONFIDENCE) if not any(box_iou(f.box, g.box) > MATCH_IOU for g in faces)]
            found, _m, _e = match_faces([ret_faces[j] for j in extra], rescue)
            added = []
            for k, j in enumerate(extra):
                if k in found:
                    faces.append(rescue[found[k]])
                    parsed_faces.append(None)
                    pairs[len(faces) - 1] = j
                    added.append(len(faces) - 1)
            if added:
                embeddings = np.concatenate([embeddings, model.embed(orig_np[orig_index], [faces[i] for i in added])])
            extra = [j for j in extra if j not in pairs.values()]
        matched = sorted(pairs)
        ret_embeddings = model.embed(ret_np[frame], [ret_faces[pairs[i]] for i in matched]) if matched else None
        ret_embedding_of = {i: ret_embeddings[k] for k, i in enumerate(matched)} if ret_embeddings is not None else {}

        # Every face of the frame, numbered left to right: ("original", i) or ("extra", j).
        entries = [("original", i, faces[i]) for i in range(len(faces))] + [("extra", j, ret_faces[j]) for j in extra]
        entries = [entries[k] for k in left_to_right([e[2] for e in entries])]
        reports: list[FaceReport] = []
        sources: list[tuple[str, int]] = []
        for number, (kind, index, face) in enumerate(entries):
            box = [round(float(v), 2) for v in face.box]
            if kind == "extra":
                reports.append(FaceReport(frame, number, MISSING_SCORE, threshold_value, False, "none", 0.0, None, "extra_in_retouched", box))
            else:
                score = model.similarity(embeddings[index], ret_embedding_of[index]) if index in pairs else MISSING_SCORE
                status = "matched" if index in pairs else "missing_in_retouched"
                reports.append(FaceReport(frame, number, float(score), threshold_value, bool(score >= threshold_value), "none", 0.0, float(score), status, box))
            sources.append((kind, index))
        source_of = {id(r): src for r, src in zip(reports, sources, strict=True)}

        failed = [r for r in reports if not r.passed]
        frame_out: np.ndarray | None = None  # the corrected frame, when the action changes it
        if failed and action == "report":
            for r in failed:
                r.action = "report"
        elif failed and action == "original":
            frame_out = orig_np[orig_index].copy()
            for r in reports:
                r.action = "original"
                r.final_score = None if r.status == "extra_in_retouched" else 1.0
        elif failed and action == "blend":
            frame_out = ret_np[frame].copy()
            for r in failed:
                kind, index = source_of[id(r)]
                if kind == "extra":
                    # A face the original does not have: put the original pixels back there.
                    window, mask = blend_region(ret_faces[index], None, None, height, width)
                    x0, y0, x1, y1 = window
                    frame_out[y0:y1, x0:x1] = blend_patch(frame_out, orig_np[orig_index], window, mask, 1.0)
                    r.action, r.blend = "blend", 1.0
                    continue
                scorer = _FrameScorer(model, faces[index], embeddings[index])
                ret_face = ret_faces[pairs[index]] if index in pairs else None
                window, mask = blend_region(faces[index], ret_face, parsed_faces[index], height, width)
                amount, final = search_blend(scorer, frame_out, orig_np[orig_index], window, mask, threshold_value)
                r.action, r.blend, r.final_score = "blend", float(amount), float(final)
        if frame_out is not None:
            write_frame(frame, frame_out)
        for r in failed:
            log.info(
                "portrait_polish: IdentityGuard frame %d face %d: %s score %.3f < %.3f -> %s%s",
                frame, r.face, r.status, r.score, threshold_value, r.action,
                f" (blend {r.blend:.3f}, now {r.final_score:.3f})" if r.action == "blend" and r.final_score is not None else "",
            )
        if not reports:
            log.info("portrait_polish: IdentityGuard frame %d has no face in either image; passed through unchanged", frame)
        all_faces.extend(reports)
        if progress is not None:
            progress()
        frames.append({"frame": frame, "passed": all(r.passed for r in reports), "faces": [r.as_dict() for r in reports]})

    image = output if output is not None else retouched
    return GuardResult(
        image=image,
        faces=all_faces,
        frames=frames,
        backend=backend,
        threshold=threshold_value,
        threshold_source=threshold_source,
        action=action,
    )
