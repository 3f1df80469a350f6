"""BiSeNet face parsing (19 CelebAMask-HQ classes) in plain torch, no torchvision.

The network is BiSeNet v1 with a ResNet-18 context path, laid out so that the state dict
of ``parsing_bisenet.pth`` (facexlib / CodeFormer; byte-identical to zllrunning's
face-parsing.PyTorch ``79999_iter.pth``) loads with ``strict=True``: keys such as
``cp.resnet.layer1.0.conv1.weight``, ``cp.arm16.conv_atten.weight``, ``ffm.convblk.conv.weight``
and ``conv_out.conv_out.weight``. Input: a 512×512 RGB face crop normalised with the
ImageNet mean/std (how the weights were trained). Output: per-class logits; FaceParse
takes the softmax probabilities (soft masks), never an argmax.

The weights were trained on CelebAMask-HQ, whose licence allows non-commercial research
use only (see README / models.json, where ``commercial_use`` is false).
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .models import ModelFileError, cached_model

log = logging.getLogger("portrait_polish")

INPUT_SIZE = 512
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

# CelebAMask-HQ label order used by these weights.
CELEBAMASK_LABELS: tuple[str, ...] = (
    "background",
    "skin",
    "l_brow",
    "r_brow",
    "l_eye",
    "r_eye",
    "eye_g",
    "l_ear",
    "r_ear",
    "ear_r",
    "nose",
    "mouth",
    "u_lip",
    "l_lip",
    "neck",
    "neck_l",
    "cloth",
    "hair",
    "hat",
)
NUM_CLASSES = len(CELEBAMASK_LABELS)


# ---------------------------------------------------------------------------------------
# ResNet-18 backbone (the context path's feature extractor)


class BasicBlock(nn.Module):
    def __init__(self, in_ch: int, out_ch: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_ch, out_ch, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_ch)
        self.conv2 = nn.Conv2d(out_ch, out_ch, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_ch)
        self.downsample: nn.Module | None = None
        if in_ch != out_ch or stride != 1:
            self.downsample = nn.Sequential(nn.Conv2d(in_ch, out_ch, 1, stride, bias=False), nn.BatchNorm2d(out_ch))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        residual = F.relu(self.bn1(self.conv1(x)))
        residual = self.bn2(self.conv2(residual))
        shortcut = x if self.downsample is None else self.downsample(x)
        return F.relu(shortcut + residual)


def _stage(in_ch: int, out_ch: int, stride: int) -> nn.Sequential:
    return nn.Sequential(BasicBlock(in_ch, out_ch, stride), BasicBlock(out_ch, out_ch, 1))


class ResNet18(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        self.layer1 = _stage(64, 64, 1)
        self.layer2 = _stage(64, 128, 2)
        self.layer3 = _stage(128, 256, 2)
        self.layer4 = _stage(256, 512, 2)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        x = self.maxpool(F.relu(self.bn1(self.conv1(x))))
        x = self.layer1(x)
        feat8 = self.layer2(x)
        feat16 = self.layer3(feat8)
        feat32 = self.layer4(feat16)
        return feat8, feat16, feat32


# ---------------------------------------------------------------------------------------
# BiSeNet heads


class ConvBNReLU(nn.Module):
    def __init__(self, in_ch: int, out_ch: int, kernel: int = 3, stride: int = 1, padding: int = 1) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_ch, out_ch, kernel, stride, padding, bias=False)
        self.bn = nn.BatchNorm2d(out_ch)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.bn(self.conv(x)))


class BiSeNetOutput(nn.Module):
    def __init__(self, in_ch: int, mid_ch: int, num_classes: int) -> None:
        super().__init__()
        self.conv = ConvBNReLU(in_ch, mid_ch)
        self.conv_out = nn.Conv2d(mid_ch, num_classes, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv_out(self.conv(x))


class AttentionRefinement(nn.Module):
    def __init__(self, in_ch: int, out_ch: int) -> None:
        super().__init__()
        self.conv = ConvBNReLU(in_ch, out_ch)
        self.conv_atten = nn.Conv2d(out_ch, out_ch, 1, bias=False)
        self.bn_atten = nn.BatchNorm2d(out_ch)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feat = self.conv(x)
        attention = torch.sigmoid(self.bn_atten(self.conv_atten(feat.mean(dim=(2, 3), keepdim=True))))
        return feat * attention


class ContextPath(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.resnet = ResNet18()
        self.arm16 = AttentionRefinement(256, 128)
        self.arm32 = AttentionRefinement(512, 128)
        self.conv_head32 = ConvBNReLU(128, 128)
        self.conv_head16 = ConvBNReLU(128, 128)
        self.conv_avg = ConvBNReLU(512, 128, kernel=1, padding=0)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        feat8, feat16, feat32 = self.resnet(x)
        global_context = self.conv_avg(feat32.mean(dim=(2, 3), keepdim=True))
        feat32_sum = self.arm32(feat32) + global_context  # broadcast = nearest upsampling of a 1×1 map
        feat32_up = self.conv_head32(F.interpolate(feat32_sum, size=feat16.shape[2:], mode="nearest"))
        feat16_sum = self.arm16(feat16) + feat32_up
        feat16_up = self.conv_head16(F.interpolate(feat16_sum, size=feat8.shape[2:], mode="nearest"))
        return feat8, feat16_up, feat32_up


class FeatureFusion(nn.Module):
    def __init__(self, in_ch: int, out_ch: int) -> None:
        super().__init__()
        self.convblk = ConvBNReLU(in_ch, out_ch, kernel=1, padding=0)
        self.conv1 = nn.Conv2d(out_ch, out_ch // 4, 1, bias=False)
        self.conv2 = nn.Conv2d(out_ch // 4, out_ch, 1, bias=False)

    def forward(self, spatial: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        feat = self.convblk(torch.cat([spatial, context], dim=1))
        attention = torch.sigmoid(self.conv2(F.relu(self.conv1(feat.mean(dim=(2, 3), keepdim=True)))))
        return feat * attention + feat


class BiSeNet(nn.Module):
    """BiSeNet v1 for face parsing; ``forward`` returns full-resolution logits ``[B, 19, H, W]``.

    The two auxiliary heads (``conv_out16``/``conv_out32``) exist so the published weights
    load strictly; they are only used in training.
    """

    def __init__(self, num_classes: int = NUM_CLASSES) -> None:
        super().__init__()
        self.cp = ContextPath()
        self.ffm = FeatureFusion(256, 256)
        self.conv_out = BiSeNetOutput(256, 256, num_classes)
        self.conv_out16 = BiSeNetOutput(128, 64, num_classes)
        self.conv_out32 = BiSeNetOutput(128, 64, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        height, width = x.shape[2:]
        feat8, feat_cp8, _ = self.cp(x)
        # The ResNet's 1/8 feature stands in for BiSeNet's spatial path (as in the original).
        logits = self.conv_out(self.ffm(feat8, feat_cp8))
        return F.interpolate(logits, size=(height, width), mode="bilinear", align_corners=True)


# ---------------------------------------------------------------------------------------
# Loading and running


def _unwrap_state_dict(raw: object) -> dict[str, torch.Tensor]:
    if isinstance(raw, dict):
        for key in ("params_ema", "params", "state_dict", "model"):
            if key in raw and isinstance(raw[key], dict):
                raw = raw[key]
                break
    if not isinstance(raw, dict) or not all(isinstance(v, torch.Tensor) for v in raw.values()):
        raise ModelFileError("not a BiSeNet state dict (expected a dict of tensors)")
    return {(k[7:] if k.startswith("module.") else k): v for k, v in raw.items()}


def load_bisenet(path: str | Path, device: torch.device | None = None) -> BiSeNet:
    """Load face-parsing weights (facexlib ``parsing_bisenet.pth`` layout) strictly.

    Raises :class:`ModelFileError` naming the file when it is corrupt, truncated or a
    different network (missing/unexpected keys or wrong shapes).
    """
    path = Path(path)
    try:
        raw = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - torch raises many kinds for bad files
        raise ModelFileError(f"could not read BiSeNet weights {path}: {exc}") from exc
    try:
        state = _unwrap_state_dict(raw)
    except ModelFileError as exc:
        raise ModelFileError(f"{path}: {exc}") from exc
    model = BiSeNet(NUM_CLASSES)
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise ModelFileError(f"{path} is not a 19-class BiSeNet face-parsing checkpoint: {str(exc)[:400]}") from exc
    model.eval()
    if device is not None:
        model.to(device)
    return model


def cached_bisenet(path: str | Path, device: torch.device) -> BiSeNet:
    path = Path(path)
    try:
        stamp = path.stat().st_mtime_ns
    except OSError:
        stamp = 0
    return cached_model(("bisenet", str(path), stamp, str(device)), lambda: load_bisenet(path, device))


@torch.inference_mode()
def parse_probabilities(model: BiSeNet, faces_rgb: torch.Tensor) -> torch.Tensor:
    """Softmax class probabilities ``[B, 19, 512, 512]`` for RGB face crops ``[B, 3, 512, 512]`` in 0..1."""
    device = next(model.parameters()).device
    x = faces_rgb.to(device, torch.float32)
    mean = torch.tensor(IMAGENET_MEAN, device=device).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD, device=device).view(1, 3, 1, 1)
    logits = model((x - mean) / std)
    return torch.softmax(logits.float(), dim=1).cpu()


def aligned_face_transform(landmarks_xy: np.ndarray, iris_right: int = 468, iris_left: int = 473) -> np.ndarray:
    """2×3 affine matrix from image px to a 512×512 BiSeNet input: eyes level and centred
    the way CelebAMask-HQ faces are (inter-ocular ≈ 0.27 of the width, eyes at ~0.45 height)."""
    right = landmarks_xy[iris_right]
    left = landmarks_xy[iris_left]
    mouth = (landmarks_xy[61] + landmarks_xy[291]) / 2
    eye_mid = (right + left) / 2
    eye_vec = left - right
    eye_dist = float(np.hypot(*eye_vec))
    angle = np.arctan2(eye_vec[1], eye_vec[0])
    scale = INPUT_SIZE * 0.27 / max(eye_dist, 1e-6)
    cos, sin = np.cos(-angle) * scale, np.sin(-angle) * scale
    # Centre between the eyes and the mouth, a little above it.
    center = eye_mid * 0.75 + mouth * 0.25
    tx = INPUT_SIZE / 2 - (cos * center[0] - sin * center[1])
    ty = INPUT_SIZE * 0.5 - (sin * center[0] + cos * center[1])
    return np.array([[cos, -sin, tx], [sin, cos, ty]], np.float64)
