"""Baseline tracker: Hungarian matching on mask IoU between consecutive frames.

The simplest mask tracker (the "IoUTracker" family of the YouTube-VIS
baselines, Yang et al. ICCV 2019): detections of frame t+1 are assigned to the
tracks alive at frame t by :func:`scipy.optimize.linear_sum_assignment` on
``1 - IoU`` of their masks, same category only; a pair is accepted only if its
IoU reaches ``iou_threshold``. Unmatched detections start new tracks; a track
that gets no detection ends (no re-identification after a gap: that is what
``unovost`` and ``stc`` add).
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np

from wsvis.io.predictions import FramePredictions
from wsvis.track.common import Track, check_predictions, finalize, mask_iou

__all__ = ["IoUTracker"]


class IoUTracker:
    """Frame-to-frame Hungarian matching on mask IoU.

    Args:
        iou_threshold: minimum mask IoU for a match (default 0.3: consecutive
            masks of one object at video frame rates overlap far more; 0.3
            still tolerates fast motion and mask noise while rejecting a
            neighbour that merely touches).
        score_threshold: detections scoring below are ignored (default 0.3,
            the usual visualisation threshold; the segmenters keep detections
            down to 0.05 for AP, which would otherwise start many short tracks).
        min_length: tracks with fewer frames are dropped (default 1: keep all).
    """

    def __init__(self, iou_threshold: float = 0.3, score_threshold: float = 0.3, min_length: int = 1) -> None:
        if not 0.0 <= iou_threshold <= 1.0:
            raise ValueError(f"iou_threshold must be in [0, 1], got {iou_threshold}")
        self.iou_threshold = float(iou_threshold)
        self.score_threshold = float(score_threshold)
        self.min_length = int(min_length)

    def __call__(
        self,
        predictions: Sequence[FramePredictions],
        *,
        flow: Mapping[str, Any] | None = None,
        depth: Any = None,
        images: Any = None,
    ) -> list[Track]:
        """Track one video (``flow``, ``depth``, ``images`` are accepted and ignored).

        Returns:
            list of :class:`~wsvis.track.common.Track`, ids 1.. by first frame.

        Raises:
            ValueError: inconsistent predictions (see :func:`~wsvis.track.common.check_predictions`).
        """
        from scipy.optimize import linear_sum_assignment  # here: the config check builds trackers

        check_predictions(predictions)
        tracks: list[Track] = []
        alive: list[tuple[Track, np.ndarray, int]] = []  # (track, last mask, category)
        for t, (masks, scores, labels, _boxes) in enumerate(predictions):
            masks = np.asarray(masks, dtype=bool)
            scores = np.asarray(scores, dtype=np.float64).reshape(-1)
            labels = np.asarray(labels).reshape(-1).astype(int)
            keep = np.flatnonzero(scores >= self.score_threshold)
            matched_det: dict[int, int] = {}
            if alive and len(keep):
                iou = mask_iou(np.stack([m for _, m, _ in alive]), masks[keep])
                same = np.array([c for _, _, c in alive])[:, None] == labels[keep][None, :]
                iou = np.where(same, iou, 0.0)
                rows, cols = linear_sum_assignment(-iou)
                for r, c in zip(rows, cols):
                    if iou[r, c] >= self.iou_threshold and iou[r, c] > 0:
                        matched_det[int(keep[c])] = r
            new_alive = []
            for i in keep:
                i = int(i)
                if i in matched_det:
                    track = alive[matched_det[i]][0]
                else:
                    track = Track(track_id=len(tracks) + 1)
                    tracks.append(track)
                track.add(t, masks[i], scores[i], labels[i])
                new_alive.append((track, masks[i], int(labels[i])))
            alive = new_alive
        return finalize(tracks, self.min_length)
