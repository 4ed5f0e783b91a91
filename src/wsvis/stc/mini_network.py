"""The mini network of STC-Seg (Yan et al., §III-B1 Eq. 1-2, §IV-B, Fig. 4).

Pipeline for one signal x (depth (h, w, 1) or flow (h, w, 2)):

1. 2-D average pooling, kernel 4, stride 4, no padding (§IV-B);
2. ``layers`` (3) dilated 3x3 convolutions, dilation λ = 2, padding 2, kernels
   initialised with 0/1 weights and not trained;
3. residual module: subtract the pooling output and apply
   δ(x_ij, x_i'j') = exp(-r ‖x_ij - x_i'j'‖_p), r = 0.5, p = 2 (footnote 1);
4. S_ij = the mean over the 9 kernel positions (k1, k2 ∈ {-1, 0, 1}) of δ (Eq. 1),
   neighbours outside the frame left out;
   upsampled (bilinear) back to (h, w).

Interpretation (the paper gives no code): each 0/1 kernel is one-hot, so the
first layer turns every channel into its 9 neighbours at offset λ·(k1, k2),
and each further layer shifts each copy again along its own offset: after
L layers, neighbour k sits at L·λ·(k1, k2) pooled pixels (6 pooled = 24 frame
pixels for L = 3, λ = 2). Eq. 1 *sums* the 9 δ terms; we average them so that
S ∈ (0, 1] (S = 1 on a constant input), the range in which the filter
factors φ^s = 0.3, φ^t = 0.4 of Eq. 2 make sense. The centre term
(k1 = k2 = 0) is kept as Eq. 1 writes it (it is always 1).

Eq. 2, M = (S^s - φ^s) ∧ (S^t - φ^t), is read as the logical AND of the two
thresholded maps: M_ij = [S^s_ij > φ^s] ∧ [S^t_ij > φ^t].
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["SIGNALS", "MiniNetwork", "contextual_similarity", "stc_pseudo_mask"]

#: STC-Seg Table III: which signals make the pseudo-label.
SIGNALS = ("both", "depth", "flow")


class MiniNetwork(nn.Module):
    """Contextual similarity S of a dense signal (STC-Seg Eq. 1, Fig. 4). Fixed weights, no training.

    Args:
        channels: C of the signal (1 for depth, 2 for flow).
        layers: dilated 3x3 convolutions (paper 3; Table V).
        dilation: λ (paper 2; Table VI).
        pool: average-pooling kernel and stride (paper 4).
        r: similarity factor of δ (paper 0.5).
        p: norm of δ (paper 2, the Frobenius/Euclidean norm).

    ``forward(x)``: x (N, C, H, W) float -> S (N, 1, H, W) float in (0, 1].
    Requires H, W >= ``pool``.
    """

    def __init__(self, channels: int, layers: int = 3, dilation: int = 2, pool: int = 4, r: float = 0.5,
                 p: float = 2.0) -> None:
        super().__init__()
        if layers < 1:
            raise ValueError(f"the mini network needs at least one dilated layer, got layers={layers}")
        self.channels, self.pool, self.r, self.p = channels, pool, r, p
        self.avg = nn.AvgPool2d(pool, stride=pool, padding=0)
        one_hot = torch.zeros(9, 1, 3, 3)
        for k in range(9):
            one_hot[k, 0, k // 3, k % 3] = 1.0
        convs = [nn.Conv2d(channels, 9 * channels, 3, padding=dilation, dilation=dilation, groups=channels, bias=False)]
        convs[0].weight.data.copy_(one_hot.repeat(channels, 1, 1, 1))
        for _ in range(layers - 1):
            conv = nn.Conv2d(9 * channels, 9 * channels, 3, padding=dilation, dilation=dilation,
                             groups=9 * channels, bias=False)
            conv.weight.data.copy_(one_hot.repeat(channels, 1, 1, 1))
            convs.append(conv)
        self.convs = nn.Sequential(*convs)
        for param in self.parameters():
            param.requires_grad_(False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        if c != self.channels:
            raise ValueError(f"the mini network was built for {self.channels} channels, got {c}")
        if h < self.pool or w < self.pool:
            raise ValueError(f"signal of size {(h, w)} is smaller than the pooling kernel {self.pool}")
        pooled = self.avg(x.float())  # (N, C, h', w')
        shifted = self.convs(pooled).view(n, c, 9, *pooled.shape[-2:])  # channel-major groups
        # Neighbours that fall outside the frame (zero padding) are left out of the mean.
        valid = (self.convs(torch.ones_like(pooled)).view(n, c, 9, *pooled.shape[-2:])[:, 0] > 0.5).float()
        delta = torch.exp(-self.r * torch.linalg.vector_norm(shifted - pooled[:, :, None], ord=self.p, dim=1))
        s = (delta * valid).sum(1, keepdim=True) / valid.sum(1, keepdim=True).clamp(min=1.0)
        return F.interpolate(s, size=(h, w), mode="bilinear", align_corners=False).clamp(0, 1)


def contextual_similarity(signal: torch.Tensor, **kwargs) -> torch.Tensor:
    """S of one frame's signal (STC-Seg Eq. 1) with :class:`MiniNetwork`.

    Args:
        signal: (H, W) depth or (H, W, C) flow, float (numpy-like shapes; torch tensor).
        kwargs: :class:`MiniNetwork` options (layers, dilation, pool, r, p).

    Returns:
        (H, W) float32 similarity in (0, 1].
    """
    x = signal.float()
    if x.ndim == 2:
        x = x[..., None]
    net = MiniNetwork(x.shape[-1], **kwargs)
    with torch.no_grad():
        return net(x.permute(2, 0, 1)[None])[0, 0]


def stc_pseudo_mask(
    s_spatial: torch.Tensor | None,
    s_temporal: torch.Tensor | None,
    phi_s: float = 0.3,
    phi_t: float = 0.4,
) -> torch.Tensor:
    """Pseudo-label M = (S^s - φ^s) ∧ (S^t - φ^t) (STC-Seg Eq. 2), read as [S^s > φ^s] ∧ [S^t > φ^t].

    A missing signal (None) drops its factor: depth-only or flow-only (Table III).

    Args:
        s_spatial: (H, W) S^s from depth, or None.
        s_temporal: (H, W) S^t from flow, or None.
        phi_s, phi_t: filter factors (paper 0.3, 0.4; Table VII).

    Returns:
        (H, W) bool.

    Raises:
        ValueError: both signals missing, or of different shapes.
    """
    if s_spatial is None and s_temporal is None:
        raise ValueError("STC pseudo-label needs at least one of depth (S^s) and flow (S^t)")
    if s_spatial is not None and s_temporal is not None and s_spatial.shape != s_temporal.shape:
        raise ValueError(f"S^s {tuple(s_spatial.shape)} and S^t {tuple(s_temporal.shape)} differ in shape")
    m = None
    if s_spatial is not None:
        m = s_spatial > phi_s
    if s_temporal is not None:
        mt = s_temporal > phi_t
        m = mt if m is None else m & mt
    return m
