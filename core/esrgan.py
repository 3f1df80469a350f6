"""Real-ESRGAN-family super-resolution networks in plain torch, and a loader that reads them.

Two architectures, written from their published descriptions (no torchvision, no basicsr):

* **RRDBNet** (ESRGAN / Real-ESRGAN x4plus, x2plus, anime_6B, and most community ".pth"
  upscalers): residual-in-residual dense blocks, nearest-neighbour 2x upsampling stages.
  The x2plus / x1 variants feed the network a pixel-unshuffled image (2x2 or 4x4 blocks
  folded into channels), so the same 4x trunk gives a 2x or 1x result.
* **SRVGGNetCompact** (realesr-general-x4v3, realesr-animevideov3): a plain VGG-style stack
  of 3x3 convs with PReLU, a pixel shuffle, plus the nearest-upsampled input as a residual.

Everything the network needs is read from the state dict (architecture, scale, number of
blocks / convs, feature widths), in the usual layouts: ``{"params_ema": sd}``,
``{"params": sd}``, ``{"state_dict": sd}`` or bare; basicsr key names or the original ESRGAN
repository's ``model.N.sub...`` names; ``.pth`` (read with ``weights_only=True``) or
``.safetensors``. Files that are corrupt, truncated or of an unknown architecture raise
:class:`~.models.ModelFileError` naming the file.

When the optional ``spandrel`` package is importable (ComfyUI ships it), files of
architectures we do not know are handed to it; it is never required. ComfyUI's own
``UPSCALE_MODEL`` values (spandrel ``ImageModelDescriptor``) are accepted too, through
:func:`from_descriptor`.
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from .models import ModelFileError

log = logging.getLogger("portrait_polish")

__all__ = [
    "RRDBNet",
    "SRVGGNetCompact",
    "UpscaleModel",
    "load_state_dict_file",
    "unwrap_state_dict",
    "detect_architecture",
    "build_model",
    "load_upscale_model",
    "from_descriptor",
]


# --------------------------------------------------------------------------- architectures


class ResidualDenseBlock(nn.Module):
    """Five 3x3 convs, each seeing the block input and all earlier outputs (dense links);
    the result is scaled by 0.2 and added to the input (residual scaling keeps the very deep
    trunk stable)."""

    def __init__(self, num_feat: int, num_grow_ch: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(num_feat, num_grow_ch, 3, 1, 1)
        self.conv2 = nn.Conv2d(num_feat + num_grow_ch, num_grow_ch, 3, 1, 1)
        self.conv3 = nn.Conv2d(num_feat + 2 * num_grow_ch, num_grow_ch, 3, 1, 1)
        self.conv4 = nn.Conv2d(num_feat + 3 * num_grow_ch, num_grow_ch, 3, 1, 1)
        self.conv5 = nn.Conv2d(num_feat + 4 * num_grow_ch, num_feat, 3, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x1 = F.leaky_relu(self.conv1(x), 0.2)
        x2 = F.leaky_relu(self.conv2(torch.cat((x, x1), 1)), 0.2)
        x3 = F.leaky_relu(self.conv3(torch.cat((x, x1, x2), 1)), 0.2)
        x4 = F.leaky_relu(self.conv4(torch.cat((x, x1, x2, x3), 1)), 0.2)
        x5 = self.conv5(torch.cat((x, x1, x2, x3, x4), 1))
        return x5 * 0.2 + x


class RRDB(nn.Module):
    """Three dense blocks in a row, wrapped in another 0.2-scaled residual."""

    def __init__(self, num_feat: int, num_grow_ch: int) -> None:
        super().__init__()
        self.rdb1 = ResidualDenseBlock(num_feat, num_grow_ch)
        self.rdb2 = ResidualDenseBlock(num_feat, num_grow_ch)
        self.rdb3 = ResidualDenseBlock(num_feat, num_grow_ch)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.rdb3(self.rdb2(self.rdb1(x))) * 0.2 + x


class RRDBNet(nn.Module):
    """ESRGAN's generator with basicsr's parameter names.

    ``unshuffle`` is 1 for the classic 4x net (``num_upsample`` = 2), 2 for x2plus and 4 for
    x1 models: the input is pixel-unshuffled by that factor first (so ``conv_first`` sees
    ``num_in_ch * unshuffle²`` channels) and the trunk's ``2**num_upsample`` growth is
    divided by it. The image must then be a multiple of ``unshuffle`` in both dimensions.
    """

    def __init__(
        self,
        num_in_ch: int = 3,
        num_out_ch: int = 3,
        num_feat: int = 64,
        num_block: int = 23,
        num_grow_ch: int = 32,
        num_upsample: int = 2,
        unshuffle: int = 1,
    ) -> None:
        super().__init__()
        self.num_in_ch = num_in_ch
        self.num_out_ch = num_out_ch
        self.unshuffle = unshuffle
        self.num_upsample = num_upsample
        self.scale = 2**num_upsample // unshuffle
        self.conv_first = nn.Conv2d(num_in_ch * unshuffle * unshuffle, num_feat, 3, 1, 1)
        self.body = nn.Sequential(*(RRDB(num_feat, num_grow_ch) for _ in range(num_block)))
        self.conv_body = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        for index in range(1, num_upsample + 1):
            self.add_module(f"conv_up{index}", nn.Conv2d(num_feat, num_feat, 3, 1, 1))
        self.conv_hr = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        self.conv_last = nn.Conv2d(num_feat, num_out_ch, 3, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.unshuffle > 1:
            x = F.pixel_unshuffle(x, self.unshuffle)
        feat = self.conv_first(x)
        feat = feat + self.conv_body(self.body(feat))
        for index in range(1, self.num_upsample + 1):
            conv = getattr(self, f"conv_up{index}")
            feat = F.leaky_relu(conv(F.interpolate(feat, scale_factor=2, mode="nearest")), 0.2)
        return self.conv_last(F.leaky_relu(self.conv_hr(feat), 0.2))


class SRVGGNetCompact(nn.Module):
    """Real-ESRGAN's compact net: conv, then ``num_conv`` × (conv + activation), a last conv
    to ``num_out_ch · upscale²`` channels, pixel shuffle, plus the nearest-upsampled input.

    Layer ``body.{2k}`` is a conv and ``body.{2k+1}`` its activation (basicsr's layout).
    """

    def __init__(
        self,
        num_in_ch: int = 3,
        num_out_ch: int = 3,
        num_feat: int = 64,
        num_conv: int = 16,
        upscale: int = 4,
        act_type: str = "prelu",
    ) -> None:
        super().__init__()
        self.num_in_ch = num_in_ch
        self.num_out_ch = num_out_ch
        self.upscale = upscale
        self.scale = upscale

        def activation() -> nn.Module:
            if act_type == "prelu":
                return nn.PReLU(num_parameters=num_feat)
            if act_type == "relu":
                return nn.ReLU(inplace=True)
            return nn.LeakyReLU(negative_slope=0.1, inplace=True)

        layers: list[nn.Module] = [nn.Conv2d(num_in_ch, num_feat, 3, 1, 1), activation()]
        for _ in range(num_conv):
            layers += [nn.Conv2d(num_feat, num_feat, 3, 1, 1), activation()]
        layers.append(nn.Conv2d(num_feat, num_out_ch * upscale * upscale, 3, 1, 1))
        self.body = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.pixel_shuffle(self.body(x), self.upscale)
        base = F.interpolate(x, scale_factor=self.upscale, mode="nearest")
        if base.shape[1] != out.shape[1]:  # grey-in colour-out (or the reverse) models
            base = base.mean(dim=1, keepdim=True).expand_as(out)
        return out + base


# --------------------------------------------------------------------------- the wrapper


@dataclass
class UpscaleModel:
    """A ready-to-run upscaler: ``model(x)`` maps NCHW 0..1 to NCHW at ``scale``×.

    ``multiple_of`` / ``minimum``: input size constraints (pixel-unshuffle models need even
    sizes; spandrel declares its own). ``supports_half``: safe to run in float16 on a GPU.
    ``owned``: we built the module (so we may cast and move it freely); ComfyUI's
    descriptors belong to the graph and are moved back to the CPU after use, like core does.
    """

    module: nn.Module
    arch: str
    scale: int
    in_channels: int = 3
    out_channels: int = 3
    num_feat: int = 64
    num_block: int = 0
    num_conv: int = 0
    num_grow_ch: int = 0
    multiple_of: int = 1
    minimum: int = 1
    supports_half: bool = True
    owned: bool = True
    name: str = ""
    call: Callable[[torch.Tensor], torch.Tensor] | None = field(default=None, repr=False)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return self.call(x) if self.call is not None else self.module(x)

    @property
    def parameter_dtype(self) -> torch.dtype:
        for param in self.module.parameters():
            return param.dtype
        return torch.float32

    @property
    def device(self) -> torch.device:
        for param in self.module.parameters():
            return param.device
        return torch.device("cpu")

    def describe(self) -> str:
        parts = [f"{self.arch} {self.scale}x"]
        if self.num_block:
            parts.append(f"{self.num_block} blocks")
        if self.num_conv:
            parts.append(f"{self.num_conv} convs")
        parts.append(f"{self.num_feat} features")
        return ", ".join(parts)

    def bytes_per_input_pixel(self, dtype: torch.dtype) -> float:
        """Rough peak activation memory per input pixel (for choosing a tile size).

        Counted in feature maps alive at once: RRDBNet's dense blocks hold the block input
        plus four growth maps plus their concatenations at input resolution, then 64-channel
        maps at 2x, 4x (in and out of each conv); the compact net holds two 64-channel maps,
        the pre-shuffle map and the output at scale². Real peaks measured on CPU are within
        these (the allocator adds slack, hence the factor 1.5).
        """
        element = torch.finfo(dtype).bits // 8
        s2 = self.scale * self.scale
        if self.arch == "RRDBNet":
            unshuffle = int(getattr(self.module, "unshuffle", 1))
            trunk = (3 * self.num_feat + 10 * self.num_grow_ch) / (unshuffle * unshuffle)
            channels = max(trunk, 3 * self.num_feat * s2)
        elif self.arch == "SRVGGNetCompact":
            channels = 3 * self.num_feat + 3 * self.out_channels * s2
        else:  # a spandrel architecture we know nothing about: assume RRDB-like
            channels = 3 * 64 * s2
        return 1.5 * element * channels



# --------------------------------------------------------------------------- reading files


def load_state_dict_file(path: str | Path) -> dict[str, Any]:
    """Read a ``.pth``/``.pt``/``.ckpt``/``.bin`` (pickled, ``weights_only=True``) or a
    ``.safetensors`` file into a dict; any failure becomes a ModelFileError naming it."""
    path = Path(path)
    if not path.is_file():
        raise ModelFileError(f"upscale model file {str(path)!r} does not exist")
    size = path.stat().st_size
    if size == 0:
        raise ModelFileError(f"upscale model file {str(path)!r} is empty (0 bytes): download it again")
    try:
        if path.suffix.lower() == ".safetensors":
            from safetensors.torch import load_file

            data: Any = load_file(str(path), device="cpu")
        else:
            data = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - every reader error means "this file is bad"
        raise ModelFileError(
            f"upscale model file {str(path)!r} ({size:,} bytes) could not be read: it is corrupt, truncated, "
            f"or not a PyTorch/safetensors weights file ({type(exc).__name__}: {exc}). Download it again."
        ) from exc
    if not isinstance(data, Mapping):
        raise ModelFileError(
            f"upscale model file {str(path)!r} holds a {type(data).__name__}, not a state dict of weights"
        )
    return dict(data)


def unwrap_state_dict(data: Mapping[str, Any]) -> dict[str, torch.Tensor]:
    """Find the weights inside the usual checkpoint wrappers and strip ``module.`` prefixes.

    ``params_ema`` wins over ``params`` (basicsr saves both in training checkpoints and the
    EMA weights are the ones published).
    """
    for key in ("params_ema", "params", "state_dict", "model_state_dict", "generator", "netG"):
        inner = data.get(key)
        if isinstance(inner, Mapping) and inner and all(isinstance(v, torch.Tensor) for v in inner.values()):
            data = inner
            break
    tensors = {k: v for k, v in data.items() if isinstance(v, torch.Tensor)}
    if tensors and all(k.startswith("module.") for k in tensors):
        tensors = {k[len("module.") :]: v for k, v in tensors.items()}
    return tensors


_OLD_RDB = re.compile(r"^model\.1\.sub\.(\d+)\.RDB(\d)\.conv(\d)\.0\.(weight|bias)$")


def _convert_original_esrgan(sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Rename the original ESRGAN repository's keys (``model.0``, ``model.1.sub.N.RDBk``…)
    to basicsr's. The upsampling convs sit at ``model.3, model.6, …``; the last two convs
    of the sequence are ``conv_hr`` and ``conv_last``."""
    converted: dict[str, torch.Tensor] = {}
    sub_indices = sorted({int(m.group(1)) for k in sd if (m := _OLD_RDB.match(k))})
    trunk_conv = max(sub_indices) + 1 if sub_indices else 0
    tail = sorted(
        {int(k.split(".")[1]) for k in sd if k.startswith("model.") and k.split(".")[1].isdigit() and int(k.split(".")[1]) >= 2}
    )
    if len(tail) < 3:
        raise KeyError("original ESRGAN layout without upsampling convs")
    names = {tail[-1]: "conv_last", tail[-2]: "conv_hr"}
    for position, index in enumerate(tail[:-2], start=1):
        names[index] = f"conv_up{position}"
    for key, value in sd.items():
        match = _OLD_RDB.match(key)
        if match:
            block, rdb, conv, kind = match.groups()
            converted[f"body.{block}.rdb{rdb}.conv{conv}.{kind}"] = value
            continue
        parts = key.split(".")
        if key.startswith("model.0."):
            converted[f"conv_first.{parts[-1]}"] = value
        elif key.startswith(f"model.1.sub.{trunk_conv}."):
            converted[f"conv_body.{parts[-1]}"] = value
        elif parts[0] == "model" and parts[1].isdigit() and int(parts[1]) in names:
            converted[f"{names[int(parts[1])]}.{parts[-1]}"] = value
        else:
            raise KeyError(f"unexpected key {key!r} in an original-ESRGAN layout")
    return converted


@dataclass(frozen=True)
class ArchInfo:
    """What :func:`detect_architecture` read from a state dict."""

    arch: str  # "RRDBNet" or "SRVGGNetCompact"
    scale: int
    in_channels: int
    out_channels: int
    num_feat: int
    num_block: int = 0
    num_grow_ch: int = 0
    num_upsample: int = 0
    unshuffle: int = 1
    num_conv: int = 0
    act_type: str = "prelu"


def _isqrt_exact(value: int) -> int | None:
    root = math.isqrt(value)
    return root if root * root == value else None


def detect_architecture(sd: Mapping[str, torch.Tensor]) -> ArchInfo:
    """Read architecture and hyper-parameters from basicsr-named weights.

    Raises KeyError/ValueError when the keys match neither architecture (the caller turns
    that into a ModelFileError naming the file).
    """
    if "conv_first.weight" in sd and "body.0.rdb1.conv1.weight" in sd:
        first = sd["conv_first.weight"]
        last = sd["conv_last.weight"]
        num_feat, in_folded = int(first.shape[0]), int(first.shape[1])
        out_channels = int(last.shape[0])
        num_block = len({k.split(".")[1] for k in sd if k.startswith("body.") and ".rdb1.conv1.weight" in k})
        num_grow_ch = int(sd["body.0.rdb1.conv1.weight"].shape[0])
        num_upsample = len([k for k in sd if re.fullmatch(r"conv_up\d+\.weight", k)])
        # conv_first sees in_channels·unshuffle² channels; the image has as many channels as
        # the output in every published model (3, or 1 for grey models).
        ratio, remainder = divmod(in_folded, out_channels)
        unshuffle = _isqrt_exact(ratio) if remainder == 0 else None
        if unshuffle is None or unshuffle not in (1, 2, 4) or num_upsample == 0:
            raise ValueError(
                f"RRDBNet with conv_first taking {in_folded} channels, {out_channels} output channels and "
                f"{num_upsample} upsampling convs is not a layout we know"
            )
        scale_num = 2**num_upsample
        if scale_num % unshuffle:
            raise ValueError(f"RRDBNet unshuffle {unshuffle} does not divide its {scale_num}x trunk")
        return ArchInfo(
            arch="RRDBNet",
            scale=scale_num // unshuffle,
            in_channels=in_folded // (unshuffle * unshuffle),
            out_channels=out_channels,
            num_feat=num_feat,
            num_block=num_block,
            num_grow_ch=num_grow_ch,
            num_upsample=num_upsample,
            unshuffle=unshuffle,
        )
    if "body.0.weight" in sd and "conv_first.weight" not in sd and sd["body.0.weight"].ndim == 4:
        conv_indices = sorted(int(k.split(".")[1]) for k in sd if re.fullmatch(r"body\.\d+\.weight", k) and sd[k].ndim == 4)
        last_index = conv_indices[-1]
        if conv_indices != list(range(0, last_index + 1, 2)) or last_index < 2:
            raise ValueError("body.N convs are not at even positions 0, 2, 4, …: not an SRVGGNetCompact")
        first = sd["body.0.weight"]
        last = sd[f"body.{last_index}.weight"]
        num_feat, in_channels = int(first.shape[0]), int(first.shape[1])
        out_total = int(last.shape[0])
        act_type = "prelu" if "body.1.weight" in sd else "leakyrelu"
        for out_channels in (in_channels, 3, 1):
            if out_total % out_channels == 0 and (scale := _isqrt_exact(out_total // out_channels)):
                return ArchInfo(
                    arch="SRVGGNetCompact",
                    scale=scale,
                    in_channels=in_channels,
                    out_channels=out_channels,
                    num_feat=num_feat,
                    num_conv=(last_index - 2) // 2,
                    act_type=act_type,
                )
        raise ValueError(f"SRVGGNetCompact last conv has {out_total} channels: not channels × scale²")
    raise KeyError("neither RRDBNet (conv_first, body.N.rdbK) nor SRVGGNetCompact (body.N) keys")


def build_model(info: ArchInfo) -> nn.Module:
    if info.arch == "RRDBNet":
        return RRDBNet(
            num_in_ch=info.in_channels,
            num_out_ch=info.out_channels,
            num_feat=info.num_feat,
            num_block=info.num_block,
            num_grow_ch=info.num_grow_ch,
            num_upsample=info.num_upsample,
            unshuffle=info.unshuffle,
        )
    return SRVGGNetCompact(
        num_in_ch=info.in_channels,
        num_out_ch=info.out_channels,
        num_feat=info.num_feat,
        num_conv=info.num_conv,
        upscale=info.scale,
        act_type=info.act_type,
    )


def _spandrel_descriptor(sd: dict[str, torch.Tensor]) -> Any | None:
    """Let spandrel load an architecture we do not know (None when spandrel is absent)."""
    try:
        import spandrel  # type: ignore[import-not-found]
    except ImportError:
        return None
    return spandrel.ModelLoader().load_from_state_dict(sd)


def model_from_state_dict(sd: dict[str, torch.Tensor], name: str) -> UpscaleModel:
    """Build and load an UpscaleModel from (already unwrapped) weights; ``name`` is for errors."""
    if not sd:
        raise ModelFileError(f"upscale model file {name!r} contains no weight tensors")
    if "model.0.weight" in sd and any(_OLD_RDB.match(k) for k in sd):
        try:
            sd = _convert_original_esrgan(sd)
        except KeyError as exc:
            raise ModelFileError(f"upscale model file {name!r}: {exc}") from exc
    try:
        info = detect_architecture(sd)
    except (KeyError, ValueError) as exc:
        descriptor = None
        spandrel_error: Exception | None = None
        try:
            descriptor = _spandrel_descriptor(sd)
        except Exception as sp_exc:  # noqa: BLE001 - spandrel's "unsupported model" errors vary
            spandrel_error = sp_exc
        if descriptor is not None:
            log.info("Upscale: %s is not RRDBNet/SRVGGNetCompact; loaded by spandrel as %s", name, type(descriptor.model).__name__)
            return from_descriptor(descriptor, name=name)
        sample = ", ".join(sorted(sd)[:6])
        extra = f"; spandrel could not load it either ({spandrel_error})" if spandrel_error else (
            "; install spandrel (ComfyUI ships it) to load more architectures"
        )
        raise ModelFileError(
            f"upscale model file {name!r} is of an unknown architecture ({exc}). "
            f"Supported: RRDBNet (ESRGAN, Real-ESRGAN x4plus/x2plus) and SRVGGNetCompact "
            f"(realesr-general-x4v3, realesr-animevideov3){extra}. First keys: {sample}"
        ) from exc
    module = build_model(info)
    try:
        module.load_state_dict({k: v.to(torch.float32) for k, v in sd.items()}, strict=True)
    except RuntimeError as exc:
        raise ModelFileError(
            f"upscale model file {name!r} looks like {info.arch} but its weights do not fit: {exc}"
        ) from exc
    module.eval().requires_grad_(False)
    return UpscaleModel(
        module=module,
        arch=info.arch,
        scale=info.scale,
        in_channels=info.in_channels,
        out_channels=info.out_channels,
        num_feat=info.num_feat,
        num_block=info.num_block,
        num_conv=info.num_conv,
        num_grow_ch=info.num_grow_ch,
        multiple_of=info.unshuffle,
        minimum=info.unshuffle,
        supports_half=True,
        owned=True,
        name=name,
    )


def load_upscale_model(path: str | Path) -> UpscaleModel:
    """Load an upscaler from a file (float32, on the CPU, in eval mode)."""
    path = Path(path)
    data = load_state_dict_file(path)
    model = model_from_state_dict(unwrap_state_dict(data), str(path))
    log.info("Upscale: loaded %s (%s)", path.name, model.describe())
    return model


def from_descriptor(descriptor: Any, name: str = "") -> UpscaleModel:
    """Wrap ComfyUI's UPSCALE_MODEL (a spandrel ImageModelDescriptor: ``.model``, ``.scale``,
    callable on NCHW 0..1) as an UpscaleModel. An UpscaleModel passes through unchanged."""
    if isinstance(descriptor, UpscaleModel):
        return descriptor
    module = getattr(descriptor, "model", None)
    scale = getattr(descriptor, "scale", None)
    if not isinstance(module, nn.Module) or not isinstance(scale, int) or scale < 1 or not callable(descriptor):
        raise TypeError(
            "upscale_model must be ComfyUI's UPSCALE_MODEL (from Load Upscale Model): an object with a torch "
            f"module in .model, an integer .scale and a call on NCHW images; got {type(descriptor).__name__}"
        )
    requirements = getattr(descriptor, "size_requirements", None)
    multiple_of = int(getattr(requirements, "multiple_of", 1) or 1)
    minimum = int(getattr(requirements, "minimum", 1) or 1)
    arch_obj = getattr(descriptor, "architecture", None)
    arch = str(getattr(arch_obj, "name", None) or getattr(arch_obj, "id", None) or type(module).__name__)
    return UpscaleModel(
        module=module,
        arch=arch,
        scale=scale,
        in_channels=int(getattr(descriptor, "input_channels", 3) or 3),
        out_channels=int(getattr(descriptor, "output_channels", 3) or 3),
        num_feat=int(getattr(module, "num_feat", 64) or 64),
        multiple_of=max(1, multiple_of),
        minimum=max(1, minimum),
        supports_half=bool(getattr(descriptor, "supports_half", False)),
        owned=False,
        name=name or arch,
        call=descriptor,
    )
