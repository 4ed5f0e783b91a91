"""Puzzle loss (STC-Seg Eq. 4-6), projection and pairwise losses (BoxInst), flow-aware label identity (Ikeda & Mori)."""

from __future__ import annotations

import math

import pytest
import torch

from wsvis.losses import (
    boundary_term,
    box_term,
    color_similarity,
    dice_with_position_penalty,
    flow_similarity,
    neighbour_differences,
    pairwise_label_identity,
    pairwise_loss,
    projection_loss,
    puzzle_loss,
)


def test_position_penalty_zero_inside_and_hand_computed_outside():
    g = torch.tensor([[0.0, 1.0, 1.0, 0.0]])
    inside_a = torch.tensor([[0.0, 0.5, 0.9, 0.0]])
    inside_b = torch.tensor([[0.0, 0.2, 0.3, 0.0]])
    for p in (inside_a, inside_b):  # mass inside the box: no penalty
        assert torch.allclose(dice_with_position_penalty(p, g, True), dice_with_position_penalty(p, g, False))
    # Mass outside: p = [0.5, 1, 1, 0]: dice = 1 - 2*2/(2.25 + 2) ; penalty = 0.25 / 2
    p = torch.tensor([[0.5, 1.0, 1.0, 0.0]])
    dice = 1 - 4 / 4.25
    assert math.isclose(float(dice_with_position_penalty(p, g, False)), dice, rel_tol=1e-5)
    assert math.isclose(float(dice_with_position_penalty(p, g, True)), dice + 0.125, rel_tol=1e-5)
    more = torch.tensor([[1.0, 1.0, 1.0, 1.0]])  # penalty 2 / 2 = 1
    assert math.isclose(float(dice_with_position_penalty(more, g, True) - dice_with_position_penalty(more, g, False)),
                        1.0, rel_tol=1e-5)


def test_box_term_on_projections():
    box = torch.zeros(1, 4, 4)
    box[0, 1:3, 1:3] = 1
    assert float(box_term(box, box)) < 1e-4  # a mask filling its box
    spill = box.clone()
    spill[0, 1, 3] = 1.0  # one pixel right of the box: x-projection [0,1,1,1] vs [0,1,1,0]
    expected = (1 - 4 / 5) + 1 / 2  # dice + penalty of the x projection; y projection is exact
    assert math.isclose(float(box_term(spill, box)), expected, rel_tol=1e-4)


def test_projection_loss_zero_for_mask_filling_its_box():
    box = torch.zeros(2, 8, 8)
    box[0, 2:6, 1:7] = 1
    box[1, 0:3, 0:8] = 1
    assert float(projection_loss(box, box)) < 1e-6
    assert float(projection_loss(box * 0.5, box)) > 0.1


def test_boundary_term_positive_only():
    logits = torch.tensor([[[2.0, -3.0], [0.0, 5.0]]])
    m = torch.tensor([[[1.0, 0.0], [1.0, 0.0]]])
    # -(1/4) [log sigmoid(2) + log sigmoid(0)]; the m = 0 pixels do not count
    expected = -(math.log(1 / (1 + math.exp(-2))) + math.log(0.5)) / 4
    assert math.isclose(float(boundary_term(logits, m, "bd")), expected, rel_tol=1e-5)
    assert float(boundary_term(logits, m, "bce")) > expected
    assert float(boundary_term(logits, m, "none")) == 0.0
    out = puzzle_loss(logits, m, torch.ones_like(m))
    assert set(out) == {"loss_boundary", "loss_box"}


def test_boundary_term_dice_weighs_instances_equally():
    logits = torch.tensor([[[2.0, -3.0], [0.0, 5.0]]])
    m = torch.tensor([[[1.0, 0.0], [1.0, 0.0]]])
    p = [1 / (1 + math.exp(-x)) for x in (2.0, -3.0, 0.0, 5.0)]
    # 1 - 2 (p00 + p10) / (Σ p² + Σ m²), by hand
    expected = 1 - 2 * (p[0] + p[2]) / (sum(x * x for x in p) + 2)
    assert math.isclose(float(boundary_term(logits, m, "dice")), expected, rel_tol=1e-5)
    # A one-pixel error costs a 4-pixel object's mask as much on a 16x16 map as on a 2x2 map
    # under dice; under BCE (a mean over the map) 16x16 / (2x2) = 64 times less.
    big = torch.full((1, 16, 16), -20.0)
    big[0, :2, :2] = torch.tensor([[20.0, 20.0], [20.0, -20.0]])
    g = torch.zeros(1, 16, 16)
    g[0, :2, :2] = 1.0
    small = torch.tensor([[[20.0, 20.0], [20.0, -20.0]]])
    assert math.isclose(float(boundary_term(big, g, "dice")), float(boundary_term(small, torch.ones(1, 2, 2), "dice")),
                        rel_tol=1e-5)
    assert math.isclose(float(boundary_term(small, torch.ones(1, 2, 2), "bce")) / float(boundary_term(big, g, "bce")),
                        64.0, rel_tol=1e-3)
    with pytest.raises(ValueError, match="dice"):
        boundary_term(logits, m, "focal")


def test_neighbour_differences_dilated():
    x = torch.arange(25.0).view(1, 1, 5, 5)
    d = neighbour_differences(x, 3, 2)
    assert d.shape == (1, 1, 8, 5, 5)
    # centre (2, 2) = 12; neighbours at (0,0)=0, (0,2)=2, ..., (4,4)=24
    assert d[0, 0, :, 2, 2].tolist() == [12.0, 10.0, 8.0, 2.0, -2.0, -8.0, -10.0, -12.0]


def test_flow_aware_label_identity_needs_both_similarities():
    # Four hand-built pixel pairs (one neighbour each): (colour diff, flow-colour diff)
    # a: same colour, same flow -> 1; b: same colour, flow differs -> 0;
    # c: colour differs, same flow -> 0; d: both differ -> 0.
    s_color = torch.exp(-torch.tensor([0.0, 0.0, 10.0, 10.0]) / 2.0).view(1, 4, 1, 1)  # 1, 1, 0.0067, 0.0067
    s_flow = torch.exp(-torch.tensor([0.0, 0.5, 0.0, 0.5]) / 0.5).view(1, 4, 1, 1)  # 1, 0.37, 1, 0.37
    y = pairwise_label_identity(s_color, s_flow, tau_color=0.3, tau_flow=0.6)
    assert y.flatten().tolist() == [True, False, False, False]
    assert pairwise_label_identity(s_color, None).flatten().tolist() == [True, True, False, False]  # BoxInst
    # the similarity functions on images: a flat flow image is similar everywhere
    assert torch.allclose(flow_similarity(torch.full((1, 3, 5, 5), 0.4))[..., 2, 2], torch.ones(1, 8))
    lab = torch.zeros(1, 3, 5, 5)
    lab[:, 0, :, 3:] = 50.0
    assert color_similarity(lab)[0, :, 2, 2].min() < 0.3


def test_pairwise_loss_low_for_consistent_masks():
    box = torch.ones(1, 6, 6)
    ident = torch.ones(1, 8, 6, 6, dtype=torch.bool)
    flat = pairwise_loss(torch.full((1, 6, 6), 8.0), ident, box)
    mixed = pairwise_loss(torch.tensor([[8.0, 8.0, -8.0, -8.0, 8.0, 8.0]] * 6)[None], ident, box)  # period 4 vs dilation 2
    assert float(flat) < 1e-3 and float(mixed) > 1.0
    logits = torch.zeros(1, 6, 6, requires_grad=True)
    pairwise_loss(logits, ident, box).backward()
    assert logits.grad is not None
