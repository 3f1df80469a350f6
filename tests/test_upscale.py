"""Tiled upscaling with real Real-ESRGAN weights on real portrait crops.

The reference everywhere is a straightforward untiled run of the same weights
(``module(x)`` on the whole crop). Crops are small (RRDBNet costs ~36 MFLOP per input pixel).
"""

from __future__ import annotations

import copy
import os
import subprocess
import sys
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from helpers import REPO_ROOT, SHARED_MODELS, portrait, require_shared
from PIL import Image

from portrait_polish.core import comfy, esrgan, models, upscale

COMPACT = "realesr-animevideov3.pth"
RRDB = "RealESRGAN_x4plus_from_ncnn.pth"


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    mse = float(((a - b) ** 2).mean())
    return float("inf") if mse == 0 else 10.0 * np.log10(1.0 / mse)


@pytest.fixture(scope="module")
def compact() -> esrgan.UpscaleModel:
    return esrgan.load_upscale_model(require_shared(SHARED_MODELS / COMPACT))


@pytest.fixture(scope="module")
def crop() -> torch.Tensor:
    """A 160x160 crop of a close-up portrait: skin, stubble, eye."""
    return portrait("paul_rudd_closeup.jpg", 512)[:, 120:280, 110:270].contiguous()


def untiled(model: esrgan.UpscaleModel, image: torch.Tensor) -> torch.Tensor:
    with torch.inference_mode():
        return model.module(image.permute(0, 3, 1, 2)).clamp(0, 1).permute(0, 2, 3, 1)


def border_ratio(tiled: torch.Tensor, reference: torch.Tensor, columns: list[int]) -> float:
    """Horizontal-gradient energy of ``tiled`` on the given columns, relative to the
    reference's on the same columns (1.0 = the borders look exactly like the reference)."""
    grad_t = (tiled[0, :, 1:] - tiled[0, :, :-1]).abs()
    grad_r = (reference[0, :, 1:] - reference[0, :, :-1]).abs()
    cols = [c for c in columns if 0 <= c < grad_t.shape[1]]
    return float(grad_t[:, cols].mean() / grad_r[:, cols].mean())


def tile_borders(length: int, out_length: int, tile: int, overlap: int) -> list[int]:
    """Output columns where tiles begin or end (each side of every blend zone)."""
    tiles = upscale.plan_axis(length, out_length, tile, overlap, 0)
    cols = set()
    for t in tiles[1:]:
        cols.update({t.out_start - 1, t.out_start})
    for t in tiles[:-1]:
        cols.update({t.out_end - 1, t.out_end})
    return sorted(cols)


def test_compact_tiled_matches_untiled_without_seams(compact, crop):
    reference = untiled(compact, crop)
    stats: list[upscale.TileStats] = []
    tiled = upscale.upscale_image(crop, compact, mode="model native", tile=72, overlap=16, stats=stats)
    assert tiled.shape == (1, 640, 640, 3)
    assert stats[0].tiles == 9  # 3x3 tiles of at most 72 px
    assert psnr(tiled, reference) >= 45.0
    borders = tile_borders(160, 640, 72, 16)
    assert border_ratio(tiled, reference, borders) == pytest.approx(1.0, abs=0.02)
    # The seam measure does see seams: tiles run without overlap or context, side by side.
    naive = torch.zeros_like(reference)
    for y in range(0, 160, 64):
        for x in range(0, 160, 64):
            naive[:, 4 * y : 4 * y + 256, 4 * x : 4 * x + 256] = untiled(compact, crop[:, y : y + 64, x : x + 64])
    seams = [4 * x + d for x in (64, 128) for d in (-1, 0)]
    assert border_ratio(naive, reference, seams) > 1.05
    assert psnr(naive, reference) < psnr(tiled, reference) - 10


def test_rrdb_tiled_matches_untiled():
    model = esrgan.load_upscale_model(require_shared(SHARED_MODELS / RRDB))
    image = portrait("paul_rudd_closeup.jpg", 512)[:, 200:240, 150:250].contiguous()  # 40x100: three tiles across
    reference = untiled(model, image)
    stats: list[upscale.TileStats] = []
    tiled = upscale.upscale_image(image, model, mode="model native", tile=52, overlap=16, stats=stats)
    assert stats[0].tiles == 3
    assert psnr(tiled, reference) >= 45.0
    # (side-by-side tiles without overlap score 2.4 on this measure)
    assert border_ratio(tiled, reference, tile_borders(100, 400, 52, 16)) == pytest.approx(1.0, abs=0.05)
    # And it is an upscaler: closer to the photo's own detail than the 4x bicubic of it is
    # to itself is not measurable here, but its output must at least follow the image.
    bicubic = torch.nn.functional.interpolate(image.permute(0, 3, 1, 2), scale_factor=4, mode="bicubic")
    assert psnr(tiled, bicubic.clamp(0, 1).permute(0, 2, 3, 1)) > 28.0


def pil_lanczos(plane: np.ndarray, width: int, height: int) -> np.ndarray:
    return np.asarray(Image.fromarray(plane.astype(np.float32), mode="F").resize((width, height), Image.LANCZOS))


def test_2x_from_a_4x_model_is_the_lanczos_downscale_of_the_4x_result(compact, crop):
    reference = untiled(compact, crop)
    half = upscale.upscale_image(crop, compact, mode="factor", factor=2.0, tile=64, overlap=16)
    assert half.shape == (1, 320, 320, 3)
    expected = upscale.resize_plane(reference[0], 320, 320)[None]
    assert psnr(half, expected) >= 45.0
    # Independent check of the resampler against Pillow's Lanczos on the same 4x result.
    pil = np.stack([pil_lanczos(reference[0, ..., c].numpy(), 320, 320) for c in range(3)], axis=-1)
    assert psnr(half, torch.from_numpy(pil).clamp(0, 1)[None]) >= 40.0


def test_target_long_edge(compact, crop):
    image = crop[:, :, :120]  # 160 high, 120 wide
    out = upscale.upscale_image(image, compact, mode="long edge", long_edge=500, tile=64, overlap=16)
    assert out.shape == (1, 500, 375, 3)
    expected = upscale.resize_plane(untiled(compact, image)[0], 500, 375)[None]
    assert psnr(out, expected) >= 45.0


def test_strength_mixes_back_a_plain_enlargement(compact, crop):
    image = crop[:, :96, :96].contiguous()
    full = upscale.upscale_image(image, compact, mode="factor", factor=2.0, tile=64, overlap=16)
    plain = upscale.resize_plane(image[0], 192, 192).clamp(0, 1)[None]
    half = upscale.upscale_image(image, compact, mode="factor", factor=2.0, tile=64, overlap=16, strength=0.5)
    assert torch.allclose(half, (0.5 * full + 0.5 * plain).clamp(0, 1), atol=1e-5)
    none = upscale.upscale_image(image, compact, mode="factor", factor=2.0, strength=0.0)
    assert torch.equal(none, plain)
    # Strength 0 at the same size is the input, bit-exact (alpha included).
    rgba = torch.cat([image, torch.rand_like(image[..., :1])], dim=-1)
    assert torch.equal(upscale.upscale_image(rgba, compact, mode="factor", factor=1.0, strength=0.0), rgba)


def test_reduction_only_resamples_same_size_runs_the_model(compact, crop):
    calls = []
    model = esrgan.UpscaleModel(module=compact.module, arch="x", scale=4, call=lambda x: calls.append(x) or compact.module(x))
    out = upscale.upscale_image(crop, model, mode="long edge", long_edge=100)
    assert out.shape == (1, 100, 100, 3) and not calls
    assert torch.equal(out, upscale.resize_plane(crop[0], 100, 100).clamp(0, 1)[None])
    # The same size still runs the model (its 1x detail/denoise is a real use).
    small = crop[:, :48, :48].contiguous()
    same = upscale.upscale_image(small, model, mode="factor", factor=1.0)
    assert calls and same.shape == small.shape
    assert psnr(same, upscale.resize_plane(untiled(compact, small)[0], 48, 48).clamp(0, 1)[None]) >= 45.0


def test_alpha_is_carried_through(compact, crop):
    yy, xx = torch.meshgrid(torch.arange(160.0), torch.arange(160.0), indexing="ij")
    alpha = ((yy - 80) ** 2 + (xx - 80) ** 2 < 60**2).float() * 0.8 + 0.1
    rgba = torch.cat([crop, alpha[None, ..., None]], dim=-1)
    out = upscale.upscale_image(rgba, compact, mode="factor", factor=2.0, tile=96, overlap=16)
    rgb = upscale.upscale_image(crop, compact, mode="factor", factor=2.0, tile=96, overlap=16)
    assert out.shape == (1, 320, 320, 4)
    assert torch.equal(out[..., :3], rgb)
    expected = pil_lanczos(alpha.numpy(), 320, 320).clip(0, 1)
    assert np.abs(out[0, ..., 3].numpy() - expected).max() < 1e-3
    assert out[0, 160, 160, 3] == pytest.approx(0.9, abs=1e-4) and out[0, 2, 2, 3] == pytest.approx(0.1, abs=1e-4)


def test_batch_in_batch_out_and_deterministic(compact, crop):
    frames = torch.cat([crop[:, :64, :64], crop[:, 96:, 96:]])
    out = upscale.upscale_image(frames, compact, mode="factor", factor=1.5, tile=48, overlap=16)
    assert out.shape == (2, 96, 96, 3)
    for i in range(2):
        single = upscale.upscale_image(frames[i : i + 1], compact, mode="factor", factor=1.5, tile=48, overlap=16)
        assert torch.equal(out[i : i + 1], single)
    assert not torch.equal(out[0], out[1])
    again = upscale.upscale_image(frames, compact, mode="factor", factor=1.5, tile=48, overlap=16)
    assert torch.equal(out, again)


def test_grey_stays_grey(compact, crop):
    grey = crop.mean(dim=-1, keepdim=True)[:, :96, :96].contiguous()
    out = upscale.upscale_image(grey, compact, mode="model native", tile=64, overlap=16)
    assert out.shape == (1, 384, 384, 1)
    expected = untiled(compact, grey.expand(-1, -1, -1, 3)).mean(dim=-1, keepdim=True)
    assert psnr(out, expected) >= 45.0


def test_auto_tile_follows_free_memory(compact, crop, monkeypatch):
    image = crop[:, :120, :120].contiguous()
    reference = untiled(compact, image)
    monkeypatch.setattr(comfy, "free_memory_bytes", lambda device: 160 * 2**20)
    stats: list[upscale.TileStats] = []
    out = upscale.upscale_image(image, compact, mode="model native", tile=0, stats=stats)
    assert stats[0].tile == upscale.auto_tile_size(compact, torch.device("cpu"), torch.float32, 120, 120, stats[0].context)
    assert 64 <= stats[0].tile < 120 and stats[0].tiles == 4
    assert psnr(out, reference) >= 45.0
    monkeypatch.setattr(comfy, "free_memory_bytes", lambda device: 16 * 2**30)
    assert upscale.auto_tile_size(compact, torch.device("cpu"), torch.float32, 160, 160, 16) == 160  # one tile


def test_out_of_memory_halves_the_tile_and_retries(compact, crop):
    """The real model behind an allocator limit: inputs over 120 px raise the error CUDA gives."""

    def limited(x: torch.Tensor) -> torch.Tensor:
        if max(x.shape[-2:]) > 120:
            raise RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return compact.module(x)

    model = esrgan.UpscaleModel(module=compact.module, arch="SRVGGNetCompact", scale=4, call=limited)
    stats: list[upscale.TileStats] = []
    out = upscale.upscale_image(crop, model, mode="model native", tile=160, overlap=16, stats=stats)
    assert stats[0].retries == 1 and stats[0].tile == 80
    assert psnr(out, untiled(compact, crop)) >= 45.0


def test_float16_overflow_is_redone_in_float32():
    """A float16 model whose activations overflow (here: a bias past float16's 65504) gets
    its tiles redone by the float32 fallback, and the result is the float32 one."""
    net = esrgan.SRVGGNetCompact(num_feat=8, num_conv=1, upscale=2)
    with torch.no_grad():
        net.body[0].bias.fill_(1e5)  # finite in float32, inf in float16
    fp32 = esrgan.UpscaleModel(module=net.eval(), arch="SRVGGNetCompact", scale=2)
    fp16 = esrgan.UpscaleModel(module=copy.deepcopy(net).half(), arch="SRVGGNetCompact", scale=2)
    image = torch.rand((1, 24, 24, 3), generator=torch.Generator().manual_seed(3))
    stats: list[upscale.TileStats] = []
    out = upscale.upscale_image(image, fp16, tile=64, fallback=lambda: fp32, stats=stats)
    assert stats[0].float32_fallback
    assert torch.equal(out, upscale.upscale_image(image, fp32, tile=64))
    with pytest.raises(FloatingPointError, match="float16"):
        upscale.upscale_image(image, fp16, tile=64)


def test_progress_counts_every_tile(compact, crop, monkeypatch):
    seen = []

    class Recorder(comfy.Progress):
        def __init__(self, total: int, description: str = "") -> None:
            super().__init__(total, description)
            seen.append([total, 0])

        def update(self, steps: int = 1) -> None:
            seen[-1][1] += steps

    monkeypatch.setattr(comfy, "Progress", Recorder)
    upscale.upscale_image(crop, compact, tile=72, overlap=16)
    assert seen == [[9, 9]]


def test_huge_output_is_refused_clearly(compact, crop, monkeypatch):
    monkeypatch.setattr(comfy, "free_memory_bytes", lambda device: 2**30)
    with pytest.raises(MemoryError, match="GiB"):
        upscale.upscale_image(crop, compact, mode="long edge", long_edge=16384)


def test_bad_mode_is_refused(compact, crop):
    with pytest.raises(ValueError, match="scale mode"):
        upscale.upscale_image(crop, compact, mode="bigger")


def test_weights_form_a_partition_of_unity():
    for length, out_length, tile, overlap in [(160, 640, 64, 16), (1000, 1500, 256, 32), (97, 388, 40, 20), (300, 250, 64, 64)]:
        total = torch.zeros(out_length)
        for t in upscale.plan_axis(length, out_length, tile, overlap, 8):
            assert t.end - t.start <= tile
            total[t.out_start : t.out_end] += t.weight
        assert torch.allclose(total, torch.ones(out_length), atol=1e-6)


# --------------------------------------------------------------------------- the node


def test_node_combo_and_upscale_model_input_agree(pack, crop, monkeypatch):
    monkeypatch.setenv(models.ENV_MODELS, str(require_shared(SHARED_MODELS)))
    node_cls = pack.NODE_CLASS_MAPPINGS["PortraitPolishUpscale"]
    spec = node_cls.INPUT_TYPES()
    assert COMPACT in spec["required"]["model_name"][0]
    assert "RealESRGAN_x4plus.pth" in spec["required"]["model_name"][0]  # models.json: download on first use
    image = crop[:, :96, :96].contiguous()
    by_name = node_cls().upscale(image, COMPACT, "factor", 2.0, 4096, 1.0, 64, 16)["result"][0]
    loaded = esrgan.load_upscale_model(SHARED_MODELS / COMPACT)
    descriptor = SimpleNamespace(model=loaded.module, scale=4, input_channels=3, output_channels=3, supports_half=False)
    stand_in = type("Descriptor", (), {"__call__": lambda self, x: self.model(x)})()
    stand_in.__dict__.update(vars(descriptor))
    by_input = node_cls().upscale(image, "ignored.pth", "factor", 2.0, 4096, 1.0, 64, 16, upscale_model=stand_in)["result"][0]
    assert by_name.shape == (1, 192, 192, 3)
    assert torch.equal(by_name, by_input)


def test_node_missing_model_names_folders(pack, crop, monkeypatch, tmp_path):
    monkeypatch.setenv(models.ENV_MODELS, str(tmp_path))
    monkeypatch.setenv(models.ENV_OFFLINE, "1")
    node_cls = pack.NODE_CLASS_MAPPINGS["PortraitPolishUpscale"]
    # (the pack imported as ComfyUI does is a second copy of the module: match the base class)
    with pytest.raises(FileNotFoundError, match=r"RealESRGAN_x2plus\.pth[\s\S]*Folders searched"):
        node_cls().upscale(crop, "RealESRGAN_x2plus.pth", "factor", 2.0, 4096, 1.0, 0, 32)


@pytest.mark.slow
@pytest.mark.skipif(not os.environ.get("PORTRAIT_POLISH_SLOW"), reason="set PORTRAIT_POLISH_SLOW=1 (takes minutes)")
def test_2048_square_4x_peaks_below_6gb():
    """The issue's memory bound, in a fresh process: 2048² -> 8192² with the compact model."""
    code = (
        "import resource, torch\n"
        "from portrait_polish.core import esrgan, upscale\n"
        f"m = esrgan.load_upscale_model({str(SHARED_MODELS / COMPACT)!r})\n"
        "x = torch.rand(1, 2048, 2048, 3, generator=torch.Generator().manual_seed(0))\n"
        "y = upscale.upscale_image(x, m, mode='model native')\n"
        "assert y.shape == (1, 8192, 8192, 3)\n"
        "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO_ROOT, check=True)
    peak = int(proc.stdout.strip().splitlines()[-1])
    assert peak < 6 * 2**30, f"peak RSS {peak / 2**30:.2f} GiB"
