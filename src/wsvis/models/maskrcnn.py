"""Mask R-CNN (He et al., ICCV 2017) on torchvision, the segmenter that MaskConsist trains.

Two backbones, both with an FPN (Lin et al., CVPR 2017) and torchvision's
standard heads (RPN, two-MLP box head, four-conv mask head at 14x14 -> 28x28):

=============  ===============================================  =====================================
name           feature levels (stride) -> FPN                   use
=============  ===============================================  =====================================
resnet50       C2..C5 (4, 8, 16, 32) + max-pool P6              the paper's model (MaskConsist §4.2),
                                                                ``torchvision``'s maskrcnn_resnet50_fpn
mobilenet_v2   features[4] (8), features[7] (16),               light CPU model (demo run, tests);
               features[18] (32) + max-pool (64)                torchvision's ``mobilenet_backbone``
                                                                FPN recipe, 256 FPN channels
                                                                (``fpn_channels``)
=============  ===============================================  =====================================

``weights`` (backbone only; the detection heads always start random):

* ``"none"``: random backbone, trainable BatchNorm, every stage trainable;
* ``"imagenet"``: torchvision's weights API (``ResNet50_Weights.IMAGENET1K_V1`` /
  ``MobileNet_V2_Weights.IMAGENET1K_V1``); downloads once, so it needs the
  network — kept for paper-scale runs, not exercised by the offline tests;
* a PATH: a local state_dict read with ``torch.load(weights_only=True)``:
  the whole torchvision classifier's state_dict, or for MobileNetV2 the
  ``features`` state_dict of ``resources/weights/mobilenet_v2_features_imagenet.pt``.

With pretrained weights the backbone's BatchNorm is frozen
(``FrozenBatchNorm2d``) and only the last ``trainable_layers`` stages train
(torchvision's detection defaults: 3), as in torchvision and detectron2.

Resolution: torchvision resizes every image so that its short side is
``min_size`` unless the long side would exceed ``max_size`` (defaults 800 /
1333 are GPU settings; pass small values on CPU, e.g. 240 / 427 for the demo).
Inputs to the model are RGB float tensors in [0, 1], (3, H, W); the model
normalises with the ImageNet mean/std itself.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
import torchvision
from torch import nn
from torchvision.models.detection import MaskRCNN
from torchvision.models.detection.anchor_utils import AnchorGenerator
from torchvision.models.detection.backbone_utils import BackboneWithFPN, resnet_fpn_backbone
from torchvision.models.detection.mask_rcnn import MaskRCNNHeads, MaskRCNNPredictor
from torchvision.ops import MultiScaleRoIAlign
from torchvision.ops.feature_pyramid_network import LastLevelMaxPool
from torchvision.ops.misc import FrozenBatchNorm2d

from wsvis.models.backbones import warn_random_weights, weights_follow
from wsvis.torchutil import load_state_dict_file

__all__ = ["MASKRCNN_BACKBONES", "build_maskrcnn", "check_fpn_channels", "load_maskrcnn", "paste_masks", "detect"]

#: Backbone names :func:`build_maskrcnn` accepts.
MASKRCNN_BACKBONES = ("resnet50", "mobilenet_v2")

#: MobileNetV2 ``features`` indices fed to the FPN (outputs at stride 8, 16, 32).
_MOBILENET_LEVELS = (4, 7, 18)


def _load_into(module: nn.Module, path: str, what: str) -> None:
    """Load a state_dict file into ``module`` (classifier keys ``fc.``/``classifier.`` ignored).

    Raises:
        FileNotFoundError: no such file.
        ValueError: the file does not fit ``module``.
    """
    state = load_state_dict_file(path)
    if any(k.startswith("features.") for k in state):  # whole torchvision MobileNetV2
        state = {k[len("features."):]: v for k, v in state.items() if k.startswith("features.")}
    state = {k: v for k, v in state.items() if not k.startswith(("fc.", "classifier."))}
    missing, unexpected = module.load_state_dict(state, strict=False)
    missing = [k for k in missing if not k.endswith("num_batches_tracked")]
    if missing or unexpected:
        raise ValueError(f"{path}: does not fit the {what} backbone (missing {missing[:5]}, unexpected {unexpected[:5]})")


def _resnet50_fpn(
    weights: str,
    trainable_layers: int | None,
    frozen_bn: bool,
    returned_layers: list[int] | None = None,
    extra_blocks: nn.Module | None = None,
) -> nn.Module:
    """ResNet-50-FPN; default levels C2..C5 + max-pool (Mask R-CNN). FCOS / CondInst pass
    ``returned_layers=[2, 3, 4]`` and ``LastLevelP6P7`` for P3..P7."""
    fpn = dict(returned_layers=returned_layers, extra_blocks=extra_blocks)
    pretrained = weights != "none"
    if not pretrained:
        warn_random_weights("ResNet-50-FPN backbone")
    tl = (3 if pretrained else 5) if trainable_layers is None else trainable_layers
    tv_weights = torchvision.models.ResNet50_Weights.IMAGENET1K_V1 if weights == "imagenet" else None
    norm = FrozenBatchNorm2d if frozen_bn else nn.BatchNorm2d
    if weights not in ("none", "imagenet"):
        # Build unfrozen, load the file into the ResNet body, then freeze as torchvision would.
        backbone = resnet_fpn_backbone(
            backbone_name="resnet50", weights=None, norm_layer=norm, trainable_layers=5, **fpn
        )
        _load_into(backbone.body, weights, "resnet50")
        layers = ["layer4", "layer3", "layer2", "layer1", "conv1"][:tl]
        if tl == 5:
            layers.append("bn1")
        for name, p in backbone.body.named_parameters():
            if all(not name.startswith(layer) for layer in layers):
                p.requires_grad_(False)
        return backbone
    return resnet_fpn_backbone(backbone_name="resnet50", weights=tv_weights, norm_layer=norm, trainable_layers=tl, **fpn)


def check_fpn_channels(backbone: str, fpn_channels: int) -> None:
    """Raise ValueError unless ``fpn_channels`` fits ``backbone``: >= 8, and 256 for ``resnet50``
    (torchvision's ResNet-FPN has no width argument; the paper model keeps it)."""
    if fpn_channels < 8:
        raise ValueError(f"fpn_channels must be >= 8, got {fpn_channels}")
    if backbone == "resnet50" and fpn_channels != 256:
        raise ValueError(f"fpn_channels {fpn_channels}: the resnet50 backbone keeps torchvision's 256")


def _mobilenet_v2_fpn(
    weights: str, trainable_layers: int | None, frozen_bn: bool, extra_blocks: nn.Module | None = None,
    out_channels: int = 256,
) -> nn.Module:
    """MobileNetV2-FPN on ``features[4, 7, 18]`` (stride 8, 16, 32) + ``extra_blocks``
    (default max-pool, stride 64, as Mask R-CNN; CondInst passes ``LastLevelP6P7``),
    ``out_channels`` channels on every level (FPN: 256)."""
    pretrained = weights != "none"
    if not pretrained:
        warn_random_weights("MobileNetV2-FPN backbone")
    norm = FrozenBatchNorm2d if frozen_bn else nn.BatchNorm2d
    if weights == "imagenet":
        net = torchvision.models.mobilenet_v2(weights=torchvision.models.MobileNet_V2_Weights.IMAGENET1K_V1, norm_layer=norm)
    else:
        net = torchvision.models.mobilenet_v2(weights=None, norm_layer=norm)
        if pretrained:
            _load_into(net.features, weights, "mobilenet_v2")
    features = net.features
    # torchvision's _mobilenet_extractor: stages start at the strided blocks.
    stage_indices = [0] + [i for i, b in enumerate(features) if getattr(b, "_is_cn", False)] + [len(features) - 1]
    tl = (3 if pretrained else len(stage_indices)) if trainable_layers is None else trainable_layers
    if not 0 <= tl <= len(stage_indices):
        raise ValueError(f"trainable_layers must be in [0, {len(stage_indices)}], got {tl}")
    freeze_before = len(features) if tl == 0 else stage_indices[len(stage_indices) - tl]
    for block in features[:freeze_before]:
        for p in block.parameters():
            p.requires_grad_(False)
    return_layers = {str(i): str(k) for k, i in enumerate(_MOBILENET_LEVELS)}
    in_channels = [features[i].out_channels for i in _MOBILENET_LEVELS]
    return BackboneWithFPN(
        features, return_layers, in_channels, out_channels, extra_blocks=extra_blocks or LastLevelMaxPool()
    )


def build_maskrcnn(
    num_classes: int,
    *,
    backbone: str = "resnet50",
    weights: str = "none",
    min_size: int = 800,
    max_size: int = 1333,
    box_score_thresh: float = 0.05,
    box_nms_thresh: float = 0.5,
    detections_per_img: int = 100,
    trainable_layers: int | None = None,
    frozen_bn: bool | None = None,
    rois_per_image: int = 512,
    test_proposals: int = 1000,
    fpn_channels: int = 256,
) -> MaskRCNN:
    """Build a torchvision :class:`~torchvision.models.detection.MaskRCNN` (He et al., ICCV 2017).

    Args:
        num_classes: number of classes *including* background (categories + 1);
            class ``k`` >= 1 is category id ``k`` (1-based, as ``gt.json``).
        backbone: ``"resnet50"`` (paper, MaskConsist §4.2) or ``"mobilenet_v2"`` (CPU).
        weights: ``"none" | "imagenet" | PATH`` for the backbone (module docstring);
            ``"none"`` logs "... backbone with random weights" unless built inside
            :func:`wsvis.models.backbones.weights_follow` (the loaders).
        min_size, max_size: torchvision's resize of the input (pixels, short / long side).
        box_score_thresh, box_nms_thresh: inference score threshold and per-class
            NMS IoU (paper §4.2: 0.05 and 0.5).
        detections_per_img: detections kept per image at inference.
        trainable_layers: backbone stages that train (None: 3 with pretrained
            weights, all without).
        frozen_bn: backbone BatchNorm frozen (``FrozenBatchNorm2d``); None:
            frozen exactly when ``weights`` is pretrained. :func:`load_maskrcnn`
            passes the trained model's value so its state_dict fits.
        rois_per_image: RoIs sampled per training image for the box head
            (torchvision / detectron2 default 512; training only — the
            two-MLP box head on these RoIs dominates a CPU iteration at small
            resolution, so tiny runs may lower it).
        test_proposals: RPN proposals kept per image after NMS at inference,
            which the box head classifies (torchvision / detectron2 FPN default
            1000; Faster R-CNN, Ren et al. 2015: 300). The box head on them is
            most of a CPU inference at small resolution.
        fpn_channels: width of the FPN levels and of every head on them: RPN conv, box head
            input (``fpn_channels`` x 7 x 7 into the 1024-wide MLP), the four mask-head convs
            and the mask predictor's deconvolution (FPN / Mask R-CNN: 256, torchvision's
            model). ``mobilenet_v2`` only; a lower width divides these heads' cost by
            (256 / fpn_channels)^2, most of a CPU iteration at 427x240.

    Returns:
        The model (train mode, on CPU).

    Raises:
        ValueError: unknown backbone, ``num_classes`` < 2, or a weights file that does not fit.
        FileNotFoundError: a weights PATH that does not exist.
    """
    if backbone not in MASKRCNN_BACKBONES:
        raise ValueError(f"unknown Mask R-CNN backbone {backbone!r}; choose one of {list(MASKRCNN_BACKBONES)}")
    if num_classes < 2:
        raise ValueError(f"num_classes counts the background and must be >= 2, got {num_classes}")
    if isinstance(weights, os.PathLike):
        weights = os.fspath(weights)
    if frozen_bn is None:
        frozen_bn = weights != "none"
    common = dict(
        num_classes=num_classes,
        min_size=min_size,
        max_size=max_size,
        box_score_thresh=box_score_thresh,
        box_nms_thresh=box_nms_thresh,
        box_detections_per_img=detections_per_img,
        box_batch_size_per_image=rois_per_image,
        rpn_post_nms_top_n_test=test_proposals,
    )
    check_fpn_channels(backbone, fpn_channels)
    if backbone == "resnet50":
        return MaskRCNN(_resnet50_fpn(weights, trainable_layers, frozen_bn), **common)
    body = _mobilenet_v2_fpn(weights, trainable_layers, frozen_bn, out_channels=fpn_channels)
    narrow = fpn_channels != 256
    if narrow:  # torchvision builds 256-wide mask heads whatever the FPN's width
        common["mask_head"] = MaskRCNNHeads(fpn_channels, (fpn_channels,) * 4, 1)
    names = [str(k) for k in range(len(_MOBILENET_LEVELS))]
    anchors = AnchorGenerator(sizes=((32,), (64,), (128,), (256,)), aspect_ratios=((0.5, 1.0, 2.0),) * 4)
    model = MaskRCNN(
        body,
        rpn_anchor_generator=anchors,
        box_roi_pool=MultiScaleRoIAlign(featmap_names=names, output_size=7, sampling_ratio=2),
        mask_roi_pool=MultiScaleRoIAlign(featmap_names=names, output_size=14, sampling_ratio=2),
        **common,
    )
    if narrow:  # its predictor takes num_classes only beside a box predictor: replaced after the build
        model.roi_heads.mask_predictor = MaskRCNNPredictor(fpn_channels, fpn_channels, num_classes)
    return model


def load_maskrcnn(path: str | os.PathLike, device: str | torch.device = "cpu", **overrides) -> tuple[MaskRCNN, dict]:
    """Load ``model.pt`` written by :func:`wsvis.maskconsist.train.train_maskrcnn` (``weights_only=True``).

    Args:
        path: the ``model.pt`` file.
        device: where to put the model.
        overrides: keyword arguments of :func:`build_maskrcnn` replacing the
            stored ones (e.g. ``box_score_thresh``, ``detections_per_img``).

    Returns:
        ``(model in eval mode, stored dict without "model")``.

    Raises:
        FileNotFoundError: no such file.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"Mask R-CNN model not found: {path} (run the training stage first)")
    state = torch.load(path, map_location="cpu", weights_only=True)
    kwargs = dict(
        backbone=state["backbone"],
        min_size=state["min_size"],
        max_size=state["max_size"],
        frozen_bn=bool(state.get("frozen_bn", False)),
        fpn_channels=int(state.get("fpn_channels", 256)),
    )
    kwargs.update(overrides)
    with weights_follow():
        model = build_maskrcnn(len(state["categories"]) + 1, weights="none", **kwargs)
    model.load_state_dict(state["model"])
    meta = {k: v for k, v in state.items() if k != "model"}
    return model.to(device).eval(), meta


def paste_masks(probs: torch.Tensor, boxes: torch.Tensor, size: tuple[int, int], chunk: int = 32) -> torch.Tensor:
    """Paste RoI mask probabilities into the full image (detectron2's ``_do_paste_mask`` with ``grid_sample``).

    Faster on the CPU than torchvision's per-mask ``paste_masks_in_image``
    (one batched bilinear sampling instead of a Python loop of resizes).

    Args:
        probs: (N, M, M) or (N, 1, M, M) float mask probabilities in [0, 1].
        boxes: (N, 4) float xyxy boxes in pixels of the output image.
        size: (H, W) of the output image.
        chunk: masks sampled at once (bounds memory: chunk x H x W x 2 floats).

    Returns:
        (N, H, W) float32 probabilities; 0 outside each box.
    """
    h, w = int(size[0]), int(size[1])
    if probs.ndim == 3:
        probs = probs[:, None]
    n = probs.shape[0]
    out = torch.zeros((n, h, w), dtype=torch.float32, device=probs.device)
    ys = torch.arange(h, device=probs.device, dtype=torch.float32) + 0.5
    xs = torch.arange(w, device=probs.device, dtype=torch.float32) + 0.5
    for s in range(0, n, chunk):
        b = boxes[s : s + chunk].float()
        x0, y0, x1, y1 = (b[:, i : i + 1] for i in range(4))
        gy = (ys[None] - y0) / (y1 - y0).clamp(min=1e-6) * 2 - 1  # (n, H)
        gx = (xs[None] - x0) / (x1 - x0).clamp(min=1e-6) * 2 - 1  # (n, W)
        grid = torch.stack(
            (gx[:, None, :].expand(-1, h, -1), gy[:, :, None].expand(-1, -1, w)), dim=3
        )  # (n, H, W, 2)
        out[s : s + chunk] = torch.nn.functional.grid_sample(
            probs[s : s + chunk].float(), grid, align_corners=False
        )[:, 0]
    return out


@torch.no_grad()
def detect(model: MaskRCNN, images: list[torch.Tensor]) -> list[dict[str, torch.Tensor]]:
    """Inference of a torchvision Mask R-CNN with :func:`paste_masks` for the full-size masks.

    Same result as ``model.eval()(images)`` up to the mask pasting
    (bilinear sampling of the 28x28 mask inside its box).

    Args:
        model: a Mask R-CNN (switched to eval mode and left so).
        images: list of (3, H, W) float32 RGB in [0, 1].

    Returns:
        Per image ``{"boxes": (n, 4) float32 xyxy pixels, "labels": (n,) int64,
        "scores": (n,) float32, "masks": (n, H, W) float32 probabilities}``.
    """
    from torchvision.models.detection.transform import resize_boxes

    model.eval()
    sizes = [tuple(img.shape[-2:]) for img in images]
    image_list, _ = model.transform(images)
    features = model.backbone(image_list.tensors)
    proposals, _ = model.rpn(image_list, features)
    dets, _ = model.roi_heads(features, proposals, image_list.image_sizes)
    out = []
    for det, in_size, size in zip(dets, image_list.image_sizes, sizes):
        boxes = resize_boxes(det["boxes"], in_size, size)
        out.append(
            {
                "boxes": boxes,
                "labels": det["labels"],
                "scores": det["scores"],
                "masks": paste_masks(det["masks"], boxes, size),
            }
        )
    return out
