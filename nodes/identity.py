"""Node family: identity — IdentityGuard (thin node; the work is in core/identity.py)."""

from __future__ import annotations

from typing import Any

from ..core.comfy import Progress
from ..core.embed import BACKENDS, DEFAULT_BACKEND, THRESHOLDS
from ..core.identity import ACTIONS, guard_identity
from .common import FACE_REGIONS, category, combo_widget, float_widget, register
from .preview import compare_ui

NODE_CLASS_MAPPINGS: dict[str, type] = {}
NODE_DISPLAY_NAME_MAPPINGS: dict[str, str] = {}

# The UI key the canvas widget (js/) reads: a list of per-face entries.
UI_KEY = "portrait_polish_identity"


def _summary(result) -> str:  # noqa: ANN001 - core.identity.GuardResult
    faces = len(result.faces)
    verdict = "no face to check" if not faces else "PASS" if result.passed else "FAIL"
    return f"{result.backend} · threshold {result.threshold:.2f} ({result.threshold_source}) · {faces} face(s) · min {result.similarity:.3f} · {verdict}"


def _threshold_tooltip() -> str:
    levels = ", ".join(f"{name} {t.retouch:.2f}" for name, t in THRESHOLDS.items())
    return (
        "Lowest similarity a retouched face may have (1 = identical). 0 = auto: the backend's calibrated "
        f"'same photo, retouched' level ({levels}). The 'same person' verification levels are lower "
        "(dlib 0.40): use those only to ask 'is it still recognisably them'."
    )


class IdentityGuard:
    """Checks that every retouched face is still the same person, and enforces it."""

    DESCRIPTION = (
        "Compares every face of the retouched image with the same face in the original (matched by position) "
        "using a face-recognition embedding, and reports a similarity per face (1 = identical). On failure it "
        "can pass the image through and report, fall back to the original, or blend the retouched face back "
        "toward the original inside the face region only, just enough to pass. A face missing on either side "
        "is a failure. Backends: dlib (default, no download), AuraFace (Apache-2.0) and insightface r50 "
        "(non-commercial licence)."
    )
    CATEGORY = category("Identity")
    FUNCTION = "guard"
    RETURN_TYPES = ("IMAGE", "FLOAT", "BOOLEAN", "STRING")
    RETURN_NAMES = ("image", "similarity", "passed", "report")
    OUTPUT_TOOLTIPS = (
        "The retouched image, or its correction when a face failed and the action is 'original' or 'blend'.",
        "The lowest similarity over all faces of the retouch as given (1.0 when no frame has a face; -1 for a missing face).",
        "True when every face of the retouch as given reached the threshold (before any correction).",
        "JSON report per frame and face: score, threshold, passed, action, blend amount, final score, status (schema portrait_polish.identity/1).",
    )

    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        return {
            "required": {
                "original": ("IMAGE", {"tooltip": "The photo before retouching (one frame, or one per retouched frame), same size as the retouch."}),
                "retouched": ("IMAGE", {"tooltip": "The retouched photo to check."}),
                "backend": combo_widget(
                    list(BACKENDS),
                    DEFAULT_BACKEND,
                    "Face recognition model. dlib: ships with the pack's requirements, no download, commercial use OK. "
                    "auraface: ArcFace-class, Apache-2.0 (downloads glintr100.onnx, 260 MB). insightface_r50: "
                    "buffalo_l w600k_r50.onnx, NON-COMMERCIAL licence.",
                ),
                "threshold": float_widget(0.0, 0.0, 1.0, 0.01, _threshold_tooltip()),
                "action": combo_widget(
                    list(ACTIONS),
                    "report",
                    "On failure: report = pass the retouch through and report; original = output the original frame; "
                    "blend = blend the failing face back toward the original inside the face region only, with the "
                    "smallest amount that passes.",
                ),
            },
            "optional": {
                "face_regions": (
                    FACE_REGIONS,
                    {"tooltip": "FaceParse output of the ORIGINAL: its faces are used for the original and its face mask is the blend region (else a feathered ellipse on the detected face)."},
                ),
            },
        }

    def guard(self, original, retouched, backend: str, threshold: float, action: str, face_regions=None) -> dict[str, Any]:  # noqa: ANN001 - ComfyUI types
        with Progress(retouched.shape[0] if retouched.ndim == 4 else 1, "IdentityGuard") as bar:
            result = guard_identity(original, retouched, backend=backend, threshold=threshold, action=action, regions=face_regions, progress=bar.update)
        ui: dict[str, Any] = {UI_KEY: result.ui_entries(), UI_KEY + "_summary": [_summary(result)]}
        before = original if original.shape[0] == result.image.shape[0] else original[:1].expand(result.image.shape[0], -1, -1, -1)
        ui.update(compare_ui(before, result.image))
        return {"ui": ui, "result": (result.image, float(result.similarity), bool(result.passed), result.report_json())}


register(NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS, IdentityGuard, "IdentityGuard")
