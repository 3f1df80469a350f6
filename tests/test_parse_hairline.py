"""FaceParse's skin reaches the hairline and the jaw's edge, and hair, brows and frames stay out.

Ground truth for the forehead: hand-labelled polygons (tests/labels/forehead.json: the
forehead seen in each photo, from the brows up to the hairline, temple to temple;
coordinates only) on eight shared portraits, skin tones II to V, hair black, brown, grey
and white. The jaw's reference is MediaPipe's own face oval, whose lower half follows the
jaw line: on clean-shaven faces the skin must fill a band just inside it.
"""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from helpers import parsed_portrait

from portrait_polish.core.colour import rgb_to_lab
from portrait_polish.core.landmarks import FACE_OVAL, LEFT_BROW, LEFT_EYE, RIGHT_BROW, RIGHT_EYE
from portrait_polish.core.parse.geometry import face_axes
from portrait_polish.core.regions import full_frame_mask

LABELS = json.loads((Path(__file__).parent / "labels" / "forehead.json").read_text())
FOREHEADS = LABELS["faces"]
assert LABELS["long_side"] == 1024


def _face_skin(name: str):  # noqa: ANN202 - (image, face, skin [H, W] float)
    image, regions = parsed_portrait(name, LABELS["long_side"])
    item = regions.images[0]
    face = max(item.faces, key=lambda f: f.scale)
    return image, face, full_frame_mask(item, ["skin"], faces=[item.faces.index(face)]).numpy()


def _fill(shape: tuple[int, int], points) -> np.ndarray:  # noqa: ANN001
    mask = np.zeros(shape, np.uint8)
    cv2.fillPoly(mask, [np.round(np.asarray(points, np.float64)).astype(np.int32).reshape(-1, 1, 2)], 1)
    return mask > 0


def _hair_band(forehead: np.ndarray, scale: float) -> np.ndarray:
    """The hair just above the labelled hairline: 3 to 10 % of the face width above the
    polygon's top edge, over the middle 80 % of its width."""
    height, width = forehead.shape
    columns = forehead.any(axis=0)
    top = np.where(columns, np.argmax(forehead, axis=0), -1).astype(np.float64)
    x0, x1 = np.nonzero(columns)[0][[0, -1]]
    margin = 0.1 * (x1 - x0)
    ys = np.arange(height)[:, None]
    xs = np.arange(width)[None]
    return (ys < top - 0.03 * scale) & (ys >= top - 0.10 * scale) & columns & (xs > x0 + margin) & (xs < x1 - margin)


@pytest.mark.parametrize("name", sorted(FOREHEADS))
def test_forehead_skin_reaches_the_hairline_and_the_hair_stays_out(name: str) -> None:
    _, face, skin = _face_skin(name)
    forehead = _fill(skin.shape, FOREHEADS[name])
    covered = float((skin[forehead] > 0.5).mean())
    band = _hair_band(forehead, face.scale)
    in_hair = float((skin[band] > 0.5).mean())
    print(f"{name}: forehead covered {covered:.3f}, hair above it taken as skin {in_hair:.3f}")
    assert covered >= 0.9
    assert band.sum() > 500 and in_hair <= 0.05


@pytest.mark.parametrize("name", ["jolie_1.jpg", "compreface_personA_1.jpg", "biden_2.jpg", "unsplash_black_woman.jpg", "u2net_older_black_woman.png"])
def test_skin_reaches_the_jaw_edge_on_clean_shaven_faces(name: str) -> None:
    _, face, skin = _face_skin(name)
    lm = face.landmarks.numpy()
    oval = _fill(skin.shape, lm[list(FACE_OVAL)]).astype(np.uint8)
    radius = round(0.04 * face.scale)
    inner = cv2.erode(oval, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1)))
    eye_mid, up, eye_mouth = face_axes(lm)
    ys, xs = np.mgrid[0 : skin.shape[0], 0 : skin.shape[1]]
    below_eyes = (xs - eye_mid[0]) * up[0] + (ys - eye_mid[1]) * up[1] < -0.2 * eye_mouth
    _, regions = parsed_portrait(name, LABELS["long_side"])
    features = full_frame_mask(regions.images[0], ["eyes", "brows", "mouth", "nose"]).numpy() > 0.05
    band = (oval > 0) & (inner == 0) & below_eyes & ~features
    covered = float((skin[band] > 0.5).mean())
    print(f"{name}: band inside the jaw line covered {covered:.3f}")
    assert covered >= 0.8


@pytest.mark.parametrize("name", sorted(FOREHEADS))
def test_brows_stay_out_of_the_skin(name: str) -> None:
    _, face, skin = _face_skin(name)
    lm = face.landmarks.numpy()
    brows = _fill(skin.shape, lm[list(RIGHT_BROW)]) | _fill(skin.shape, lm[list(LEFT_BROW)])
    assert float((skin[brows] > 0.5).mean()) <= 0.1


@pytest.mark.parametrize("name", ["sundar_pichai.jpg", "compreface_glasses_beard_man.jpg"])
def test_black_glasses_frames_stay_out_of_the_skin(name: str) -> None:
    image, face, skin = _face_skin(name)
    lm = face.landmarks.numpy()
    eyes = (_fill(skin.shape, lm[list(RIGHT_EYE)]) | _fill(skin.shape, lm[list(LEFT_EYE)])).astype(np.uint8)
    brows = (_fill(skin.shape, lm[list(RIGHT_BROW)]) | _fill(skin.shape, lm[list(LEFT_BROW)])).astype(np.uint8)
    radius = round(0.12 * face.scale)
    around = cv2.dilate(eyes, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))) > 0
    around &= ~(cv2.dilate(eyes | brows, np.ones((5, 5), np.uint8)) > 0)
    lab = rgb_to_lab(image[0]).numpy()
    frame = around & (lab[..., 0] < 22) & (np.hypot(lab[..., 1], lab[..., 2]) < 6)  # black, grey: the frames
    assert frame.sum() > 1000
    # A frame is 4-6 px wide here: the soft skin edge reaches over the outer pixel or so.
    assert float((skin[frame] > 0.5).mean()) <= 0.2
