"""Per-frame instance predictions: ``predictions/{method}/{video}.zarr``.

The contract shared by every segmenter (Mask R-CNN / MaskConsist, CondInst /
BoxInst) and read by the trackers and the frame metrics
(``../shared/DESIGN.md``, "Artifacts"):

* ``masks`` (T, K, H, W) bool;
* ``scores`` (T, K) float32 in [0, 1];
* ``labels`` (T, K) int32 category ids (1-based, as ``gt.json``);
* ``boxes`` (T, K, 4) float32 ``x1, y1, x2, y2`` in pixels.

Each frame holds its detections sorted by decreasing score, padded to K with
label 0, score 0, an empty mask and a zero box. Chunks are one frame.
Attrs: ``stage`` ``"predictions"``, ``method``, ``categories`` (names in id
order), ``max_detections`` K, the producing stage's params.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import zarr

from wsvis.io.store import DEFAULT_COMPRESSOR, ArtifactWriter, open_artifact

__all__ = ["PredictionWriter", "read_predictions", "frame_predictions", "fuse_instances", "FramePredictions"]

FramePredictions = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]


class PredictionWriter:
    """Write a predictions artifact frame by frame (atomically, via :class:`ArtifactWriter`).

    Usage::

        with PredictionWriter(out, num_frames=T, frame_size=(H, W), max_detections=K,
                              method="maskconsist", categories=cats, params=cfg) as w:
            for t in range(T):
                w.add_frame(t, masks, scores, labels, boxes)

    Args:
        out: artifact path.
        num_frames: T.
        frame_size: (H, W) pixels.
        max_detections: K, detections kept per frame (the highest scores).
        method: segmenter name (``maskrcnn``, ``maskconsist``, ``stcseg``...).
        categories: class names in category-id order.
        params: the producing stage's config, stored in attrs.
    """

    def __init__(
        self,
        out: str | os.PathLike,
        *,
        num_frames: int,
        frame_size: tuple[int, int],
        max_detections: int,
        method: str,
        categories: list[str],
        params: dict | None = None,
        attrs: dict | None = None,
        compressor: str = DEFAULT_COMPRESSOR,
    ) -> None:
        if max_detections < 1:
            raise ValueError(f"max_detections must be >= 1, got {max_detections}")
        self._writer = ArtifactWriter(
            out,
            stage="predictions",
            params=params,
            frame_size=frame_size,
            units={"boxes": "pixels, x1 y1 x2 y2", "scores": "confidence in [0, 1]", "labels": "category id, 0 = padding"},
            attrs={"method": method, "categories": list(categories), "max_detections": max_detections, **(attrs or {})},
            compressor=compressor,
        )
        self.num_frames = num_frames
        self.frame_size = tuple(frame_size)
        self.k = max_detections
        self.num_categories = len(categories)
        self._arrays: dict[str, zarr.Array] = {}

    def __enter__(self) -> "PredictionWriter":
        self._writer.__enter__()
        t, k, (h, w) = self.num_frames, self.k, self.frame_size
        self._arrays = {
            "masks": self._writer.create_array("masks", shape=(t, k, h, w), dtype="bool", fill_value=False),
            "scores": self._writer.create_array("scores", shape=(t, k), dtype="float32", chunks=(1, k)),
            "labels": self._writer.create_array("labels", shape=(t, k), dtype="int32", chunks=(1, k)),
            "boxes": self._writer.create_array("boxes", shape=(t, k, 4), dtype="float32", chunks=(1, k, 4)),
        }
        return self

    def add_frame(self, t: int, masks: np.ndarray, scores: np.ndarray, labels: np.ndarray, boxes: np.ndarray) -> None:
        """Store the detections of frame ``t`` (any order; kept: the K highest scores).

        Args:
            masks: (N, H, W) bool; scores: (N,) float; labels: (N,) category ids
            in 1..C; boxes: (N, 4) xyxy pixels.

        Raises:
            ValueError: shapes disagree with each other or with ``frame_size``, or a label is out of range.
        """
        masks = np.asarray(masks, dtype=bool)
        scores = np.asarray(scores, dtype=np.float32).reshape(-1)
        labels = np.asarray(labels, dtype=np.int64).reshape(-1)
        boxes = np.asarray(boxes, dtype=np.float32).reshape(-1, 4)
        n = len(scores)
        if masks.shape != (n, *self.frame_size) or len(labels) != n or len(boxes) != n:
            raise ValueError(
                f"frame {t}: masks {masks.shape}, scores {scores.shape}, labels {labels.shape}, boxes {boxes.shape} "
                f"do not fit {n} detections of frame size {self.frame_size}"
            )
        if n and (labels.min() < 1 or labels.max() > self.num_categories):
            raise ValueError(f"frame {t}: labels {labels.tolist()} outside 1..{self.num_categories}")
        keep = np.argsort(-scores, kind="stable")[: self.k]
        pad = self.k - len(keep)
        h, w = self.frame_size
        self._arrays["masks"][t] = np.concatenate([masks[keep], np.zeros((pad, h, w), bool)])
        self._arrays["scores"][t] = np.concatenate([scores[keep], np.zeros(pad, np.float32)])
        self._arrays["labels"][t] = np.concatenate([labels[keep], np.zeros(pad, np.int64)]).astype(np.int32)
        self._arrays["boxes"][t] = np.concatenate([boxes[keep], np.zeros((pad, 4), np.float32)])

    def __exit__(self, exc_type, exc, tb) -> bool:
        return self._writer.__exit__(exc_type, exc, tb)


def read_predictions(path: str | os.PathLike) -> tuple[zarr.Group, dict[str, Any]]:
    """Open a predictions artifact: ``(group, attrs)``; arrays as in the module docstring.

    Raises:
        ArtifactError: missing, incomplete or not a predictions artifact.
    """
    group = open_artifact(path, "predictions")
    return group, dict(group.attrs)


def frame_predictions(group: zarr.Group, t: int) -> FramePredictions:
    """Detections of frame ``t`` without padding: ``(masks (N,H,W) bool, scores (N,), labels (N,), boxes (N,4))``."""
    labels = np.asarray(group["labels"][t])
    n = int((labels > 0).sum())
    return (
        np.asarray(group["masks"][t, :n]),
        np.asarray(group["scores"][t, :n]),
        labels[:n],
        np.asarray(group["boxes"][t, :n]),
    )


def fuse_instances(masks: np.ndarray, scores: np.ndarray, overlap_threshold: float) -> tuple[np.ndarray, np.ndarray]:
    """Overlapping detections of one frame -> non-overlapping instances (Panoptic FPN's instance fusion).

    Detections are placed in decreasing score; each keeps the pixels no higher-scoring one took, and
    is dropped when those are fewer than ``overlap_threshold`` of its mask (Kirillov et al., Panoptic
    FPN, and detectron2's ``combine_semantic_and_instance_outputs``: 0.5). A duplicate of a detected
    object (a second, lower-scoring box over most of it) then goes instead of leaving its fringe as
    an instance of its own. Self-training labels (``wsvis.maskconsist.predict.predictions_to_pseudo``)
    use 0.5; the KITTI-MOTS export (``wsvis.track.stage.write_mots_txt``, non-overlapping masks) 0.

    Args:
        masks: (K, H, W) bool.
        scores: (K,) float.
        overlap_threshold: in [0, 1]; 0 keeps every detection left with a pixel.

    Returns:
        ``(keep, visible)``: (K',) int64 indices into ``masks``, in decreasing score, and (K', H, W)
        bool, their pixels, pairwise disjoint.
    """
    masks = np.asarray(masks, dtype=bool)
    taken = np.zeros(masks.shape[1:], dtype=bool)
    keep, visible = [], []
    for i in np.argsort(-np.asarray(scores, dtype=np.float64), kind="stable"):
        area = int(masks[i].sum())
        free = masks[i] & ~taken
        n_free = int(free.sum())
        if n_free == 0 or n_free < overlap_threshold * area:
            continue
        keep.append(int(i))
        visible.append(free)
        taken |= free
    return np.asarray(keep, dtype=np.int64), np.asarray(visible, dtype=bool).reshape(len(keep), *masks.shape[1:])
