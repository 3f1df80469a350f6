"""BiSeNet face-parsing backend: architecture, checkpoint layout and loader, on weights the
test makes (the real parsing_bisenet.pth cannot be downloaded on these machines)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from helpers import parsed_portrait

from portrait_polish.core.bisenet import (
    CELEBAMASK_LABELS,
    INPUT_SIZE,
    BiSeNet,
    aligned_face_transform,
    load_bisenet,
    parse_probabilities,
)
from portrait_polish.core.models import ModelFileError, spec_for
from portrait_polish.core.parse import parse_faces
from portrait_polish.core.regions import FACE_REGION_NAMES

# Keys and shapes of facexlib's parsing_bisenet.pth (= face-parsing.PyTorch 79999_iter.pth),
# spot-checked across every module of the network.
PUBLISHED_LAYOUT = {
    "cp.resnet.conv1.weight": (64, 3, 7, 7),
    "cp.resnet.bn1.running_var": (64,),
    "cp.resnet.layer1.0.conv1.weight": (64, 64, 3, 3),
    "cp.resnet.layer2.0.downsample.0.weight": (128, 64, 1, 1),
    "cp.resnet.layer2.0.downsample.1.running_mean": (128,),
    "cp.resnet.layer4.1.bn2.weight": (512,),
    "cp.arm16.conv.conv.weight": (128, 256, 3, 3),
    "cp.arm16.conv_atten.weight": (128, 128, 1, 1),
    "cp.arm16.bn_atten.bias": (128,),
    "cp.arm32.conv.conv.weight": (128, 512, 3, 3),
    "cp.conv_head32.conv.weight": (128, 128, 3, 3),
    "cp.conv_head16.bn.num_batches_tracked": (),
    "cp.conv_avg.conv.weight": (128, 512, 1, 1),
    "ffm.convblk.conv.weight": (256, 256, 1, 1),  # res3b1 (128) + context (128)
    "ffm.conv1.weight": (64, 256, 1, 1),
    "ffm.conv2.weight": (256, 64, 1, 1),
    "conv_out.conv.conv.weight": (256, 256, 3, 3),
    "conv_out.conv_out.weight": (19, 256, 1, 1),
    "conv_out16.conv.conv.weight": (64, 128, 3, 3),
    "conv_out16.conv_out.weight": (19, 64, 1, 1),
    "conv_out32.conv_out.weight": (19, 64, 1, 1),
}


def _random_checkpoint(path: Path, wrap: str | None = None) -> dict[str, torch.Tensor]:
    torch.manual_seed(0)
    model = BiSeNet()
    # Give BatchNorm statistics non-trivial values so loading them is actually checked.
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.uniform_(-0.1, 0.1)
            module.running_var.uniform_(0.5, 1.5)
    state = model.state_dict()
    torch.save({wrap: state} if wrap else state, path)
    return state


def test_state_dict_layout_matches_the_published_checkpoint() -> None:
    state = BiSeNet().state_dict()
    for key, shape in PUBLISHED_LAYOUT.items():
        assert key in state, key
        assert tuple(state[key].shape) == shape, key
    # 19 classes in CelebAMask-HQ order; no extra heads or renamed modules.
    assert len(CELEBAMASK_LABELS) == 19 and CELEBAMASK_LABELS[17] == "hair"
    assert not any(k.startswith(("module.", "context_path", "spatial_path")) for k in state)
    n_params = sum(v.numel() for k, v in state.items() if not k.endswith("num_batches_tracked"))
    assert 13_000_000 < n_params < 13_500_000


def test_forward_shape_and_softmax(tmp_path: Path) -> None:
    path = tmp_path / "parsing_bisenet.pth"
    _random_checkpoint(path)
    model = load_bisenet(path)
    probs = parse_probabilities(model, torch.rand(2, 3, INPUT_SIZE, INPUT_SIZE))
    assert probs.shape == (2, 19, INPUT_SIZE, INPUT_SIZE)
    assert torch.allclose(probs.sum(1), torch.ones(2, INPUT_SIZE, INPUT_SIZE), atol=1e-4)


@pytest.mark.parametrize("wrap", [None, "params", "state_dict"])
def test_loader_restores_every_tensor(tmp_path: Path, wrap: str | None) -> None:
    path = tmp_path / "parsing_bisenet.pth"
    state = _random_checkpoint(path, wrap)
    loaded = load_bisenet(path).state_dict()
    for key, value in state.items():
        assert torch.equal(loaded[key], value), key


def test_loader_rejects_wrong_and_corrupt_files(tmp_path: Path) -> None:
    truncated = tmp_path / "truncated.pth"
    _random_checkpoint(tmp_path / "good.pth")
    truncated.write_bytes((tmp_path / "good.pth").read_bytes()[:10_000])
    with pytest.raises(ModelFileError, match="truncated.pth"):
        load_bisenet(truncated)
    other = tmp_path / "other.pth"
    torch.save(torch.nn.Conv2d(3, 8, 3).state_dict(), other)
    with pytest.raises(ModelFileError, match="not a 19-class BiSeNet"):
        load_bisenet(other)
    text = tmp_path / "notes.pth"
    text.write_text("not a checkpoint")
    with pytest.raises(ModelFileError):
        load_bisenet(text)


def test_backend_runs_on_real_photo_with_test_weights(tmp_path: Path) -> None:
    path = tmp_path / "parsing_bisenet.pth"
    _random_checkpoint(path)
    image, reference = parsed_portrait("jolie_1.jpg", 512)
    regions = parse_faces(image, backend="bisenet", bisenet_model=str(path))
    assert regions.backend == "bisenet"
    (face,) = regions.images[0].faces
    assert set(face.masks) >= set(FACE_REGION_NAMES)
    for name in FACE_REGION_NAMES:
        mask = face.masks[name]
        assert mask.shape == face.grid_size and mask.dtype == torch.float32
        assert float(mask.min()) >= 0.0 and float(mask.max()) <= 1.0
    # Untrained weights give meaningless classes, but the landmark parts are the same as the
    # MediaPipe backend's: the iris never leaves the eye, the teeth never leave the mouth.
    assert torch.all(face.masks["teeth"] <= face.masks["mouth_interior"] + 1e-6)
    assert face.box == reference.images[0].faces[0].box


def test_alignment_puts_the_eyes_level_and_centred() -> None:
    _, regions = parsed_portrait("jolie_1.jpg", 512)
    lm = regions.images[0].faces[0].landmarks.numpy()
    matrix = aligned_face_transform(lm)
    eyes = (matrix[:, :2] @ lm[[468, 473]].T).T + matrix[:, 2]
    assert abs(eyes[0, 1] - eyes[1, 1]) < 0.5  # level
    assert eyes[1, 0] - eyes[0, 0] == pytest.approx(0.27 * INPUT_SIZE, rel=1e-3)
    assert 0.3 * INPUT_SIZE < eyes[:, 0].mean() < 0.7 * INPUT_SIZE


def test_missing_weights_name_the_file_and_url(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PORTRAIT_POLISH_OFFLINE", "1")
    image, _ = parsed_portrait("jolie_1.jpg", 512)
    with pytest.raises(FileNotFoundError, match="parsing_bisenet.pth") as info:
        parse_faces(image, backend="bisenet", bisenet_model="parsing_bisenet.pth")
    assert spec_for("bisenet").url in str(info.value)


def test_models_json_entry_is_honest_about_the_licence() -> None:
    spec = spec_for("bisenet")
    assert spec.filename == "parsing_bisenet.pth" and spec.folder == "face_parsing"
    assert spec.commercial_use is False and "non-commercial" in spec.license
    assert spec.size == 53_289_463 and len(spec.sha256) == 64
