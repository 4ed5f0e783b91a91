"""Multi-scale CAM inference, IRN's ``step/make_cam.py`` (Ahn et al., CVPR 2019).

For every scale s the frame is rescaled (bicubic, as IRN's ``pil_rescale``),
run together with its horizontal mirror, and the two stride-16 CAMs (ReLU-ed)
are summed with the mirror's flipped back; each scale's map is resized
(bilinear, ``align_corners=False``) to IRN's "strided" grid of the original
frame, ``(ceil(H/4), ceil(W/4))``, and the scales are summed. Only the frame's
tagged classes are kept, each divided by its maximum (+1e-5), so a tagged
class lies in [0, 1] with maximum ~1; untagged classes are all zero.
"""

from __future__ import annotations

import math
from typing import Sequence

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from wsvis.cam.net import CAMNet
from wsvis.torchutil import to_tensor

__all__ = ["make_cams", "strided_size", "DEFAULT_SCALES"]

#: IRN's inference scales (``--cam_scales``).
DEFAULT_SCALES = (1.0, 0.5, 1.5, 2.0)


def strided_size(size: tuple[int, int], stride: int = 4) -> tuple[int, int]:
    """IRN's ``get_strided_size``: ``(ceil(H / stride), ceil(W / stride))``."""
    return math.ceil(size[0] / stride), math.ceil(size[1] / stride)


@torch.no_grad()
def make_cams(
    model: CAMNet, image: np.ndarray, class_ids: Sequence[int], scales: Sequence[float] = DEFAULT_SCALES
) -> np.ndarray:
    """Multi-scale, flip-augmented, max-normalised CAMs of one frame.

    Args:
        model: a :class:`~wsvis.cam.net.CAMNet` (put in eval mode here; runs on
            the device of its parameters).
        image: (H, W, 3) uint8 RGB frame.
        class_ids: 0-based indices (into the model's classes) of the frame's
            tags; other classes are returned as zeros.
        scales: rescale factors of the frame (IRN: 1.0, 0.5, 1.5, 2.0).

    Returns:
        (C, ceil(H/4), ceil(W/4)) float32 CAMs; tagged classes in [0, 1]
        with maximum max / (max + 1e-5), i.e. ~1 for a trained network (a
        class whose raw CAM is zero, or tiny as with random backbone weights,
        stays near 0, as in IRN); untagged classes are 0.

    Raises:
        ValueError: a class id outside 0..C-1, no scales, or not an (H, W, 3) image.
    """
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"make_cams: expected an (H, W, 3) image, got shape {image.shape}")
    if not scales:
        raise ValueError("make_cams: no scales")
    num_classes = model.num_classes
    ids = sorted({int(c) for c in class_ids})
    if any(c < 0 or c >= num_classes for c in ids):
        raise ValueError(f"make_cams: class ids {ids} outside 0..{num_classes - 1}")
    h, w = image.shape[:2]
    out_size = strided_size((h, w), 4)
    result = np.zeros((num_classes, *out_size), np.float32)
    if not ids:
        return result
    model.eval()
    device = next(model.parameters()).device
    total = None
    for s in scales:
        size = (max(1, round(w * s)), max(1, round(h * s)))
        img = image if size == (w, h) else cv2.resize(image, size, interpolation=cv2.INTER_CUBIC)
        x = to_tensor(img).unsqueeze(0)
        x = torch.cat([x, x.flip(-1)]).to(device)
        cam = model.cam(x)
        cam = cam[0] + cam[1].flip(-1)
        cam = F.interpolate(cam[ids].unsqueeze(0), out_size, mode="bilinear", align_corners=False)[0]
        total = cam if total is None else total + cam
    total = total / (total.flatten(1).amax(dim=1).view(-1, 1, 1) + 1e-5)
    result[ids] = total.float().cpu().numpy()
    return result
