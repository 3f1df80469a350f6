"""Upscale model loading: architecture detection from real and synthetic weights, the usual
file layouts, ComfyUI's UPSCALE_MODEL, and clear errors for bad files.

RealESRGAN_x2plus and realesr-general-x4v3 are not obtainable here, so their layouts are
tested on weights these tests make (same key names and shapes rules, small widths).
"""

from __future__ import annotations

import sys
from types import SimpleNamespace

import pytest
import torch
from helpers import SHARED_MODELS, require_shared
from safetensors.torch import save_file

from portrait_polish.core import esrgan
from portrait_polish.core.models import ModelFileError

COMPACT = "realesr-animevideov3.pth"
RRDB = "RealESRGAN_x4plus_from_ncnn.pth"


def seeded(module: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Random but reproducible weights, small enough that outputs stay in a sane range."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for param in module.parameters():
            param.copy_(torch.randn(param.shape, generator=generator) * 0.05)
    return module.eval()


def small_x2plus() -> esrgan.RRDBNet:
    return seeded(esrgan.RRDBNet(num_feat=16, num_block=2, num_grow_ch=8, num_upsample=2, unshuffle=2))


def sample(height: int = 24, width: int = 20, seed: int = 1) -> torch.Tensor:
    return torch.rand((1, 3, height, width), generator=torch.Generator().manual_seed(seed))


def test_real_compact_detected():
    model = esrgan.load_upscale_model(require_shared(SHARED_MODELS / COMPACT))
    assert (model.arch, model.scale, model.num_conv, model.num_feat) == ("SRVGGNetCompact", 4, 16, 64)
    assert isinstance(model.module, esrgan.SRVGGNetCompact)
    assert sum(p.numel() for p in model.module.parameters()) == 621_424


def test_real_rrdb_detected():
    model = esrgan.load_upscale_model(require_shared(SHARED_MODELS / RRDB))
    assert (model.arch, model.scale, model.num_block, model.num_feat, model.num_grow_ch) == ("RRDBNet", 4, 23, 64, 32)
    assert model.multiple_of == 1
    assert abs(sum(p.numel() for p in model.module.parameters()) - 16.7e6) < 0.05e6


@pytest.mark.parametrize("wrapper", ["params_ema", "params", "bare", "module_prefix"])
def test_x2plus_layouts_detected_and_loaded_exactly(tmp_path, wrapper):
    net = small_x2plus()
    sd = net.state_dict()
    data = {
        "params_ema": {"params_ema": sd},
        "params": {"params": sd},
        "bare": sd,
        "module_prefix": {f"module.{k}": v for k, v in sd.items()},
    }[wrapper]
    path = tmp_path / "RealESRGAN_x2plus.pth"
    torch.save(data, path)
    model = esrgan.load_upscale_model(path)
    assert (model.arch, model.scale, model.num_block, model.num_feat, model.num_grow_ch) == ("RRDBNet", 2, 2, 16, 8)
    assert model.multiple_of == 2  # pixel-unshuffle input needs even sizes
    x = sample()
    with torch.no_grad():
        assert torch.equal(model(x), net(x))
    assert model(x).shape == (1, 3, 48, 40)


def test_params_ema_wins_over_params(tmp_path):
    ema, raw = small_x2plus(), seeded(esrgan.RRDBNet(num_feat=16, num_block=2, num_grow_ch=8, unshuffle=2), seed=7)
    path = tmp_path / "train_state.pth"
    torch.save({"params": raw.state_dict(), "params_ema": ema.state_dict()}, path)
    x = sample()
    with torch.no_grad():
        assert torch.equal(esrgan.load_upscale_model(path)(x), ema(x))


def test_x1_unshuffle4_and_x8_variants(tmp_path):
    x1 = seeded(esrgan.RRDBNet(num_feat=8, num_block=1, num_grow_ch=4, num_upsample=2, unshuffle=4))
    x8 = seeded(esrgan.RRDBNet(num_feat=8, num_block=1, num_grow_ch=4, num_upsample=3))
    torch.save(x1.state_dict(), tmp_path / "x1.pth")
    torch.save(x8.state_dict(), tmp_path / "x8.pth")
    m1 = esrgan.load_upscale_model(tmp_path / "x1.pth")
    m8 = esrgan.load_upscale_model(tmp_path / "x8.pth")
    assert (m1.scale, m1.multiple_of, m8.scale) == (1, 4, 8)
    x = sample(16, 12)
    with torch.no_grad():
        assert m1(x).shape == (1, 3, 16, 12) and torch.equal(m1(x), x1(x))
        assert torch.equal(m8(x), x8(x))


def test_safetensors_compact_general_v3_layout(tmp_path):
    """realesr-general-x4v3's layout: 32 body convs (and PReLU), 4x."""
    net = seeded(esrgan.SRVGGNetCompact(num_feat=8, num_conv=32, upscale=4))
    path = tmp_path / "realesr-general-x4v3.safetensors"
    save_file({k: v.contiguous() for k, v in net.state_dict().items()}, str(path))
    model = esrgan.load_upscale_model(path)
    assert (model.arch, model.scale, model.num_conv, model.num_feat) == ("SRVGGNetCompact", 4, 32, 8)
    x = sample()
    with torch.no_grad():
        assert torch.equal(model(x), net(x))


def test_original_esrgan_key_layout(tmp_path):
    """Old ESRGAN files (model.0, model.1.sub.N.RDBk.convj.0, model.3/6/8/10) load as RRDBNet."""
    net = seeded(esrgan.RRDBNet(num_feat=8, num_block=2, num_grow_ch=4))
    renamed = {}
    for key, value in net.state_dict().items():
        parts = key.split(".")
        if parts[0] == "body":
            key = f"model.1.sub.{parts[1]}.RDB{parts[2][3]}.{parts[3]}.0.{parts[4]}"
        else:
            index = {"conv_first": 0, "conv_up1": 3, "conv_up2": 6, "conv_hr": 8, "conv_last": 10}.get(parts[0])
            key = f"model.1.sub.2.{parts[1]}" if parts[0] == "conv_body" else f"model.{index}.{parts[1]}"
        renamed[key] = value
    torch.save(renamed, tmp_path / "4x_old.pth")
    model = esrgan.load_upscale_model(tmp_path / "4x_old.pth")
    assert (model.arch, model.scale, model.num_block) == ("RRDBNet", 4, 2)
    x = sample()
    with torch.no_grad():
        assert torch.equal(model(x), net(x))


# --------------------------------------------------------------------------- bad files


def test_truncated_real_file_names_it(tmp_path):
    data = require_shared(SHARED_MODELS / COMPACT).read_bytes()
    path = tmp_path / "realesr-animevideov3.pth"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelFileError, match=r"realesr-animevideov3\.pth.*(corrupt|truncated)"):
        esrgan.load_upscale_model(path)


@pytest.mark.parametrize(
    ("name", "content"),
    [("garbage.pth", b"\x00not a torch file" * 50), ("empty.pth", b""), ("garbage.safetensors", b"\xff" * 64)],
)
def test_corrupt_or_empty_files_name_the_file(tmp_path, name, content):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(ModelFileError, match=name.replace(".", r"\.")):
        esrgan.load_upscale_model(path)


def test_unknown_architecture_names_the_file(tmp_path):
    path = tmp_path / "mystery_upscaler.pth"
    torch.save({"encoder.weight": torch.zeros(4, 3, 3, 3), "decoder.bias": torch.zeros(3)}, path)
    with pytest.raises(ModelFileError, match=r"mystery_upscaler\.pth.*unknown architecture"):
        esrgan.load_upscale_model(path)


def test_mismatched_weights_name_the_file(tmp_path):
    sd = small_x2plus().state_dict()
    sd["body.1.rdb2.conv3.weight"] = torch.zeros(8, 3, 3, 3)  # wrong shape for its place
    path = tmp_path / "broken_x2.pth"
    torch.save({"params_ema": sd}, path)
    with pytest.raises(ModelFileError, match=r"broken_x2\.pth.*RRDBNet"):
        esrgan.load_upscale_model(path)


def test_non_weights_pickle_is_refused(tmp_path):
    path = tmp_path / "list.pth"
    torch.save([1, 2, 3], path)
    with pytest.raises(ModelFileError, match=r"list\.pth"):
        esrgan.load_upscale_model(path)


def test_missing_file_names_it(tmp_path):
    with pytest.raises(ModelFileError, match="nowhere.pth"):
        esrgan.load_upscale_model(tmp_path / "nowhere.pth")


# --------------------------------------------------------------------------- ComfyUI's UPSCALE_MODEL


class DescriptorStandIn:
    """The interface of spandrel's ImageModelDescriptor (ComfyUI's UPSCALE_MODEL value)
    around one of our real modules: ``.model``, ``.scale``, channels, size requirements,
    ``supports_half``, callable on NCHW."""

    def __init__(self, module: torch.nn.Module, scale: int) -> None:
        self.model = module
        self.scale = scale
        self.input_channels = 3
        self.output_channels = 3
        self.supports_half = False
        self.size_requirements = SimpleNamespace(minimum=0, multiple_of=1, square=False)
        self.architecture = SimpleNamespace(id="ESRGAN", name="ESRGAN")
        self.calls = 0

    def __call__(self, image: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        return self.model(image)


def test_descriptor_is_wrapped():
    net = small_x2plus()
    stand_in = DescriptorStandIn(net, 2)
    model = esrgan.from_descriptor(stand_in)
    assert (model.scale, model.owned, model.arch) == (2, False, "ESRGAN")
    x = sample()
    with torch.no_grad():
        assert torch.equal(model(x), net(x))
    assert stand_in.calls == 1


def test_non_model_input_is_refused():
    with pytest.raises(TypeError, match="UPSCALE_MODEL"):
        esrgan.from_descriptor(SimpleNamespace(model="x", scale=4))


def test_unknown_architecture_goes_to_spandrel_when_installed(tmp_path, monkeypatch):
    """spandrel is optional (not installed here): a module with its ModelLoader interface
    that understands one more layout (our compact net under other key names) stands in."""
    net = seeded(esrgan.SRVGGNetCompact(num_feat=8, num_conv=2, upscale=2))
    path = tmp_path / "other_arch.pth"
    torch.save({f"net.{k}": v for k, v in net.state_dict().items()}, path)

    class ModelLoader:
        def load_from_state_dict(self, sd):
            module = esrgan.SRVGGNetCompact(num_feat=8, num_conv=2, upscale=2)
            module.load_state_dict({k[len("net.") :]: v for k, v in sd.items()})
            return DescriptorStandIn(module.eval(), 2)

    monkeypatch.setitem(sys.modules, "spandrel", SimpleNamespace(ModelLoader=ModelLoader))
    model = esrgan.load_upscale_model(path)
    assert (model.scale, model.owned) == (2, False)
    x = sample()
    with torch.no_grad():
        assert torch.equal(model(x), net(x))
