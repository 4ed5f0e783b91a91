"""IRNet: class-boundary and displacement-field branches on a frozen backbone (IRN §3.1, Fig. 4).

Follows IRN's ``resnet50_irn.Net`` (Ahn et al., CVPR 2019) in spirit:

* the backbone (:func:`wsvis.models.backbones.build_backbone`) is frozen: its
  parameters get no gradient, its features are detached and it always runs in
  eval mode (BatchNorm statistics fixed), as IRN;
* **boundary branch B**: each of the 5 levels -> 1x1 conv (32 ch, no bias) ->
  GroupNorm(4) -> resize to the stride-4 grid -> ReLU; concatenated (160 ch)
  -> 1x1 conv -> sigmoid;
* **displacement branch D**: levels -> 1x1 conv + GroupNorm + ReLU with 64,
  128, 256, 256, 256 channels; the three deepest are merged top-down at level
  3's grid (stride 8) by a 1x1 conv (768 -> 256) + GroupNorm, resized to the
  stride-4 grid, concatenated with the two shallow ones (448 ch) -> 1x1 conv
  256 + GroupNorm + ReLU -> 1x1 conv 2. Output in **stride-4 grid pixels**,
  channel 0 = dy, channel 1 = dx (points from a pixel to its instance centroid);
* IRN's ``MeanShift``: in eval mode the buffer ``displacement_mean`` (the mean
  displacement over the training frames, measured after training by
  :func:`wsvis.irn.train.train_irn`) is subtracted, so background pixels do
  not drift during refinement.

Differences from IRN: every level is resized to the stride-4 grid size
``(ceil(H/4), ceil(W/4))`` with bilinear interpolation instead of fixed
x2/x4 upsampling (needed for mobilenet_v2, whose first level has stride 2,
and for sizes not divisible by 16); the branch widths are IRN's for every
backbone.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from wsvis.models.backbones import build_backbone

__all__ = ["IRNet", "grid_size"]


def grid_size(height: int, width: int) -> tuple[int, int]:
    """The stride-4 grid of a (height, width) frame: ``(ceil(H/4), ceil(W/4))`` (the CAM grid too)."""
    return math.ceil(height / 4), math.ceil(width / 4)


def _block(cin: int, cout: int, groups: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 1, bias=False), nn.GroupNorm(groups, cout))


def _resize(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    if tuple(x.shape[-2:]) == tuple(size):
        return x
    return F.interpolate(x, size=size, mode="bilinear", align_corners=False)


class IRNet(nn.Module):
    """Inter-pixel relation network.

    Args:
        backbone: a key of :data:`wsvis.models.backbones.BACKBONES`.
        weights: backbone weights, ``"none" | "imagenet" | PATH``.

    ``forward(x)``: x (N, 3, H, W) float32 ImageNet-normalised RGB ->
    ``(boundary, displacement)``: (N, 1, h, w) float32 in [0, 1] and
    (N, 2, h, w) float32 grid pixels (dy, dx), with ``(h, w) = grid_size(H, W)``.
    ``forward_logits`` returns the boundary before the sigmoid.
    """

    def __init__(self, backbone: str = "resnet50", weights: str = "none") -> None:
        super().__init__()
        self.backbone_name = backbone
        self.backbone = build_backbone(backbone, weights)
        for p in self.backbone.parameters():
            p.requires_grad_(False)
        ch = self.backbone.channels
        self.edge = nn.ModuleList([_block(c, 32, 4) for c in ch])
        self.edge_out = nn.Conv2d(32 * len(ch), 1, 1, bias=True)
        widths = [64, 128, 256, 256, 256]
        groups = [8, 16, 16, 16, 16]
        self.dp = nn.ModuleList([_block(c, w, g) for c, w, g in zip(ch, widths, groups)])
        self.dp_merge = _block(256 * 3, 256, 16)
        self.dp_out = nn.Sequential(
            nn.Conv2d(64 + 128 + 256, 256, 1, bias=False),
            nn.GroupNorm(16, 256),
            nn.ReLU(inplace=True),
            nn.Conv2d(256, 2, 1, bias=True),
        )
        self.register_buffer("displacement_mean", torch.zeros(2))

    def train(self, mode: bool = True) -> "IRNet":
        super().train(mode)
        self.backbone.eval()  # frozen BatchNorm, as IRN
        return self

    def trainable_parameters(self) -> list[nn.Parameter]:
        """Parameters of the two branches (the backbone is frozen)."""
        return [p for n, p in self.named_parameters() if not n.startswith("backbone.") and p.requires_grad]

    def forward_logits(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(boundary logits (N, 1, h, w), displacement (N, 2, h, w)); see the class docstring."""
        size = grid_size(*x.shape[-2:])
        with torch.no_grad():
            feats = [f.detach() for f in self.backbone(x)]
        edges = [F.relu(_resize(blk(f), size)) for blk, f in zip(self.edge, feats)]
        edge = self.edge_out(torch.cat(edges, 1))
        d = [blk(f) for blk, f in zip(self.dp, feats)]
        shallow = [F.relu(_resize(d[0], size)), F.relu(_resize(d[1], size))]
        mid = d[2].shape[-2:]
        deep = torch.cat([F.relu(d[2]), F.relu(_resize(d[3], mid)), F.relu(_resize(d[4], mid))], 1)
        merged = F.relu(_resize(self.dp_merge(deep), size))
        disp = self.dp_out(torch.cat(shallow + [merged], 1))
        if not self.training:
            disp = disp - self.displacement_mean.view(1, 2, 1, 1)
        return edge, disp

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        edge, disp = self.forward_logits(x)
        return torch.sigmoid(edge), disp

    @torch.no_grad()
    def infer(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Inference with IRN's flip averaging of the boundary.

        Args:
            x: (3, H, W) normalised image.

        Returns:
            ``(boundary (h, w), displacement (2, h, w))``: B = sigmoid of the
            mean of the logits of the image and its mirror (IRN
            ``EdgeDisplacement``), D of the unflipped image.
        """
        was = self.training
        self.eval()
        batch = torch.stack([x, x.flip(-1)])
        edge, disp = self.forward_logits(batch)
        self.train(was)
        boundary = torch.sigmoid((edge[0, 0] + edge[1, 0].flip(-1)) / 2)
        return boundary, disp[0]
