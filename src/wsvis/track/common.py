"""Data model and helpers shared by the trackers of :mod:`wsvis.track`.

Tracker input, for one video of T frames:

* ``predictions``: a list of T tuples ``(masks, scores, labels, boxes)`` as
  :func:`wsvis.io.predictions.frame_predictions` returns them: masks (N, H, W)
  bool, scores (N,) float in [0, 1], labels (N,) int category ids (1-based),
  boxes (N, 4) float ``x1, y1, x2, y2`` pixels;
* ``flow`` (optional): a mapping with ``"forward"`` and ``"backward"``, each
  (T-1, H, W, 2) float pixels, x then y, gap 1, indexed as the flow artifact
  (``forward[t]``: t -> t+1 on frame t's grid; ``backward[t]``: t+1 -> t on
  frame t+1's grid; see :mod:`wsvis.flow.stage`). Zarr arrays are fine: the
  trackers read one frame at a time;
* ``depth`` (optional): (T, H, W) float relative inverse depth;
* ``images`` (optional): a sequence of T (H, W, 3) uint8 RGB frames (only the
  ``unovost`` appearance cue uses it).

Tracker output: a list of :class:`Track`, sorted by ``track_id``.
"""

from __future__ import annotations

import inspect
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from wsvis.io.predictions import FramePredictions

__all__ = [
    "Track",
    "check_predictions",
    "check_flow",
    "check_depth",
    "finalize",
    "mask_iou",
    "box_iou",
    "masks_boxes",
    "build_tracker",
]


@dataclass
class Track:
    """One object track over a video.

    Attributes:
        track_id: positive int, unique within the video.
        frames: frame index t -> ``(mask, score)``, mask (H, W) bool, score float
            in [0, 1] (the detection's score). Frames where the object was not
            detected (occluded, missed) are absent.
        labels: frame index t -> the detection's category id (the votes for
            :attr:`category_id`).

    Properties:
        category_id: majority vote of ``labels`` over the track's frames; a tie
            goes to the category with the larger summed detection score, then
            to the smaller id (deterministic).
        score: mean detection score over the track's frames (0.0 if empty).
    """

    track_id: int
    frames: dict[int, tuple[np.ndarray, float]] = field(default_factory=dict)
    labels: dict[int, int] = field(default_factory=dict)

    def add(self, t: int, mask: np.ndarray, score: float, label: int) -> None:
        """Add the detection of frame ``t`` (ValueError if ``t`` is already taken)."""
        if t in self.frames:
            raise ValueError(f"track {self.track_id}: frame {t} already has a detection")
        self.frames[int(t)] = (np.asarray(mask, dtype=bool), float(score))
        self.labels[int(t)] = int(label)

    @property
    def category_id(self) -> int:
        if not self.labels:
            return 0
        votes = Counter(self.labels.values())
        mass: dict[int, float] = {}
        for t, c in self.labels.items():
            mass[c] = mass.get(c, 0.0) + self.frames[t][1]
        return min(votes, key=lambda c: (-votes[c], -mass[c], c))

    @property
    def score(self) -> float:
        if not self.frames:
            return 0.0
        return float(np.mean([s for _, s in self.frames.values()]))

    @property
    def first_frame(self) -> int:
        return min(self.frames)

    @property
    def last_frame(self) -> int:
        return max(self.frames)

    def __len__(self) -> int:
        return len(self.frames)


def check_predictions(predictions: Sequence[FramePredictions]) -> tuple[int, int, int]:
    """Validate a video's per-frame predictions; return ``(T, H, W)``.

    Raises:
        ValueError: no frames, or a frame whose arrays disagree in length or in
            frame size (the message names the frame).
    """
    if len(predictions) == 0:
        raise ValueError("tracker: no frames given")
    size = None
    for t, (masks, scores, labels, boxes) in enumerate(predictions):
        masks = np.asarray(masks)
        n = len(np.asarray(scores).reshape(-1))
        if masks.ndim != 3 or masks.shape[0] != n or len(np.asarray(labels).reshape(-1)) != n:
            raise ValueError(f"frame {t}: masks {masks.shape}, {n} scores, {len(labels)} labels do not agree")
        if np.asarray(boxes).reshape(-1, 4).shape[0] != n:
            raise ValueError(f"frame {t}: {len(boxes)} boxes for {n} detections")
        if size is None:
            size = masks.shape[1:]
        elif masks.shape[1:] != size:
            raise ValueError(f"frame {t}: frame size {masks.shape[1:]} differs from frame 0 {size}")
    return len(predictions), int(size[0]), int(size[1])


def check_flow(flow: Mapping[str, Any] | None, num_frames: int, size: tuple[int, int]) -> None:
    """Check a flow mapping against the video: keys, (T-1, H, W, 2) shapes (ValueError)."""
    if flow is None:
        return
    for key in ("forward", "backward"):
        if key not in flow:
            raise ValueError(f"flow must have 'forward' and 'backward' arrays, got keys {sorted(flow)}")
        shape = tuple(flow[key].shape)
        if shape != (max(num_frames - 1, 0), *size, 2):
            raise ValueError(f"flow[{key!r}] has shape {shape}, expected {(num_frames - 1, *size, 2)} (gap 1)")


def check_depth(depth: Any, num_frames: int, size: tuple[int, int]) -> None:
    """Check a (T, H, W) depth array against the video (ValueError)."""
    if depth is not None and tuple(depth.shape) != (num_frames, *size):
        raise ValueError(f"depth has shape {tuple(depth.shape)}, expected {(num_frames, *size)}")


def mask_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pairwise mask IoU: a (N, H, W) bool, b (M, H, W) bool -> (N, M) float64 (0 where the union is empty)."""
    a = np.asarray(a, dtype=bool).reshape(len(a), -1)
    b = np.asarray(b, dtype=bool).reshape(len(b), -1)
    if len(a) == 0 or len(b) == 0:
        return np.zeros((len(a), len(b)))
    af, bf = a.astype(np.float32), b.astype(np.float32)
    inter = af @ bf.T
    union = af.sum(1)[:, None] + bf.sum(1)[None, :] - inter
    return np.where(union > 0, inter / np.maximum(union, 1e-9), 0.0).astype(np.float64)


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pairwise box IoU of xyxy boxes (continuous coordinates): (N, 4), (M, 4) -> (N, M) float64."""
    a = np.asarray(a, dtype=np.float64).reshape(-1, 4)
    b = np.asarray(b, dtype=np.float64).reshape(-1, 4)
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.prod(np.clip(rb - lt, 0, None), axis=2)
    area = lambda x: np.clip(x[:, 2] - x[:, 0], 0, None) * np.clip(x[:, 3] - x[:, 1], 0, None)  # noqa: E731
    union = area(a)[:, None] + area(b)[None, :] - inter
    return np.where(union > 0, inter / np.maximum(union, 1e-12), 0.0)


def masks_boxes(masks: np.ndarray) -> np.ndarray:
    """Tight xyxy boxes (N, 4) float64 of (N, H, W) bool masks, ``x2 = max column + 1`` (exclusive); empty -> zeros."""
    masks = np.asarray(masks, dtype=bool)
    out = np.zeros((len(masks), 4))
    for i, m in enumerate(masks):
        rows, cols = np.any(m, 1), np.any(m, 0)
        if rows.any():
            y = np.flatnonzero(rows)
            x = np.flatnonzero(cols)
            out[i] = (x[0], y[0], x[-1] + 1, y[-1] + 1)
    return out


def build_tracker(registry: Mapping[str, Callable[..., Any]], name: str, options: Mapping[str, Any]):
    """``registry[name](**options)`` after checking the name and option names.

    Raises:
        ValueError: unknown tracker name, or an option the tracker does not take
            (the message names it and lists the accepted ones).
    """
    if name not in registry:
        raise ValueError(f"unknown tracker {name!r}; choose one of {sorted(registry)}")
    factory = registry[name]
    accepted = [p for p in inspect.signature(factory).parameters if p != "self"]
    unknown = sorted(set(options) - set(accepted))
    if unknown:
        raise ValueError(f"tracker {name!r}: unknown option(s) {unknown}; it takes {accepted}")
    return factory(**options)


def finalize(tracks: list[Track], min_length: int = 1) -> list[Track]:
    """Drop empty tracks and tracks shorter than ``min_length`` frames; renumber ids 1.. in order of first frame."""
    kept = [tr for tr in tracks if len(tr) >= max(min_length, 1)]
    kept.sort(key=lambda tr: (tr.first_frame, tr.track_id))
    for i, tr in enumerate(kept, 1):
        tr.track_id = i
    return kept
