"""Synthetic mouth and eye fixtures with known ground truth, for TeethWhiten and EyeEnhance.

Everything is drawn in CIELAB (so the yellowness, redness and lightness of each part are
known numbers) and converted to sRGB float32. Masks are what a parser would give: soft
edges, the teeth mask a little too generous (it reaches into the gums), and FACE_REGIONS
built by hand from ``core.regions``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from portrait_polish.core import colour
from portrait_polish.core.filters import gaussian_blur
from portrait_polish.core.regions import Face, FaceRegions, ImageFaces


@dataclass
class Fixture:
    image: torch.Tensor  # [1, H, W, 3]
    regions: FaceRegions
    truth: dict[str, torch.Tensor]  # exact (hard) masks of the drawn parts, full frame [H, W]


def _lab_image(lab: torch.Tensor) -> torch.Tensor:
    return colour.lab_to_rgb(lab).clamp(0.0, 1.0).to(torch.float32)


def _soft(mask: torch.Tensor, sigma: float = 0.8) -> torch.Tensor:
    return gaussian_blur(mask.to(torch.float32), sigma).clamp(0.0, 1.0)


def _fill(lab: torch.Tensor, mask: torch.Tensor, values: tuple[float, float, float]) -> None:
    for channel, value in enumerate(values):
        lab[..., channel] = torch.where(mask, torch.full_like(lab[..., channel], value), lab[..., channel])


def yellow_teeth_fixture(seed: int = 0, height: int = 320, width: int = 400) -> Fixture:
    """A face-sized frame: skin, two eye whites (L* 86), red lips, pink gums, a row of yellowed
    teeth (L* ~72, b* ~22) with enamel texture, dark gaps between teeth and darker corners."""
    gen = torch.Generator().manual_seed(seed)
    yy, xx = torch.meshgrid(torch.arange(height, dtype=torch.float32), torch.arange(width, dtype=torch.float32), indexing="ij")
    lab = torch.zeros(height, width, 3)
    lab[..., 0], lab[..., 1], lab[..., 2] = 68.0, 14.0, 18.0  # skin
    lab[..., 0] += 1.5 * torch.randn(height, width, generator=gen)

    cx, cy = width / 2, height * 0.72
    # Eye whites: two almond shapes (ellipses) high in the frame, with a little shading.
    eyes = {}
    for name, ex in (("right_eye_white", width * 0.3), ("left_eye_white", width * 0.7)):
        ey = height * 0.25
        eye = ((xx - ex) / 38.0) ** 2 + ((yy - ey) / 13.0) ** 2 <= 1.0
        eyes[name] = eye
        _fill(lab, eye, (86.0, 2.0, 4.0))
        lab[..., 0] -= torch.where(eye, 6.0 * ((xx - ex).abs() / 38.0) ** 2, torch.zeros(()))

    mouth = ((xx - cx) / 110.0) ** 2 + ((yy - cy) / 34.0) ** 2 <= 1.0
    upper_lip = (((xx - cx) / 120.0) ** 2 + ((yy - cy + 6) / 44.0) ** 2 <= 1.0) & ~mouth & (yy < cy)
    lower_lip = (((xx - cx) / 120.0) ** 2 + ((yy - cy - 8) / 48.0) ** 2 <= 1.0) & ~mouth & (yy >= cy)
    _fill(lab, upper_lip, (48.0, 38.0, 18.0))
    _fill(lab, lower_lip, (50.0, 40.0, 17.0))
    _fill(lab, mouth, (18.0, 12.0, 6.0))  # dark mouth interior
    gums = mouth & (yy < cy - 20)
    _fill(lab, gums, (55.0, 32.0, 12.0))
    teeth = mouth & (yy >= cy - 20) & (yy < cy + 18) & ((xx - cx).abs() < 96)
    # Enamel: yellowed, lighter in the middle of the row, darker toward the corners.
    shade = 1.0 - ((xx - cx) / 110.0) ** 2
    tooth_l = 64.0 + 12.0 * shade + 1.2 * torch.randn(height, width, generator=gen)
    tooth_b = 22.0 + 1.0 * torch.randn(height, width, generator=gen)
    lab[..., 0] = torch.where(teeth, tooth_l, lab[..., 0])
    lab[..., 1] = torch.where(teeth, torch.full_like(tooth_l, 1.5), lab[..., 1])
    lab[..., 2] = torch.where(teeth, tooth_b, lab[..., 2])
    # Gaps between teeth every 24 px: 2 px darker grooves (shading that must stay).
    gap = teeth & (((xx - cx + 12) % 24) < 2)
    lab[..., 0] = torch.where(gap, lab[..., 0] - 22.0, lab[..., 0])
    # A small specular glint on one tooth.
    glint = teeth & (((xx - cx - 30) ** 2 + (yy - cy + 8) ** 2) <= 9)
    _fill(lab, glint, (95.0, 0.5, 6.0))

    image = _lab_image(lab)[None]
    # The parser's teeth mask: the teeth plus 3 px into the gums (a typical over-reach).
    teeth_mask = _soft(teeth | (mouth & (yy >= cy - 23) & (yy < cy + 18) & ((xx - cx).abs() < 96)))
    masks = {
        "teeth": teeth_mask,
        "upper_lip": _soft(upper_lip),
        "lower_lip": _soft(lower_lip),
        "mouth_interior": _soft(mouth & ~teeth),
        "right_eye_white": _soft(eyes["right_eye_white"]),
        "left_eye_white": _soft(eyes["left_eye_white"]),
        "skin": _soft(~(mouth | upper_lip | lower_lip | eyes["right_eye_white"] | eyes["left_eye_white"])),
    }
    face = Face(box=(0.0, 0.0, float(width), float(height)), score=1.0, crop=(0, 0, width, height), masks=masks, scale=float(width))
    regions = FaceRegions(images=[ImageFaces(height=height, width=width, faces=[face])], backend="synthetic")
    truth = {"teeth": teeth & ~gap & ~glint, "gaps": gap, "glint": glint, "gums": gums, "upper_lip": upper_lip, "lower_lip": lower_lip}
    return Fixture(image=image, regions=regions, truth=truth)


def red_eyes_fixture(seed: int = 0, height: int = 240, width: int = 400, closed: bool = False) -> Fixture:
    """Two eyes on skin: red-tinted sclera (a* ~7) with darker red veins, shading toward the
    corners and under the upper lid; a brown iris with radial texture, a dark pupil, a darker
    limbal ring and a small bright catchlight; a slightly darker under-eye band.

    ``closed=True`` draws lids (skin) where the eyes would be and gives slivers of masks,
    as a parser does for closed eyes.
    """
    gen = torch.Generator().manual_seed(seed)
    yy, xx = torch.meshgrid(torch.arange(height, dtype=torch.float32), torch.arange(width, dtype=torch.float32), indexing="ij")
    lab = torch.zeros(height, width, 3)
    lab[..., 0], lab[..., 1], lab[..., 2] = 66.0, 13.0, 17.0
    lab[..., 0] += 1.2 * torch.randn(height, width, generator=gen)
    masks: dict[str, torch.Tensor] = {}
    truth: dict[str, torch.Tensor] = {}
    landmarks = torch.zeros(478, 2)
    eye_y = height * 0.42
    iris_r = 17.0
    for side, ex in (("right", width * 0.3), ("left", width * 0.7)):
        half_w, half_h = 46.0, 18.0
        eye = ((xx - ex) / half_w) ** 2 + ((yy - eye_y) / half_h) ** 2 <= 1.0
        # Under-eye band: a darker crescent below the lower lid (dark circle).
        under = (((xx - ex) / 50.0) ** 2 + ((yy - eye_y - 24.0) / 12.0) ** 2 <= 1.0) & ~eye
        lab[..., 0] = torch.where(under, lab[..., 0] - 7.0, lab[..., 0])
        truth[f"{side}_under_eye"] = under
        if closed:
            lid = ((xx - ex) / half_w) ** 2 + ((yy - eye_y) / 2.0) ** 2 <= 1.0
            lab[..., 0] = torch.where(lid, lab[..., 0] - 25.0, lab[..., 0])
            masks[f"{side}_eye_white"] = _soft(lid & ((xx - ex).abs() > 8))
            masks[f"{side}_iris"] = _soft(lid & ((xx - ex).abs() <= 8))
            continue
        sclera_l = 84.0 - 9.0 * ((xx - ex).abs() / half_w) ** 2 - 5.0 * ((eye_y - yy).clamp_min(0) / half_h)
        lab[..., 0] = torch.where(eye, sclera_l + 0.6 * torch.randn(height, width, generator=gen), lab[..., 0])
        lab[..., 1] = torch.where(eye, torch.full_like(sclera_l, 5.0), lab[..., 1])
        lab[..., 2] = torch.where(eye, torch.full_like(sclera_l, 5.0), lab[..., 2])
        # Veins: thin wavy red lines from the corners toward the iris.
        veins = torch.zeros(height, width, dtype=torch.bool)
        for k, phase in enumerate((0.0, 1.3, 2.1)):
            vy = eye_y - 6.0 + 6.0 * k + 2.5 * torch.sin(xx / 6.0 + phase)
            veins |= eye & ((yy - vy).abs() < 0.8) & ((xx - ex).abs() > iris_r + 2)
        lab[..., 0] = torch.where(veins, lab[..., 0] - 10.0, lab[..., 0])
        lab[..., 1] = torch.where(veins, lab[..., 1] + 22.0, lab[..., 1])
        radius = torch.sqrt((xx - ex) ** 2 + (yy - eye_y) ** 2)
        angle = torch.atan2(yy - eye_y, xx - ex)
        iris = (radius <= iris_r) & eye
        radial = 4.0 * torch.sin(angle * 23.0) + 2.5 * torch.sin(angle * 9.0 + radius)
        iris_l = 42.0 + radial + 1.0 * torch.randn(height, width, generator=gen)
        limbal = iris & (radius > iris_r - 2.5)
        iris_l = torch.where(limbal, iris_l - 12.0, iris_l)
        lab[..., 0] = torch.where(iris, iris_l, lab[..., 0])
        lab[..., 1] = torch.where(iris, torch.full_like(iris_l, 12.0), lab[..., 1])
        lab[..., 2] = torch.where(iris, torch.full_like(iris_l, 26.0), lab[..., 2])
        pupil = radius <= 6.0
        _fill(lab, pupil, (9.0, 0.5, 0.5))
        catch = ((xx - (ex + 3.0)) ** 2 + (yy - (eye_y - 4.0)) ** 2) <= 2.6**2
        lab[..., 0] = torch.where(catch, 92.0 - 3.0 * ((xx - ex - 3.0) ** 2 + (yy - eye_y + 4.0) ** 2), lab[..., 0])
        lab[..., 1] = torch.where(catch, torch.zeros_like(sclera_l), lab[..., 1])
        lab[..., 2] = torch.where(catch, torch.zeros_like(sclera_l), lab[..., 2])
        sclera = eye & ~iris
        masks[f"{side}_eye_white"] = _soft(sclera, 0.6)
        masks[f"{side}_iris"] = _soft(iris, 0.6)
        truth.update({f"{side}_sclera": sclera, f"{side}_veins": veins, f"{side}_iris": iris, f"{side}_pupil": pupil, f"{side}_catch": catch, f"{side}_limbal": limbal})
        # MediaPipe iris landmarks: the centre, then four points on the iris circle.
        centre_index = 468 if side == "right" else 473
        landmarks[centre_index] = torch.tensor([ex, eye_y])
        for j in range(4):
            t = j * math.pi / 2
            landmarks[centre_index + 1 + j] = torch.tensor([ex + iris_r * math.cos(t), eye_y + iris_r * math.sin(t)])
        # MediaPipe lower-lid landmarks of this eye, along the ellipse's lower edge.
        lower = LOWER_LID[side]
        for j, index in enumerate(lower):
            # Outer corner first: image-left for the subject's right eye, image-right for the left.
            t = math.pi * (1.0 - j / (len(lower) - 1)) if side == "right" else math.pi * j / (len(lower) - 1)
            landmarks[index] = torch.tensor([ex + half_w * math.cos(t), eye_y + half_h * math.sin(t)])
    image = _lab_image(lab)[None]
    eyes_union = torch.zeros(height, width)
    for name in list(masks):
        eyes_union = torch.maximum(eyes_union, masks[name])
    masks["skin"] = (1.0 - eyes_union).clamp(0.0, 1.0)
    face = Face(box=(0.0, 0.0, float(width), float(height)), score=1.0, crop=(0, 0, width, height), masks=masks, scale=float(width), landmarks=landmarks)
    regions = FaceRegions(images=[ImageFaces(height=height, width=width, faces=[face])], backend="synthetic")
    return Fixture(image=image, regions=regions, truth=truth)


# MediaPipe FaceMesh lower-lid contours, outer corner to inner corner (subject's sides).
LOWER_LID = {
    "right": (33, 7, 163, 144, 145, 153, 154, 155, 133),
    "left": (263, 249, 390, 373, 374, 380, 381, 382, 362),
}
