"""IMAGE/MASK conventions: shapes, bit depths, alpha, and bit-exact masked blends."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from portrait_polish.core import tensors


def test_image_batch_shapes():
    assert tensors.as_image_batch(torch.rand(8, 9)).shape == (1, 8, 9, 1)
    assert tensors.as_image_batch(torch.rand(8, 9, 3)).shape == (1, 8, 9, 3)
    assert tensors.as_image_batch(torch.rand(2, 8, 9, 4)).shape == (2, 8, 9, 4)
    assert tensors.as_image_batch(torch.rand(2, 8, 9)).shape == (2, 8, 9, 1)


def test_valid_float_image_is_returned_untouched():
    image = torch.rand(1, 4, 5, 3)
    assert tensors.as_image_batch(image) is image


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        (torch.rand(1, 4, 5, 2), "channels"),
        (torch.rand(1, 0, 5, 3), "empty"),
        (torch.full((1, 2, 2, 3), float("nan")), "NaN"),
    ],
)
def test_bad_images_get_clear_errors(bad, message):
    with pytest.raises(ValueError, match=message):
        tensors.as_image_batch(bad)


def test_sixteen_bit_input_keeps_its_precision():
    values = np.array([[0, 1, 257, 65535]], dtype=np.uint16)
    image = tensors.numpy_to_image(values)
    assert image.dtype == torch.float32
    expected = values.astype(np.float64) / 65535.0
    assert np.allclose(image[0, :, :, 0].numpy(), expected, atol=1e-7)
    # 1/65535 is distinct from 0: no 8-bit quantisation happened
    assert image[0, 0, 1, 0] > 0


def test_eight_bit_input():
    image = tensors.numpy_to_image(np.array([[[0, 128, 255]]], dtype=np.uint8))
    assert image[0, 0, 0].tolist() == pytest.approx([0.0, 128 / 255, 1.0])


def test_rgba_and_grey_round_trip_through_to_rgb():
    rgba = torch.rand(2, 6, 7, 4)
    rgb, channels, alpha = tensors.to_rgb(rgba)
    assert rgb.shape == (2, 6, 7, 3) and channels == 4
    assert torch.equal(tensors.from_rgb(rgb, channels, alpha), rgba)
    grey = torch.rand(1, 6, 7, 1)
    rgb, channels, alpha = tensors.to_rgb(grey)
    assert rgb.shape == (1, 6, 7, 3) and alpha is None
    assert torch.allclose(tensors.from_rgb(rgb, channels, alpha), grey)


def test_mask_batch():
    assert tensors.as_mask_batch(torch.ones(4, 5)).shape == (1, 4, 5)
    assert tensors.as_mask_batch(torch.ones(1, 4, 5), batch=3).shape == (3, 4, 5)
    with pytest.raises(ValueError, match="frames"):
        tensors.as_mask_batch(torch.ones(2, 4, 5), batch=3)
    assert tensors.as_mask_batch(None) is None


def test_blend_masked_is_bit_exact_outside_the_mask():
    torch.manual_seed(1)
    original = torch.rand(1, 16, 16, 3)
    edited = torch.rand(1, 16, 16, 3)
    mask = torch.zeros(1, 16, 16)
    mask[:, 4:8, 4:8] = 0.5
    out = tensors.blend_masked(original, edited, mask)
    outside = mask[..., None].expand_as(out) == 0
    assert torch.equal(out[outside], original[outside])
    inside = out[0, 5, 5]
    assert torch.allclose(inside, (original[0, 5, 5] + edited[0, 5, 5]) / 2)


def test_check_same_size_message():
    with pytest.raises(ValueError, match="same size"):
        tensors.check_same_size(torch.zeros(1, 4, 5, 3), torch.zeros(1, 4, 6, 3), "original", "retouched")


def test_opencv_view_reads_a_window_in_place_and_copies_what_opencv_cannot_read():
    import cv2

    from portrait_polish.core.tensors import opencv_view

    frame = np.random.default_rng(3).random((60, 50, 3), dtype=np.float32)
    window = frame[5:40, 7:31]  # a face window: rows apart, pixels packed
    assert opencv_view(window) is window
    assert np.array_equal(cv2.resize(opencv_view(window), (12, 17), interpolation=cv2.INTER_AREA),
                          cv2.resize(np.ascontiguousarray(window), (12, 17), interpolation=cv2.INTER_AREA))
    grey = torch.rand(1, 10, 12, 1).expand(-1, -1, -1, 3)[0].numpy()  # broadcast: strides of 0
    for unreadable in (frame[:, ::-1], frame[..., :2], frame[..., 0], grey, frame.astype(np.float64)):
        copied = opencv_view(unreadable)
        assert copied.flags.c_contiguous and copied.dtype == np.float32
        assert np.array_equal(copied, unreadable.astype(np.float32))
