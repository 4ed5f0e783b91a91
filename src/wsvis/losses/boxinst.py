"""BoxInst's losses (Tian et al., CVPR 2021) and the flow-aware pairwise loss of Ikeda & Mori.

* projection loss: dice loss of the x- and y-projections (max over the other
  axis) of the predicted mask and of the box mask — the box term of
  :mod:`wsvis.losses.puzzle` without the position penalty;
* pairwise loss (Ikeda & Mori Eq. 1-2, BoxInst Eq. 3): for each pixel pair e
  of a dilated 3x3 neighbourhood (dilation 2, the 8 neighbours), P(y_e = 1) =
  m_i m_j + (1 - m_i)(1 - m_j); loss -Σ y_e log P(y_e = 1) / N over the pairs
  whose centre pixel lies in the box (BoxInst's E_in);
* pseudo label-identity y_e: BoxInst: colour similarity S_color = exp(-‖c_i - c_j‖ / θ_color)
  on Lab colours (θ_color = 2, i.e. BoxInst's ``exp(-0.5 ‖Δc‖)``) ≥ τ_color = 0.3;
  Ikeda & Mori Eq. 3-4: additionally S_flow = exp(-‖f_i - f_j‖ / θ_flow) ≥ τ_flow
  with f the optical flow as an RGB image (θ_flow = 0.5, τ_flow = 0.6).

Scales (not given by the paper): Lab as OpenCV / skimage return it for float
RGB in [0, 1] (L in [0, 100]); the flow colour image as RGB in [0, 1]
(:func:`wsvis.flow.ops.flow_to_color` / 255).
"""

from __future__ import annotations

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from wsvis.losses.puzzle import box_term

__all__ = [
    "projection_loss",
    "lab_image",
    "neighbour_differences",
    "color_similarity",
    "flow_similarity",
    "pairwise_label_identity",
    "pairwise_loss",
]


def projection_loss(probs: torch.Tensor, box_masks: torch.Tensor) -> torch.Tensor:
    """BoxInst's projection loss: dice loss of the x and y projections of mask and box (BoxInst Eq. 2).

    Args:
        probs: (N, h, w) float mask probabilities in [0, 1].
        box_masks: (N, h, w) {0, 1} box masks.

    Returns:
        Scalar, mean over instances; 0 for a mask that exactly fills its box.
    """
    return box_term(probs, box_masks, position_penalty=False)


def lab_image(rgb: torch.Tensor) -> torch.Tensor:
    """CIE Lab of an RGB image (D65, as skimage's ``rgb2lab`` used by BoxInst), via OpenCV.

    Args:
        rgb: (3, h, w) float RGB in [0, 1].

    Returns:
        (3, h, w) float32 Lab (L in [0, 100], a/b about [-127, 127]), on ``rgb``'s device.
    """
    arr = rgb.detach().permute(1, 2, 0).clamp(0, 1).cpu().numpy().astype(np.float32)
    lab = cv2.cvtColor(np.ascontiguousarray(arr), cv2.COLOR_RGB2LAB)
    return torch.from_numpy(lab).permute(2, 0, 1).to(rgb.device)


def neighbour_differences(x: torch.Tensor, kernel_size: int = 3, dilation: int = 2) -> torch.Tensor:
    """x_i - x_j for each pixel i and its K²-1 neighbours j in a dilated K x K window.

    Neighbours outside the map are zero-padded (their pairs carry no weight
    once the box restricts the loss; BoxInst does the same).

    Args:
        x: (N, C, h, w) float.
        kernel_size: K (odd).
        dilation: spacing of the window (BoxInst: 2).

    Returns:
        (N, C, K²-1, h, w) float, neighbours in row-major window order, centre left out.
    """
    n, c, h, w = x.shape
    pad = dilation * (kernel_size // 2)
    cols = F.unfold(x, kernel_size, dilation=dilation, padding=pad).view(n, c, kernel_size * kernel_size, h, w)
    centre = kernel_size * kernel_size // 2
    cols = torch.cat([cols[:, :, :centre], cols[:, :, centre + 1:]], dim=2)
    return x[:, :, None] - cols


def color_similarity(lab: torch.Tensor, theta_color: float = 2.0, kernel_size: int = 3, dilation: int = 2) -> torch.Tensor:
    """S_color = exp(-‖c_i - c_j‖ / θ_color) (Ikeda & Mori Eq. 3; BoxInst with θ = 2).

    Args:
        lab: (N, 3, h, w) Lab colours.

    Returns:
        (N, K²-1, h, w) similarities in (0, 1].
    """
    return torch.exp(-neighbour_differences(lab, kernel_size, dilation).norm(dim=1) / theta_color)


def flow_similarity(flow_rgb: torch.Tensor, theta_flow: float = 0.5, kernel_size: int = 3, dilation: int = 2) -> torch.Tensor:
    """S_flow = exp(-‖f_i - f_j‖ / θ_flow) (Ikeda & Mori Eq. 4), f the flow as an RGB image.

    Args:
        flow_rgb: (N, 3, h, w) flow colour image, RGB in [0, 1].

    Returns:
        (N, K²-1, h, w) similarities in (0, 1].
    """
    return torch.exp(-neighbour_differences(flow_rgb, kernel_size, dilation).norm(dim=1) / theta_flow)


def pairwise_label_identity(
    s_color: torch.Tensor,
    s_flow: torch.Tensor | None = None,
    tau_color: float = 0.3,
    tau_flow: float = 0.6,
) -> torch.Tensor:
    """Pseudo label-identity y_e (Ikeda & Mori §2.2): 1 iff S_color ≥ τ_color and S_flow ≥ τ_flow.

    Without ``s_flow`` it is BoxInst's y_e = [S_color ≥ τ_color].

    Args:
        s_color: (N, E, h, w) colour similarities; s_flow: same shape or None.

    Returns:
        (N, E, h, w) bool.

    Raises:
        ValueError: shapes differ.
    """
    y = s_color >= tau_color
    if s_flow is not None:
        if s_flow.shape != s_color.shape:
            raise ValueError(f"colour {tuple(s_color.shape)} and flow {tuple(s_flow.shape)} similarities differ in shape")
        y = y & (s_flow >= tau_flow)
    return y


def pairwise_loss(
    logits: torch.Tensor,
    identity: torch.Tensor,
    box_masks: torch.Tensor,
    kernel_size: int = 3,
    dilation: int = 2,
) -> torch.Tensor:
    """Pairwise loss -1/N Σ_{e ∈ E_in} y_e log P(y_e = 1) (Ikeda & Mori Eq. 1-2; BoxInst Eq. 3-4).

    Computed in log space: log P = logsumexp(log m_i + log m_j, log(1-m_i) + log(1-m_j)).

    Args:
        logits: (N, h, w) mask logits of N instances.
        identity: (N, E, h, w) label-identity y_e of each instance's image (E = K²-1).
        box_masks: (N, h, w) {0, 1}: pairs count when their centre pixel is in the box.

    Returns:
        Scalar: the weighted mean over pairs (0 with grad when no pair counts).
    """
    if logits.shape[0] == 0:
        return logits.sum() * 0.0
    x = logits[:, None]
    log_fg, log_bg = F.logsigmoid(x), F.logsigmoid(-x)
    pad = dilation * (kernel_size // 2)
    n, _, h, w = x.shape
    k2 = kernel_size * kernel_size
    centre = k2 // 2

    def neighbours(t: torch.Tensor) -> torch.Tensor:
        cols = F.unfold(t, kernel_size, dilation=dilation, padding=pad).view(n, k2, h, w)
        return torch.cat([cols[:, :centre], cols[:, centre + 1:]], dim=1)

    log_same = torch.logsumexp(torch.stack([log_fg + neighbours(log_fg), log_bg + neighbours(log_bg)]), dim=0)
    weights = identity.float() * box_masks.float()[:, None]
    return -(log_same * weights).sum() / weights.sum().clamp(min=1.0)
