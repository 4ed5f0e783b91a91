"""IRN's inter-pixel losses and flowIRN's flow-boundary loss.

Every function works on pairs laid out as in :mod:`wsvis.irn.pairs`:
``(N, P, h, w)``, pair ``p`` at pixel ``i = (y, x)`` is ``(i, i + offsets[p])``
on the stride-4 grid. Masks (``fg_pos``, ``bg_pos``, ``neg``, ``valid``) are
bool tensors of that shape. Displacements are in stride-4 grid pixels,
channel 0 = dy (rows), channel 1 = dx (columns), as IRN.

Sources: IRN (Ahn et al., CVPR 2019) §3.2 "Inter-pixel relation mining" and
Eqs. for L^D_fg, L^D_bg, L^B; flowIRN (Liu et al., CVPR 2021) Eq. 1 (affinity)
and Eq. 3 (flow-boundary loss).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from wsvis.irn.pairs import shift

__all__ = [
    "affinity",
    "displacement_difference",
    "displacement_loss_fg",
    "displacement_loss_bg",
    "boundary_loss",
    "flow_jacobian",
    "flow_boundary_loss",
]

EPS = 1e-5


def _masked_mean(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of ``x`` where ``mask`` holds (0 when the mask is empty, keeping the graph)."""
    m = mask.to(x.dtype)
    return (x * m).sum() / (m.sum() + EPS)


def affinity(boundary: torch.Tensor, offsets: np.ndarray, paths: list[np.ndarray]) -> torch.Tensor:
    """Inter-pixel affinity α_ij = 1 − max_{k ∈ Π_ij} B(k) (flowIRN Eq. 1, IRN Eq. 4).

    Args:
        boundary: (N, 1, h, w) boundary probability B in [0, 1] on the stride-4 grid.
        offsets: (P, 2) half-plane offsets (:func:`wsvis.irn.pairs.search_offsets`).
        paths: their line paths (:func:`wsvis.irn.pairs.paths_for`), ends included.

    Returns:
        (N, P, h, w) affinity in [0, 1]. Path pixels off the grid count as
        B = 0 (only pairs with ``j`` off the grid have such pixels, and those
        pairs are masked out by every loss). Differentiable (through the max).
    """
    b = boundary[:, 0]
    out = []
    for path in paths:
        m = b
        for py, px in path[1:]:
            m = torch.maximum(m, shift(b, int(py), int(px), 0.0))
        out.append(1.0 - m)
    return torch.stack(out, 1)


def displacement_difference(displacement: torch.Tensor, offsets: np.ndarray) -> torch.Tensor:
    """δ(i, j) = D(x_i) − D(x_j) for every pair (IRN §3.2).

    Args:
        displacement: (N, 2, h, w) D in grid pixels (dy, dx).

    Returns:
        (N, P, 2, h, w); zero where ``j`` is off the grid.
    """
    return torch.stack([displacement - shift(displacement, int(dy), int(dx), 0.0) for dy, dx in offsets], 1) * 1.0


def displacement_loss_fg(displacement: torch.Tensor, offsets: np.ndarray, fg_pos: torch.Tensor) -> torch.Tensor:
    """L^D_fg = mean over P⁺_fg of |δ(i, j) − δ̂(i, j)| (IRN Eq. 6).

    δ̂(i, j) = x_j − x_i, the true offset (dy, dx) of the pair: two pixels of
    one instance share the centroid ``x + D(x)``, so D(x_i) − D(x_j) = x_j − x_i.
    |·| is the L1 norm **averaged over the two components** (IRN divides the
    summed |·| by 2|P⁺_fg|).

    Args:
        displacement: (N, 2, h, w) grid pixels.
        offsets: (P, 2).
        fg_pos: (N, P, h, w) bool.

    Returns:
        Scalar tensor (0 when P⁺_fg is empty).
    """
    delta = displacement_difference(displacement, offsets)
    target = torch.as_tensor(offsets, dtype=delta.dtype, device=delta.device).view(1, -1, 2, 1, 1)
    err = (delta - target).abs().mean(2)
    return _masked_mean(err, fg_pos)


def displacement_loss_bg(displacement: torch.Tensor, offsets: np.ndarray, bg_pos: torch.Tensor) -> torch.Tensor:
    """L^D_bg = mean over P⁺_bg of |δ(i, j)| (IRN Eq. 7), components averaged as in :func:`displacement_loss_fg`."""
    err = displacement_difference(displacement, offsets).abs().mean(2)
    return _masked_mean(err, bg_pos)


def boundary_loss(
    alpha: torch.Tensor, fg_pos: torch.Tensor, bg_pos: torch.Tensor, neg: torch.Tensor
) -> torch.Tensor:
    """L^B (IRN Eq. 5): −Σ_{P⁺_fg} log α / (2|P⁺_fg|) − Σ_{P⁺_bg} log α / (2|P⁺_bg|) − Σ_{P⁻} log(1 − α) / |P⁻|.

    Args:
        alpha: (N, P, h, w) affinities from :func:`affinity`.
        fg_pos, bg_pos, neg: (N, P, h, w) bool pair sets.

    Returns:
        Scalar tensor. log is taken of ``α + 1e-5`` / ``1 − α + 1e-5`` (IRN's
        guard); an empty set contributes 0.
    """
    pos = -torch.log(alpha + EPS)
    negl = -torch.log(1.0 - alpha + EPS)
    return _masked_mean(pos, fg_pos) / 2 + _masked_mean(pos, bg_pos) / 2 + _masked_mean(negl, neg)


def flow_jacobian(flow: torch.Tensor, valid: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """F′: the flow's spatial Jacobian by central differences, flattened to 4 channels.

    Args:
        flow: (N, 2, h, w) flow (u = x component, v = y component) **in grid
            pixels** (image-pixel flow / 4 on the stride-4 grid).
        valid: (N, h, w) bool pixels with a flow value (False on crop padding
            or frames without flow); default all True.

    Returns:
        ``(jac, jac_valid)``: (N, 4, h, w) = (∂u/∂x, ∂u/∂y, ∂v/∂x, ∂v/∂y), and
        (N, h, w) bool where the pixel and its 4 neighbours are valid (grid
        borders replicate, i.e. one-sided differences there).

    The Jacobian is dimensionless, so with flow in grid pixels it equals the
    image-resolution flow gradient and does not depend on the grid's stride.
    """
    n, _, h, w = flow.shape
    if valid is None:
        valid = torch.ones(n, h, w, dtype=torch.bool, device=flow.device)
    p = F.pad(flow, (1, 1, 1, 1), mode="replicate")
    dx = (p[:, :, 1:-1, 2:] - p[:, :, 1:-1, :-2]) / 2
    dy = (p[:, :, 2:, 1:-1] - p[:, :, :-2, 1:-1]) / 2
    jac = torch.stack([dx[:, 0], dy[:, 0], dx[:, 1], dy[:, 1]], 1)
    vp = F.pad(valid[:, None].float(), (1, 1, 1, 1), value=0.0)[:, 0] > 0.5
    jv = valid & vp[:, 1:-1, 2:] & vp[:, 1:-1, :-2] & vp[:, 2:, 1:-1] & vp[:, :-2, 1:-1]
    return jac, jv


def flow_boundary_loss(
    alpha: torch.Tensor,
    flow: torch.Tensor,
    offsets: np.ndarray,
    valid: torch.Tensor | None = None,
    lam: float = 2.0,
) -> torch.Tensor:
    """flowIRN's flow-boundary loss L^B_F (Liu et al., CVPR 2021, Eq. 3).

    L^B_F = mean over valid pairs (i, j), j ∈ N_i, of ‖F′(i) − F′(j)‖ · α_ij + λ |1 − α_ij|.

    Definition of F′ chosen here (the paper calls it "a two-dimensional
    vector", the flow's gradient wrt (x, y), and its appendix takes "the
    first-order gradient difference on both directions" of both flow
    components): F′(i) is the full 2x2 Jacobian of the flow (∂u/∂x, ∂u/∂y,
    ∂v/∂x, ∂v/∂y) by central differences (:func:`flow_jacobian`), and ‖·‖ the
    Euclidean (Frobenius) norm of the difference. Taking both components and
    both directions keeps the term rotation-invariant and catches motion
    boundaries of either orientation; the Jacobian is dimensionless (same
    value at any grid stride when the flow is given in grid pixels).

    The gradient wrt α is ‖ΔF′‖ − λ: pairs whose Jacobians differ by more than
    λ are pushed to α = 0 (a boundary on their path), the others to α = 1.

    Normalisation: Eq. 3 sums over the neighbourhood N_i of each pixel; here
    the sum is replaced by the **mean over all valid pairs and pixels** of the
    batch, so the loss is on the scale of the IRN losses and independent of
    the radius and crop size.

    Args:
        alpha: (N, P, h, w) affinities (:func:`wsvis.irn.losses.affinity`).
        flow: (N, 2, h, w) flow on the stride-4 grid in grid pixels, x then y.
        offsets: (P, 2) offsets of ``alpha``.
        valid: (N, h, w) bool pixels with flow (see :func:`flow_jacobian`).
        lam: λ (flowIRN: 2).

    Returns:
        Scalar tensor; 0 when no pair is valid.
    """
    jac, jv = flow_jacobian(flow, valid)
    terms, masks = [], []
    for p, (dy, dx) in enumerate(offsets):
        jj = shift(jac, int(dy), int(dx), 0.0)
        g = torch.linalg.vector_norm(jac - jj, dim=1)
        terms.append(g * alpha[:, p] + lam * (1.0 - alpha[:, p]).abs())
        masks.append(jv & shift(jv, int(dy), int(dx), False))
    return _masked_mean(torch.stack(terms, 1), torch.stack(masks, 1))
