"""IRN's CAM classifier (Ahn et al., "Weakly Supervised Learning of Instance
Segmentation with Inter-pixel Relations", CVPR 2019; ``net/resnet50_cam.py``).

A backbone's last feature level (output stride 16) -> global average pooling
-> 1x1 convolution without bias -> class logits. The class activation map
(CAM, Zhou et al. 2016) of class c is the same 1x1 convolution applied at every
position of the feature map, followed by ReLU.

As in IRN:

* every BatchNorm layer stays in eval mode (running statistics frozen; IRN's
  ``FixedBatchNorm``); its affine parameters train like the other weights of
  the trainable levels;
* the early levels do not train. IRN sets ``requires_grad=False`` on conv1/bn1
  and ``detach()``-es the output of its stage 2 (layer2, stride 8), so nothing
  up to stride 8 receives a gradient. Here the first ``frozen_levels`` (default
  3: the levels up to stride 8 for both registered backbones) run under
  ``torch.no_grad`` with ``requires_grad=False``;
* :meth:`CAMNet.trainable_parameters` gives (backbone, classifier) groups so the
  classifier can take IRN's 10x learning rate.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from wsvis.models.backbones import build_backbone

__all__ = ["CAMNet"]


class CAMNet(nn.Module):
    """Multi-label classifier whose 1x1 classifier gives class activation maps.

    Args:
        backbone: a key of :data:`wsvis.models.backbones.BACKBONES`
            (``"resnet50"``, ``"mobilenet_v2"``).
        num_classes: C, the number of categories (no background class).
        weights: backbone weights, ``"none"`` | ``"imagenet"`` | PATH (see
            :mod:`wsvis.models.backbones`).
        frozen_levels: how many of the five backbone levels (finest first) are
            frozen (IRN: everything up to stride 8, i.e. 3).

    Raises:
        ValueError: unknown backbone, ``num_classes < 1``, or ``frozen_levels``
            outside 0..4.
    """

    def __init__(self, backbone: str, num_classes: int, weights: str = "none", frozen_levels: int = 3) -> None:
        super().__init__()
        if num_classes < 1:
            raise ValueError(f"num_classes must be >= 1, got {num_classes}")
        if not 0 <= frozen_levels <= 4:
            raise ValueError(f"frozen_levels must be in 0..4, got {frozen_levels}")
        self.backbone_name = backbone
        self.num_classes = int(num_classes)
        self.frozen_levels = int(frozen_levels)
        self.backbone = build_backbone(backbone, weights)
        self.classifier = nn.Conv2d(self.backbone.channels[-1], num_classes, 1, bias=False)
        for stage in self.backbone.stages[: self.frozen_levels]:
            for p in stage.parameters():
                p.requires_grad_(False)
        self.train(False)

    def train(self, mode: bool = True) -> "CAMNet":
        """Set train/eval mode; BatchNorm layers always stay in eval mode (frozen statistics)."""
        super().train(mode)
        for m in self.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                m.eval()
        return self

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """x (N, 3, H, W) float32 ImageNet-normalised -> (N, D, ceil(H/16), ceil(W/16)) last-level features."""
        stages = self.backbone.stages
        with torch.no_grad():
            for stage in stages[: self.frozen_levels]:
                x = stage(x)
        for stage in stages[self.frozen_levels :]:
            x = stage(x)
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x (N, 3, H, W) float32 ImageNet-normalised -> logits (N, C) float32."""
        f = self.features(x)
        f = f.mean(dim=(2, 3), keepdim=True)
        return self.classifier(f).flatten(1)

    def cam(self, x: torch.Tensor) -> torch.Tensor:
        """x (N, 3, H, W) -> CAMs (N, C, ceil(H/16), ceil(W/16)) float32, ReLU-ed, unnormalised."""
        return F.relu(F.conv2d(self.features(x), self.classifier.weight))

    def trainable_parameters(self) -> tuple[list[nn.Parameter], list[nn.Parameter]]:
        """``(backbone, classifier)`` parameter lists (frozen parameters left out), IRN's two lr groups."""
        backbone = [p for p in self.backbone.parameters() if p.requires_grad]
        return backbone, list(self.classifier.parameters())
