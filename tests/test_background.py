"""PortraitMatte, PortraitBokeh and BackgroundReplace, measured on composites with a known alpha.

The composites (tests/background_fixtures.py): real portraits cut out along their own edges
and laid over real textures, with hair-like strands of known alpha drawn out of the hair.
The numbers printed here (``pytest -s``) are the ones in the README's Background table.
"""

from __future__ import annotations

import logging
import subprocess
import sys

import pytest
import torch
import torch.nn.functional as F
from background_fixtures import alpha_errors, person_composite, texture
from helpers import REPO_ROOT

from portrait_polish.core.backdrop import BackdropSettings, cover, parse_colour, replace_frame, studio_grid
from portrait_polish.core.bokeh import BokehSettings, bokeh_frame, disc_kernel
from portrait_polish.core.colour import delta_e2000, rgb_to_lab
from portrait_polish.core.filters import gaussian_blur
from portrait_polish.core.matte import MatteSettings, matte_frame, segment_person
from portrait_polish.core.parse import parse_faces
from portrait_polish.nodes.background import BackgroundReplace, PortraitBokeh, PortraitMatte

CASES = [("biden_2.jpg", "grass"), ("biden_2.jpg", "rocket"), ("jolie_1.jpg", "grass"), ("jolie_1.jpg", "rocket")]


def _defaults(cls: type) -> dict:
    return {name: spec[1]["default"] for name, spec in cls.INPUT_TYPES()["required"].items() if name != "image"}


def _distance_from(mask: torch.Tensor) -> torch.Tensor:
    from scipy import ndimage

    return torch.from_numpy(ndimage.distance_transform_edt(~mask.numpy()).astype("float32"))


@pytest.fixture(scope="module")
def mattes():
    """(composite, raw segmentation, refined matte) per case, made once."""
    out = {}
    for name, background in CASES:
        comp = person_composite(name, background)
        item = parse_faces(comp.image[None]).images[0]
        height, width = comp.alpha.shape
        raw = F.interpolate(segment_person(comp.image)[None, None], size=(height, width), mode="bilinear", align_corners=False)[0, 0].clamp(0, 1)
        out[(name, background)] = (comp, raw, matte_frame(comp.image, MatteSettings(), item=item))
    return out


# ---------------------------------------------------------------------------------------- matte


@pytest.mark.parametrize("case", CASES, ids=[f"{n.split('.')[0]}-{b}" for n, b in CASES])
def test_matte_halves_boundary_error_against_raw_segmentation(mattes, case):
    comp, raw, matte = mattes[case]
    band = comp.band(0.02 * comp.face_scale)
    raw_sad, raw_mse = alpha_errors(raw, comp.alpha, band)
    sad, mse = alpha_errors(matte.alpha, comp.alpha, band)
    strands = comp.strands > 0.05
    raw_strand_sad, _ = alpha_errors(raw, comp.alpha, strands)
    strand_sad, _ = alpha_errors(matte.alpha, comp.alpha, strands)
    print(f"\n{case}: band {int(band.sum())} px; SAD raw {raw_sad / 1000:.2f}k -> {sad / 1000:.2f}k ({sad / raw_sad:.2f}), "
          f"MSE {raw_mse:.4f} -> {mse:.4f}; strands SAD {raw_strand_sad / 1000:.2f}k -> {strand_sad / 1000:.2f}k")
    assert sad <= 0.5 * raw_sad
    assert mse < raw_mse
    assert strand_sad <= 0.5 * raw_strand_sad


def test_matte_is_exact_inside_and_outside(mattes):
    comp, _raw, matte = mattes[CASES[0]]
    item = parse_faces(comp.image[None]).images[0]
    face = item.faces[0]
    x0, y0, x1, y1 = face.crop
    skin = torch.zeros_like(comp.alpha, dtype=torch.bool)
    skin[y0:y1, x0:x1] = face.masks["skin"] > 0.9
    assert bool((matte.alpha[skin] == 1.0).all()), "the face is opaque, exactly"
    far = _distance_from(comp.alpha > 0) > 0.15 * comp.face_scale
    assert float((matte.alpha[far] == 0.0).float().mean()) > 0.99, "the far background is exactly 0"
    opaque = matte.alpha >= 1.0
    assert torch.equal(matte.foreground[opaque], comp.image[opaque]), "foreground = the input where alpha is 1"


def test_matte_upsamples_from_the_working_copy(mattes):
    """A working copy half the size: the full-size alpha still follows the edges (its error stays
    near the full-resolution solve's), and the interior is still exactly 1."""
    comp, raw, full = mattes[CASES[2]]
    item = parse_faces(comp.image[None]).images[0]
    half = matte_frame(comp.image, MatteSettings(work_px=384), item=item)
    band = comp.band(0.02 * comp.face_scale)
    raw_sad, _ = alpha_errors(raw, comp.alpha, band)
    sad_half, _ = alpha_errors(half.alpha, comp.alpha, band)
    sad_full, _ = alpha_errors(full.alpha, comp.alpha, band)
    print(f"\nworking copy 384 px: SAD {sad_half / 1000:.2f}k (full-res solve {sad_full / 1000:.2f}k, raw {raw_sad / 1000:.2f}k)")
    assert sad_half < 0.75 * raw_sad
    assert tuple(half.alpha.shape) == tuple(comp.alpha.shape)
    assert float((half.alpha == 1).float().mean()) > 0.3


# ---------------------------------------------------------------------------------------- bokeh


def _high_pass_energy(image: torch.Tensor, where: torch.Tensor) -> float:
    grey = image.mean(-1)
    detail = grey - gaussian_blur(grey, 2.0)
    return float((detail[where] ** 2).mean())


def test_bokeh_keeps_person_and_blurs_background(mattes):
    comp, _raw, matte = mattes[CASES[1]]
    out = bokeh_frame(comp.image, matte.alpha, matte.foreground, BokehSettings())
    opaque = matte.alpha >= 1.0
    assert torch.equal(out[opaque], comp.image[opaque]), "person interior bit-exact"
    away = _distance_from(comp.alpha > 0)
    far = away > 0.2 * max(comp.alpha.shape)
    before, after = _high_pass_energy(comp.image, far), _high_pass_energy(out, far)
    drop = 1 - after / before
    # Beside the person (true alpha 0, within 4 % of the face size): a pixel is "sharp" when it is
    # nearer the old sharp background than the blur a perfect matte would have given there.
    ideal = bokeh_frame(comp.image, comp.alpha, comp.foreground, BokehSettings())
    edge_band = (away > 0) & (away <= 0.04 * comp.face_scale)
    differs = edge_band & ((comp.image - ideal).abs().amax(-1) > 0.05)
    nearer_sharp = (out - comp.image).abs().amax(-1) < (out - ideal).abs().amax(-1)
    sharp = float(nearer_sharp[differs].float().mean())
    print(f"\nbokeh: far-background high-frequency energy down {drop:.1%}; edge band: {int(differs.sum())} px where blur "
          f"shows, {sharp:.1%} of them still sharp")
    assert drop >= 0.8
    assert sharp <= 0.05


def test_bokeh_highlights_bloom_into_discs():
    height = width = 400
    frame = torch.full((height, width, 3), 0.15)
    frame[300:303, 300:303] = 1.0  # a small light, far from the "person"
    alpha = torch.zeros(height, width)
    alpha[40:160, 40:140] = 1.0
    settings = BokehSettings(blur=4.0)  # 16 px radius on this frame
    out = bokeh_frame(frame, alpha, frame, settings)
    ys, xs = torch.meshgrid(torch.arange(height) - 301.0, torch.arange(width) - 301.0, indexing="ij")
    distance = (ys**2 + xs**2).sqrt()
    radius = 16.0
    inner = out[(distance < 0.4 * radius)].mean(-1).mean()
    rim = out[(distance > 0.6 * radius) & (distance < 0.85 * radius)].mean(-1).mean()
    outside = out[(distance > 1.3 * radius) & (distance < 1.8 * radius)].mean(-1).mean()
    plain = bokeh_frame(frame, alpha, frame, BokehSettings(blur=4.0, highlights=0.0))
    plain_inner = plain[(distance < 0.4 * radius)].mean(-1).mean()
    print(f"\nbloom: disc centre {inner:.3f}, rim {rim:.3f}, outside {outside:.3f} (background 0.15); without bloom {plain_inner:.3f}")
    assert inner > 0.15 + 0.1, "the light stays visible as a disc"
    assert rim > 0.15 + 0.7 * (inner - 0.15), "flat like a disc, not a Gaussian"
    assert abs(outside - 0.15) < 0.01, "nothing beyond the disc"
    assert inner > plain_inner + 0.05, "clipped highlights bloom brighter than a plain blur"
    assert disc_kernel(3.0).sum().item() == pytest.approx(1.0)


def test_bokeh_follows_a_depth_map():
    comp = person_composite("biden_2.jpg", "grass", strands=0)
    height, width = comp.alpha.shape
    depth = torch.linspace(1.0, 0.0, width)[None, :].expand(height, width).clone()  # left near, right far
    depth[comp.alpha > 0.5] = 1.0
    out = bokeh_frame(comp.image, comp.alpha, comp.foreground, BokehSettings(), depth=depth)
    background = comp.alpha == 0
    columns = torch.arange(width)[None, :].expand(height, width)
    left, right = background & (columns < width // 5), background & (columns > 4 * width // 5)
    kept_left = _high_pass_energy(out, left) / _high_pass_energy(comp.image, left)
    kept_right = _high_pass_energy(out, right) / _high_pass_energy(comp.image, right)
    print(f"\ndepth: fine detail kept near (left) {kept_left:.2f}, far (right) {kept_right:.2f}")
    assert kept_right < 0.5 * kept_left


def test_bokeh_node_passes_frames_without_a_person_and_keeps_batches(mattes, caplog):
    comp, _raw, matte = mattes[CASES[0]]
    empty = texture("gravel", *comp.alpha.shape)
    batch = torch.stack([comp.image, empty])
    with caplog.at_level(logging.INFO, logger="portrait_polish"):
        (out,) = PortraitBokeh().blur(batch, **_defaults(PortraitBokeh))["result"]
    assert out.shape == batch.shape
    assert torch.equal(out[1], empty), "no person: passed through bit-exact"
    assert "no person found in frame 1" in caplog.text
    assert not torch.equal(out[0], comp.image)
    (alone,) = PortraitBokeh().blur(empty[None], **_defaults(PortraitBokeh))["result"]
    assert torch.equal(alone[0], empty)


# ---------------------------------------------------------------------------------------- replace


@pytest.mark.parametrize("case", [CASES[0], CASES[3]], ids=["biden_2-grass", "jolie_1-rocket"])
def test_replace_leaves_no_trace_of_the_old_background(mattes, case):
    comp, _raw, matte = mattes[case]
    target = parse_colour("#2f6db5")
    out = replace_frame(comp.image, matte.alpha, matte.foreground, BackdropSettings(kind="solid colour", colour="#2f6db5"))
    away = _distance_from(comp.alpha > 0)
    far = away > 0.15 * comp.face_scale
    band = (away > 0) & (away <= 0.02 * comp.face_scale)
    target_lab = rgb_to_lab(target.expand(int(far.sum()), 3))
    far_de = delta_e2000(rgb_to_lab(out[far]), target_lab)
    band_de = delta_e2000(rgb_to_lab(out[band]), rgb_to_lab(target.expand(int(band.sum()), 3)))
    old_de = delta_e2000(rgb_to_lab(comp.image[band]), rgb_to_lab(target.expand(int(band.sum()), 3)))
    print(f"\n{case}: far background max ΔE00 {float(far_de.max()):.3f}; band ({int(band.sum())} px) mean ΔE00 to the new "
          f"background {float(band_de.mean()):.2f} (the old background there: {float(old_de.mean()):.1f})")
    assert float(far_de.max()) <= 1.0
    assert float(band_de.mean()) <= 3.0
    opaque = matte.alpha >= 1
    assert torch.equal(out[opaque], comp.image[opaque])


def test_replace_if_no_person_and_rgba_alpha(mattes):
    comp, _raw, _matte = mattes[CASES[0]]
    empty = texture("gravel", *comp.alpha.shape)[None]
    node, widgets = BackgroundReplace(), _defaults(BackgroundReplace)
    (passed,) = node.replace(empty, **{**widgets, "if_no_person": "pass through"})["result"]
    assert torch.equal(passed, empty)
    (filled,) = node.replace(empty, **{**widgets, "background": "solid colour", "colour": "#102030", "if_no_person": "all background"})["result"]
    assert torch.allclose(filled, parse_colour("#102030").expand_as(filled))
    # An RGBA picture's alpha is the matte: the far background becomes the colour exactly,
    # the opaque person stays bit-exact.
    rgba = torch.cat([comp.image, comp.alpha[..., None]], dim=-1)[None]
    (out,) = node.replace(rgba, **{**widgets, "background": "solid colour", "colour": "#ffffff"})["result"]
    assert out.shape[-1] == 3
    assert torch.equal(out[0][comp.alpha == 0], torch.ones_like(out[0][comp.alpha == 0]))
    assert torch.equal(out[0][comp.alpha == 1], comp.image[comp.alpha == 1])
    alpha, _fg = PortraitMatte().matte(rgba, **_defaults(PortraitMatte))["result"]
    assert torch.allclose(alpha[0], comp.alpha, atol=1 / 256)


def test_studio_backdrop_and_cover():
    grey = parse_colour("#8c8f93")
    grid = studio_grid((64, 96), grey, glow=0.5, vignette=0.5, centre=(0.5, 0.4))
    lightness = rgb_to_lab(grid)[..., 0]
    assert lightness[25, 48] > lightness[0, 0] + 10, "lit behind the person, darker in the corners"
    chroma = rgb_to_lab(grid)[..., 1:].norm(dim=-1)
    assert float(chroma.max()) < 3.0, "a grey backdrop stays grey"
    flat = studio_grid((8, 8), grey, glow=0.0, vignette=0.0, centre=(0.5, 0.5))
    assert torch.allclose(flat, grey.expand_as(flat), atol=1e-3)
    assert tuple(cover(torch.rand(50, 200, 3), 120, 90).shape) == (120, 90, 3)
    for bad in ("#12", "blue-ish", "300, 0, 0"):
        with pytest.raises(ValueError, match="colour"):
            parse_colour(bad)
    assert torch.allclose(parse_colour("255, 128, 0"), torch.tensor([1.0, 128 / 255, 0.0]))


def test_light_wrap_touches_only_the_edge(mattes):
    comp, _raw, matte = mattes[CASES[0]]
    plain = replace_frame(comp.image, matte.alpha, matte.foreground, BackdropSettings(kind="solid colour", colour="#ffffff"))
    wrapped = replace_frame(comp.image, matte.alpha, matte.foreground, BackdropSettings(kind="solid colour", colour="#ffffff", light_wrap=1.0))
    inside = _distance_from(comp.alpha < 1) > 0.05 * max(comp.alpha.shape)
    assert torch.equal(wrapped[inside], plain[inside]), "deep inside the person nothing changes"
    edge = (comp.alpha > 0.5) & ~inside
    assert float((wrapped[edge] - plain[edge]).mean()) > 0.01, "the white backdrop's light brightens the edge"


def test_background_nodes_import_no_pymatting():
    """pymatting compiles numba kernels when imported: the pack must not import it at load."""
    code = (
        "import sys; sys.path.insert(0, 'tests'); from helpers import load_pack_as_comfyui; load_pack_as_comfyui(); "
        "import portrait_polish.nodes.background; print('pymatting' in sys.modules, 'numba' in sys.modules)"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, timeout=120, check=True)
    assert result.stdout.strip().splitlines()[-1] == "False False"
