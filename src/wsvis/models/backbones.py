"""Backbones with multi-level features, in a registry (CAM classifier, IRN, detectors).

Each backbone returns five feature maps, finest first, as IRN's ResNet-50
(Ahn et al., CVPR 2019) exposes them to its boundary and displacement
branches; the last one, at output stride 16, feeds the CAM classifier.

=============  ==========================  ===========================
name           levels (stride: channels)   notes
=============  ==========================  ===========================
resnet50       4:64, 4:256, 8:512,         layer4 dilated (stride 1,
               16:1024, 16:2048            dilation 2): output stride 16,
                                           the flowIRN / IRN choice
mobilenet_v2   2:16, 4:24, 8:32,           blocks 14-18 dilated: output
               16:96, 16:1280              stride 16; CPU default
=============  ==========================  ===========================

``weights``: ``"none"`` (random init), ``"imagenet"`` (torchvision's weights
API: downloads once, needs network), or a PATH to a local state_dict loaded
with ``torch.load(weights_only=True)`` — either the whole torchvision model's
state_dict or, for MobileNetV2, the ``features`` state_dict of
``resources/weights/mobilenet_v2_features_imagenet.pt``.
"""

from __future__ import annotations

import contextlib
import logging
from contextvars import ContextVar
from typing import Callable, Iterator

import torch
import torchvision
from torch import nn

from wsvis.torchutil import load_state_dict_file

__all__ = ["Backbone", "BACKBONES", "build_backbone", "weights_follow", "warn_random_weights"]

log = logging.getLogger(__name__)

_WEIGHTS_FOLLOW: ContextVar[bool] = ContextVar("wsvis_weights_follow", default=False)


@contextlib.contextmanager
def weights_follow() -> Iterator[None]:
    """Build models with ``weights="none"`` whose trained weights are loaded right after.

    The model loaders (``load_irn``, ``load_cam_model``, ``load_maskrcnn``,
    ``load_condinst``) build the network with ``weights="none"`` only to
    allocate the tensors their ``model.pt`` replaces; inside this block
    :func:`warn_random_weights` stays silent, so a log does not claim random
    weights for a trained model. Context-local (thread- and task-safe).
    """
    token = _WEIGHTS_FOLLOW.set(True)
    try:
        yield
    finally:
        _WEIGHTS_FOLLOW.reset(token)


def warn_random_weights(what: str) -> None:
    """Log that ``what`` starts from random weights (``weights: none``), unless inside :func:`weights_follow`."""
    if not _WEIGHTS_FOLLOW.get():
        log.warning("%s with random weights (weights: none)", what)


class Backbone(nn.Module):
    """Five-level feature extractor.

    Attributes:
        channels: channels of the five levels.
        strides: output stride of each level relative to the input (pixels).

    ``forward(x)``: x (N, 3, H, W) float32, ImageNet-normalised RGB ->
    list of five tensors (N, channels[i], ceil(H / strides[i]), ceil(W / strides[i])).
    """

    def __init__(self, stages: list[nn.Module], channels: list[int], strides: list[int]) -> None:
        super().__init__()
        self.stages = nn.ModuleList(stages)
        self.channels = list(channels)
        self.strides = list(strides)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        feats = []
        for stage in self.stages:
            x = stage(x)
            feats.append(x)
        return feats


def _load(model: nn.Module, weights: str, tv_weights: Callable[[], object], features_only: nn.Module | None) -> None:
    if weights == "none":
        warn_random_weights("backbone")
        return
    if weights == "imagenet":
        state = tv_weights().get_state_dict(progress=False)
        model.load_state_dict(state)
        return
    state = load_state_dict_file(weights)
    target = model
    if features_only is not None and not any(k.startswith("features.") for k in state):
        target = features_only
    missing, unexpected = target.load_state_dict(state, strict=False)
    # A classifier head in the file, or missing in it, is fine: the backbone part must match.
    missing = [k for k in missing if not k.startswith(("fc.", "classifier."))]
    unexpected = [k for k in unexpected if not k.startswith(("fc.", "classifier."))]
    if missing or unexpected:
        raise ValueError(f"{weights}: does not fit the backbone (missing {missing[:5]}, unexpected {unexpected[:5]})")


def resnet50(weights: str = "none") -> Backbone:
    """ResNet-50 at output stride 16 (layer4 dilated), IRN's five levels."""
    model = torchvision.models.resnet50(weights=None, replace_stride_with_dilation=[False, False, True])
    _load(model, weights, lambda: torchvision.models.ResNet50_Weights.IMAGENET1K_V1, None)
    stages = [
        nn.Sequential(model.conv1, model.bn1, model.relu, model.maxpool),
        model.layer1,
        model.layer2,
        model.layer3,
        model.layer4,
    ]
    return Backbone(stages, [64, 256, 512, 1024, 2048], [4, 4, 8, 16, 16])


def _dilate(module: nn.Module) -> None:
    """Turn the stride-2 depthwise conv into stride 1 and dilate every 3x3 conv by 2 (same receptive field)."""
    for m in module.modules():
        if isinstance(m, nn.Conv2d) and m.kernel_size == (3, 3):
            m.stride = (1, 1)
            m.dilation = (2, 2)
            m.padding = (2, 2)


def mobilenet_v2(weights: str = "none") -> Backbone:
    """MobileNetV2 with blocks 14-18 dilated (output stride 16), five levels."""
    model = torchvision.models.mobilenet_v2(weights=None)
    _load(model, weights, lambda: torchvision.models.MobileNet_V2_Weights.IMAGENET1K_V1, model.features)
    f = model.features
    for block in f[14:18]:
        _dilate(block)
    stages = [f[0:2], f[2:4], f[4:7], f[7:14], f[14:19]]
    return Backbone(stages, [16, 24, 32, 96, 1280], [2, 4, 8, 16, 16])


#: Config string -> constructor taking ``weights``.
BACKBONES: dict[str, Callable[..., Backbone]] = {"resnet50": resnet50, "mobilenet_v2": mobilenet_v2}


def build_backbone(name: str, weights: str = "none") -> Backbone:
    """Build backbone ``name`` of :data:`BACKBONES` with ``weights`` (see module docstring).

    Raises:
        ValueError: unknown name (lists the choices) or a weights file that does not fit.
        FileNotFoundError: a weights PATH that does not exist.
    """
    if name not in BACKBONES:
        raise ValueError(f"unknown backbone {name!r}; choose one of {sorted(BACKBONES)}")
    return BACKBONES[name](weights=weights)
