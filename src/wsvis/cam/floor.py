"""The CAM "floor" pseudo-labeler: instances straight from (f-)CAMs, no IRN.

The lower bound every refinement (IRN, flowIRN, STC) must beat. Per frame
(IRN's ``cam_eval`` labelling, Ahn et al., CVPR 2019, ``cam_eval_thres`` 0.15):

1. upsample the stride-4 CAMs to the frame: bilinear (``align_corners=False``)
   to (4h, 4w), the size the stride-4 grid covers, then crop to (H, W), as
   IRN does with its "strided up" size;
2. a pixel is background when its maximum CAM is not above ``threshold``
   (IRN pads a background channel of value ``threshold`` in front and takes
   the arg-max, so a tie goes to background), else it takes the arg-max class;
3. one instance per connected region of each class (``scipy.ndimage.label``
   with 8-connectivity, a 3x3 structuring element), scored by the maximum CAM
   of its class inside the region.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from scipy import ndimage
from tqdm import tqdm

from wsvis.cam.stage import read_cams
from wsvis.io.pseudo import PseudoLabelWriter

__all__ = ["cam_floor_instances", "compute_cam_floor", "upsample_cam"]

_EIGHT = np.ones((3, 3), bool)


def upsample_cam(cam: np.ndarray, frame_size: tuple[int, int], stride: int = 4) -> np.ndarray:
    """(C, h, w) stride-``stride`` CAMs -> (C, H, W) float32 on the frame grid (bilinear, see module doc)."""
    cam = torch.from_numpy(np.ascontiguousarray(cam, dtype=np.float32))
    h, w = cam.shape[1:]
    H, W = frame_size
    up = F.interpolate(cam[None], (max(h * stride, H), max(w * stride, W)), mode="bilinear", align_corners=False)[0]
    return up[:, :H, :W].numpy()


def cam_floor_instances(
    cam: np.ndarray, frame_size: tuple[int, int], threshold: float = 0.15
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Instances of one frame from its CAMs (connected regions of the arg-max class map).

    Args:
        cam: (C, h, w) float CAMs at stride 4 (``h = ceil(H / 4)``), max-normalised
            (f-CAMs may exceed 1).
        frame_size: (H, W) pixels.
        threshold: background when the maximum CAM <= threshold (IRN 0.15).

    Returns:
        ``(masks, classes, scores)``: (K, H, W) bool, (K,) int64 1-based
        category ids (channel index + 1), (K,) float32 max CAM in the region;
        ordered by class then by region label (raster order of first pixel).
        Classes whose CAM is zero everywhere give nothing.

    Raises:
        ValueError: ``cam`` not (C, h, w).
    """
    cam = np.asarray(cam, dtype=np.float32)
    if cam.ndim != 3:
        raise ValueError(f"cam must be (C, h, w), got shape {cam.shape}")
    H, W = int(frame_size[0]), int(frame_size[1])
    up = upsample_cam(cam, (H, W))
    best = up.max(axis=0)
    label = np.where(best > threshold, up.argmax(axis=0), -1)
    masks, classes, scores = [], [], []
    for c in np.unique(label):
        if c < 0:
            continue
        regions, n = ndimage.label(label == c, structure=_EIGHT)
        if n == 0:
            continue
        peak = ndimage.maximum(up[c], labels=regions, index=np.arange(1, n + 1))
        for r in range(1, n + 1):
            masks.append(regions == r)
            classes.append(int(c) + 1)
            scores.append(float(peak[r - 1]))
    if not masks:
        return np.zeros((0, H, W), bool), np.zeros(0, np.int64), np.zeros(0, np.float32)
    return np.stack(masks), np.asarray(classes, np.int64), np.asarray(scores, np.float32)


def compute_cam_floor(
    cam_path: str | os.PathLike,
    out: str | os.PathLike,
    *,
    source: str = "cam",
    threshold: float = 0.15,
    params: dict | None = None,
    progress: bool = False,
) -> None:
    """Write the CAM-floor pseudo-labels of one video (``pseudo/cam/{video}.zarr``).

    Args:
        cam_path: a CAM artifact of :func:`wsvis.cam.stage.compute_video_cams`.
        out: the pseudo-label artifact path.
        source: ``"cam"`` or ``"fcam"`` (flow-amplified), the array labelled.
        threshold: see :func:`cam_floor_instances`.
        params: the stage's config section (stored in attrs).
        progress: tqdm bar over frames.

    Writes a :class:`~wsvis.io.pseudo.PseudoLabelWriter` artifact, variant
    ``"cam"``, with attrs ``source`` and ``threshold``.

    Raises:
        ValueError: bad ``source``.
        ArtifactError: ``cam_path`` missing, incomplete or not a CAM artifact.
    """
    if source not in ("cam", "fcam"):
        raise ValueError(f"source must be 'cam' or 'fcam', got {source!r}")
    cam, fcam, categories, attrs = read_cams(cam_path)
    maps = cam if source == "cam" else fcam
    frame_size = tuple(attrs["frame_size"])
    with PseudoLabelWriter(
        out,
        num_frames=maps.shape[0],
        frame_size=frame_size,
        variant="cam",
        categories=categories,
        params=params,
        attrs={"source": source, "threshold": threshold, "cam_artifact": Path(cam_path).name},
    ) as writer:
        for t in tqdm(range(maps.shape[0]), desc=f"cam floor {Path(out).name}", disable=not progress):
            masks, classes, scores = cam_floor_instances(maps[t].astype(np.float32), frame_size, threshold)
            order = np.argsort(scores, kind="stable")
            writer.add_frame(t, masks[order], classes[order], scores[order])
