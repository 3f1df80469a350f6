"""FaceParse: every face of every frame, with soft region masks on each face's working grid.

The package, by concern:

- :mod:`.geometry`: rasterising landmark polygons, the face's axes, crop windows;
- :mod:`.pixels`: the skin colour model and tooth enamel in CIELAB;
- :mod:`.pipeline`: one face's masks (geometry, pixel refinement, edge snapping, feather);
- :mod:`.bisenet_map`: the optional BiSeNet backend mapped onto the canonical regions;
- :mod:`.frames`: detection, landmarks and masks per frame (:func:`parse_faces`);
- :mod:`.outputs`: full-frame MASKs, the colour preview, mask IoU.

Landmark indices live in :mod:`core.landmarks`; the FACE_REGIONS type in :mod:`core.regions`.
"""

from .frames import (
    BOX_ONLY_MIN_SCORE,
    ParseOptions,
    box_only_masks,
    parse_faces,
    parse_frame,
    select_faces,
    uint8_model_input,
)
from .geometry import (
    HEAD_TOP,
    NECK_LENGTH,
    crop_from_landmarks,
    crop_window,
    disc,
    face_scale_from_keypoints,
    face_scale_from_landmarks,
    fill_polygons,
    grid_size,
)
from .outputs import LEFT_RIGHT_PAIRS, REGION_COLOURS, choose_faces, mask_iou, preview_regions, region_mask
from .pipeline import SNAP_FACE_PX, SNAP_RADIUS, SNAPPED_REGIONS, WORK_FACE_PX, face_masks
from .pixels import skin_likelihood, teeth_likelihood

__all__ = [
    "BOX_ONLY_MIN_SCORE",
    "HEAD_TOP",
    "LEFT_RIGHT_PAIRS",
    "NECK_LENGTH",
    "REGION_COLOURS",
    "SNAPPED_REGIONS",
    "SNAP_FACE_PX",
    "SNAP_RADIUS",
    "WORK_FACE_PX",
    "ParseOptions",
    "box_only_masks",
    "choose_faces",
    "crop_from_landmarks",
    "crop_window",
    "disc",
    "face_masks",
    "face_scale_from_keypoints",
    "face_scale_from_landmarks",
    "fill_polygons",
    "grid_size",
    "mask_iou",
    "parse_faces",
    "parse_frame",
    "preview_regions",
    "region_mask",
    "select_faces",
    "skin_likelihood",
    "teeth_likelihood",
    "uint8_model_input",
]
