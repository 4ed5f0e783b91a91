"""STC-Seg tracker: diagonal-point Kalman filter, bi-greedy matching, spatio-temporal discrepancy.

Yan et al., "Solve the Puzzle of Instance Segmentation in Videos: A Weakly
Supervised Framework with Spatio-Temporal Collaboration" (STC-Seg), §III-C:

1. *Diagonal points tracking* (Eq. 7-8): each object's state is its box's
   upper-left and lower-right corners ``(x1, y1, x2, y2)`` plus their
   velocities, propagated by a constant-velocity Kalman filter (the SORT setup
   of Bewley et al., ICIP 2016, with the box corners instead of SORT's centre,
   area and aspect ratio): ``p^{t+1}(l^t) = l^t + Δl^{t-1->t}``.
2. *Bi-greedy matching* (Algorithm 1, :func:`bi_greedy_match`).
3. *Matching cascade* (DeepSORT, Wojke et al. ICIP 2017, the paper's [78]):
   tracks are matched in order of the number of frames since their last
   detection (1, 2, ..., ``max_age``), so a track seen in the previous frame
   gets the first pick and a briefly occluded track (lost for up to
   ``max_age`` frames) is still re-identified afterwards.
4. *Multi-stage matching on scores* (§III-C-3): detections are split at two
   thresholds into high-score (``>= high_threshold``) and low-score
   (``low_threshold <= s < high_threshold``) sets; the high ones are matched
   first (through the cascade), then the low ones to the tracks still
   unmatched. The paper gives no values; we take ByteTrack's (Zhang et al.,
   ECCV 2022): high 0.5, low 0.1. Only high-score detections start new tracks.
5. *Spatio-temporal discrepancy* (Eq. 9): the matching cost is
   ``α1 · location + α2 · depth + α3 · flow`` with α = (0.7, 0.2, 0.1) (§IV-B):
   α1 weighs the location term of Eq. 8, α2 the depth discrepancy and α3 the
   flow discrepancy, both sampled at the diagonal points.

Table VIII variants: ``motion="cp"`` ("CP": a centre-point Kalman state with
the last detected box size -- our stand-in for the paper's CP baseline,
CenterTrack, which needs a trained network), ``motion="dp",
discrepancy=False`` ("DP"), and ``motion="dp", discrepancy=True`` ("DP+SD",
the default).

Choices the paper leaves open (documented here, options of :class:`STCTracker`):

* location term: ``location="iou"`` (default) uses ``1 - IoU`` of the
  predicted and the detected box, which is scale-free and lies in [0, 1] like
  the two discrepancy terms; ``location="l2"`` is the paper's Euclidean
  distance between the 4-vectors of diagonal points, divided by the predicted
  box's diagonal (scale-free too);
* gating: Algorithm 1 takes the arg-min over all detections; we only admit
  pairs of the same category whose location term is at most ``max_location``
  (else a vanished object would grab any far-away detection);
* depth term: mean absolute difference of depth at the two diagonal points,
  each frame's (relative inverse) depth min-max normalised to [0, 1] because
  its scale is arbitrary per frame; the track side is sampled on the frame of
  its last detection s, the detection side on the current frame t;
* flow term: the track side is ``forward[s]`` (motion s -> s+1) at its last
  box's diagonal points, the detection side is ``-backward[t-1]`` (motion
  t-1 -> t, read on frame t's grid) at the detection's diagonal points; the
  mean norm of their difference divided by the detection box's diagonal,
  clipped to [0, 1];
* without depth the depth term is dropped, with a logged warning, and the
  remaining weights renormalised (α1, α3) / (α1 + α3) = (0.875, 0.125);
  likewise without flow; without both the cost is the location term alone.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Mapping, Sequence

import numpy as np

from wsvis.io.predictions import FramePredictions
from wsvis.track.common import (
    Track,
    box_iou,
    check_depth,
    check_flow,
    check_predictions,
    finalize,
    masks_boxes,
)

if TYPE_CHECKING:
    from filterpy.kalman import KalmanFilter

__all__ = ["bi_greedy_match", "DiagonalPointKalman", "CenterPointKalman", "STCTracker", "DEFAULT_ALPHA"]

log = logging.getLogger(__name__)

#: (α1, α2, α3) of Eq. 9: location, depth, flow (STC-Seg §IV-B).
DEFAULT_ALPHA = (0.7, 0.2, 0.1)


def bi_greedy_match(cost: np.ndarray) -> tuple[list[tuple[int, int]], list[int], list[int]]:
    """Bi-greedy matching, STC-Seg Algorithm 1.

    Step 1 (lines 3-6): every previous track ``ô`` picks its nearest current
    detection ``o' = argmin_o cost[ô, o]``; the pairs form T. Step 2 (lines
    7-14): every current detection ``o`` that was picked by at least one track
    (case (a): the tracks that picked it are its *candidate instances*) is
    matched to the nearest of its candidates, ``argmin_{ô:(ô,o)∈T} cost[ô, o]``;
    a detection picked by nobody (case (b)) is a new instance. A candidate
    that loses stays unmatched in this round (it is *not* offered its
    second-nearest detection: that is the algorithm as written).

    Inadmissible pairs carry ``inf`` (gating, category mismatch); a track with
    no finite cost picks nothing. Ties go to the lower index (``np.argmin``).

    Args:
        cost: (G, K) float, G previous tracks x K current detections; lower is nearer.

    Returns:
        ``(matches, unmatched_tracks, unmatched_detections)``: matches as
        ``(track_index, detection_index)`` pairs sorted by detection index.

    Raises:
        ValueError: ``cost`` is not 2-D.
    """
    cost = np.asarray(cost, dtype=np.float64)
    if cost.ndim != 2:
        raise ValueError(f"cost must be a (G, K) matrix, got shape {cost.shape}")
    g, k = cost.shape
    picked: dict[int, list[int]] = {}  # T, grouped by detection
    for i in range(g):
        if k == 0 or not np.isfinite(cost[i]).any():
            continue
        j = int(np.argmin(cost[i]))
        picked.setdefault(j, []).append(i)
    matches: list[tuple[int, int]] = []
    for j in range(k):
        cands = picked.get(j)
        if cands:
            best = cands[int(np.argmin(cost[cands, j]))]
            matches.append((best, j))
    matched_tracks = {i for i, _ in matches}
    matched_dets = {j for _, j in matches}
    return (
        matches,
        [i for i in range(g) if i not in matched_tracks],
        [j for j in range(k) if j not in matched_dets],
    )


def _sort_filter(dim: int) -> KalmanFilter:
    """Constant-velocity filter over ``dim`` positions, noise set as in SORT (Bewley et al. 2016)."""
    from filterpy.kalman import KalmanFilter  # here: the config check builds trackers

    kf = KalmanFilter(dim_x=2 * dim, dim_z=dim)
    kf.F = np.eye(2 * dim)
    kf.F[:dim, dim:] = np.eye(dim)
    kf.H = np.zeros((dim, 2 * dim))
    kf.H[:, :dim] = np.eye(dim)
    kf.R = np.eye(dim)  # measurement noise, px^2
    kf.P[dim:, dim:] *= 1000.0  # unknown initial velocity
    kf.P *= 10.0
    kf.Q[dim:, dim:] *= 0.01
    return kf


class DiagonalPointKalman:
    """Kalman filter on the diagonal points of a box (STC-Seg Eq. 7-8).

    State (8,): ``x1, y1, x2, y2`` (pixels) and their velocities (pixels per
    frame); measurement: a detected xyxy box. :meth:`predict` returns
    ``p^{t+1}(l^t)``, the box one frame ahead.
    """

    def __init__(self, box: np.ndarray) -> None:
        self.kf = _sort_filter(4)
        self.kf.x[:4, 0] = np.asarray(box, dtype=np.float64)

    def predict(self) -> np.ndarray:
        self.kf.predict()
        return self.box

    def update(self, box: np.ndarray) -> None:
        self.kf.update(np.asarray(box, dtype=np.float64).reshape(4, 1))

    @property
    def box(self) -> np.ndarray:
        b = self.kf.x[:4, 0].copy()
        # a box whose corners crossed (shrinking too fast) is kept at >= 1 px
        b[2] = max(b[2], b[0] + 1.0)
        b[3] = max(b[3], b[1] + 1.0)
        return b


class CenterPointKalman:
    """Centre-point variant ("CP" of Table VIII): state ``cx, cy`` + velocities; box size = last detection's."""

    def __init__(self, box: np.ndarray) -> None:
        box = np.asarray(box, dtype=np.float64)
        self.kf = _sort_filter(2)
        self.kf.x[:2, 0] = (box[:2] + box[2:]) / 2
        self.size = np.maximum(box[2:] - box[:2], 1.0)

    def predict(self) -> np.ndarray:
        self.kf.predict()
        return self.box

    def update(self, box: np.ndarray) -> None:
        box = np.asarray(box, dtype=np.float64)
        self.kf.update(((box[:2] + box[2:]) / 2).reshape(2, 1))
        self.size = np.maximum(box[2:] - box[:2], 1.0)

    @property
    def box(self) -> np.ndarray:
        c = self.kf.x[:2, 0]
        return np.concatenate([c - self.size / 2, c + self.size / 2])


@dataclass
class _Active:
    track: Track
    motion: Any
    category: int
    last_box: np.ndarray
    last_frame: int
    time_since_update: int = 0


def _corners(box: np.ndarray, h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    """Integer (row, col) of the two diagonal points of an xyxy box, clipped to the frame: ys (2,), xs (2,)."""
    xs = np.clip(np.round([box[0], box[2] - 1]), 0, w - 1).astype(int)
    ys = np.clip(np.round([box[1], box[3] - 1]), 0, h - 1).astype(int)
    return ys, xs


class STCTracker:
    """STC-Seg tracker (module docstring: sources and every choice made).

    Args:
        motion: ``"dp"`` diagonal points (default) or ``"cp"`` centre point.
        discrepancy: add the depth and flow terms of Eq. 9 (default True).
        alpha: (α1 location, α2 depth, α3 flow), default (0.7, 0.2, 0.1).
        location: ``"iou"`` (1 - box IoU, default) or ``"l2"`` (diagonal-point
            distance / predicted box diagonal).
        max_location: gate on the location term (default 0.8, i.e. box IoU >=
            0.2, for ``"iou"``; 1.0, one box diagonal, for ``"l2"``).
        high_threshold, low_threshold: detection score thresholds of the
            two-stage matching (ByteTrack's 0.5 and 0.1); detections below
            ``low_threshold`` are ignored.
        max_age: frames a track may go undetected and still be re-identified
            (default 3; DeepSORT uses 30 at 30 fps, video-instance datasets
            such as YouTube-VIS are sampled at 6 fps).
        min_length: drop tracks with fewer frames (default 1).
    """

    def __init__(
        self,
        motion: str = "dp",
        discrepancy: bool = True,
        alpha: Sequence[float] = DEFAULT_ALPHA,
        location: str = "iou",
        max_location: float | None = None,
        high_threshold: float = 0.5,
        low_threshold: float = 0.1,
        max_age: int = 3,
        min_length: int = 1,
    ) -> None:
        if motion not in ("dp", "cp"):
            raise ValueError(f"motion must be 'dp' or 'cp', got {motion!r}")
        if location not in ("iou", "l2"):
            raise ValueError(f"location must be 'iou' or 'l2', got {location!r}")
        alpha = tuple(float(a) for a in alpha)
        if len(alpha) != 3 or min(alpha) < 0 or alpha[0] <= 0:
            raise ValueError(f"alpha must be 3 non-negative weights with alpha[0] > 0, got {alpha}")
        if not 0 <= low_threshold <= high_threshold <= 1:
            raise ValueError(f"need 0 <= low_threshold <= high_threshold <= 1, got {low_threshold}, {high_threshold}")
        if max_age < 1:
            raise ValueError(f"max_age must be >= 1, got {max_age}")
        self.motion = motion
        self.discrepancy = bool(discrepancy)
        self.alpha = alpha
        self.location = location
        self.max_location = float(max_location) if max_location is not None else (0.8 if location == "iou" else 1.0)
        self.high_threshold = float(high_threshold)
        self.low_threshold = float(low_threshold)
        self.max_age = int(max_age)
        self.min_length = int(min_length)

    # ------------------------------------------------------------------ cost

    def _weights(self, has_depth: bool, has_flow: bool) -> tuple[float, float, float]:
        if not self.discrepancy:
            return (1.0, 0.0, 0.0)
        a1, a2, a3 = self.alpha
        if not has_depth:
            a2 = 0.0
        if not has_flow:
            a3 = 0.0
        s = a1 + a2 + a3
        return (a1 / s, a2 / s, a3 / s)

    def _location(self, pred: np.ndarray, dets: np.ndarray) -> np.ndarray:
        if self.location == "iou":
            return 1.0 - box_iou(pred[None], dets)[0]
        diag = max(float(np.hypot(*(pred[2:] - pred[:2]))), 1.0)
        return np.linalg.norm(dets - pred[None], axis=1) / diag

    # ------------------------------------------------------------------ main

    def __call__(
        self,
        predictions: Sequence[FramePredictions],
        *,
        flow: Mapping[str, Any] | None = None,
        depth: Any = None,
        images: Any = None,
    ) -> list[Track]:
        """Track one video (``images`` is accepted and ignored).

        Args:
            predictions: T per-frame ``(masks, scores, labels, boxes)`` (see :mod:`wsvis.track.common`).
            flow: optional ``{"forward", "backward"}`` gap-1 flow, each (T-1, H, W, 2) pixels.
            depth: optional (T, H, W) relative inverse depth.

        Returns:
            list of :class:`~wsvis.track.common.Track`, ids 1.. by first frame.

        Raises:
            ValueError: inconsistent predictions, flow or depth shapes.
        """
        num, h, w = check_predictions(predictions)
        check_flow(flow, num, (h, w))
        check_depth(depth, num, (h, w))
        use_depth = self.discrepancy and depth is not None
        use_flow = self.discrepancy and flow is not None and num > 1
        if self.discrepancy and not use_depth:
            log.warning("stc tracker: no depth given; the depth term of Eq. 9 is dropped and the weights renormalised")
        if self.discrepancy and not use_flow:
            log.warning("stc tracker: no flow given; the flow term of Eq. 9 is dropped and the weights renormalised")
        a1, a2, a3 = self._weights(use_depth, use_flow)

        depth_cache: dict[int, np.ndarray] = {}

        def depth_at(t: int, box: np.ndarray) -> np.ndarray:
            if t not in depth_cache:
                if len(depth_cache) > 8:
                    depth_cache.clear()
                d = np.asarray(depth[t], dtype=np.float32)
                lo, hi = float(d.min()), float(d.max())
                depth_cache[t] = (d - lo) / (hi - lo) if hi > lo else np.zeros_like(d)
            ys, xs = _corners(box, h, w)
            return depth_cache[t][ys, xs]

        flow_cache: dict[tuple[str, int], np.ndarray] = {}

        def flow_at(key: str, t: int, box: np.ndarray) -> np.ndarray:
            if (key, t) not in flow_cache:
                if len(flow_cache) > 8:
                    flow_cache.clear()
                flow_cache[(key, t)] = np.asarray(flow[key][t], dtype=np.float32)
            ys, xs = _corners(box, h, w)
            return flow_cache[(key, t)][ys, xs]  # (2, 2): points x (u, v)

        tracks: list[Track] = []
        active: list[_Active] = []
        for t, (masks, scores, labels, boxes) in enumerate(predictions):
            masks = np.asarray(masks, dtype=bool)
            scores = np.asarray(scores, dtype=np.float64).reshape(-1)
            labels = np.asarray(labels).reshape(-1).astype(int)
            boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4).copy()
            empty_box = (boxes[:, 2] <= boxes[:, 0]) | (boxes[:, 3] <= boxes[:, 1])
            if empty_box.any():
                boxes[empty_box] = masks_boxes(masks[empty_box])

            preds = np.array([a.motion.predict() for a in active]).reshape(-1, 4)
            for a in active:
                a.time_since_update += 1

            # cost matrix: every active track x every detection kept
            dets = np.flatnonzero(scores >= self.low_threshold)
            cost = np.full((len(active), len(dets)), np.inf)
            if len(active) and len(dets):
                det_depth = [depth_at(t, boxes[d]) for d in dets] if use_depth and a2 > 0 else None
                det_flow = None
                if use_flow and a3 > 0 and t > 0:
                    det_flow = [-flow_at("backward", t - 1, boxes[d]) for d in dets]
                    det_diag = np.hypot(boxes[dets, 2] - boxes[dets, 0], boxes[dets, 3] - boxes[dets, 1])
                    det_diag = np.maximum(det_diag, 1.0)
                for i, a in enumerate(active):
                    loc = self._location(preds[i], boxes[dets])
                    c = a1 * loc
                    if det_depth is not None:
                        dt = depth_at(a.last_frame, a.last_box)
                        c = c + a2 * np.array([np.abs(dd - dt).mean() for dd in det_depth])
                    if det_flow is not None and a.last_frame <= num - 2:
                        ft = flow_at("forward", a.last_frame, a.last_box)
                        fd = np.array([np.linalg.norm(f - ft, axis=1).mean() for f in det_flow])
                        c = c + a3 * np.minimum(fd / det_diag, 1.0)
                    ok = (labels[dets] == a.category) & (loc <= self.max_location)
                    cost[i] = np.where(ok, c, np.inf)

            high = [j for j, d in enumerate(dets) if scores[d] >= self.high_threshold]
            low = [j for j, d in enumerate(dets) if scores[d] < self.high_threshold]
            assigned: dict[int, int] = {}  # column in cost -> active index
            free_tracks = set(range(len(active)))
            # stage 1: high-score detections through the matching cascade (by time since update)
            remaining = list(high)
            for age in range(1, self.max_age + 2):
                level = [i for i in sorted(free_tracks) if active[i].time_since_update == age]
                if not level or not remaining:
                    continue
                m, _, _ = bi_greedy_match(cost[np.ix_(level, remaining)])
                for r, c in m:
                    assigned[remaining[c]] = level[r]
                    free_tracks.discard(level[r])
                remaining = [j for j in remaining if j not in assigned]
            # stage 2: low-score detections to the tracks still unmatched
            level = sorted(free_tracks)
            if level and low:
                m, _, _ = bi_greedy_match(cost[np.ix_(level, low)])
                for r, c in m:
                    assigned[low[c]] = level[r]
                    free_tracks.discard(level[r])

            for j, i in assigned.items():
                d = int(dets[j])
                a = active[i]
                a.motion.update(boxes[d])
                a.track.add(t, masks[d], scores[d], labels[d])
                a.last_box, a.last_frame, a.time_since_update = boxes[d], t, 0
            for j in remaining:  # unmatched high-score detections start tracks
                d = int(dets[j])
                track = Track(track_id=len(tracks) + 1)
                track.add(t, masks[d], scores[d], labels[d])
                tracks.append(track)
                motion = DiagonalPointKalman(boxes[d]) if self.motion == "dp" else CenterPointKalman(boxes[d])
                active.append(_Active(track, motion, int(labels[d]), boxes[d], t, 0))
            active = [a for a in active if a.time_since_update <= self.max_age]
        return finalize(tracks, self.min_length)
