"""Puzzle loss of STC-Seg (Yan et al., §III-B2, Eq. 3-6): boundary term + box term.

All masks here live on the mask head's output grid (1/4 of the network input,
CondInst); ``logits`` are the dynamic mask head's raw outputs, one map per
instance.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["boundary_term", "dice_with_position_penalty", "box_term", "puzzle_loss"]

_EPS = 1e-5


def boundary_term(logits: torch.Tensor, pseudo: torch.Tensor, mode: str = "bd") -> torch.Tensor:
    """Boundary term L_bd (STC-Seg Eq. 4), or the plain BCE L_bce it replaces (Table IV).

    ``"bd"``: L_bd = -1/(h·w) Σ_ij m_ij log P(m̃_ij = 1): positive-only binary
    cross entropy on the pseudo-label m (pixels with m = 0 contribute nothing),
    normalised by the map size h·w as Eq. 4 writes it; averaged over instances.
    ``"bce"``: the full BCE on both m = 1 and m = 0 pixels (Table IV's L_bce row).
    ``"dice"``: CondInst's mask loss (Tian et al., ECCV 2020, §3.3: dice loss
    1 - 2Σpm / Σ(p² + m²) per instance) with the pseudo-label as its mask; our
    option, not STC-Seg's. BCE averaged over the h·w map weighs a mask's shape
    by its area (a 3 %-of-frame object's boundary errors are a few hundredths of
    the loss); dice weighs every instance equally, whatever its size.
    ``"none"``: zero (Table IV rows without a boundary term).

    Args:
        logits: (N, h, w) float mask logits, one per instance.
        pseudo: (N, h, w) {0, 1} (bool or float) pseudo-labels m = M ∩ box of each instance.
        mode: ``"bd" | "bce" | "dice" | "none"``.

    Returns:
        Scalar tensor (0 with grad when N = 0).

    Raises:
        ValueError: unknown mode or shapes that differ.
    """
    if mode not in ("bd", "bce", "dice", "none"):
        raise ValueError(f"boundary mode must be 'bd', 'bce', 'dice' or 'none', got {mode!r}")
    if logits.shape != pseudo.shape:
        raise ValueError(f"logits {tuple(logits.shape)} and pseudo-labels {tuple(pseudo.shape)} differ in shape")
    if mode == "none" or logits.shape[0] == 0:
        return logits.sum() * 0.0
    m = pseudo.float()
    if mode == "bce":
        return F.binary_cross_entropy_with_logits(logits, m)
    if mode == "dice":
        return dice_with_position_penalty(logits.sigmoid().flatten(1), m.flatten(1), position_penalty=False).mean()
    # -m log(sigmoid(x)) = m * softplus(-x)
    return (m * F.softplus(-logits)).flatten(1).mean(1).mean()


def dice_with_position_penalty(p: torch.Tensor, g: torch.Tensor, position_penalty: bool = True) -> torch.Tensor:
    """L'_dice of STC-Seg Eq. 5 on 1-D sequences (projections), per row.

    L'_dice(p, g) = [1 - 2 Σ p_i g_i / Σ (p_i² + g_i²)] + Σ max(p_i - g_i, 0)² / Σ g_i².

    Eq. 5 prints the dice *coefficient* 2Σpg/Σ(p²+g²) under the label "Dice
    loss"; as a loss to minimise we use 1 - coefficient (BoxInst's dice loss),
    which is what the text means. The position penalty is zero wherever
    p_i <= g_i, i.e. for every point inside the box (g_i = 1), and grows with
    the mass outside it.

    Args:
        p: (N, L) float predictions in [0, 1].
        g: (N, L) float {0, 1} ground truth.
        position_penalty: False gives the plain dice loss L_dice (Table IV baseline).

    Returns:
        (N,) float losses.
    """
    p, g = p.float(), g.float()
    dice = 1.0 - 2.0 * (p * g).sum(-1) / ((p * p).sum(-1) + (g * g).sum(-1)).clamp(min=_EPS)
    if not position_penalty:
        return dice
    return dice + (p - g).clamp(min=0).pow(2).sum(-1) / (g * g).sum(-1).clamp(min=_EPS)


def box_term(probs: torch.Tensor, box_masks: torch.Tensor, position_penalty: bool = True) -> torch.Tensor:
    """Box term L_bx (STC-Seg Eq. 6): L'_dice of the x- and y-projections of mask and box.

    Proj_x / Proj_y are BoxInst's projections (max over the other axis).

    Args:
        probs: (N, h, w) float mask probabilities in [0, 1].
        box_masks: (N, h, w) {0, 1}: 1 inside each instance's box.
        position_penalty: Eq. 5's penalty on (True) or plain dice (False).

    Returns:
        Scalar: mean over instances of L'_dice(Proj_x) + L'_dice(Proj_y) (0 with grad when N = 0).
    """
    if probs.shape[0] == 0:
        return probs.sum() * 0.0
    b = box_masks.float()
    lx = dice_with_position_penalty(probs.amax(1), b.amax(1), position_penalty)
    ly = dice_with_position_penalty(probs.amax(2), b.amax(2), position_penalty)
    return (lx + ly).mean()


def puzzle_loss(
    logits: torch.Tensor,
    pseudo: torch.Tensor,
    box_masks: torch.Tensor,
    *,
    boundary: str = "bd",
    position_penalty: bool = True,
) -> dict[str, torch.Tensor]:
    """Puzzle loss L_pz = L_bd + L_bx (STC-Seg Eq. 3), with Table IV's switches.

    Args:
        logits: (N, h, w) mask logits.
        pseudo: (N, h, w) pseudo-labels (M inside each instance's box).
        box_masks: (N, h, w) box masks.
        boundary: ``"bd"`` (Eq. 4), ``"bce"``, ``"dice"`` or ``"none"`` (:func:`boundary_term`).
        position_penalty: L'_dice (Eq. 5) or L_dice in the box term.

    Returns:
        ``{"loss_boundary", "loss_box"}`` scalars.
    """
    return {
        "loss_boundary": boundary_term(logits, pseudo, boundary),
        "loss_box": box_term(logits.sigmoid(), box_masks, position_penalty),
    }
