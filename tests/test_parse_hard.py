"""FaceParse on hard input: rotated, tiny, cut-off and occluded faces, beards, dark and
light skin, and synthetic fixtures whose ground truth is known by construction."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from helpers import astronaut, parsed_portrait, portrait

from portrait_polish.core import detect
from portrait_polish.core.colour import lab_to_rgb, rgb_to_lab
from portrait_polish.core.filters import guided_filter
from portrait_polish.core.parse import (
    disc,
    fill_polygons,
    mask_iou,
    parse_faces,
    region_mask,
    skin_likelihood,
    teeth_likelihood,
)
from portrait_polish.core.regions import FACE_REGION_NAMES, Face, ImageFaces, full_frame_mask

# --- photos turned on their side / upside down ---------------------------------------


@pytest.mark.parametrize("turns", [1, 2, 3])
def test_turned_photo_parses_like_the_upright_one(turns: int) -> None:
    image, upright = parsed_portrait("jolie_1.jpg", 512)
    turned = parse_faces(torch.rot90(image, turns, dims=(1, 2))).images[0]
    assert len(turned.faces) == 1 and turned.faces[0].landmarks is not None
    for region in ("skin", "lips", "eyes", "left_iris", "nose"):
        back = torch.rot90(full_frame_mask(turned, region), -turns, dims=(0, 1))
        iou = mask_iou(full_frame_mask(upright.images[0], region), back)
        assert iou > 0.85, f"{turns}x90°: {region} IoU {iou:.3f}"


def test_rotate_points_inverts_rot90() -> None:
    height, width = 5, 7
    grid = np.arange(height * width).reshape(height, width)
    for k in (1, 2, 3):
        turned = np.rot90(grid, k)
        pts = np.array([[x, y] for y in range(turned.shape[0]) for x in range(turned.shape[1])], float)
        back = detect._rotate_points(pts, k, height, width).astype(int)
        assert all(grid[b[1], b[0]] == turned[int(p[1]), int(p[0])] for p, b in zip(pts, back, strict=True))


# --- size and framing -------------------------------------------------------------------


@pytest.mark.parametrize("shape", [(1, 1), (3, 5), (16, 16), (40, 64)])
def test_tiny_frames_do_not_crash(shape: tuple[int, int]) -> None:
    image = torch.rand(1, *shape, 3)
    regions = parse_faces(image)
    assert len(regions.images) == 1 and regions.images[0].faces == []


def test_small_face_in_small_frame() -> None:
    # The astronaut at 128 px: her face is about 40 px wide (YuNet sees an upsampled copy).
    small = torch.nn.functional.interpolate(astronaut().permute(0, 3, 1, 2), size=(128, 128), mode="area").permute(
        0, 2, 3, 1
    )
    (item,) = parse_faces(small).images
    assert len(item.faces) == 1
    assert float(full_frame_mask(item, "skin").sum()) > 100


def test_face_cut_by_the_frame_edge() -> None:
    image, whole = parsed_portrait("jolie_1.jpg", 512)
    face = whole.images[0].faces[0]
    cut_at = int(face.box[0] + face.box[2] * 0.3)  # keep only the right 70 % of the face
    cut = image[:, :, cut_at:].contiguous()
    (item,) = parse_faces(cut).images
    assert len(item.faces) == 1
    got = item.faces[0]
    x0, y0, x1, y1 = got.crop
    assert 0 <= x0 < x1 <= cut.shape[2] and 0 <= y0 < y1 <= cut.shape[1]
    for region, mask in got.masks.items():
        assert mask.shape == got.grid_size, region
    # The visible part of the skin matches the uncut parse.
    reference = full_frame_mask(whole.images[0], "skin")[:, cut_at:]
    assert mask_iou(reference, full_frame_mask(item, "skin")) > 0.85


def test_pasted_faces_are_found_where_they_were_put() -> None:
    """Synthetic group: the astronaut's head pasted at known places on a grey canvas."""
    head = astronaut()[:, 20:260, 120:330]  # 240×210 crop around her face
    canvas = torch.full((1, 600, 900, 3), 0.45)
    alone = canvas.clone()
    alone[:, 300:540, 330:540] = head
    reference = parse_faces(alone, person=False).images[0].faces[0].landmarks.numpy() - [330, 300]
    offsets = [(20, 10), (20, 240), (20, 470), (330, 100), (330, 450), (330, 680)]
    for top, left in offsets:
        canvas[:, top : top + 240, left : left + 210] = head
    (item,) = parse_faces(canvas, person=False).images
    assert len(item.faces) == len(offsets)
    for top, left in offsets:
        expected = reference + [left, top]
        errors = [float(np.abs(f.landmarks.numpy() - expected).mean()) for f in item.faces]
        # Every pasted copy is found where it was put, landmarks within ~a pixel on average.
        assert min(errors) < 1.5


# --- occlusion, beards, skin tones --------------------------------------------------------


def test_dark_glasses_drop_out_of_skin() -> None:
    image, parsed = parsed_portrait("jolie_1.jpg", 512)
    face = parsed.images[0].faces[0]
    lm = face.landmarks.numpy()
    occluded = image.clone()
    height, width = image.shape[1:3]
    lens_mask = np.zeros((height, width), np.float32)
    for centre in (lm[468], lm[473]):
        radius = face.scale * 0.13
        lens_mask = np.maximum(lens_mask, disc((height, width), centre, radius))
    lens = torch.from_numpy(lens_mask)
    occluded[0] = occluded[0] * (1 - lens[..., None]) + 0.06 * lens[..., None]
    (item,) = parse_faces(occluded).images
    assert len(item.faces) == 1
    skin = full_frame_mask(item, "skin")
    ring = (lens > 0.99) & (full_frame_mask(parsed.images[0], "skin") > 0.5)  # lens over former skin
    assert int(ring.sum()) > 200
    assert float(skin[ring].mean()) < 0.15
    # The rest of the face is still skin.
    assert float(skin.sum()) > 0.6 * float(full_frame_mask(parsed.images[0], "skin").sum())


@pytest.mark.parametrize("name", ["compreface_glasses_beard_man.jpg", "clooney_1.jpg"])
def test_beard_is_not_skin(name: str) -> None:
    _, parsed = parsed_portrait(name, 768)
    item = parsed.images[0]
    face = item.faces[0]
    lm = face.landmarks.numpy()
    skin = full_frame_mask(item, "skin")

    def mean_around(point: np.ndarray, radius: float) -> float:
        x, y = int(point[0]), int(point[1])
        r = max(2, int(radius))
        return float(skin[y - r : y + r, x - r : x + r].mean())

    chin = lm[17] * 0.35 + lm[152] * 0.65  # full beard between the lower lip and the chin tip
    cheeks = min(mean_around(lm[50], face.scale * 0.03), mean_around(lm[280], face.scale * 0.03))
    assert cheeks > 0.8
    assert mean_around(chin, face.scale * 0.03) < 0.3


@pytest.mark.parametrize(
    "name",
    [
        "u2net_older_black_woman.png",
        "unsplash_black_woman.jpg",
        "u2net_black_woman_smile.jpg",
        "jolie_1.jpg",
        "biden_2.jpg",
    ],
)
def test_skin_found_on_dark_and_light_skin(name: str) -> None:
    _, parsed = parsed_portrait(name, 768)
    face = parsed.images[0].faces[0]
    lm = face.landmarks.numpy()
    item = parsed.images[0]
    skin = full_frame_mask(item, "skin")
    # Most of the landmark face oval minus features is kept as skin.
    height, width = skin.shape
    from portrait_polish.core.landmarks import FACE_OVAL

    oval = torch.from_numpy(fill_polygons((height, width), [lm[list(FACE_OVAL)]]))
    features = full_frame_mask(item, "nose, eyes, brows, mouth") > 0.05
    inner = (oval > 0.5) & ~features
    assert float(skin[inner].mean()) > 0.7


# --- synthetic fixtures for the pixel models ---------------------------------------------


def _lab(rgb: tuple[float, float, float]) -> torch.Tensor:
    return rgb_to_lab(torch.tensor(rgb, dtype=torch.float32).view(1, 1, 3))[0, 0]


def test_teeth_likelihood_on_known_colours() -> None:
    skin_lab = _lab((0.80, 0.60, 0.50))
    colours = {
        "enamel": (0.92, 0.90, 0.84),
        "warm enamel": (0.80, 0.72, 0.58),
        "gum": (0.78, 0.42, 0.45),
        "tongue": (0.72, 0.38, 0.40),
        "lip": (0.70, 0.35, 0.38),
        "cavity": (0.12, 0.06, 0.06),
    }
    scores = {
        name: float(
            teeth_likelihood(
                _lab(rgb).view(1, 1, 3),
                float(skin_lab[0]),
                float(skin_lab[1]),
                float(torch.hypot(skin_lab[1], skin_lab[2])),
            )
        )
        for name, rgb in colours.items()
    }
    assert scores["enamel"] > 0.9 and scores["warm enamel"] > 0.5
    for name in ("gum", "tongue", "lip", "cavity"):
        assert scores[name] < 0.1, (name, scores[name])


def test_skin_likelihood_keeps_freckles_and_drops_hair() -> None:
    skin_rgb = torch.tensor([0.85, 0.66, 0.55])
    image = skin_rgb.expand(64, 64, 3).clone()
    image[10:14, 10:14] = torch.tensor([0.76, 0.54, 0.42])  # freckle: same hue, darker, more saturated
    image[40:60, 40:60] = torch.tensor([0.20, 0.15, 0.12])  # dark hair / beard
    image[40:60, 5:25] = torch.tensor([0.55, 0.55, 0.56])  # grey stubble / glasses frame
    image[5:20, 40:60] = torch.tensor([0.95, 0.85, 0.80])  # flash highlight on skin
    lab = rgb_to_lab(image)
    points = np.array([[30.5, 30.5], [20.5, 30.5], [30.5, 20.5], [35.5, 35.5], [25.5, 28.5]])
    samples = lab[points[:, 1].astype(int), points[:, 0].astype(int)]
    likelihood = skin_likelihood(lab, samples, points)
    assert float(likelihood[30, 30]) > 0.95
    assert float(likelihood[12, 12]) > 0.6  # freckle
    assert float(likelihood[12, 50]) > 0.6  # highlight
    assert float(likelihood[50, 50]) < 0.05  # dark hair
    assert float(likelihood[50, 15]) < 0.05  # grey


def test_skin_likelihood_drops_white_cloth_in_shade() -> None:
    # A face whose own chroma varies (blush, sun, the pale side): its spread is wide, and a
    # white collar in shade (as light as the skin, a little warm from the skin's reflected
    # light) came within it. The chroma floor keeps it out; the face's own tones stay in.
    image = torch.tensor([0.85, 0.66, 0.55]).expand(64, 64, 3).clone()
    tones = [(72, 14, 15), (70, 22, 20), (68, 26, 22), (74, 10, 13), (66, 24, 24), (71, 18, 17)]
    points = []
    for i, tone in enumerate(tones):
        x = 4 + 6 * i
        image[4:10, x : x + 6] = lab_to_rgb(torch.tensor([[list(map(float, tone))]]))[0, 0]
        points.append([x + 3.5, 7.5])
    image[40:60, 40:60] = lab_to_rgb(torch.tensor([[[70.0, 4.0, 7.0]]]))[0, 0]  # shaded collar
    lab = rgb_to_lab(image)
    xy = np.array(points)
    likelihood = skin_likelihood(lab, lab[xy[:, 1].astype(int), xy[:, 0].astype(int)], xy)
    assert float(likelihood[50, 50]) < 0.1
    for x, _ in points:
        assert float(likelihood[7, int(x)]) > 0.9


def test_skin_likelihood_on_a_grey_photo_keeps_the_skin() -> None:
    # No chroma anywhere: the floor fades out instead of rejecting the whole face.
    image = torch.full((32, 32, 3), 0.62)
    image[20:30, 20:30] = 0.2  # dark hair
    lab = rgb_to_lab(image)
    xy = np.array([[5.5, 5.5], [10.5, 5.5], [5.5, 10.5], [12.5, 12.5]])
    likelihood = skin_likelihood(lab, lab[xy[:, 1].astype(int), xy[:, 0].astype(int)], xy)
    assert float(likelihood[8, 8]) > 0.95
    assert float(likelihood[25, 25]) < 0.05


def test_snap_grid_follows_the_face_not_the_photo() -> None:
    # The same scene at two resolutions: a mask drawn 3 % off a colour edge moves towards
    # it, alike at both, when the filter's grid is tied to the scene (the face) size.
    def scene(size: int) -> tuple[torch.Tensor, torch.Tensor]:
        xs = (torch.arange(size, dtype=torch.float32) + 0.5) / size
        guide = torch.where(xs < 0.5, 0.3, 0.8).expand(1, 3, size, size).clone()
        source = (xs < 0.53).to(torch.float32).expand(1, 1, size, size).clone()
        return guide, source

    edges = []
    for size in (192, 96):
        guide, source = scene(size)
        snapped = guided_filter(guide, source, 2, 2e-3, coarse_size=(48, 48))[0, 0]
        row = snapped[size // 2]
        edges.append(float((row > 0.5).sum()) / size)
    # Pulled towards the colour edge, and to the same place at both resolutions (to a
    # pixel of the smaller one).
    assert all(edge < 0.525 for edge in edges)
    assert abs(edges[0] - edges[1]) <= 1 / 96 + 1e-6


def test_polygon_and_disc_areas() -> None:
    square = np.array([[10.3, 10.3], [30.3, 10.3], [30.3, 20.3], [10.3, 20.3]])
    # Anti-aliased fill: the area is right to within an eighth of a pixel along the edge.
    assert float(fill_polygons((40, 40), [square]).sum()) == pytest.approx(200, abs=0.125 * 60 + 0.5)
    mirrored = square.copy()
    mirrored[:, 0] = 40 - mirrored[:, 0]
    assert np.array_equal(fill_polygons((40, 40), [square])[:, ::-1], fill_polygons((40, 40), [mirrored]))
    circle = disc((64, 64), np.array([32.0, 32.0]), 10.0)
    assert float(circle.sum()) == pytest.approx(math.pi * 100, rel=0.02)


def test_fast_guided_filter_stays_close_to_the_full_resolution_one() -> None:
    # Coefficients fitted on a half-size grid (He & Sun 2015), applied to the full guide.
    torch.manual_seed(0)
    guide = torch.nn.functional.avg_pool2d(torch.rand(1, 3, 100, 80), 5, 1, 2)
    source = torch.nn.functional.avg_pool2d(torch.rand(1, 2, 100, 80), 5, 1, 2)
    full = guided_filter(guide, source, 4, 1e-3)
    fast = guided_filter(guide, source, 2, 1e-3, coarse_size=(50, 40))
    assert fast.shape == full.shape
    assert float((fast - full).abs().mean()) < 0.01 < float((source - full).abs().mean())


def test_region_mask_grow_feather_and_face_choice() -> None:
    item = ImageFaces(height=100, width=200)
    for x0 in (10, 120):
        masks = {name: torch.zeros(40, 40) for name in FACE_REGION_NAMES}
        masks["skin"][10:30, 10:30] = 1.0
        item.faces.append(
            Face(box=(x0 + 10.0, 20.0, 20.0, 20.0), score=1.0, crop=(x0, 10, x0 + 40, 50), masks=masks, scale=100.0)
        )
    item.faces[1].box = (130.0, 15.0, 30.0, 30.0)  # the larger face is the right one
    plain = region_mask(item, "skin")
    assert float(plain.sum()) == 800.0
    grown = region_mask(item, "skin", grow=5.0)  # 5 % of scale 100 = 5 px each side
    assert float(grown.sum()) == 2 * 30 * 30
    shrunk = region_mask(item, "skin", grow=-5.0)
    assert float(shrunk.sum()) == 2 * 10 * 10
    feathered = region_mask(item, "skin", feather=3.0)
    assert float(feathered.sum()) == pytest.approx(800.0, rel=0.02) and 0 < float(feathered[20, 18]) < 1
    largest = region_mask(item, "skin", faces="largest")
    assert float(largest[:, :100].sum()) == 0 and float(largest[:, 100:].sum()) == 400.0
    first = region_mask(item, "skin", faces="index", index=0)
    assert float(first[:, 100:].sum()) == 0 and float(first.sum()) == 400.0
    assert float(region_mask(item, "skin", faces="index", index=5).sum()) == 0


# --- options --------------------------------------------------------------------------------


def test_face_options_on_the_group_photo() -> None:
    image = portrait("group_six_t1.jpg", 1024)
    assert len(parse_faces(image, max_faces=3, refine=False, person=False).images[0].faces) == 3
    largest = parse_faces(image, faces="largest", refine=False, person=False).images[0].faces
    assert len(largest) == 1
    everyone = parsed_portrait("group_six_t1.jpg", 1024)[1].images[0].faces
    assert largest[0].area() == pytest.approx(max(f.area() for f in everyone), rel=0.05)
    assert parse_faces(image, min_face_size=400, refine=False, person=False).images[0].faces == []
    xs = [f.box[0] for f in everyone]
    assert xs == sorted(xs)  # faces are numbered left to right


def test_unknown_backend_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="backend"):
        parse_faces(astronaut(), backend="segformer")


def test_open_mouth_without_teeth_gives_no_teeth() -> None:
    """biden_2 with its teeth painted over in mouth-cavity and tongue colours: the mouth stays
    open (same landmarks), the teeth mask must vanish."""
    image, parsed = parsed_portrait("biden_2.jpg", 768)
    item = parsed.images[0]
    teeth = full_frame_mask(item, "teeth")
    assert float(teeth.sum()) > 500
    cover = (teeth > 0.05).to(torch.float32)
    cover = torch.nn.functional.max_pool2d(cover[None, None], 5, stride=1, padding=2)[0, 0]
    ys = torch.arange(image.shape[1], dtype=torch.float32)[:, None]
    rows = ys.expand_as(cover)[cover > 0]
    middle = float(rows.mean())
    cavity = torch.tensor([0.16, 0.05, 0.06])
    tongue = torch.tensor([0.62, 0.30, 0.32])
    fill = torch.where((ys > middle)[..., None], tongue, cavity)  # tongue below, dark above
    toothless = image.clone()
    toothless[0] = image[0] * (1 - cover[..., None]) + fill * cover[..., None]
    (after,) = parse_faces(toothless).images
    face = after.faces[0]
    assert face.area_fraction("mouth_interior") > 0.5 * item.faces[0].area_fraction("mouth_interior")
    assert face.area_fraction("teeth") < 3e-4
