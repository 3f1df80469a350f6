"""TextureSafeSmooth on synthetic skin with known ground truth, and the node's contract.

The fixture is drawn in CIELAB: an oval of skin (L* 66, a* 14, b* 17) with a pore field
(fine noise), soft blotches (medium/coarse), a red pimple and a dark brown mole, on a
grey background. Regions are built by hand (a Face with a known scale) or from a MASK.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from helpers import load_pack_as_comfyui
from skin_metrics import band_report, lab_of, spot_contrast, spot_shift

from portrait_polish.core.bands import band_radii
from portrait_polish.core.colour import lab_to_rgb
from portrait_polish.core.regions import Face, FaceRegions, ImageFaces
from portrait_polish.core.skin import TEXTURE_MIN, SkinParams, smooth_skin_image

SIZE = 320
SCALE = 240.0  # face width in px
PIMPLE = (110, 150, 5)  # x, y, radius
MOLE = (205, 175, 4)


def _fixture(seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    yy, xx = torch.meshgrid(torch.arange(SIZE, dtype=torch.float32), torch.arange(SIZE, dtype=torch.float32), indexing="ij")
    skin = (((xx - 160) / 120) ** 2 + ((yy - 165) / 145) ** 2) <= 1.0
    lab = torch.zeros(SIZE, SIZE, 3)
    lab[..., 0], lab[..., 1], lab[..., 2] = 55.0, 0.0, 0.0  # grey background
    pores = torch.nn.functional.avg_pool2d(torch.randn(1, 1, SIZE, SIZE, generator=gen), 3, 1, 1)[0, 0] * 4.0
    blotches = torch.zeros(SIZE, SIZE)
    for _ in range(10):
        cx, cy = torch.randint(60, 260, (2,), generator=gen).tolist()
        blotches += 3.0 * torch.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / (2 * 10.0**2)) * (1 if torch.rand(1, generator=gen) > 0.5 else -1)
    skin_lab = torch.stack([66.0 + pores + blotches, 14.0 - 0.8 * blotches, 17.0 + 0.2 * pores], dim=-1)
    lab = torch.where(skin[..., None], skin_lab, lab)
    array = lab.numpy().astype(np.float64)
    from skin_metrics import paint_spot

    paint_spot(array, PIMPLE[0], PIMPLE[1], PIMPLE[2], (-4.0, 14.0, 3.0))
    paint_spot(array, MOLE[0], MOLE[1], MOLE[2], (-32.0, 4.0, 6.0))
    image = lab_to_rgb(torch.from_numpy(array).to(torch.float32)).clamp(0, 1)[None].contiguous()
    face = Face(box=(40.0, 20.0, 240.0, 290.0), score=1.0, crop=(20, 0, 300, SIZE), masks={"skin": skin[:, 20:300].to(torch.float32)}, scale=SCALE)
    regions = FaceRegions(images=[ImageFaces(height=SIZE, width=SIZE, faces=[face])])
    return image, regions, skin


def test_synthetic_skin_pores_stay_blotches_and_pimple_go_mole_stays():
    image, regions, skin = _fixture()
    out, healed = smooth_skin_image(image, regions, SkinParams())
    report = band_report(image[0], out[0], skin.numpy(), SCALE)
    assert 0.85 <= report["fine"] <= 1.05 and report["fine_corr"] >= 0.8, report
    # The coarse band (the face's shading) is evened gently: more costs dlib identity (issue 18).
    assert report["medium"] <= 0.9 and report["coarse"] <= 0.9, report
    assert report["de_mean"] <= 1.0 and report["de_p95"] <= 2.5, report
    lab_before, lab_after = lab_of(image[0]), lab_of(out[0])
    before = spot_contrast(lab_before, *PIMPLE)
    after = spot_contrast(lab_after, *PIMPLE)
    assert after <= 0.3 * before, (before, after)
    assert healed[0, PIMPLE[1], PIMPLE[0]] > 0.5
    assert spot_shift(lab_before, lab_after, *MOLE) < 1.0
    assert torch.equal(out[0][~skin], image[0][~skin]), "background untouched"


def test_radii_follow_the_face_not_the_image():
    assert band_radii(2 * SCALE).medium == pytest.approx(2 * band_radii(SCALE).medium)
    image, regions, _ = _fixture()
    small, _ = smooth_skin_image(image, regions, SkinParams())
    # The same face on a canvas four times as large gives the same pixels on the face.
    canvas = torch.full((1, 2 * SIZE, 2 * SIZE, 3), 0.3)
    canvas[:, 100 : 100 + SIZE, 200 : 200 + SIZE] = image
    face = regions.images[0].faces[0]
    x0, y0, x1, y1 = face.crop
    moved = Face(box=face.box, score=1.0, crop=(x0 + 200, y0 + 100, x1 + 200, y1 + 100), masks=face.masks, scale=face.scale)
    big, _ = smooth_skin_image(canvas, FaceRegions(images=[ImageFaces(height=2 * SIZE, width=2 * SIZE, faces=[moved])]), SkinParams())
    assert torch.allclose(big[:, 100 : 100 + SIZE, 200 : 200 + SIZE], small, atol=1e-5)


def test_texture_is_never_erased():
    image, regions, skin = _fixture()
    out, _ = smooth_skin_image(image, regions, SkinParams(texture=0.0))
    report = band_report(image[0], out[0], skin.numpy(), SCALE)
    assert SkinParams(texture=0.0).clamped_texture() == TEXTURE_MIN
    assert report["fine"] >= 0.8 and report["fine_corr"] >= 0.8, report


NODE = load_pack_as_comfyui().NODE_CLASS_MAPPINGS["PortraitPolishTextureSafeSmooth"]


def _widgets(**overrides):
    spec = NODE.INPUT_TYPES()["required"]
    values = {name: entry[1]["default"] for name, entry in spec.items() if name != "image"}
    values.update(overrides)
    return values


def test_node_needs_regions_or_a_mask():
    image, _, _ = _fixture()
    with pytest.raises(ValueError, match="FACE_REGIONS"):
        NODE().smooth(image=image, **_widgets())


def test_node_with_a_mask_only_16_bit_and_strength_zero():
    image, _, skin = _fixture()
    mask = skin.to(torch.float32)[None]
    out, healed = NODE().smooth(image=image, mask=mask, **_widgets())["result"]
    assert torch.equal(out[0][~skin], image[0][~skin])
    assert healed[0, PIMPLE[1], PIMPLE[0]] > 0.5
    image16 = (image * 65535).round().to(torch.int32)
    out16, _ = NODE().smooth(image=image16, mask=mask, **_widgets())["result"]
    assert out16.dtype == torch.float32 and out16.shape == image.shape
    zero, healed0 = NODE().smooth(image=image, mask=mask, **_widgets(strength=0.0))["result"]
    assert torch.equal(zero, image) and not healed0.any()


def test_protect_and_heal_masks():
    image, regions, skin = _fixture()
    protect = torch.zeros(1, SIZE, SIZE)
    x, y, r = PIMPLE
    protect[0, y - 3 * r : y + 3 * r, x - 3 * r : x + 3 * r] = 1.0
    out, healed = smooth_skin_image(image, regions, SkinParams(), protect=protect)
    assert healed[0, y, x] == 0
    assert torch.equal(out[0, y - 3 * r : y + 3 * r, x - 3 * r : x + 3 * r], image[0, y - 3 * r : y + 3 * r, x - 3 * r : x + 3 * r])
    force = torch.zeros(1, SIZE, SIZE)
    mx, my, mr = MOLE
    force[0, my - mr : my + mr, mx - mr : mx + mr] = 1.0
    _, healed = smooth_skin_image(image, regions, SkinParams(), force_heal=force)
    assert healed[0, my, mx] > 0.5, "a mole painted with the heal mask is healed"


def test_shine_reduction_tones_down_a_specular_patch():
    image, regions, skin = _fixture()
    lab = lab_of(image[0])
    yy, xx = np.mgrid[0:SIZE, 0:SIZE]
    patch = np.exp(-((xx - 160.0) ** 2 + (yy - 90.0) ** 2) / (2 * 9.0**2))
    lab[..., 0] += 14.0 * patch  # brighter
    lab[..., 1] *= 1.0 - 0.6 * patch  # and paler: a specular highlight
    lab[..., 2] *= 1.0 - 0.6 * patch
    shiny = lab_to_rgb(torch.from_numpy(lab).to(torch.float32)).clamp(0, 1)[None].contiguous()
    core = patch > 0.6
    ring = (patch < 0.05) & (patch > 0.005)

    def excess(rgb: torch.Tensor) -> float:
        lightness = lab_of(rgb[0])[..., 0]
        return float(lightness[core].mean() - lightness[ring].mean())

    plain, _ = smooth_skin_image(shiny, regions, SkinParams())
    matte, _ = smooth_skin_image(shiny, regions, SkinParams(shine=1.0))
    print("shine excess L*", round(excess(shiny), 2), round(excess(plain), 2), round(excess(matte), 2))
    assert excess(matte) <= 0.7 * excess(plain), (excess(shiny), excess(plain), excess(matte))
    assert torch.equal(matte[0][~skin], shiny[0][~skin])
