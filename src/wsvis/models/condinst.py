"""CondInst (Tian et al., ECCV 2020) on torchvision's FCOS, with Ikeda & Mori's two-stream encoder.

Parts (STC-Seg §IV-C; Ikeda & Mori §2.1, Fig. 2):

* **detector**: :class:`torchvision.models.detection.FCOS` (Tian et al., ICCV 2019)
  on an FPN P3..P7 (strides 8..128): ResNet-50-FPN as the papers, or
  MobileNetV2-FPN (``features[4, 7, 18]`` + P6/P7) for the CPU — the backbone
  builders of :mod:`wsvis.models.maskrcnn` with ``LastLevelP6P7``. Its head
  (:class:`CondInstHead`) adds the **controller**: a 3x3 conv on the box
  tower predicting, per location, the parameters of the dynamic mask head;
* **mask branch** on P3: four 3x3 convs, 128 channels then C_mask (8) output channels; the first
  three normalised and ReLU'd (CondInst normalises them with BatchNorm; GroupNorm here, because CPU
  batches of 1-2 images make batch statistics noise — without a norm the dynamic head's logits diverge);
  with ``mask_stride=4`` (our addition, :class:`MaskRefine`) its output is upsampled x2 and refined
  with the backbone's stride-4 features, so the dynamic head runs at 1/4 of the input instead of 1/8;
* **dynamic mask head**: three 1x1 convs with 16 channels (STC-Seg §IV-C, as
  BoxInst), input = mask-branch features + 2 **relative coordinates**
  (location minus the instance's location, divided by the size of interest of
  its FPN level: 8 x the level's stride); output upsampled x2 to **1/4 of the
  input resolution** (bilinear; CondInst's ``aligned_bilinear`` is simplified
  to ``interpolate``, a sub-pixel shift), or computed there with ``mask_stride=4``;
* **two-stream encoder** (Ikeda & Mori): the flow image goes through the
  *same* backbone + FPN; detection features fused by ``detection_fusion``
  (``sum`` paper, ``max``, ``none`` = image only, Table 4a / Table 2) and the
  mask branch applied to both P3 maps, fused by ``mask_fusion`` (``concat``
  paper, ``sum``, ``max``, ``none``; Table 4b / Table 2).

Labels are category ids 1..C (class 0 is never a positive and is not
predicted), as Mask R-CNN's. Inputs are RGB float in [0, 1], (3, H, W); the
model resizes to ``min_size``/``max_size`` and normalises itself (the flow
image with the same ImageNet statistics).
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.models.detection import FCOS
from torchvision.models.detection.fcos import FCOSHead
from torchvision.models.detection.transform import resize_boxes
from torchvision.ops import batched_nms, clip_boxes_to_image
from torchvision.ops.feature_pyramid_network import LastLevelP6P7

from wsvis.models.backbones import weights_follow
from wsvis.models.maskrcnn import MASKRCNN_BACKBONES, _mobilenet_v2_fpn, _resnet50_fpn, check_fpn_channels

#: MobileNetV2 ``features`` block whose output is the stride-4 map (24 channels).
_MOBILENET_C2 = 3

__all__ = ["FUSIONS", "MASK_STRIDES", "CondInstHead", "CondInst", "MaskRefine", "build_condinst", "load_condinst",
           "fuse"]

#: Feature fusion of the two-stream encoder (Ikeda & Mori Table 4); ``none`` = image features only.
FUSIONS = ("sum", "max", "concat", "none")

#: Strides (input pixels) the dynamic mask head can run at: 8 (CondInst: P3, logits upsampled x2) or 4.
MASK_STRIDES = (8, 4)

#: Name under which the backbone body also returns its stride-4 map when ``mask_stride=4``.
_C2 = "c2"


def fuse(a: torch.Tensor, b: torch.Tensor | None, mode: str) -> torch.Tensor:
    """Fuse appearance ``a`` and motion ``b`` feature maps (N, C, h, w): sum, max, concat (-> 2C) or none (-> a)."""
    if b is None or mode == "none":
        return a
    if mode == "sum":
        return a + b
    if mode == "max":
        return torch.maximum(a, b)
    if mode == "concat":
        return torch.cat([a, b], dim=1)
    raise ValueError(f"unknown fusion {mode!r}; choose one of {list(FUSIONS)}")


def _flat(x: torch.Tensor, k: int) -> torch.Tensor:
    """(N, k, H, W) -> (N, H*W, k), FCOS's location order."""
    n, _, h, w = x.shape
    return x.view(n, k, h, w).permute(0, 2, 3, 1).reshape(n, h * w, k)


class CondInstHead(FCOSHead):
    """FCOS head + CondInst controller (a 3x3 conv on the box tower, ``num_params`` outputs).

    ``forward(features)`` returns FCOS's ``cls_logits`` (N, L, C), ``bbox_regression``
    (N, L, 4), ``bbox_ctrness`` (N, L, 1) and ``controller`` (N, L, num_params) over
    all L locations of all levels. ``compute_loss`` is FCOS's; it keeps the
    location -> gt assignment in ``self.matched_idxs`` for the mask losses.
    """

    def __init__(self, in_channels: int, num_classes: int, num_params: int, num_convs: int = 4) -> None:
        super().__init__(in_channels, 1, num_classes, num_convs)
        self.controller = nn.Conv2d(in_channels, num_params, 3, padding=1)
        nn.init.normal_(self.controller.weight, std=0.01)
        nn.init.zeros_(self.controller.bias)
        self.num_params = num_params
        self.matched_idxs: list[torch.Tensor] = []

    def forward(self, x: list[torch.Tensor]) -> dict[str, torch.Tensor]:
        reg = self.regression_head
        boxes, ctr, params = [], [], []
        for f in x:
            tower = reg.conv(f)  # the box tower, computed once for boxes, centre-ness and controller
            boxes.append(_flat(F.relu(reg.bbox_reg(tower)), 4))
            ctr.append(_flat(reg.bbox_ctrness(tower), 1))
            params.append(_flat(self.controller(tower), self.num_params))
        return {
            "cls_logits": self.classification_head(x),
            "bbox_regression": torch.cat(boxes, 1),
            "bbox_ctrness": torch.cat(ctr, 1),
            "controller": torch.cat(params, 1),
        }

    def compute_loss(self, targets, head_outputs, anchors, matched_idxs):
        self.matched_idxs = matched_idxs
        return super().compute_loss(targets, head_outputs, anchors, matched_idxs)


class MaskRefine(nn.Module):
    """Mask-branch output at stride 8 -> stride 4, with the backbone's stride-4 features (our addition).

    ``out = up + conv3x3(relu(gn(conv3x3([up, lateral(c2)]))))`` with ``up`` the stride-8 mask
    features upsampled x2 (bilinear) and ``lateral`` a 1x1 conv + GroupNorm + ReLU of the backbone's
    stride-4 map (MobileNetV2 ``features[3]``, ResNet ``layer1``), as a semantic-segmentation decoder
    recovers edges (DeepLabv3+'s low-level skip). The last conv starts at zero, so an untrained
    refinement passes the upsampled features through. Why: at the 427x240 processing size a
    stride-8 mask is a 16-pixel grid of the 854x480 frame; the ground truth itself, area-averaged to
    that grid and upsampled, scores J 0.846 on davis2016 (0.950 at stride 4).

    ``forward(mask8, c2)``: (N, C_mask, h, w) and (N, C_low, 2h, 2w) float -> (N, C_mask, 2h, 2w).
    """

    def __init__(self, mask_channels: int, low_channels: int, width: int = 32) -> None:
        super().__init__()
        self.lateral = nn.Sequential(nn.Conv2d(low_channels, width, 1), nn.GroupNorm(min(32, width), width),
                                     nn.ReLU(inplace=True))
        self.refine = nn.Sequential(nn.Conv2d(mask_channels + width, width, 3, padding=1),
                                    nn.GroupNorm(min(32, width), width), nn.ReLU(inplace=True),
                                    nn.Conv2d(width, mask_channels, 3, padding=1))
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_uniform_(m.weight, a=1)
                nn.init.zeros_(m.bias)
        nn.init.zeros_(self.refine[-1].weight)

    def forward(self, mask8: torch.Tensor, c2: torch.Tensor) -> torch.Tensor:
        up = F.interpolate(mask8, size=c2.shape[-2:], mode="bilinear", align_corners=False)
        return up + self.refine(torch.cat([up, self.lateral(c2)], 1))


class CondInst(nn.Module):
    """CondInst / BoxInst / two-stream model (module docstring). Build with :func:`build_condinst`.

    Attributes:
        fcos: the torchvision FCOS (transform, backbone + FPN, :class:`CondInstHead`, anchors).
        mask_branch: P3 (``fpn_channels``) -> (mask_channels) at stride 8.
        mask_refine: :class:`MaskRefine` to stride 4 (``mask_stride=4``), else None.
        mask_stride: stride of the mask features and the dynamic head (8 or 4 input pixels).
        two_stream: whether a flow image is expected beside each image.
    """

    def __init__(self, fcos: FCOS, *, mask_channels: int, branch_channels: int, head_channels: int,
                 two_stream: bool, detection_fusion: str, mask_fusion: str, mask_stride: int = 8,
                 low_channels: int = 0) -> None:
        super().__init__()
        for name, mode in (("detection_fusion", detection_fusion), ("mask_fusion", mask_fusion)):
            if mode not in FUSIONS:
                raise ValueError(f"{name}: unknown fusion {mode!r}; choose one of {list(FUSIONS)}")
        if detection_fusion == "concat":
            raise ValueError("detection_fusion: 'concat' would change the FPN width; choose sum, max or none")
        self.fcos = fcos
        c = fcos.backbone.out_channels
        layers: list[nn.Module] = []
        for i in range(3):
            layers += [nn.Conv2d(c if i == 0 else branch_channels, branch_channels, 3, padding=1),
                       nn.GroupNorm(min(32, branch_channels), branch_channels), nn.ReLU(inplace=True)]
        layers.append(nn.Conv2d(branch_channels, mask_channels, 3, padding=1))
        self.mask_branch = nn.Sequential(*layers)
        for m in self.mask_branch.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_uniform_(m.weight, a=1)
                nn.init.zeros_(m.bias)
        if mask_stride not in MASK_STRIDES:
            raise ValueError(f"mask_stride must be one of {list(MASK_STRIDES)}, got {mask_stride!r}")
        self.mask_stride = int(mask_stride)
        self.mask_refine = MaskRefine(mask_channels, low_channels) if mask_stride == 4 else None
        self.two_stream = two_stream
        self.detection_fusion, self.mask_fusion = detection_fusion, mask_fusion
        self.mask_in = mask_channels * (2 if two_stream and mask_fusion == "concat" else 1)
        self.head_channels = head_channels
        self.mask_out_stride = 4

    @staticmethod
    def num_params(mask_in: int, head_channels: int) -> int:
        """Parameters of the dynamic mask head: (C_in + 2) -> H -> H -> 1 with biases."""
        return (mask_in + 2) * head_channels + head_channels + head_channels * head_channels + head_channels + head_channels + 1

    @property
    def mask_upsample(self) -> int:
        """Factor from the mask features' grid to the logits' 1/4 grid: 2 at stride 8, 1 at stride 4."""
        return self.mask_stride // self.mask_out_stride

    def _backbone(self, x: torch.Tensor) -> tuple[list[torch.Tensor], torch.Tensor | None]:
        """Backbone + FPN: the P3..P7 maps, and the body's stride-4 map when ``mask_stride`` is 4 (else None)."""
        bb = self.fcos.backbone
        body = bb.body(x)
        c2 = body.pop(_C2, None)
        return list(bb.fpn(body).values()), c2

    def _mask_features(self, p3: torch.Tensor, c2: torch.Tensor | None) -> torch.Tensor:
        mask = self.mask_branch(p3)
        return mask if self.mask_refine is None else self.mask_refine(mask, c2)

    def encode(self, images: list[torch.Tensor], flows: list[torch.Tensor] | None = None,
               targets: list[dict[str, torch.Tensor]] | None = None):
        """Transform + encoder.

        Args:
            images: N tensors (3, H_i, W_i) float RGB in [0, 1].
            flows: N flow colour images (3, H_i, W_i) in [0, 1] (two-stream), else None.
            targets: N dicts with ``boxes`` (n, 4) float xyxy frame pixels, ``labels`` (n,) int64 (training).

        Returns:
            ``(image_list, targets, det_features, mask_features)``: torchvision ImageList
            (resized, normalised, padded to /32), targets resized to it, the P3..P7 maps
            for the detector, and (N, mask_in, H'/s, W'/s) mask-branch features, s = ``mask_stride``.

        Raises:
            ValueError: a two-stream model without flows, or flows of another size.
        """
        image_list, targets = self.fcos.transform(images, targets)
        use_flow = self.two_stream and (self.detection_fusion != "none" or self.mask_fusion != "none")
        if self.two_stream and flows is None:
            raise ValueError("two-stream CondInst needs a flow image for each image")
        if use_flow:
            flow_list, _ = self.fcos.transform(flows)
            if flow_list.tensors.shape != image_list.tensors.shape:
                raise ValueError(f"flow images {tuple(flow_list.tensors.shape)} do not match images "
                                 f"{tuple(image_list.tensors.shape)}")
            n = len(images)
            both, c2 = self._backbone(torch.cat([image_list.tensors, flow_list.tensors]))
            img_feats, flow_feats = [f[:n] for f in both], [f[n:] for f in both]
            c2_img, c2_flow = (None, None) if c2 is None else (c2[:n], c2[n:])
            det = [fuse(a, b, self.detection_fusion) for a, b in zip(img_feats, flow_feats)]
            mask_img = self._mask_features(img_feats[0], c2_img)
            mask_flow = self._mask_features(flow_feats[0], c2_flow) if self.mask_fusion != "none" else None
            mask = fuse(mask_img, mask_flow, self.mask_fusion)
        else:
            det, c2 = self._backbone(image_list.tensors)
            mask = self._mask_features(det[0], c2)
        return image_list, targets, det, mask

    def dynamic_mask_head(self, mask_features: torch.Tensor, params: torch.Tensor, locations: torch.Tensor,
                          sizes_of_interest: torch.Tensor) -> torch.Tensor:
        """Masks of n instances of one image (CondInst Eq. 1-2).

        Args:
            mask_features: (mask_in, h, w) mask-branch output at stride ``mask_stride`` (8 or 4).
            params: (n, num_params) controller outputs of the instances' locations.
            locations: (n, 2) float x, y of the instances' locations, input pixels.
            sizes_of_interest: (n,) float, 8 x stride of each instance's FPN level.

        Returns:
            (n, h4, w4) float mask logits at 1/4 input resolution ((2h, 2w) at stride 8, (h, w) at 4).
        """
        n = params.shape[0]
        c, h, w = mask_features.shape
        stride = self.mask_stride
        ys = torch.arange(h, device=params.device, dtype=torch.float32) * stride
        xs = torch.arange(w, device=params.device, dtype=torch.float32) * stride
        rel_x = (locations[:, 0, None] - xs[None]) / sizes_of_interest[:, None]  # (n, w)
        rel_y = (locations[:, 1, None] - ys[None]) / sizes_of_interest[:, None]  # (n, h)
        rel = torch.stack([rel_x[:, None, :].expand(n, h, w), rel_y[:, :, None].expand(n, h, w)], 1)
        x = torch.cat([rel, mask_features[None].expand(n, c, h, w)], 1).reshape(1, n * (c + 2), h, w)
        hc = self.head_channels
        sizes = [(c + 2) * hc, hc, hc * hc, hc, hc, 1]
        w1, b1, w2, b2, w3, b3 = torch.split(params, sizes, dim=1)
        x = F.relu(F.conv2d(x, w1.reshape(n * hc, c + 2, 1, 1), b1.reshape(-1), groups=n))
        x = F.relu(F.conv2d(x, w2.reshape(n * hc, hc, 1, 1), b2.reshape(-1), groups=n))
        x = F.conv2d(x, w3.reshape(n, hc, 1, 1), b3.reshape(-1), groups=n).reshape(n, 1, h, w)
        if self.mask_upsample > 1:
            x = F.interpolate(x, scale_factor=self.mask_upsample, mode="bilinear", align_corners=False)
        return x[:, 0]

    def train_forward(self, images: list[torch.Tensor], targets: list[dict[str, torch.Tensor]],
                      flows: list[torch.Tensor] | None = None, top_k: int = 64) -> tuple[dict, dict]:
        """Training forward: FCOS losses and the mask logits of the sampled positive locations.

        The top ``top_k`` positive locations per image (CondInst / STC-Seg §IV-D: loss on the
        top 64 mask proposals), ranked by the detached score sigmoid(class of its gt) x
        sigmoid(centre-ness) — a simplification of AdelaiDet's per-instance top-k.

        Returns:
            ``(losses, masks)``: FCOS's ``classification``, ``bbox_regression``, ``bbox_ctrness``
            scalars, and ``{"logits" (M, h4, w4), "image" (M,) int64, "gt" (M,) int64 index
            into the image's targets, "image_list", "targets"}`` (targets resized to the input).
        """
        image_list, targets, feats, mask_feats = self.encode(images, flows, targets)
        head_outputs = self.fcos.head(feats)
        anchors = self.fcos.anchor_generator(image_list, feats)
        per_level = [f.shape[2] * f.shape[3] for f in feats]
        losses = self.fcos.compute_loss(targets, head_outputs, anchors, per_level)
        logits, image_idx, gt_idx = [], [], []
        for i, matched in enumerate(self.fcos.head.matched_idxs):
            pos = torch.nonzero(matched >= 0).flatten()
            if pos.numel() == 0:
                continue
            gt = matched[pos]
            if pos.numel() > top_k:
                with torch.no_grad():
                    cls = head_outputs["cls_logits"][i, pos, targets[i]["labels"][gt]].sigmoid()
                    score = cls * head_outputs["bbox_ctrness"][i, pos, 0].sigmoid()
                keep = score.topk(top_k).indices
                pos, gt = pos[keep], gt[keep]
            a = anchors[i][pos]
            logits.append(self.dynamic_mask_head(mask_feats[i], head_outputs["controller"][i, pos],
                                                 (a[:, :2] + a[:, 2:]) / 2, (a[:, 2] - a[:, 0]) * 8))
            image_idx.append(torch.full_like(gt, i))
            gt_idx.append(gt)
        h4, w4 = mask_feats.shape[-2] * self.mask_upsample, mask_feats.shape[-1] * self.mask_upsample
        empty = mask_feats.new_zeros((0, h4, w4))
        masks = {
            "logits": torch.cat(logits) if logits else empty + mask_feats.sum() * 0,
            "image": torch.cat(image_idx) if image_idx else torch.zeros(0, dtype=torch.int64),
            "gt": torch.cat(gt_idx) if gt_idx else torch.zeros(0, dtype=torch.int64),
            "image_list": image_list,
            "targets": targets,
        }
        return losses, masks

    @torch.no_grad()
    def detect(self, images: list[torch.Tensor], flows: list[torch.Tensor] | None = None, *,
               score_thresh: float = 0.05, nms_thresh: float = 0.5, detections_per_img: int = 100,
               topk_candidates: int = 1000, mask_in_box: bool = False) -> list[dict[str, torch.Tensor]]:
        """Inference: FCOS post-processing (score sqrt(sigmoid(cls) x sigmoid(ctr)), per-level
        top-k, class-wise NMS) keeping each detection's location, then its dynamic mask.

        Args:
            images / flows: as :meth:`encode`.
            score_thresh, nms_thresh, detections_per_img, topk_candidates: post-processing.
            mask_in_box: zero each mask's probabilities outside its detected box (our
                addition; CondInst does not crop: its masks may spill over the box, and a
                mask head that has not learned yet covers the whole frame). Mask R-CNN's
                masks lie in their boxes by construction; this gives CondInst the same.

        Returns:
            Per image ``{"boxes" (n, 4) float32 xyxy frame pixels, "labels" (n,) int64 in 1..C,
            "scores" (n,) float32, "masks" (n, H, W) float32 probabilities at frame size}``.
        """
        self.eval()
        sizes = [tuple(int(s) for s in img.shape[-2:]) for img in images]
        image_list, _, feats, mask_feats = self.encode(images, flows)
        out = self.fcos.head(feats)
        anchors = self.fcos.anchor_generator(image_list, feats)
        per_level = [f.shape[2] * f.shape[3] for f in feats]
        results = []
        for i, (in_size, size) in enumerate(zip(image_list.image_sizes, sizes)):
            boxes_all, scores_all, labels_all, loc_all = [], [], [], []
            start = 0
            for n_loc in per_level:
                sl = slice(start, start + n_loc)
                start += n_loc
                cls = out["cls_logits"][i, sl, 1:]  # class 0 is never a positive
                scores = torch.sqrt(cls.sigmoid() * out["bbox_ctrness"][i, sl].sigmoid()).flatten()
                idx = torch.nonzero(scores > score_thresh).flatten()
                if idx.numel() > topk_candidates:
                    idx = idx[scores[idx].topk(topk_candidates).indices]
                loc = idx // cls.shape[1] + (start - n_loc)
                boxes = self.fcos.box_coder.decode(out["bbox_regression"][i, loc], anchors[i][loc])
                boxes_all.append(clip_boxes_to_image(boxes, in_size))
                scores_all.append(scores[idx])
                labels_all.append(idx % cls.shape[1] + 1)
                loc_all.append(loc)
            boxes, scores = torch.cat(boxes_all), torch.cat(scores_all)
            labels, loc = torch.cat(labels_all), torch.cat(loc_all)
            keep = batched_nms(boxes, scores, labels, nms_thresh)[:detections_per_img]
            boxes, scores, labels, loc = boxes[keep], scores[keep], labels[keep], loc[keep]
            a = anchors[i][loc]
            if len(keep):
                logits = self.dynamic_mask_head(mask_feats[i], out["controller"][i, loc], (a[:, :2] + a[:, 2:]) / 2,
                                                (a[:, 2] - a[:, 0]) * 8)
                full = F.interpolate(logits[:, None], scale_factor=self.mask_out_stride, mode="bilinear",
                                     align_corners=False)[:, :, : in_size[0], : in_size[1]]
                probs = F.interpolate(full, size=size, mode="bilinear", align_corners=False)[:, 0].sigmoid()
            else:
                probs = torch.zeros((0, *size), device=boxes.device)
            boxes = resize_boxes(boxes, in_size, size)
            if mask_in_box and len(boxes):
                probs = probs * _inside(boxes, size).to(probs.dtype)
            results.append({"boxes": boxes, "labels": labels, "scores": scores, "masks": probs})
        return results


def _inside(boxes: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """(n, H, W) bool: pixel centres inside each xyxy box (the manifest's box convention)."""
    ys = torch.arange(size[0], device=boxes.device, dtype=boxes.dtype) + 0.5
    xs = torch.arange(size[1], device=boxes.device, dtype=boxes.dtype) + 0.5
    inx = (xs[None] >= boxes[:, 0:1]) & (xs[None] < boxes[:, 2:3])
    iny = (ys[None] >= boxes[:, 1:2]) & (ys[None] < boxes[:, 3:4])
    return iny[:, :, None] & inx[:, None, :]


def build_condinst(
    num_classes: int,
    *,
    backbone: str = "resnet50",
    weights: str = "none",
    min_size: int = 800,
    max_size: int = 1333,
    mask_channels: int = 8,
    branch_channels: int = 128,
    head_channels: int = 16,
    head_convs: int = 4,
    two_stream: bool = False,
    detection_fusion: str = "sum",
    mask_fusion: str = "concat",
    mask_stride: int = 8,
    trainable_layers: int | None = None,
    frozen_bn: bool | None = None,
    fpn_channels: int = 256,
) -> CondInst:
    """Build CondInst (one stream) or the two-stream model of Ikeda & Mori (module docstring).

    Args:
        num_classes: categories + 1 (class k >= 1 is category id k; 0 unused).
        backbone: ``"resnet50"`` (papers) or ``"mobilenet_v2"`` (CPU).
        weights: ``"none" | "imagenet" | PATH`` for the backbone (as :func:`wsvis.models.maskrcnn.build_maskrcnn`).
        min_size, max_size: torchvision's resize (pixels; CondInst 800 / 1333).
        mask_channels: C_mask, the mask branch's output channels (CondInst 8).
        branch_channels: the mask branch's width (128).
        head_channels: dynamic mask head width (STC-Seg / BoxInst 16).
        head_convs: 3x3 conv + GroupNorm + ReLU layers in each FCOS tower (classification; box,
            centre-ness and controller) at 256 channels on every level (FCOS / CondInst 4). The towers
            are most of a CPU iteration's time; fewer buy iterations.
        two_stream: expect a flow image beside each image (Ikeda & Mori).
        detection_fusion: ``sum | max | none`` (two-stream only).
        mask_fusion: ``concat | sum | max | none`` (two-stream only).
        mask_stride: 8 (CondInst: the dynamic head on the mask branch at stride 8, its logits
            upsampled x2) or 4 (our addition: :class:`MaskRefine` brings the mask features to stride
            4 with the backbone's stride-4 map; 1.05x the time of a CPU training iteration at 427x240).
        trainable_layers, frozen_bn: as :func:`wsvis.models.maskrcnn.build_maskrcnn`.
        fpn_channels: width of P3..P7 and of the FCOS towers on them (FCOS / CondInst: 256);
            ``mobilenet_v2`` only, as :func:`wsvis.models.maskrcnn.build_maskrcnn`. The towers'
            cost falls with its square.

    Returns:
        The model in train mode on the CPU.

    Raises:
        ValueError: unknown backbone or fusion, ``num_classes`` < 2, a weights file that does not fit.
        FileNotFoundError: a weights PATH that does not exist.
    """
    if backbone not in MASKRCNN_BACKBONES:
        raise ValueError(f"unknown CondInst backbone {backbone!r}; choose one of {list(MASKRCNN_BACKBONES)}")
    if num_classes < 2:
        raise ValueError(f"num_classes counts the background and must be >= 2, got {num_classes}")
    if isinstance(weights, os.PathLike):
        weights = os.fspath(weights)
    if frozen_bn is None:
        frozen_bn = weights != "none"
    check_fpn_channels(backbone, fpn_channels)
    extra = LastLevelP6P7(fpn_channels, fpn_channels)
    if backbone == "resnet50":
        body = _resnet50_fpn(weights, trainable_layers, frozen_bn, returned_layers=[2, 3, 4], extra_blocks=extra)
    else:
        body = _mobilenet_v2_fpn(weights, trainable_layers, frozen_bn, extra_blocks=extra, out_channels=fpn_channels)
    low_channels = 0  # CondInst checks mask_stride
    if mask_stride == 4:
        # The FPN body also hands out its stride-4 map; CondInst._backbone takes it off before the FPN.
        layer = "layer1" if backbone == "resnet50" else str(_MOBILENET_C2)
        body.body.return_layers[layer] = _C2
        low_channels = 256 if backbone == "resnet50" else body.body[layer].out_channels
    mask_in = mask_channels * (2 if two_stream and mask_fusion == "concat" else 1)
    if head_convs < 1:
        raise ValueError(f"head_convs must be >= 1, got {head_convs}")
    head = CondInstHead(fpn_channels, num_classes, CondInst.num_params(mask_in, head_channels), num_convs=head_convs)
    fcos = FCOS(body, num_classes, min_size=min_size, max_size=max_size, head=head)
    return CondInst(fcos, mask_channels=mask_channels, branch_channels=branch_channels, head_channels=head_channels,
                    two_stream=two_stream, detection_fusion=detection_fusion, mask_fusion=mask_fusion,
                    mask_stride=mask_stride, low_channels=low_channels)


#: Keys of ``model.pt`` that rebuild the architecture.
ARCH_KEYS = ("backbone", "min_size", "max_size", "mask_channels", "branch_channels", "head_channels", "head_convs",
             "two_stream", "detection_fusion", "mask_fusion", "frozen_bn", "mask_stride", "fpn_channels")


def load_condinst(path: str | os.PathLike, device: str | torch.device = "cpu") -> tuple[CondInst, dict]:
    """Load ``model.pt`` of :func:`wsvis.boxsup.train.train_condinst` (``weights_only=True``).

    Returns:
        ``(model in eval mode, stored dict without "model")``.

    Raises:
        FileNotFoundError: no such file.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"CondInst model not found: {path} (run the training stage first)")
    state = torch.load(path, map_location="cpu", weights_only=True)
    state.setdefault("head_convs", 4)  # a model.pt written before the option: the papers' towers
    state.setdefault("mask_stride", 8)  # likewise: CondInst's
    state.setdefault("fpn_channels", 256)  # likewise: FPN's
    with weights_follow():
        model = build_condinst(len(state["categories"]) + 1, weights="none", **{k: state[k] for k in ARCH_KEYS})
    model.load_state_dict(state["model"])
    return model.to(device).eval(), {k: v for k, v in state.items() if k != "model"}
