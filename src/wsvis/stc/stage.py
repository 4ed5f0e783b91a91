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

from wsvis.depth.stage import read_depth
from wsvis.flow.stage import read_flow
from wsvis.io.pseudo import PseudoLabelWriter
from wsvis.stc.mini_network import SIGNALS, MiniNetwork, stc_pseudo_mask

__all__ = ["box_masks", "frame_flow", "compute_video_stc"]

log = logging.getLogger(__name__)


def box_masks(boxes: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """(K, H, W) bool masks of xyxy pixel boxes (x2/y2 exclusive, as the manifest): pixel (i, j)
    is inside when its centre (j + 0.5, i + 0.5) is."""
    h, w = size
    boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
    xs, ys = np.arange(w) + 0.5, np.arange(h) + 0.5
    inx = (xs[None] >= boxes[:, 0:1]) & (xs[None] < boxes[:, 2:3])
    iny = (ys[None] >= boxes[:, 1:2]) & (ys[None] < boxes[:, 3:4])
    return iny[:, :, None] & inx[:, None, :]


def frame_flow(forward, backward, t: int, num_frames: int, *, negate_backward: bool = False) -> np.ndarray | None:
    """The gap-1 flow of frame t: ``forward[t]``, or for the last frame ``backward[T-2]``
    (negated when ``negate_backward``, an approximation of its forward flow); None for a one-frame video.

    Returns:
        (H, W, 2) float32 pixels or None.
    """
    if t < num_frames - 1:
        return np.asarray(forward[t], np.float32)
    if num_frames < 2:
        return None
    f = np.asarray(backward[num_frames - 2], np.float32)
    return -f if negate_backward else f


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
        params: stored in attrs.

    Returns:
        ``out`` as a Path.

    Raises:
        ValueError: unknown ``signals``; flow needed but ``flow_path`` missing;
            per-frame lists of different lengths; an unknown box class; artifacts
            whose frame count or size differs from the boxes'.
        KeyError: the flow artifact has no gap 1.
    """
    if signals not in SIGNALS:
        raise ValueError(f"stc.signals must be one of {list(SIGNALS)}, got {signals!r}")
    num_frames = len(boxes)
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
    if use_flow:
        forward, backward = read_flow(flow_path, 1, "forward"), read_flow(flow_path, 1, "backward")
        if forward.shape[0] != max(num_frames - 1, 0) or tuple(forward.shape[1:3]) != (h, w):
            raise ValueError(f"{flow_path}: flow of shape {forward.shape} does not fit {num_frames} frames of {(h, w)}")
    if use_depth:
        depth = read_depth(depth_path)
        if tuple(depth.shape) != (num_frames, h, w):
            raise ValueError(f"{depth_path}: depth of shape {depth.shape} does not fit {num_frames} frames of {(h, w)}")
    net_kw = dict(layers=layers, dilation=dilation, pool=pool, r=r, p=p)
    flow_net, depth_net = MiniNetwork(2, **net_kw), MiniNetwork(1, **net_kw)
    used = "+".join(s for s, on in (("depth", use_depth), ("flow", use_flow)) if on)
    with PseudoLabelWriter(
        out, num_frames=num_frames, frame_size=(h, w), variant="stc", categories=list(categories),
        params=params, attrs={"signals_used": used, "signals": signals},
    ) as writer:
        fg = writer.create_array("foreground", shape=(num_frames, h, w), dtype="bool", fill_value=False)
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
            fg[t] = m
            b = np.asarray(boxes[t], np.float64).reshape(-1, 4)
            names = list(box_classes[t])
            if len(names) != len(b):
                raise ValueError(f"{out}: frame {t} has {len(b)} boxes but {len(names)} box classes")
            unknown = [c for c in names if c not in categories]
            if unknown:
                raise ValueError(f"{out}: frame {t}: box classes {unknown} not in the categories {list(categories)}")
            order = np.argsort(-(b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1]), kind="stable")
            masks = box_masks(b[order], (h, w)) & m[None]
            cls = np.asarray([categories.index(names[i]) + 1 for i in order], np.int64)
            writer.add_frame(t, masks, cls, np.ones(len(order), np.float32))
    return Path(out)
