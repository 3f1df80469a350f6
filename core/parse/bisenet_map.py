"""FaceParse's optional BiSeNet backend: CelebAMask-HQ class probabilities mapped onto the
pack's canonical regions (the network decides skin, brows, eyes, lips, nose, neck and hair;
landmarks still give the iris circle and the subject's left/right split)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from .. import comfy
from ..landmarks import LEFT_IRIS_CENTER, RIGHT_IRIS_CENTER
from ..masks import coordinate_grid


def bisenet_regions(
    model: torch.nn.Module, work_rgb: torch.Tensor, lm: np.ndarray, geometry: dict[str, torch.Tensor]
) -> dict[str, torch.Tensor]:
    """Region masks from BiSeNet's softmax probabilities, warped back onto the working crop."""
    import cv2

    from ..bisenet import CELEBAMASK_LABELS, INPUT_SIZE, aligned_face_transform, parse_probabilities

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
    ys, xs = coordinate_grid(height, width, origin=(-float(eye_mid[0]), -float(eye_mid[1])))
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


def bisenet_model(name: str) -> torch.nn.Module:
    """The BiSeNet weights named by a models.json id, a file in the face_parsing folder or a path."""
    from ..bisenet import cached_bisenet
    from ..models import find_file, model_path, spec_for

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
