"""Colour maths against published reference values."""

from __future__ import annotations

import pytest
import torch

from portrait_polish.core import colour

# Sharma, Wu & Dalal (2005), "The CIEDE2000 color-difference formula: implementation notes,
# supplementary test data, and mathematical observations", Table 1 (selected pairs).
SHARMA_PAIRS = [
    ((50.0, 2.6772, -79.7751), (50.0, 0.0, -82.7485), 2.0425),
    ((50.0, 3.1571, -77.2803), (50.0, 0.0, -82.7485), 2.8615),
    ((50.0, 2.8361, -74.0200), (50.0, 0.0, -82.7485), 3.4412),
    ((50.0, 0.0, 0.0), (50.0, -1.0, 2.0), 2.3669),
    ((50.0, 2.4900, -0.0010), (50.0, -2.4900, 0.0009), 7.1792),
    ((50.0, 2.5, 0.0), (73.0, 25.0, -18.0), 27.1492),
    ((50.0, 2.5, 0.0), (61.0, -5.0, 29.0), 22.8977),
    ((60.2574, -34.0099, 36.2677), (60.4626, -34.1751, 39.4387), 1.2644),
    ((63.0109, -31.0961, -5.8663), (62.8187, -29.7946, -4.0864), 1.2630),
    ((2.0776, 0.0795, -1.1350), (0.9033, -0.0636, -0.5514), 0.9082),
]


@pytest.mark.parametrize(("lab1", "lab2", "expected"), SHARMA_PAIRS)
def test_delta_e2000_matches_sharma_reference(lab1, lab2, expected):
    result = colour.delta_e2000(torch.tensor(lab1), torch.tensor(lab2))
    assert float(result) == pytest.approx(expected, abs=1e-4)
    # symmetric
    assert float(colour.delta_e2000(torch.tensor(lab2), torch.tensor(lab1))) == pytest.approx(expected, abs=1e-4)


def test_lab_of_known_srgb_colours():
    rgb = torch.tensor([[1.0, 1.0, 1.0], [0.0, 0.0, 0.0], [1.0, 0.0, 0.0], [0.5, 0.5, 0.5]])
    lab = colour.rgb_to_lab(rgb)
    assert lab[0].tolist() == pytest.approx([100.0, 0.0, 0.0], abs=0.05)
    assert lab[1].tolist() == pytest.approx([0.0, 0.0, 0.0], abs=1e-3)
    assert lab[2].tolist() == pytest.approx([53.24, 80.09, 67.20], abs=0.05)
    assert lab[3].tolist() == pytest.approx([53.39, 0.0, 0.0], abs=0.05)


def test_lab_round_trip_is_float_exact_enough():
    torch.manual_seed(0)
    rgb = torch.rand(4096, 3)
    back = colour.lab_to_rgb(colour.rgb_to_lab(rgb))
    assert (back - rgb).abs().max() < 1e-4


def test_lch_round_trip():
    lab = torch.tensor([[50.0, 20.0, -30.0], [70.0, -5.0, 10.0]])
    assert torch.allclose(colour.lch_to_lab(colour.lab_to_lch(lab)), lab, atol=1e-4)


def test_whiteness_index_orders_white_above_yellow():
    white = colour.rgb_to_lab(torch.tensor([0.95, 0.95, 0.93]))
    yellow = colour.rgb_to_lab(torch.tensor([0.90, 0.85, 0.65]))
    assert colour.whiteness_wio(white) > colour.whiteness_wio(yellow) + 10


def test_wio_of_the_white_point_is_its_luminance_and_wid_is_the_lab_formula():
    white = colour.rgb_to_lab(torch.tensor([1.0, 1.0, 1.0]))
    assert float(colour.whiteness_wio(white)) == pytest.approx(100.0, abs=0.1)
    lab = torch.tensor([80.0, 2.0, 15.0])
    assert float(colour.whiteness_wid(lab)) == pytest.approx(0.511 * 80 - 2.324 * 2 - 1.100 * 15, abs=1e-4)
    # A less yellow tooth is whiter on both scales.
    assert colour.whiteness_wio(torch.tensor([80.0, 2.0, 10.0])) > colour.whiteness_wio(lab)
