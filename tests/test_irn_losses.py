"""Affinity (flowIRN Eq. 1), IRN losses and the flow-boundary loss (Eq. 3) on hand-computed values."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from wsvis.irn.losses import (
    affinity,
    boundary_loss,
    displacement_loss_bg,
    displacement_loss_fg,
    flow_boundary_loss,
    flow_jacobian,
)
from wsvis.irn.net import IRNet
from wsvis.irn.pairs import paths_for


def test_affinity_hand_computed():
    b = torch.tensor([[0.1, 0.5, 0.2, 0.9], [0.0, 0.3, 0.7, 0.4], [0.2, 0.6, 0.0, 0.1]]).view(1, 1, 3, 4)
    offsets = np.array([[0, 1], [0, 2], [2, 1]])
    a = affinity(b, offsets, paths_for(offsets))
    assert a.shape == (1, 3, 3, 4)
    assert a[0, 0, 0, 0].item() == pytest.approx(0.5)  # max(0.1, 0.5)
    assert a[0, 1, 0, 1].item() == pytest.approx(0.1)  # max(0.5, 0.2, 0.9)
    assert a[0, 1, 1, 0].item() == pytest.approx(0.3)  # max(0.0, 0.3, 0.7)
    # (0,0) -> (2,1): path (0,0), (1,1), (2,1): max(0.1, 0.3, 0.6)
    assert a[0, 2, 0, 0].item() == pytest.approx(0.4)


def test_displacement_losses():
    d = torch.tensor([[[0.0, 0.0]], [[3.0, 1.0]]]).view(1, 2, 1, 2)  # dy, dx at (0,0) and (0,1)
    offsets = np.array([[0, 1]])
    mask = torch.tensor([[[[True, False]]]])
    # δ = D(i) - D(j) = (0, 2); δ̂ = (0, 1); |δ - δ̂| averaged over components = 0.5
    assert displacement_loss_fg(d, offsets, mask).item() == pytest.approx(0.5, rel=1e-4)
    assert displacement_loss_bg(d, offsets, mask).item() == pytest.approx(1.0, rel=1e-4)
    assert displacement_loss_fg(d, offsets, ~torch.ones_like(mask)).item() == 0.0


def test_boundary_loss():
    alpha = torch.tensor([0.5, 0.25, 0.75]).view(1, 3, 1, 1)
    fg = torch.tensor([True, False, False]).view(1, 3, 1, 1)
    bg = torch.tensor([False, True, False]).view(1, 3, 1, 1)
    neg = torch.tensor([False, False, True]).view(1, 3, 1, 1)
    expected = -math.log(0.5) / 2 - math.log(0.25) / 2 - math.log(0.25)
    assert boundary_loss(alpha, fg, bg, neg).item() == pytest.approx(expected, rel=1e-3)


def _flow_from_u(u: np.ndarray) -> torch.Tensor:
    f = np.zeros((1, 2, *u.shape), np.float32)
    f[0, 0] = u
    return torch.from_numpy(f)


def test_flow_boundary_constant_gradient_and_step():
    offsets = np.array([[0, 1]])
    yy, xx = np.mgrid[0:3, 0:5].astype(np.float32)
    linear = torch.from_numpy(np.stack([0.3 * xx + 0.1 * yy, -0.2 * xx])[None])
    jac, jv = flow_jacobian(linear)
    assert torch.allclose(jac[0, :, 1, 1:4], torch.tensor([0.3, 0.1, -0.2, 0.0]).view(4, 1).expand(4, 3))
    assert jv[0].sum() == 3  # only the middle row's interior has all 4 neighbours
    ones = torch.ones(1, 1, 3, 5)
    # constant gradient: first term 0, α = 1 -> loss 0; α = 0.5 -> λ · 0.5
    assert flow_boundary_loss(ones, linear, offsets, lam=2.0).item() == pytest.approx(0.0, abs=1e-6)
    assert flow_boundary_loss(ones * 0.5, linear, offsets, lam=2.0).item() == pytest.approx(1.0, rel=1e-4)
    # a gradient step: u = [0, 0, 0, 1, 2]; ∂u/∂x at x = 1, 2, 3 is 0, 0.5, 1
    # -> both valid pairs have ‖ΔF′‖ = 0.5
    step = _flow_from_u(np.tile(np.array([0, 0, 0, 1, 2], np.float32), (3, 1)))
    assert flow_boundary_loss(ones, step, offsets, lam=2.0).item() == pytest.approx(0.5, rel=1e-4)
    assert flow_boundary_loss(ones * 0.5, step, offsets, lam=2.0).item() == pytest.approx(1.25, rel=1e-4)
    # larger than the constant-gradient flow at the same (high) affinity
    assert flow_boundary_loss(ones, step, offsets).item() > flow_boundary_loss(ones, linear, offsets).item()
    # invalid pixels drop out
    valid = torch.zeros(1, 3, 5, dtype=torch.bool)
    assert flow_boundary_loss(ones, step, offsets, valid).item() == 0.0


def test_flow_boundary_gradient_sign():
    """dL/dα = ‖ΔF′‖ − λ: a strong Jacobian step lowers α, a smooth flow raises it."""
    offsets = np.array([[0, 1]])
    step = _flow_from_u(np.tile(np.array([0, 0, 0, 10, 20], np.float32), (3, 1)))
    alpha = torch.full((1, 1, 3, 5), 0.5, requires_grad=True)
    flow_boundary_loss(alpha, step, offsets, lam=2.0).backward()
    assert alpha.grad[0, 0, 1, 2] > 0 and alpha.grad[0, 0, 1, 1] > 0
    alpha.grad = None
    flow_boundary_loss(alpha, _flow_from_u(np.zeros((3, 5), np.float32)), offsets).backward()
    assert alpha.grad[0, 0, 1, 1] < 0


def test_irnet_shapes_and_frozen_backbone():
    net = IRNet("mobilenet_v2", "none")
    net.train()
    assert not net.backbone.training
    b, d = net(torch.randn(2, 3, 38, 45))
    assert b.shape == (2, 1, 10, 12) and d.shape == (2, 2, 10, 12)
    assert float(b.detach().min()) >= 0 and float(b.detach().max()) <= 1
    params = net.trainable_parameters()
    assert params and all(p.requires_grad for p in params)
    assert not any(p.requires_grad for p in net.backbone.parameters())
    (b.mean() + d.mean()).backward()
    assert all(p.grad is None for p in net.backbone.parameters())
