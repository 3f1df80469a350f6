"""The FaceParse mask pipeline for one face, on its working grid.

Landmark polygons give every region's shape (anti-aliased, sub-pixel); the pixels refine
them: a skin colour model sampled from the face's own cheeks and forehead, tooth enamel by
colour inside the mouth, hair as person ∩ head region minus skin, then one colour-guided
filter snaps the soft edges to the image and a face-relative Gaussian feathers them. The
masks stay on the working grid (face :data:`WORK_FACE_PX` wide): FACE_REGIONS stores them
there and full-resolution masks are made only when asked (:mod:`core.regions`).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from ..colour import rgb_to_lab
from ..filters import blur_image, gaussian_blur, guided_filter
from ..landmarks import (
    CHEEK_POINTS,
    FACE_OVAL,
    FOREHEAD_POINTS,
    LEFT_BROW,
    LEFT_EYE,
    LEFT_IRIS_CENTER,
    LEFT_IRIS_RING,
    LIPS_INNER_LOWER,
    LIPS_INNER_UPPER,
    LIPS_OUTER_LOWER,
    LIPS_OUTER_UPPER,
    NOSE,
    RIGHT_BROW,
    RIGHT_EYE,
    RIGHT_IRIS_CENTER,
    RIGHT_IRIS_RING,
)
from ..masks import closing, coordinate_grid
from ..regions import FACE_REGION_NAMES
from .geometry import convex_hull, disc, face_axes, fill_polygons, forehead_oval, head_region, neck_polygon
from .pixels import blurred_at_points, skin_likelihood, strand_texture, teeth_likelihood

# Face width (in pixels) of the working grid the masks are computed and stored on: about
# twice the finest mask detail that matters (a lash line, a thin lip), and small enough
# that 14 masks per face cost a few MB at any photo size.
WORK_FACE_PX = 384.0
# Edge snapping works on a grid where the face is this wide (radius in grid pixels): about
# 1 % of the face, the same at every resolution.
SNAP_FACE_PX = 192.0
SNAP_RADIUS = 2
# Mask values below this are zero (see face_masks).
MASK_FLOOR = 1.0 / 512.0
# How much darker than the face's lightness plane skin in shade may be (a fraction of it:
# the jaw's underside, a temple, the far side of a side-lit face): skin_likelihood's shade.
SKIN_SHADE = 0.4
# The forehead up to the hairline (:func:`_forehead_to_hairline`): the zone starts this far
# above the eye line (eye-to-mouth distances: the brows' upper edge), and in it the skin
# colour model is this many times as tolerant.
FOREHEAD_ABOVE_EYES = 0.3
# The forehead (start, push, temple: geometry.forehead_oval) the colour model's relax rule
# judges how much of the face it keeps on.
RELAX_FOREHEAD = (0.3, 0.8, 0.0)
FOREHEAD_TOLERANCE = 2.2

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


def face_masks(
    work_rgb: torch.Tensor,
    lm: np.ndarray,
    work_scale: float,
    feather: float,
    person: torch.Tensor | None = None,
    refine: bool = True,
    bisenet: torch.nn.Module | None = None,
) -> dict[str, torch.Tensor]:
    """Region masks of one face on its working grid.

    ``work_rgb`` is the face crop at working resolution (``[h, w, 3]`` float), ``lm`` the
    landmarks in its pixels, ``work_scale`` the face width there. ``person`` is the person
    probability on the same grid, or None. ``refine`` turns the pixel refinements on (skin
    colour model, edge snapping); the landmark geometry is used either way.
    """
    work_h, work_w = work_rgb.shape[:2]
    shape = (work_h, work_w)
    work_rgb = work_rgb.clamp(0.0, 1.0)

    def poly(indices: Sequence[int]) -> np.ndarray:
        return lm[list(indices)]

    eye_open = {side: fill_polygons(shape, [poly(idx)]) for side, idx in (("right", RIGHT_EYE), ("left", LEFT_EYE))}
    hard: dict[str, np.ndarray] = {}
    for side, center, ring in (
        ("right", RIGHT_IRIS_CENTER, RIGHT_IRIS_RING),
        ("left", LEFT_IRIS_CENTER, LEFT_IRIS_RING),
    ):
        radius = float(np.mean(np.hypot(*(lm[list(ring)] - lm[center]).T)))
        # The landmark circle, clipped to the eye opening: eyelids cover part of the iris.
        iris = disc(shape, lm[center], radius) * eye_open[side]
        hard[f"{side}_iris"] = iris
        hard[f"{side}_eye_white"] = np.clip(eye_open[side] - iris, 0.0, 1.0)
    hard["right_brow"] = fill_polygons(shape, [poly(RIGHT_BROW)])
    hard["left_brow"] = fill_polygons(shape, [poly(LEFT_BROW)])
    inner = np.vstack([poly(LIPS_INNER_UPPER), poly(LIPS_INNER_LOWER)[1:-1]])
    mouth_interior = fill_polygons(shape, [inner])
    upper = np.vstack([poly(LIPS_OUTER_UPPER), poly(LIPS_INNER_UPPER)[::-1]])
    lower = np.vstack([poly(LIPS_OUTER_LOWER), poly(LIPS_INNER_LOWER)[::-1]])
    hard["upper_lip"] = np.clip(fill_polygons(shape, [upper]) - mouth_interior, 0.0, 1.0)
    hard["lower_lip"] = np.clip(fill_polygons(shape, [lower]) - mouth_interior - hard["upper_lip"], 0.0, 1.0)
    hard["mouth_interior"] = mouth_interior
    hard["nose"] = fill_polygons(shape, [convex_hull(poly(NOSE))])
    oval = fill_polygons(shape, [forehead_oval(lm)])
    features = np.maximum.reduce(
        [
            eye_open["right"],
            eye_open["left"],
            hard["right_brow"],
            hard["left_brow"],
            fill_polygons(shape, [poly(LIPS_OUTER_UPPER + LIPS_OUTER_LOWER)]),
            hard["nose"],
        ]
    )
    hard["skin"] = np.clip(oval - features, 0.0, 1.0)
    hard["neck"] = np.clip(fill_polygons(shape, [neck_polygon(lm)]) - oval, 0.0, 1.0)
    head = head_region(shape, lm)
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
    samples = rgb_to_lab(blurred_at_points(work_rgb, sample_xy, max(1.0, 0.01 * work_scale)))
    skin_lightness = float(samples[:, 0].median())

    if bisenet is not None:
        from .bisenet_map import bisenet_regions

        # The network decides skin/brows/eyes/lips/nose/neck/hair; landmarks still give the
        # iris circle and the left/right split, and pixels give the teeth.
        masks.update(bisenet_regions(bisenet, work_rgb, lm, masks))
        refine = False

    if refine:
        # Skin colour model on a lightly blurred copy, closed so pores, freckles and moles
        # stay in; what is left out is large: beard, brows' stray hairs, frames, hair, hands.
        blurred_lab = rgb_to_lab(blur_image(work_rgb, max(0.5, 0.003 * work_scale)))
        close_radius = max(1, round(0.008 * work_scale))
        likelihood = closing(skin_likelihood(blurred_lab, samples, sample_xy), close_radius)
        skin_geo = masks["skin"]
        # A colour model that rejects most of the face is a colour model gone wrong (odd
        # light, face paint): relax it rather than lose the face. Blended in step with how
        # much it rejects (fully relaxed at 45 % of the face kept), so a slightly different
        # exposure cannot flip the mask from one model to the other. Judged on the face with
        # a forehead of average height (the geometry above reaches into the hair on most
        # heads), as the rule was calibrated.
        landmark_oval = fill_polygons(shape, [poly(FACE_OVAL)])
        judged = torch.from_numpy(np.clip(fill_polygons(shape, [forehead_oval(lm, *RELAX_FOREHEAD)]) - features, 0.0, 1.0))
        kept = float((judged * likelihood).sum()) / max(float(judged.sum()), 1.0)
        relax = min(max((0.6 - kept) / 0.15, 0.0), 1.0)
        if relax > 0.0:
            relaxed = closing(skin_likelihood(blurred_lab, samples, sample_xy, tolerance=1.8), close_radius)
            likelihood = likelihood + relax * (relaxed - likelihood)
        # Strands (hair, beard, stubble) against this forehead's own fine texture: what may
        # not be taken in as skin in shade, nor at the hairline.
        above_brows = _above_eyes(shape, lm, FOREHEAD_ABOVE_EYES)
        forehead = torch.from_numpy(landmark_oval * (1.0 - features)) * above_brows
        strands = strand_texture(lab, forehead, work_scale)
        # Skin in shade (the jaw's underside, a temple, the far side of a side-lit face):
        # darker than the lightness plane, but with the skin's colour and texture.
        shaded = closing(skin_likelihood(blurred_lab, samples, sample_xy, shade=SKIN_SHADE), close_radius)
        likelihood = torch.maximum(likelihood, shaded * (1.0 - strands))
        likelihood = _forehead_to_hairline(likelihood, blurred_lab, oval, landmark_oval, features, above_brows, strands, samples, sample_xy, close_radius)
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
        eye_mid, up, eye_mouth = face_axes(lm)
        ys, xs = coordinate_grid(shape[0], shape[1], origin=(-float(eye_mid[0]), -float(eye_mid[1])))
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
        stack = torch.stack([masks[n] for n in names])
        guide = work_rgb.permute(2, 0, 1)
        grid_factor = SNAP_FACE_PX / work_scale
        coarse = (max(8, round(shape[0] * grid_factor)), max(8, round(shape[1] * grid_factor)))
        snapped = guided_filter(guide, stack, SNAP_RADIUS, 2e-3, coarse_size=coarse).clamp(0.0, 1.0)
        for index, name in enumerate(names):
            masks[name] = snapped[index]

    # Feather: a Gaussian whose width follows the face size (≈0.4 % of the face width).
    sigma = max(0.0, feather) * 0.004 * work_scale
    if sigma > 0.3:
        names = list(masks)
        blurred = gaussian_blur(torch.stack([masks[n] for n in names]), sigma).clamp(0.0, 1.0)
        masks = {name: blurred[i] for i, name in enumerate(names)}
    masks["teeth"] = masks["mouth_interior"] * teeth
    # The float32 filters leave rounding dust (1e-7) where a mask should be empty: anything
    # under MASK_FLOOR (an invisible 0.5/255 at most) is zero, so "outside the mask" is a
    # place, and every pixel there stays bit-exact through the retouch nodes.
    return {name: _floored(masks[name]) for name in FACE_REGION_NAMES}


def _floored(mask: torch.Tensor) -> torch.Tensor:
    mask = mask.to(torch.float32).clamp(0.0, 1.0)
    return torch.where(mask < MASK_FLOOR, torch.zeros_like(mask), mask).contiguous()


def _above_eyes(shape: tuple[int, int], lm: np.ndarray, height: float) -> torch.Tensor:
    """1 where a pixel is more than ``height`` eye-to-mouth distances above the eye line."""
    eye_mid, up, eye_mouth = face_axes(lm)
    ys, xs = coordinate_grid(shape[0], shape[1], origin=(-float(eye_mid[0]), -float(eye_mid[1])))
    return ((xs * float(up[0]) + ys * float(up[1])) > height * eye_mouth).to(torch.float32)


def _forehead_to_hairline(
    likelihood: torch.Tensor,
    blurred_lab: torch.Tensor,
    oval: np.ndarray,
    landmark_oval: np.ndarray,
    features: np.ndarray,
    above_brows: torch.Tensor,
    strands: torch.Tensor,
    samples: torch.Tensor,
    sample_xy: np.ndarray,
    close_radius: int,
) -> torch.Tensor:
    """The skin likelihood with the forehead taken up to the hairline.

    MediaPipe's oval stops on the upper forehead; the geometry (``oval``) reaches into the
    hair, and the pixels say where the hairline is. Above the brows the forehead's light
    falls off toward the temples and the hairline, so a shaded temple is far from the
    cheeks' colour: there the colour model is :data:`FOREHEAD_TOLERANCE` times as tolerant
    (dark, grey or coloured hair is still well outside it). Hair of the skin's own colour
    (blond, grey over a pale scalp) is told apart above MediaPipe's oval by its strands
    (``strands``: :func:`strand_texture`).
    """
    hair = torch.from_numpy(np.clip(oval - landmark_oval, 0.0, 1.0)) * strands
    zone = torch.from_numpy(oval * (1.0 - features)) * above_brows * (1.0 - hair)
    wider = closing(skin_likelihood(blurred_lab, samples, sample_xy, tolerance=FOREHEAD_TOLERANCE, shade=SKIN_SHADE), close_radius)
    likelihood = torch.maximum(likelihood, zone * wider)
    return likelihood * (1.0 - hair)

