"""The retouch kernel on fixtures with known answers: pass-through, bit-exact outside the
weight, corrections brought to full resolution edge-aware with the photo's own texture,
full-resolution patches, held pixels, the out-of-memory fallback, reported masks."""

from __future__ import annotations

import torch

from portrait_polish.core import kernel as K
from portrait_polish.core.masks import Box, coordinate_grid
from portrait_polish.core.regions import Face, FaceRegions, ImageFaces


def _face(crop: tuple[int, int, int, int], scale: float, masks: dict[str, torch.Tensor] | None = None) -> Face:
    x0, y0, x1, y1 = crop
    return Face(box=(x0, y0, x1 - x0, y1 - y0), score=1.0, crop=crop, masks=masks or {}, scale=scale)


def _disc(height: int, width: int, cy: float, cx: float, radius: float, soft: float = 2.0) -> torch.Tensor:
    ys, xs = coordinate_grid(height, width)
    distance = torch.sqrt((ys + 0.5 - cy) ** 2 + (xs + 0.5 - cx) ** 2)
    return ((radius - distance) / soft + 0.5).clamp(0.0, 1.0)


def _textured(height: int, width: int, seed: int = 0) -> torch.Tensor:
    """A smooth gradient with pore-scale noise on it (the noise is what must survive)."""
    generator = torch.Generator().manual_seed(seed)
    ys, xs = coordinate_grid(height, width)
    base = 0.35 + 0.2 * (xs / width) + 0.1 * (ys / height)
    noise = 0.03 * torch.randn(height, width, 3, generator=generator)
    return (base[..., None] + noise).clamp(0.0, 1.0).expand(height, width, 3).contiguous()


def _offset_op(amount: float, mask_name: str = "skin"):  # noqa: ANN202 - a kernel op
    def op(window: K.FaceWindow) -> K.Correction:
        weight = window.mask(mask_name)
        return K.Correction(window.work + amount, weight, masks={"where": weight})

    return op


def test_faceless_frames_and_pixels_outside_the_weight_stay_bit_exact() -> None:
    image = torch.stack([_textured(64, 64, 0), _textured(64, 64, 1)])
    skin = torch.zeros(30, 20)
    skin[5:10, 5:10] = 1.0
    regions = FaceRegions(images=[ImageFaces(64, 64, [_face((10, 20, 30, 50), 20.0, {"skin": skin})]), ImageFaces(64, 64, [])])
    result = K.apply_per_face(image, regions, _offset_op(-0.2), name="test", collect=("where",))
    out = result.image
    assert out.shape == image.shape and out is not image
    assert torch.equal(out[1], image[1])
    changed = (out[0] != image[0]).any(-1)
    assert int(changed.sum()) == 25 and bool(changed[25:30, 15:20].all())
    assert torch.allclose(out[0, 25:30, 15:20], (image[0, 25:30, 15:20] - 0.2).clamp(0, 1))
    assert float(result.masks["where"][0].sum()) == 25.0 and float(result.masks["where"][1].sum()) == 0.0
    # No face anywhere: the very same tensor back, nothing computed.
    empty = FaceRegions(images=[ImageFaces(64, 64, []), ImageFaces(64, 64, [])])
    assert K.apply_per_face(image, empty, _offset_op(-0.2), name="test").image is image


def test_large_face_correction_keeps_the_photos_own_texture() -> None:
    # A face 1600 px wide on the scale: the working copy is a third of the crop, so the
    # edit comes back through guided upsampling; the pores (noise) must be the photo's.
    size = 384
    image = _textured(size, size)[None]
    skin = _disc(size, size, 192, 192, 120)
    face = _face((0, 0, size, size), 1600.0, {"skin": skin})
    regions = FaceRegions(images=[ImageFaces(size, size, [face])])
    out = K.apply_per_face(image, regions, _offset_op(0.1), name="test").image[0]
    window = K.FaceWindow(image[0], 0, 0, face, torch.device("cpu"))
    assert not window.exact and window.work_size == (123, 123)
    delta = (out - image[0])[..., 1]
    inner = _disc(size, size, 192, 192, 100, soft=0.01) > 0.5
    assert abs(float(delta[inner].mean()) - 0.1) < 0.005
    # The change carries no texture: its pixel-to-pixel variation is far below the photo's.
    texture = image[0, ..., 1] - torch.nn.functional.avg_pool2d(image[0, ..., 1][None, None], 5, 1, 2)[0, 0]
    change_texture = delta - torch.nn.functional.avg_pool2d(delta[None, None], 5, 1, 2)[0, 0]
    assert float(change_texture[inner].std()) < 0.1 * float(texture[inner].std())
    # Outside the (upsampled) weight: bit-exact.
    outside = skin == 0
    far = outside & (_disc(size, size, 192, 192, 130, soft=0.01) == 0)
    assert torch.equal(out[far], image[0][far])


def test_guided_upsampling_puts_the_correction_edge_on_the_photos_edge() -> None:
    # Dark left, bright right, the edge at x = 203 (not on the working grid's pixel edges).
    height, width = 96, 400
    image = torch.full((height, width, 3), 0.8)
    image[:, :203] = 0.2
    image = image[None]
    face = _face((0, 0, width, height), 1600.0, {"skin": torch.ones(height, width)})
    regions = FaceRegions(images=[ImageFaces(height, width, [face])])

    def darken_dark_side(window: K.FaceWindow) -> K.Correction:
        dark = (window.work.mean(-1, keepdim=True) < 0.5).to(window.work.dtype)
        return K.Correction(window.work - 0.1 * dark, window.mask("skin"))

    out = K.apply_per_face(image, regions, darken_dark_side, name="test").image[0]
    delta = (out - image[0])[..., 0].mean(0)
    assert float(delta[:198].max()) < -0.095  # the dark side, right up to the edge
    assert float(delta[200:203].max()) < -0.08
    assert float(delta[203:206].abs().max()) < 0.02  # the bright side just past it
    assert float(delta[210:].abs().max()) < 1e-3


def test_small_face_is_edited_exactly_and_patches_and_held_pixels() -> None:
    image = _textured(80, 80)[None]
    skin = torch.zeros(60, 60)
    skin[10:50, 10:50] = 1.0
    face = _face((10, 10, 70, 70), 100.0, {"skin": skin})
    regions = FaceRegions(images=[ImageFaces(80, 80, [face])])
    hold = torch.zeros(60, 60)
    hold[20:25, 20:25] = 1.0

    def op(window: K.FaceWindow) -> K.Correction:
        assert window.exact
        patch = K.Patch(Box(30, 30, 40, 40), lambda pixels: (torch.zeros_like(pixels), torch.ones(pixels.shape[:2])))
        return K.Correction(window.work * 0.5, window.mask("skin"), patches=[patch], hold=hold)

    out = K.apply_per_face(image, regions, op, name="test").image[0]
    crop = image[0, 10:70, 10:70]
    got = out[10:70, 10:70]
    assert torch.equal(got[12:18, 12:18], crop[12:18, 12:18] * 0.5)  # exact, no upsampling
    assert torch.equal(got[20:25, 20:25], crop[20:25, 20:25])  # held
    assert float(got[30:40, 30:40].abs().max()) == 0.0  # the patch, applied last
    assert torch.equal(out[:10], image[0, :10])


def test_a_face_that_runs_out_of_device_memory_is_redone_on_the_cpu() -> None:
    image = _textured(40, 40)[None]
    skin = torch.ones(20, 20)
    regions = FaceRegions(images=[ImageFaces(40, 40, [_face((10, 10, 30, 30), 50.0, {"skin": skin})])])
    devices: list[str] = []

    def op(window: K.FaceWindow) -> K.Correction:
        devices.append(window.device.type)
        if window.device.type != "cpu":
            raise RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return K.Correction(window.work * 0.0, window.mask("skin"))

    # "meta" stands in for a GPU: tensors move there without any memory behind them.
    out = K.apply_per_face(image, regions, op, name="test", device=torch.device("meta")).image[0]
    assert devices == ["meta", "cpu"]
    assert float(out[10:30, 10:30].abs().max()) == 0.0 and torch.equal(out[:10], image[0, :10])
