"""Instance pseudo-labels from CAMs, boundary and displacement (IRN §4, Ahn et al., CVPR 2019).

Steps (one function each), all on the stride-4 grid until the last:

1. :func:`refine_displacement` — D_{u+1}(x) = D_u(x) + D(x + D_u(x)), D_0 = D
   (IRN Eq. 9), ``iterations`` = 100; D is sampled **bilinearly** at the
   (clipped) current end point, so end points move continuously and settle
   where D ≈ 0 (the centroids).
2. :func:`find_centroids` — a vote map counts the refined end points
   ``x + D_u(x)`` (rounded) of the foreground pixels; candidates are local
   maxima of the 3x3-summed votes with at least ``min_votes``; candidates
   within ``merge_distance`` grid pixels of a stronger one are merged into it.
   (IRN instead takes connected components of the small-|D| region; votes
   are more robust for an under-trained D and give the same centres for a
   converged one.)
3. :func:`instance_map` — every pixel goes to the centroid nearest to its
   refined end point: the class-agnostic instance map I.
4. :func:`instance_pseudo_labels` — instance-wise CAMs M̄_ck = M_c · [I = k]
   for the frame's tagged classes, the sparse random walk
   (:func:`wsvis.irn.random_walk.random_walk`) of M̄_ck ⊙ (1 − B), upsampled
   x4 to the frame, normalised by the global maximum, a background score
   ``ins_seg_bg_thres`` (0.25), argmax; then IRN's ``detect_instance``: each
   (class, instance) region is split into 4-connected components,
   components under ``min_fragment`` (1 %) of the frame are dropped, and a
   component's score is the maximum of its propagated map inside it.

Two departures, each an option of :func:`instance_pseudo_labels` (defaults IRN's):
``instances="components"`` skips steps 1-3 (the whole frame is one instance,
its regions split by connectivity only) and ``instance_class="instance"`` gives
each instance one class instead of a per-pixel argmax over classes.
"""

from __future__ import annotations

import numpy as np
import scipy.ndimage as ndi
import torch
import torch.nn.functional as F

from wsvis.irn.random_walk import random_walk

__all__ = ["refine_displacement", "find_centroids", "instance_map", "instance_pseudo_labels"]


def refine_displacement(displacement: np.ndarray, iterations: int = 100) -> np.ndarray:
    """Iterate D_{u+1}(x) = D_u(x) + D(x + D_u(x)) (IRN Eq. 9).

    Args:
        displacement: (2, h, w) D in grid pixels (dy, dx).
        iterations: u (IRN: 100); 0 returns D.

    Returns:
        (2, h, w) float32 refined D_u; the end point of pixel x is x + D_u(x),
        kept inside the grid (clipped, as IRN). D is sampled bilinearly
        (edge values outside the grid).
    """
    d = np.asarray(displacement, dtype=np.float32)
    _, h, w = d.shape
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    ey = np.clip(yy + d[0], 0, h - 1)
    ex = np.clip(xx + d[1], 0, w - 1)
    for _ in range(iterations):
        coords = np.stack([ey.ravel(), ex.ravel()])
        sy = ndi.map_coordinates(d[0], coords, order=1, mode="nearest").reshape(h, w)
        sx = ndi.map_coordinates(d[1], coords, order=1, mode="nearest").reshape(h, w)
        ey = np.clip(ey + sy, 0, h - 1)
        ex = np.clip(ex + sx, 0, w - 1)
    return np.stack([ey - yy, ex - xx]).astype(np.float32)


def find_centroids(
    refined: np.ndarray,
    mask: np.ndarray | None = None,
    *,
    min_votes: int | None = None,
    merge_distance: float = 5.0,
) -> np.ndarray:
    """Instance centroids where many refined end points converge.

    Args:
        refined: (2, h, w) refined displacement (:func:`refine_displacement`).
        mask: (h, w) bool pixels that vote (the foreground); default all.
        min_votes: least 3x3-summed votes of a centroid; default
            ``max(4, 0.2 % of the grid)`` (half of IRN's 1 % fragment size).
        merge_distance: candidates closer than this (grid pixels) to a
            stronger one are merged into it.

    Returns:
        (K, 2) float32 centroids (y, x) in grid pixels, strongest first; the
        position is the vote-weighted mean of the end points in the centroid's
        3x3 cell. K may be 0.
    """
    _, h, w = refined.shape
    if mask is None:
        mask = np.ones((h, w), bool)
    if min_votes is None:
        min_votes = max(4, int(round(0.002 * h * w)))
    yy, xx = np.mgrid[0:h, 0:w]
    ey = np.clip(np.rint(yy + refined[0]), 0, h - 1).astype(np.int64)[mask]
    ex = np.clip(np.rint(xx + refined[1]), 0, w - 1).astype(np.int64)[mask]
    votes = np.bincount(ey * w + ex, minlength=h * w).reshape(h, w).astype(np.float64)
    smooth = ndi.uniform_filter(votes, size=3, mode="constant") * 9
    peaks = (smooth == ndi.maximum_filter(smooth, size=3, mode="constant")) & (smooth >= min_votes)
    py, px = np.nonzero(peaks)
    order = np.argsort(-smooth[py, px], kind="stable")
    kept: list[tuple[float, float]] = []
    for k in order:
        y, x = int(py[k]), int(px[k])
        if any((y - cy) ** 2 + (x - cx) ** 2 < merge_distance**2 for cy, cx in kept):
            continue
        ys, xs = slice(max(0, y - 1), min(h, y + 2)), slice(max(0, x - 1), min(w, x + 2))
        wv = votes[ys, xs]
        gy, gx = np.mgrid[ys, xs]
        kept.append((float((wv * gy).sum() / wv.sum()), float((wv * gx).sum() / wv.sum())))
    return np.asarray(kept, dtype=np.float32).reshape(-1, 2)


def instance_map(refined: np.ndarray, centroids: np.ndarray) -> np.ndarray:
    """Class-agnostic instance map I: each pixel -> the centroid nearest its refined end point.

    Args:
        refined: (2, h, w) refined displacement.
        centroids: (K, 2) (y, x), K >= 1.

    Returns:
        (h, w) int64 in [0, K).
    """
    _, h, w = refined.shape
    yy, xx = np.mgrid[0:h, 0:w]
    ey, ex = yy + refined[0], xx + refined[1]
    c = np.asarray(centroids, dtype=np.float64)
    dist = (ey[None] - c[:, 0, None, None]) ** 2 + (ex[None] - c[:, 1, None, None]) ** 2
    return dist.argmin(0)


def instance_pseudo_labels(
    cam: np.ndarray,
    boundary: np.ndarray,
    displacement: np.ndarray,
    frame_size: tuple[int, int],
    *,
    beta: float = 10,
    exp_times: int = 8,
    rw_radius: int = 5,
    ins_seg_bg_thres: float = 0.25,
    refine_iterations: int = 100,
    fg_thres: float = 0.05,
    merge_distance: float = 5.0,
    min_votes: int | None = None,
    min_fragment: float = 0.01,
    instance_class: str = "pixel",
    instances: str = "displacement",
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Instance pseudo-labels of one frame (IRN ``make_ins_seg_labels``).

    Args:
        cam: (C, h, w) float CAM (or f-CAM) on the stride-4 grid; classes
            whose map is all zero are not the frame's tags and never appear.
        boundary: (h, w) boundary probability B from :class:`wsvis.irn.net.IRNet`.
        displacement: (2, h, w) D in grid pixels (dy, dx).
        frame_size: (H, W) pixels, with (h, w) = (ceil(H/4), ceil(W/4)).
        beta, exp_times, rw_radius: random walk (IRN 10, 8, 5).
        ins_seg_bg_thres: background score after normalisation (IRN 0.25).
        refine_iterations: displacement refinement steps (IRN 100).
        fg_thres: pixels whose largest CAM exceeds this vote for centroids
            (IRN's confident-background threshold 0.05).
        merge_distance, min_votes: of :func:`find_centroids`. If no centroid
            is found, the whole frame is one instance (each class's map is
            then split only by connected components).
        min_fragment: components smaller than this fraction of the frame are dropped (1 %).
        instances: ``"displacement"`` (IRN): instances are the centroids of the
            refined displacement field, each class's CAM is walked per
            instance; ``"components"`` (our option): each class's whole CAM
            is walked (no displacement) and the 4-connected foreground regions
            are the instances. With a displacement field trained for minutes
            on CPU the centroids cut one object into pieces, and a piece's walk
            reaches less of the object (davis_composites flowirn J 0.39 ->
            0.50).
        instance_class: ``"pixel"`` (IRN): each pixel takes the argmax over all
            (class, instance) maps, so an object is cut between tags whose CAMs
            overlap; ``"instance"`` (our option): one class per instance, the
            tag whose CAM (displacement) or propagated map (components) sums
            highest over it. For videos whose tags always co-occur, where the
            classifier cannot learn to tell them apart.

    Returns:
        ``(masks, classes, scores)``: (K, H, W) bool, (K,) int64 category ids
        (class index + 1), (K,) float32 in [0, 1]; ordered by increasing score;
        K may be 0.

    Raises:
        ValueError: grids that do not agree, or an unknown ``instances`` /
            ``instance_class``.
    """
    if instances not in ("displacement", "components"):
        raise ValueError(f"instances must be 'displacement' or 'components', got {instances!r}")
    if instance_class not in ("pixel", "instance"):
        raise ValueError(f"instance_class must be 'pixel' or 'instance', got {instance_class!r}")
    big_h, big_w = (int(v) for v in frame_size)
    cam = np.asarray(cam, dtype=np.float32)
    h, w = cam.shape[-2:]
    if boundary.shape != (h, w) or displacement.shape != (2, h, w) or (h, w) != (-(-big_h // 4), -(-big_w // 4)):
        raise ValueError(
            f"cam {cam.shape}, boundary {boundary.shape}, displacement {displacement.shape} "
            f"do not share the stride-4 grid of a {big_h}x{big_w} frame"
        )
    empty = (np.zeros((0, big_h, big_w), bool), np.zeros(0, np.int64), np.zeros(0, np.float32))
    keys = np.flatnonzero(cam.reshape(len(cam), -1).max(1) > 0)
    if len(keys) == 0:
        return empty
    cams = cam[keys]
    fg = cams.max(0) > fg_thres
    centroids = np.zeros((0, 2), np.float32)
    if instances == "displacement":
        refined = refine_displacement(displacement, refine_iterations)
        centroids = find_centroids(refined, fg, min_votes=min_votes, merge_distance=merge_distance)
    if len(centroids) == 0:
        inst = np.zeros((h, w), np.int64)
        n_inst = 1
    else:
        inst = instance_map(refined, centroids)
        n_inst = len(centroids)
    onehot = inst[None] == np.arange(n_inst)[:, None, None]  # (K, h, w)
    if instance_class == "instance" and instances == "displacement":
        # one class per instance: the tag whose CAM sums highest over the instance's foreground
        votes = (cams[:, None] * (onehot & fg)[None]).sum((2, 3))  # (C, K)
        onehot = onehot[None] & (votes == votes.max(0, keepdims=True))[:, :, None, None]
    # channel (c, k) -> c * n_inst + k
    maps = (cams[:, None] * onehot).reshape(-1, h, w)
    alive = maps.reshape(len(maps), -1).max(1) > 0
    if not alive.any():
        return empty
    rw = random_walk(maps[alive], boundary, radius=rw_radius, beta=beta, exp_times=exp_times)
    channel_ids = np.flatnonzero(alive)
    up = F.interpolate(torch.from_numpy(rw)[None], size=(4 * h, 4 * w), mode="bilinear", align_corners=False)[0]
    up = up[:, :big_h, :big_w].numpy()
    peak = up.max()
    if not peak > 0:
        return empty
    up = up / peak
    pred = np.concatenate([np.full((1, big_h, big_w), ins_seg_bg_thres, np.float32), up]).argmax(0)
    min_size = min_fragment * big_h * big_w
    masks, classes, scores = [], [], []
    if instances == "components" and instance_class == "instance":
        # each 4-connected foreground region is one instance of the class whose map sums highest in it
        comps, num = ndi.label(pred > 0)
        sizes = np.bincount(comps.ravel(), minlength=num + 1)
        for lab in np.flatnonzero(sizes[1:] >= min_size) + 1:
            seg = comps == lab
            n = int(up[:, seg].sum(1).argmax())
            masks.append(seg)
            classes.append(int(keys[channel_ids[n] // n_inst]) + 1)
            scores.append(float(up[n][seg].max()))
    else:
        for n, ch in enumerate(channel_ids):
            region = pred == n + 1
            if not region.any():
                continue
            comps, num = ndi.label(region)  # 4-connectivity, as IRN's connectivity=1
            sizes = np.bincount(comps.ravel(), minlength=num + 1)
            for lab in range(1, num + 1):
                if sizes[lab] < min_size:
                    continue
                seg = comps == lab
                masks.append(seg)
                classes.append(int(keys[ch // n_inst]) + 1)
                scores.append(float(up[n][seg].max()))
    if not masks:
        return empty
    order = np.argsort(scores, kind="stable")
    return (
        np.stack(masks)[order],
        np.asarray(classes, np.int64)[order],
        np.asarray(scores, np.float32)[order],
    )
