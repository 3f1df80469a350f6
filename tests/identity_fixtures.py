"""Image edits with known intent for IdentityGuard tests and calibration.

Mild edits (what a natural retouch does to a face: light, contrast, slight softening) must
keep a face above the "same photo, retouched" level; the heavy edit (strong blur plus a
displacement field that enlarges the eyes and stretches the jaw) must fall below it.
All functions take and return ``H×W×3`` float32 0..1 RGB numpy arrays.
"""

from __future__ import annotations

import numpy as np


def brighten(rgb: np.ndarray, factor: float = 1.15) -> np.ndarray:
    return np.clip(rgb * factor, 0.0, 1.0).astype(np.float32)


def contrast(rgb: np.ndarray, factor: float = 1.15) -> np.ndarray:
    return np.clip((rgb - 0.5) * factor + 0.5, 0.0, 1.0).astype(np.float32)


def blur(rgb: np.ndarray, sigma: float) -> np.ndarray:
    import cv2

    return cv2.GaussianBlur(np.ascontiguousarray(rgb, np.float32), (0, 0), sigmaX=sigma, sigmaY=sigma, borderType=cv2.BORDER_REFLECT)


def noise(rgb: np.ndarray, sigma: float = 0.02, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.clip(rgb + rng.normal(0.0, sigma, rgb.shape), 0.0, 1.0).astype(np.float32)


def face_size(keypoints5: np.ndarray) -> float:
    """Face width estimate from the five keypoints (inter-ocular distance × 2.5)."""
    kps = np.asarray(keypoints5, np.float64)
    return float(np.hypot(*(kps[1] - kps[0])) * 2.5)


def warp_features(rgb: np.ndarray, keypoints5: np.ndarray, eye_gain: float = 0.45, jaw_gain: float = 0.22) -> np.ndarray:
    """Enlarge both eyes (a bulge around each eye) and stretch the jaw down and out.

    A backward-mapping displacement field applied with ``cv2.remap``: the kind of geometry
    change a face-restoration model or an over-eager liquify makes, and exactly what an
    identity check has to catch.
    """
    import cv2

    height, width = rgb.shape[:2]
    kps = np.asarray(keypoints5, np.float64)
    eye_dist = float(np.hypot(*(kps[1] - kps[0])))
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float64)
    map_x, map_y = xs.copy(), ys.copy()
    # Eyes: sample closer to the eye centre inside a radius -> the eye looks bigger.
    radius = 0.45 * eye_dist
    for eye in kps[:2]:
        dx, dy = xs - eye[0], ys - eye[1]
        r = np.hypot(dx, dy)
        weight = np.clip(1.0 - r / radius, 0.0, 1.0) ** 2
        map_x -= eye_gain * weight * dx
        map_y -= eye_gain * weight * dy
    # Jaw: below the mouth, sample from higher up and nearer the middle -> the lower face
    # grows longer and wider.
    mouth = (kps[3] + kps[4]) / 2.0
    jaw_radius = 1.3 * eye_dist
    dx, dy = xs - mouth[0], ys - mouth[1]
    r = np.hypot(dx, dy)
    below = np.clip(dy / jaw_radius, 0.0, 1.0)
    weight = np.clip(1.0 - r / (1.6 * jaw_radius), 0.0, 1.0) * below
    map_x -= jaw_gain * weight * dx
    map_y -= jaw_gain * weight * dy
    return cv2.remap(
        np.ascontiguousarray(rgb, np.float32),
        map_x.astype(np.float32),
        map_y.astype(np.float32),
        interpolation=cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_REFLECT,
    )


def heavy_edit(rgb: np.ndarray, keypoints5: np.ndarray) -> np.ndarray:
    """Strong blur (sigma = 4% of the face width) on top of warped eyes and jaw."""
    warped = warp_features(rgb, keypoints5)
    return blur(warped, max(1.5, 0.04 * face_size(keypoints5)))


def mild_smooth(rgb: np.ndarray, keypoints5: np.ndarray) -> np.ndarray:
    """A gentle edge-preserving skin smoothing (bilateral filter at half strength) — a
    stand-in for a natural retouch where the pack's own nodes are not available."""
    import cv2

    size = face_size(keypoints5)
    smoothed = cv2.bilateralFilter(np.ascontiguousarray(rgb, np.float32), d=-1, sigmaColor=0.08, sigmaSpace=max(1.0, 0.01 * size))
    return (0.5 * rgb + 0.5 * smoothed).astype(np.float32)


# The pack's own retouch nodes, in workflow order; whichever are registered are used.
RETOUCH_NODES = ("PortraitPolishTextureSafeSmooth", "PortraitPolishTeethWhiten", "PortraitPolishEyeEnhance")


def pack_retouch(image, regions):  # noqa: ANN001, ANN201 - IMAGE tensor, FaceRegions
    """``(retouched IMAGE, node ids used)``: the pack's retouch nodes at their default
    settings, chained, called as ComfyUI calls them. Empty list when none is registered."""
    from helpers import load_pack_as_comfyui

    pack = load_pack_as_comfyui()
    used: list[str] = []
    out = image
    for node_id in RETOUCH_NODES:
        cls = pack.NODE_CLASS_MAPPINGS.get(node_id)
        if cls is None:
            continue
        inputs = {}
        for section in ("required", "optional"):
            for input_name, spec in cls.INPUT_TYPES().get(section, {}).items():
                kind, options = spec[0], (spec[1] if len(spec) > 1 else {})
                if kind == "IMAGE":
                    inputs[input_name] = out
                elif kind == "FACE_REGIONS":
                    inputs[input_name] = regions
                elif section == "required" and isinstance(kind, list):
                    inputs[input_name] = options.get("default", kind[0])
                elif section == "required" and "default" in options:
                    inputs[input_name] = options["default"]
        result = getattr(cls(), cls.FUNCTION)(**inputs)
        result = result["result"] if isinstance(result, dict) else result
        out = next(v for v, kind in zip(result, cls.RETURN_TYPES, strict=True) if kind == "IMAGE")
        used.append(node_id)
    return out, used
