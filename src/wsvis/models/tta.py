"""Left-right flip test-time augmentation of an instance segmenter's detections (ours; the papers
test on the frame alone).

The recipe is detectron2's ``GeneralizedRCNNWithTTA`` restricted to the flip: detect on the frame and on
its mirror image, map the mirror's detections back, merge the two sets by class-wise box NMS, and give
each kept detection the mean of its mask probabilities and those of its counterpart in the other view
(the same class, box IoU >= the NMS threshold). detectron2 re-runs the mask head on the merged boxes in
each view; CondInst has no box-driven mask head (its masks come from the location's dynamic filter), so
the counterpart is the other view's own detection. A detection that the other view lacks keeps its mask.
"""

from __future__ import annotations

from typing import Callable

import torch
from torchvision.ops import batched_nms, box_iou

__all__ = ["hflip_boxes", "hflip_detections", "merge_hflip", "detect_hflip"]

Detections = dict[str, torch.Tensor]


def hflip_boxes(boxes: torch.Tensor, width: int | float) -> torch.Tensor:
    """(n, 4) xyxy pixels in an image of ``width`` pixels -> the same boxes in its mirror image."""
    return torch.stack([width - boxes[:, 2], boxes[:, 1], width - boxes[:, 0], boxes[:, 3]], 1)


def hflip_detections(det: Detections) -> Detections:
    """Detections of a mirrored frame mapped back to the frame.

    Args:
        det: ``{"boxes" (n, 4) xyxy pixels, "labels" (n,), "scores" (n,), "masks" (n, H, W) float}``.

    Returns:
        The same keys: boxes and masks mirrored (the width is the masks' W).
    """
    width = det["masks"].shape[-1]
    return {**det, "boxes": hflip_boxes(det["boxes"], width), "masks": det["masks"].flip(-1)}


def merge_hflip(det: Detections, det_mirror: Detections, *, nms_thresh: float, detections_per_img: int) -> Detections:
    """Merge the detections of a frame and of its mirror image (module docstring).

    Args:
        det: the frame's detections, keys as :func:`hflip_detections`; masks (n, H, W) probabilities.
        det_mirror: the mirror image's detections, already mapped back (:func:`hflip_detections`).
        nms_thresh: box IoU of the class-wise NMS over both sets, also the least IoU of a counterpart.
        detections_per_img: the most detections kept, highest scores first.

    Returns:
        The kept detections, the same keys; each mask the mean of its own and its counterpart's
        probabilities where it has one; box, label and score those of the kept detection.

    Raises:
        ValueError: mask sizes of the two views differ.
    """
    if det["masks"].shape[1:] != det_mirror["masks"].shape[1:]:
        raise ValueError(f"merge_hflip: masks {tuple(det['masks'].shape[1:])} vs {tuple(det_mirror['masks'].shape[1:])}")
    pool = {k: torch.cat([det[k], det_mirror[k].to(det[k].device)]) for k in ("boxes", "labels", "scores", "masks")}
    dev = pool["scores"].device
    view = torch.cat([torch.zeros(len(det["scores"]), dtype=torch.long, device=dev),
                      torch.ones(len(det_mirror["scores"]), dtype=torch.long, device=dev)])
    keep = batched_nms(pool["boxes"], pool["scores"], pool["labels"], nms_thresh)[:detections_per_img]
    out = {k: v[keep] for k, v in pool.items()}
    if len(keep):
        iou = box_iou(out["boxes"], pool["boxes"])
        other = (view[keep][:, None] != view[None]) & (out["labels"][:, None] == pool["labels"][None])
        iou = torch.where(other, iou, torch.full_like(iou, -1.0))
        best, idx = iou.max(1)
        pair = best >= nms_thresh
        # out["masks"] is already a copy (advanced indexing), so averaging in place leaves the inputs alone.
        out["masks"][pair] = (out["masks"][pair] + pool["masks"][idx[pair]]) / 2
    return out


def detect_hflip(detect: Callable[[torch.Tensor, bool], Detections], image: torch.Tensor, *, nms_thresh: float,
                 detections_per_img: int) -> Detections:
    """Flip test-time augmentation around one frame's detector.

    Args:
        detect: ``(image (3, H, W), mirrored) -> detections`` of that image (``mirrored`` tells a
            two-stream model to mirror its flow input as well: x reversed, u negated).
        image: (3, H, W) float32 RGB in [0, 1].
        nms_thresh, detections_per_img: of :func:`merge_hflip`.

    Returns:
        The merged detections (:func:`merge_hflip`).
    """
    return merge_hflip(detect(image, False), hflip_detections(detect(image.flip(-1), True)), nms_thresh=nms_thresh,
                       detections_per_img=detections_per_img)
