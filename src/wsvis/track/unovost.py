"""UnOVOST-style tracker: flow-warped tracklets, then merging tracklets along forest paths.

Luiten, Zulfikar & Leibe, "UnOVOST: Unsupervised Offline Video Object
Segmentation and Tracking", WACV 2020 -- the tracker flowIRN / MaskConsist
(Liu et al., CVPR 2021, §4.4) applies to per-frame mask predictions to get
YouTube-VIS tracks. Two stages:

1. **Short tracklets.** The kept masks of frame t are warped onto frame t+1
   with the flow (``backward[t]``, frame t+1 -> t, through
   :func:`wsvis.flow.ops.warp_mask`, MaskConsist App. A.2) and compared with
   the masks of frame t+1 by IoU (same category only). A pair is linked when
   its warped IoU is at least ``link_iou`` *and unambiguous*: each is the
   other's best match and neither has a second match with IoU at least
   ``ambiguous_iou``. Otherwise the tracklets end there (UnOVOST's principle:
   tracklets are short but very precise).
2. **Merging tracklets ("forest path cutting").** Tracklets are the nodes of
   a directed acyclic graph; an edge A -> B exists when A ends before B starts
   (temporal non-overlap), the gap is at most ``max_gap`` frames, both have
   the same category and their similarity is at least ``merge_threshold``.
   The highest-scoring path through this forest is cut out and becomes one
   track; this repeats on the remaining tracklets until none is left. A
   path's score is the first tracklet's weight plus, for every further
   tracklet, its weight times the similarity of the edge that reaches it
   (weight = sum of the tracklet's detection scores), so long, confident,
   well-matching chains are taken first.

Similarity of A -> B (in [0, 1]):

* location: A's last box carried forward over the gap at A's mean box
  velocity (over its last ``velocity_frames`` frames), and B's first box
  carried back at B's velocity; the mean of the two box IoUs;
* appearance (only when ``images`` are given): the Bhattacharyya coefficient
  of the tracklets' colour histograms (CIE Lab, 8 x 8 x 8 bins, masked
  pixels of up to ``appearance_frames`` frames at A's end / B's start);
* similarity = ``appearance_weight`` x appearance + (1 - ``appearance_weight``) x location
  with images, the location term alone without.

Simplified with respect to UnOVOST, and why:

* UnOVOST's appearance cue is a ReID embedding network trained on
  video-object data; we have no such network offline, so we use a colour
  histogram plus a motion-extrapolated location cue (both need no training);
* UnOVOST first fuses overlapping proposals and clusters tracklets into
  "objects" with a learned proposal score; we take the segmenter's masks and
  scores as they are (they are already NMS-ed) and keep every tracklet, so
  all objects come out as tracks (YouTube-VIS scores every track, whereas the
  unsupervised DAVIS task UnOVOST was built for keeps the top few);
* stage 1 uses the mask IoU after warping, without UnOVOST's additional ReID
  check on each link.
"""

from __future__ import annotations

import logging
from typing import Any, Mapping, Sequence

import cv2
import numpy as np

from wsvis.io.predictions import FramePredictions
from wsvis.track.common import (
    Track,
    box_iou,
    check_flow,
    check_predictions,
    finalize,
    mask_iou,
    masks_boxes,
)

__all__ = ["UnOVOSTTracker", "link_tracklets", "merge_tracklets", "lab_histogram"]

log = logging.getLogger(__name__)


def lab_histogram(images: Sequence[np.ndarray], masks: Sequence[np.ndarray], bins: int = 8) -> np.ndarray:
    """Normalised CIE Lab colour histogram of the masked pixels of several frames.

    Args:
        images: (H, W, 3) uint8 RGB frames.
        masks: (H, W) bool masks, one per image.
        bins: bins per Lab channel.

    Returns:
        (bins**3,) float64 summing to 1 (all zeros if no pixel is masked).
    """
    hist = np.zeros((bins, bins, bins))
    for img, m in zip(images, masks):
        lab = cv2.cvtColor(np.ascontiguousarray(img, dtype=np.uint8), cv2.COLOR_RGB2LAB)
        px = lab[np.asarray(m, dtype=bool)].astype(np.int64) * bins // 256  # OpenCV 8-bit Lab: all channels 0..255
        np.add.at(hist, (px[:, 0], px[:, 1], px[:, 2]), 1.0)
    hist = hist.reshape(-1)
    s = hist.sum()
    return hist / s if s > 0 else hist


def link_tracklets(
    predictions: Sequence[FramePredictions],
    flow: Mapping[str, Any] | None,
    *,
    score_threshold: float,
    link_iou: float,
    ambiguous_iou: float,
) -> list[Track]:
    """Stage 1: link detections of consecutive frames by unambiguous flow-warped mask IoU.

    Args:
        predictions: T per-frame ``(masks, scores, labels, boxes)``.
        flow: ``{"backward": (T-1, H, W, 2)}`` pixels (``backward[t]``: t+1 -> t);
            ``None`` warps with zero flow (plain IoU).
        score_threshold: detections below are ignored.
        link_iou: minimum warped IoU of a link.
        ambiguous_iou: a link is refused when either side has another
            candidate with IoU at least this.

    Returns:
        The tracklets (ids in creation order).
    """
    # Imported here: wsvis.flow.ops needs torch, and the workflow's config check builds every
    # tracker at each Snakemake start (torch's import was most of that start-up).
    from wsvis.flow.ops import warp_mask

    tracklets: list[Track] = []
    prev: list[tuple[Track, np.ndarray, int]] = []
    for t, (masks, scores, labels, _boxes) in enumerate(predictions):
        masks = np.asarray(masks, dtype=bool)
        scores = np.asarray(scores, dtype=np.float64).reshape(-1)
        labels = np.asarray(labels).reshape(-1).astype(int)
        keep = np.flatnonzero(scores >= score_threshold)
        link: dict[int, Track] = {}
        if prev and len(keep):
            prev_masks = np.stack([m for _, m, _ in prev])
            if flow is not None:
                warped, _ = warp_mask(prev_masks, np.asarray(flow["backward"][t - 1], dtype=np.float32))
            else:
                warped = prev_masks
            iou = mask_iou(warped, masks[keep])
            same = np.array([c for _, _, c in prev])[:, None] == labels[keep][None, :]
            iou = np.where(same, iou, 0.0)
            for i in range(iou.shape[0]):
                j = int(np.argmax(iou[i]))
                best = iou[i, j]
                if best < link_iou or int(np.argmax(iou[:, j])) != i:
                    continue
                row = np.delete(iou[i], j)
                col = np.delete(iou[:, j], i)
                if (row.size and row.max() >= ambiguous_iou) or (col.size and col.max() >= ambiguous_iou):
                    continue
                link[j] = prev[i][0]
        cur = []
        for j, d in enumerate(keep):
            d = int(d)
            track = link.get(j)
            if track is None:
                track = Track(track_id=len(tracklets) + 1)
                tracklets.append(track)
            track.add(t, masks[d], scores[d], labels[d])
            cur.append((track, masks[d], int(labels[d])))
        prev = cur
    return tracklets


def _velocity(boxes: list[np.ndarray], frames: list[int]) -> np.ndarray:
    """Mean xyxy box velocity (pixels / frame) over the given observations (zeros for one)."""
    if len(boxes) < 2:
        return np.zeros(4)
    return (boxes[-1] - boxes[0]) / max(frames[-1] - frames[0], 1)


def merge_tracklets(
    tracklets: list[Track],
    *,
    images: Sequence[np.ndarray] | None,
    max_gap: int,
    merge_threshold: float,
    appearance_weight: float,
    appearance_frames: int,
    velocity_frames: int,
) -> list[Track]:
    """Stage 2: forest path cutting over the tracklet graph (module docstring).

    Returns:
        The merged tracks (new :class:`Track` objects; ids assigned later).
    """
    n = len(tracklets)
    if n == 0:
        return []
    info = []
    for tr in tracklets:
        fr = sorted(tr.frames)
        boxes = [masks_boxes(tr.frames[t][0][None])[0] for t in fr]
        head, tail = fr[:velocity_frames], fr[-velocity_frames:]
        entry = {
            "start": fr[0],
            "end": fr[-1],
            "category": tr.category_id,
            "weight": sum(s for _, s in tr.frames.values()),
            "first": boxes[0],
            "last": boxes[-1],
            "v_head": _velocity(boxes[: len(head)], head),
            "v_tail": _velocity(boxes[-len(tail):], tail),
        }
        if images is not None:
            fa, fb = fr[-appearance_frames:], fr[:appearance_frames]
            entry["hist_tail"] = lab_histogram([images[t] for t in fa], [tr.frames[t][0] for t in fa])
            entry["hist_head"] = lab_histogram([images[t] for t in fb], [tr.frames[t][0] for t in fb])
        info.append(entry)

    sim = np.full((n, n), -np.inf)
    for a in range(n):
        for b in range(n):
            A, B = info[a], info[b]
            gap = B["start"] - A["end"]
            if gap < 1 or gap > max_gap or A["category"] != B["category"]:
                continue
            fwd = box_iou((A["last"] + gap * A["v_tail"])[None], B["first"][None])[0, 0]
            bwd = box_iou((B["first"] - gap * B["v_head"])[None], A["last"][None])[0, 0]
            s = 0.5 * (fwd + bwd)
            if images is not None:
                app = float(np.sqrt(A["hist_tail"] * B["hist_head"]).sum())
                s = appearance_weight * app + (1 - appearance_weight) * s
            if s >= merge_threshold:
                sim[a, b] = s

    order = sorted(range(n), key=lambda i: info[i]["start"])
    remaining = set(range(n))
    merged: list[Track] = []
    while remaining:
        # value[i]: best score of a path starting at i (restricted to remaining tracklets)
        value: dict[int, float] = {}
        nxt: dict[int, int | None] = {}
        for i in reversed(order):
            if i not in remaining:
                continue
            best, arg = info[i]["weight"], None
            for j in remaining:
                if np.isfinite(sim[i, j]):
                    cand = info[i]["weight"] + sim[i, j] * info[j]["weight"] + (value[j] - info[j]["weight"])
                    if cand > best:
                        best, arg = cand, j
            value[i], nxt[i] = best, arg
        start = max(remaining, key=lambda i: (value[i], -info[i]["start"], -i))
        path, cur = [], start
        while cur is not None:
            path.append(cur)
            cur = nxt[cur]
        track = Track(track_id=len(merged) + 1)
        for i in path:
            for t, (m, s) in tracklets[i].frames.items():
                track.add(t, m, s, tracklets[i].labels[t])
            remaining.discard(i)
        merged.append(track)
    return merged


class UnOVOSTTracker:
    """UnOVOST-style two-stage tracker (module docstring: method, sources, simplifications).

    Args:
        score_threshold: detections below are ignored (default 0.3, as ``iou``).
        link_iou: minimum flow-warped mask IoU to link consecutive frames (default 0.5).
        ambiguous_iou: a link is refused if another candidate reaches this IoU (default 0.2).
        max_gap: longest gap (frames) bridged when merging tracklets (default 10).
        merge_threshold: minimum tracklet similarity for a merge edge (default 0.3).
        appearance_weight: weight of the colour histogram in the similarity
            when images are given (default 0.5).
        appearance_frames: frames at a tracklet's end/start used for its histogram (default 3).
        velocity_frames: frames at a tracklet's end/start used for its box velocity (default 5).
        min_length: drop merged tracks with fewer frames (default 1).
    """

    def __init__(
        self,
        score_threshold: float = 0.3,
        link_iou: float = 0.5,
        ambiguous_iou: float = 0.2,
        max_gap: int = 10,
        merge_threshold: float = 0.3,
        appearance_weight: float = 0.5,
        appearance_frames: int = 3,
        velocity_frames: int = 5,
        min_length: int = 1,
    ) -> None:
        if not 0 <= ambiguous_iou <= link_iou <= 1:
            raise ValueError(f"need 0 <= ambiguous_iou <= link_iou <= 1, got {ambiguous_iou}, {link_iou}")
        if not 0 <= appearance_weight <= 1:
            raise ValueError(f"appearance_weight must be in [0, 1], got {appearance_weight}")
        if max_gap < 1 or appearance_frames < 1 or velocity_frames < 2:
            raise ValueError("need max_gap >= 1, appearance_frames >= 1, velocity_frames >= 2")
        self.score_threshold = float(score_threshold)
        self.link_iou = float(link_iou)
        self.ambiguous_iou = float(ambiguous_iou)
        self.max_gap = int(max_gap)
        self.merge_threshold = float(merge_threshold)
        self.appearance_weight = float(appearance_weight)
        self.appearance_frames = int(appearance_frames)
        self.velocity_frames = int(velocity_frames)
        self.min_length = int(min_length)

    def __call__(
        self,
        predictions: Sequence[FramePredictions],
        *,
        flow: Mapping[str, Any] | None = None,
        depth: Any = None,
        images: Sequence[np.ndarray] | None = None,
    ) -> list[Track]:
        """Track one video (``depth`` is accepted and ignored).

        Args:
            predictions: T per-frame ``(masks, scores, labels, boxes)``.
            flow: ``{"forward", "backward"}`` gap-1 flow, (T-1, H, W, 2) pixels;
                without it masks are compared unwarped (logged warning).
            images: optional T (H, W, 3) uint8 RGB frames for the appearance cue.

        Returns:
            list of :class:`~wsvis.track.common.Track`, ids 1.. by first frame.

        Raises:
            ValueError: inconsistent predictions, flow or images.
        """
        num, h, w = check_predictions(predictions)
        check_flow(flow, num, (h, w))
        if flow is None and num > 1:
            log.warning("unovost tracker: no flow given; masks are linked by unwarped IoU")
        if images is not None and (len(images) != num or tuple(np.asarray(images[0]).shape[:2]) != (h, w)):
            raise ValueError(f"images: need {num} frames of size {(h, w)}")
        tracklets = link_tracklets(
            predictions,
            flow,
            score_threshold=self.score_threshold,
            link_iou=self.link_iou,
            ambiguous_iou=self.ambiguous_iou,
        )
        merged = merge_tracklets(
            tracklets,
            images=images,
            max_gap=self.max_gap,
            merge_threshold=self.merge_threshold,
            appearance_weight=self.appearance_weight,
            appearance_frames=self.appearance_frames,
            velocity_frames=self.velocity_frames,
        )
        return finalize(merged, self.min_length)
