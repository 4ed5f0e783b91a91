"""STC pseudo-label stage: ``pseudo/stc/{video}.zarr`` from flow (and depth) artifacts and the boxes.

Per frame t: S^t from the gap-1 flow (``forward[t]``; the last frame uses
``backward[T-2]``, the flow back to its predecessor — the similarity of
flow vectors does not depend on their sign), S^s from ``depth[t]``, M by
Eq. 2 (:mod:`wsvis.stc.mini_network`). The artifact holds:

* ``foreground`` (T, H, W) bool: the class-agnostic map M;
* ``similarity_temporal`` / ``similarity_spatial`` (T, H, W) float16: S^t, S^s
  (only those computed);
* the pseudo-label contract (:mod:`wsvis.io.pseudo`): ``instances`` with one
  instance per box of the frame, mask M ∩ box, class of the box, score 1
  (larger boxes written first, so where boxes overlap the smaller box keeps
  the pixels).

Refinement (``refine``, **our addition**; ``none`` is the paper): M inside a
box marks pixels whose flow (depth) is smooth over 24 px, which holds on the
object and on the background alike, so M ∩ box scores below the filled box
as a mask (issue 16: J 0.29 against 0.40 on davis2016). ``grabcut_flow``
makes each instance with GrabCut (:func:`wsvis.baselines.box.grabcut_mask`)
started from a motion prior: inside the box, pixels whose flow differs from
the median flow of a ring around the box (``refine_ring`` times the box size
wide) by more than ``refine_threshold`` pixels start as probable foreground,
the others as probable background; colour then decides. A cut that keeps no
pixel of the box (a prior too small for GrabCut's colour model: a slow object)
gives way to GrabCut started from the box alone, not to the filled box
(davis2016 J 0.630 -> 0.637; cows 0.707 -> 0.723). ``foreground`` is then
the union of the refined instances (what stcseg's puzzle loss learns from) and
the paper's M is kept as ``foreground_stc``.

Ring quantile (``refine_ring_quantile``, our addition): one median is the
background's motion only where the background moves as one. Under parallax
(near sea faster than far sea) or where the box meets the frame's edge (the
ring then holds the near side only), background inside the box differs from
the ring's median by several pixels and enters the prior; with no background
beyond the frame's edge to oppose it, GrabCut keeps it (davis2016 kite-surf: a
wedge of sea above the kite lines, 3-6x the object's area). Raising the
threshold to a percentile of the ring's own residuals reads the spread of the
background's motion from the ring itself.

Depth scale: relative inverse depth has no fixed unit; each frame's depth is
mapped linearly to [0, ``depth_range``] (default 10, the range of
Monodepth2's scaled disparity, the network STC-Seg used) before Eq. 1.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from wsvis.baselines.box import box_masks, box_motion_prior, cut_source, grabcut_mask
from wsvis.depth.stage import read_depth
from wsvis.flow.stage import frame_flow, read_flow
from wsvis.io.images import read_image
from wsvis.io.pseudo import PseudoLabelWriter
from wsvis.stc.mini_network import SIGNALS, MiniNetwork, stc_pseudo_mask

__all__ = ["compute_video_stc", "REFINEMENTS"]

#: ``stc.refine`` values (module docstring): the paper's M ∩ box, or GrabCut from a flow prior.
REFINEMENTS = ("none", "grabcut_flow")

log = logging.getLogger(__name__)


def compute_video_stc(
    boxes: Sequence[Sequence[Sequence[float]]],
    box_classes: Sequence[Sequence[str]],
    frame_size: tuple[int, int],
    flow_path: str | os.PathLike | None,
    depth_path: str | os.PathLike | None,
    out: str | os.PathLike,
    *,
    categories: Sequence[str],
    signals: str = "both",
    phi_s: float = 0.3,
    phi_t: float = 0.4,
    layers: int = 3,
    dilation: int = 2,
    pool: int = 4,
    r: float = 0.5,
    p: float = 2.0,
    depth_range: float = 10.0,
    refine: str = "none",
    refine_threshold: float = 1.0,
    refine_ring: float = 0.25,
    refine_ring_quantile: float | None = None,
    refine_iterations: int = 5,
    refine_context: float | None = 0.5,
    refine_resolution: str = "process",
    images: Sequence[str | os.PathLike] | None = None,
    source_images: Sequence[str | os.PathLike | None] | None = None,
    params: dict[str, Any] | None = None,
) -> Path:
    """Write one video's STC pseudo-labels (module docstring).

    Args:
        boxes: per frame, its boxes ``[x1, y1, x2, y2]`` in pixels (manifest ``boxes``).
        box_classes: per frame, the class name of each box (manifest ``box_classes``).
        frame_size: (H, W) of the frames.
        flow_path: the video's flow artifact (needs gap 1), or None.
        depth_path: the video's depth artifact, or None (no depth backend).
        out: ``pseudo/stc/{video}.zarr``.
        categories: class names in id order.
        signals: ``both | depth | flow`` (STC-Seg Table III). ``both`` or
            ``depth`` without ``depth_path`` falls back to flow only with a
            warning (a departure from the paper).
        phi_s, phi_t: filter factors of Eq. 2.
        layers, dilation, pool, r, p: :class:`~wsvis.stc.mini_network.MiniNetwork`.
        depth_range: depth is scaled per frame to [0, depth_range] (module docstring).
        refine: one of :data:`REFINEMENTS` (module docstring, "Refinement").
        refine_threshold, refine_ring, refine_ring_quantile: :func:`box_motion_prior` (``quantile``).
        refine_iterations, refine_context: :func:`wsvis.baselines.box.grabcut_mask`.
        refine_resolution: ``process`` or ``source`` (:func:`wsvis.baselines.box.cut_source`):
            the cut on the frame at its source resolution (``source_images``).
        images: the T frame files (``grabcut_flow``).
        source_images: the T frames at their source resolution (ingest ``source_image``).
        params: stored in attrs.

    Returns:
        ``out`` as a Path.

    Raises:
        ValueError: unknown ``signals``; flow needed but ``flow_path`` missing;
            per-frame lists (boxes, classes, source frames) of different lengths; an unknown box class; artifacts
            whose frame count or size differs from the boxes'.
        KeyError: the flow artifact has no gap 1.
    """
    if signals not in SIGNALS:
        raise ValueError(f"stc.signals must be one of {list(SIGNALS)}, got {signals!r}")
    if refine not in REFINEMENTS:
        raise ValueError(f"stc.refine must be one of {list(REFINEMENTS)}, got {refine!r}")
    if refine == "grabcut_flow" and (images is None or len(images) != len(boxes) or flow_path is None):
        raise ValueError(f"{out}: stc.refine 'grabcut_flow' needs the video's frames (one per frame) and its flow")
    num_frames = len(boxes)
    if source_images is not None and len(source_images) != num_frames:
        raise ValueError(f"{out}: {len(source_images)} source frames for {num_frames} frames of boxes")
    if len(box_classes) != num_frames:
        raise ValueError(f"{out}: {num_frames} frames of boxes but {len(box_classes)} of box classes")
    use_depth = signals in ("both", "depth")
    use_flow = signals in ("both", "flow")
    if use_depth and depth_path is None:
        log.warning(
            "%s: STC-Seg makes pseudo-labels from depth and flow (Table III, signals=%s), but no depth backend "
            "is configured (depth.backend: none): using flow only", out, signals,
        )
        use_depth, use_flow = False, True
    if use_flow and flow_path is None:
        raise ValueError(f"{out}: STC pseudo-labels with signals {signals!r} need the video's flow artifact")
    h, w = frame_size
    forward = backward = depth = None
    if use_flow or refine != "none":
        forward, backward = read_flow(flow_path, 1, "forward"), read_flow(flow_path, 1, "backward")
        if forward.shape[0] != max(num_frames - 1, 0) or tuple(forward.shape[1:3]) != (h, w):
            raise ValueError(f"{flow_path}: flow of shape {forward.shape} does not fit {num_frames} frames of {(h, w)}")
    if use_depth:
        depth = read_depth(depth_path)
        if tuple(depth.shape) != (num_frames, h, w):
            raise ValueError(f"{depth_path}: depth of shape {depth.shape} does not fit {num_frames} frames of {(h, w)}")
    net_kw = dict(layers=layers, dilation=dilation, pool=pool, r=r, p=p)
    flow_net, depth_net = MiniNetwork(2, **net_kw), MiniNetwork(1, **net_kw)
    cut = dict(iterations=refine_iterations, context=refine_context)  # grabcut_flow's GrabCut settings
    used = "+".join(s for s, on in (("depth", use_depth), ("flow", use_flow)) if on)
    with PseudoLabelWriter(
        out, num_frames=num_frames, frame_size=(h, w), variant="stc", categories=list(categories),
        params=params, attrs={"signals_used": used, "signals": signals},
    ) as writer:
        fg = writer.create_array("foreground", shape=(num_frames, h, w), dtype="bool", fill_value=False)
        fg_stc = (
            writer.create_array("foreground_stc", shape=(num_frames, h, w), dtype="bool", fill_value=False)
            if refine != "none" else None
        )
        st = writer.create_array("similarity_temporal", shape=(num_frames, h, w), dtype="float16") if use_flow else None
        ss = writer.create_array("similarity_spatial", shape=(num_frames, h, w), dtype="float16") if use_depth else None
        for t in range(num_frames):
            s_t = s_s = None
            with torch.no_grad():
                if use_flow:
                    f = frame_flow(forward, backward, t, num_frames)
                    if f is None:
                        log.warning("%s: one-frame video, no flow: S^t = 1", out)
                        s_t = torch.ones(h, w)
                    else:
                        s_t = flow_net(torch.from_numpy(f).permute(2, 0, 1)[None])[0, 0]
                    st[t] = s_t.numpy().astype(np.float16)
                if use_depth:
                    d = np.asarray(depth[t], np.float32)
                    d = (d - d.min()) / max(float(d.max() - d.min()), 1e-6) * depth_range
                    s_s = depth_net(torch.from_numpy(d)[None, None])[0, 0]
                    ss[t] = s_s.numpy().astype(np.float16)
            m = stc_pseudo_mask(s_s, s_t, phi_s, phi_t).numpy()
            b = np.asarray(boxes[t], np.float64).reshape(-1, 4)
            names = list(box_classes[t])
            if len(names) != len(b):
                raise ValueError(f"{out}: frame {t} has {len(b)} boxes but {len(names)} box classes")
            unknown = [c for c in names if c not in categories]
            if unknown:
                raise ValueError(f"{out}: frame {t}: box classes {unknown} not in the categories {list(categories)}")
            order = np.argsort(-(b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1]), kind="stable")
            cls = np.asarray([categories.index(names[i]) + 1 for i in order], np.int64)
            if refine == "none":
                fg[t] = m
                masks = box_masks(b[order], (h, w)) & m[None]
            else:
                fg_stc[t] = m
                image = read_image(images[t])
                src = cut_source(
                    refine_resolution, source_images[t] if source_images else None, key="stc.refine_resolution"
                )
                f = frame_flow(forward, backward, t, num_frames) if forward is not None else None
                masks = np.zeros((len(order), h, w), bool)
                for k, i in enumerate(order):
                    prior = None if f is None else box_motion_prior(
                        f, b[i], threshold=refine_threshold, ring=refine_ring, quantile=refine_ring_quantile
                    )
                    masks[k] = grabcut_mask(image, b[i], prior=prior, fallback=masks[k], source=src, **cut)
                    if not masks[k].any():  # the prior's cut kept nothing: GrabCut from the box alone
                        masks[k] = grabcut_mask(image, b[i], source=src, **cut)
                fg[t] = masks.any(axis=0) if len(masks) else np.zeros((h, w), bool)
            writer.add_frame(t, masks, cls, np.ones(len(order), np.float32))
    return Path(out)
