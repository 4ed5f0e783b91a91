"""Per-video baseline pseudo-labels: ``pseudo/{motion,box,grabcut}/{video}.zarr``.

The same artifact as every pseudo-labeler (:class:`~wsvis.io.pseudo.PseudoLabelWriter`),
so the baselines are scored in ``metrics/pseudo_labels.csv`` and can be the
``pseudo`` input of any ``segment.runs`` entry.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import pandas as pd

from wsvis.baselines.box import box_instances, cut_source, grabcut_instances
from wsvis.baselines.motion import motion_instances
from wsvis.flow.stage import read_flow
from wsvis.io.images import read_image
from wsvis.io.pseudo import PseudoLabelWriter
from wsvis.flow.stage import frame_flow

__all__ = ["BASELINES", "BASELINE_SUPERVISION", "compute_video_baseline"]

#: Baseline name -> the weak label it uses ("tags" or "boxes"): its supervision family.
BASELINE_SUPERVISION: dict[str, str] = {"motion": "tags", "box": "boxes", "grabcut": "boxes"}


def _category_ids(names: Sequence[str], categories: Sequence[str], where: str) -> np.ndarray:
    unknown = [c for c in names if c not in categories]
    if unknown:
        raise ValueError(f"{where}: classes {unknown} are not in the categories {list(categories)}")
    return np.asarray([list(categories).index(c) + 1 for c in names], np.int64)


def _motion(table: pd.DataFrame, t: int, categories, *, flows, **options):
    forward, backward = flows
    flow = frame_flow(forward, backward, t, len(table))
    row = table.iloc[t]
    h, w = int(row["height"]), int(row["width"])
    if flow is None:
        return np.zeros((0, h, w), bool), np.zeros(0, np.int64), np.zeros(0, np.float32)
    tags = _category_ids(list(row["tags"]), categories, f"video {row['video']!r} frame {t}")
    return motion_instances(flow, tags.tolist(), **options)


def _box(table: pd.DataFrame, t: int, categories, **_):
    row = table.iloc[t]
    classes = _category_ids(list(row["box_classes"]), categories, f"video {row['video']!r} frame {t}")
    return box_instances(np.asarray(list(row["boxes"]), np.float64), classes, (int(row["height"]), int(row["width"])))


def _grabcut(table: pd.DataFrame, t: int, categories, **options):
    row = table.iloc[t]
    classes = _category_ids(list(row["box_classes"]), categories, f"video {row['video']!r} frame {t}")
    boxes = np.asarray(list(row["boxes"]), np.float64)
    if not len(boxes):
        h, w = int(row["height"]), int(row["width"])
        return np.zeros((0, h, w), bool), np.zeros(0, np.int64), np.zeros(0, np.float32)
    resolution = options.pop("resolution", "process")
    source = cut_source(resolution, row.get("source_image"), key="baselines.grabcut.resolution")
    return grabcut_instances(read_image(row["image"]), boxes, classes, source=source, **options)


#: Baseline name -> per-frame function ``(table, t, categories, **options) -> (masks, classes, scores)``.
BASELINES: dict[str, Callable[..., tuple[np.ndarray, np.ndarray, np.ndarray]]] = {
    "motion": _motion,
    "box": _box,
    "grabcut": _grabcut,
}


def compute_video_baseline(
    name: str,
    table: pd.DataFrame,
    out: str | os.PathLike,
    *,
    categories: Sequence[str],
    flow_path: str | os.PathLike | None = None,
    params: dict[str, Any] | None = None,
    **options: Any,
) -> Path:
    """Write one video's pseudo-labels of baseline ``name``.

    Args:
        name: a key of :data:`BASELINES` (``motion``: :mod:`wsvis.baselines.motion`;
            ``box``, ``grabcut``: :mod:`wsvis.baselines.box`).
        table: the video's ingest table (one row per frame, :data:`wsvis.io.manifest.MANIFEST_SCHEMA`):
            ``tags`` for ``motion``, ``boxes``/``box_classes`` (xyxy pixels of the
            processed frames) for ``box`` / ``grabcut``, ``image`` for ``grabcut``.
        out: ``pseudo/{name}/{video}.zarr``.
        categories: class names in id order.
        flow_path: the video's flow artifact with gap 1 (``motion`` only).
        params: the baseline's config, stored in attrs.
        **options: keywords of the per-frame function (:func:`~wsvis.baselines.motion.motion_instances`,
            :func:`~wsvis.baselines.box.grabcut_instances`).

    Returns:
        ``out`` as a Path.

    Raises:
        ValueError: unknown ``name``; an empty table; ``motion`` without
            ``flow_path`` or with a flow whose frame count / size differs from
            the table's; a tag or box class not in ``categories`` (names video and frame).
        KeyError: the flow artifact has no gap 1.
    """
    if name not in BASELINES:
        raise ValueError(f"unknown baseline {name!r}; choose from {sorted(BASELINES)}")
    if table.empty:
        raise ValueError(f"{out}: the video's table has no frames")
    table = table.sort_values("frame").reset_index(drop=True)
    num_frames = len(table)
    size = (int(table["height"].iloc[0]), int(table["width"].iloc[0]))
    extra: dict[str, Any] = {}
    if name == "motion":
        if flow_path is None:
            raise ValueError(f"{out}: the motion baseline needs the video's flow artifact")
        forward, backward = read_flow(flow_path, 1, "forward"), read_flow(flow_path, 1, "backward")
        if forward.shape[0] != max(num_frames - 1, 0) or tuple(forward.shape[1:3]) != size:
            raise ValueError(f"{flow_path}: flow of shape {forward.shape} does not fit {num_frames} frames of {size}")
        extra["flows"] = (forward, backward)
    frame_fn = BASELINES[name]
    with PseudoLabelWriter(
        out, num_frames=num_frames, frame_size=size, variant=name, categories=list(categories), params=params,
        attrs={"supervision": BASELINE_SUPERVISION[name]},
    ) as writer:
        for t in range(num_frames):
            masks, classes, scores = frame_fn(table, t, list(categories), **extra, **options)
            writer.add_frame(t, masks, classes, scores)
    return Path(out)
