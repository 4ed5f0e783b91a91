"""Quality of pseudo-labels against ground truth: frame AP/AP50 and DAVIS J.

One row per pseudo-labeler variant (``irn``, ``flowirn``, ``stc``...):

* ``AP``, ``AP50``: class-aware frame-level mask AP (COCO, pycocotools; see
  :mod:`wsvis.evaluate.coco`), every pseudo instance one detection with its
  stored score, every frame of the evaluated videos one image;
* ``J``: class-agnostic region similarity (DAVIS, Perazzi et al., "A Benchmark
  Dataset and Evaluation Methodology for Video Object Segmentation", CVPR
  2016): per frame the IoU of the union of all pseudo masks with the union of
  all gt masks (a frame where both are empty scores 1), averaged over the
  frames of a video, then over videos; ``J_per_video`` keeps each video's
  mean (the DAVIS toolkit's per-sequence results; not a column of the table);
* ``box_IoU``: IoU of the pseudo foreground *inside each gt box* with that
  gt mask, averaged over gt instances and frames (the STC-Seg pseudo-label
  quality: M inside the box vs the mask; for box-derived pseudo-labels it
  measures what the box cannot tell);
* ``instances_per_frame`` / ``gt_instances_per_frame``: instances per frame,
  pooled over all evaluated frames;
* ``videos``, ``frames``: how much was evaluated; ``note``: why something is
  NaN or which videos were skipped ("" when nothing to say).

Pseudo-labels made at a processing size (``dataset.process_size``) are scored
at the ground truth's size: each instance mask is upsampled first
(:func:`wsvis.transforms.resize_masks`), as DAVIS and YouTube-VIS evaluate.
"""

from __future__ import annotations

import math
import os
from typing import Any

import numpy as np
import pandas as pd

from wsvis.evaluate.coco import annotated_videos, coco_segm_eval, frame_coco_gt, mask_detections
from wsvis.io.manifest import load_gt_masks
from wsvis.io.rle import decode_rle
from wsvis.io.pseudo import frame_instances, read_pseudo
from wsvis.io.store import atomic_file
from wsvis.transforms import resize_masks

__all__ = ["TABLE_COLUMNS", "region_similarity", "box_iou", "pseudo_label_metrics", "write_pseudo_label_table"]

#: Columns of the pseudo-label quality table, in order (``note`` last).
TABLE_COLUMNS = [
    "variant",
    "AP",
    "AP50",
    "J",
    "box_IoU",
    "instances_per_frame",
    "gt_instances_per_frame",
    "videos",
    "frames",
    "note",
]


def region_similarity(pred: np.ndarray, gt: np.ndarray) -> float:
    """DAVIS J of one frame: IoU of two (H, W) bool masks; 1.0 when both are empty (Perazzi et al., CVPR 2016)."""
    pred, gt = np.asarray(pred, dtype=bool), np.asarray(gt, dtype=bool)
    union = np.logical_or(pred, gt).sum()
    if union == 0:
        return 1.0
    return float(np.logical_and(pred, gt).sum() / union)


def box_iou(foreground: np.ndarray, gt_mask: np.ndarray) -> float:
    """IoU of ``foreground`` inside the bounding box of ``gt_mask`` with ``gt_mask`` (both (H, W) bool).

    Raises:
        ValueError: an empty ``gt_mask`` (it has no box).
    """
    ys, xs = np.nonzero(gt_mask)
    if not len(ys):
        raise ValueError("box_iou: empty gt mask")
    sl = (slice(ys.min(), ys.max() + 1), slice(xs.min(), xs.max() + 1))
    return region_similarity(np.asarray(foreground, bool)[sl], np.asarray(gt_mask, bool)[sl])


def _gt_frames(gt: dict, video: dict) -> tuple[np.ndarray, np.ndarray]:
    """Per frame of ``video``: (T, H, W) bool union of gt masks and (T,) int instance counts."""
    t, h, w = int(video["length"]), int(video["height"]), int(video["width"])
    union = np.zeros((t, h, w), bool)
    counts = np.zeros(t, np.int64)
    for ann in gt["annotations"]:
        if ann["video_id"] != video["id"]:
            continue
        for f, rle in enumerate(ann["segmentations"][:t]):
            if rle:
                m = decode_rle(rle, h, w).astype(bool)
                union[f] |= m
                counts[f] += int(m.any())
    return union, counts


def _empty_row(variant: str, note: str, videos: int = 0, frames: int = 0) -> dict[str, Any]:
    row = dict.fromkeys(TABLE_COLUMNS, math.nan)
    row.update({"variant": variant, "videos": videos, "frames": frames, "note": note, "J_per_video": {}})
    return row


def pseudo_label_metrics(gt: dict, pseudo_paths: dict[str, str | os.PathLike], variant: str) -> dict[str, Any]:
    """Score one pseudo-label variant against ground truth.

    Args:
        gt: a ``gt.json`` dict (YouTube-VIS, :func:`wsvis.io.manifest.merge_manifest`).
        pseudo_paths: video name -> ``pseudo/{variant}/{video}.zarr``. Videos
            without gt annotations are skipped (named in ``note``).
        variant: the pseudo-labeler name, copied into the row.

    Returns:
        A row ``{column: value}`` for :data:`TABLE_COLUMNS` (see the module
        docstring): ``AP``/``AP50``/``J`` floats in [0, 1],
        ``instances_per_frame``/``gt_instances_per_frame`` floats,
        ``videos``/``frames`` ints, ``note`` str, and ``J_per_video``
        {video name: its J} (``J`` is their mean). With no annotated video
        among ``pseudo_paths`` the metrics are NaN and ``note`` says so.

    Raises:
        ArtifactError: a pseudo-label artifact is missing or incomplete.
        ValueError: an artifact's frame count differs from its gt video, or its
            category names differ from the gt's.
    """
    annotated = set(annotated_videos(gt))
    videos = sorted(v for v in pseudo_paths if v in annotated)
    skipped = sorted(v for v in pseudo_paths if v not in annotated)
    skip_note = f"no gt annotations for {skipped}" if skipped else ""
    if not videos:
        return _empty_row(variant, skip_note or "no videos given")

    gt_names = [c["name"] for c in sorted(gt.get("categories", []), key=lambda c: c["id"])]
    byname = {v["name"]: v for v in gt["videos"]}
    coco_gt, image_ids = frame_coco_gt(gt, videos)
    detections: list[dict] = []
    j_per_video, n_pred, n_gt, n_frames, box_ious = [], 0, 0, 0, []
    for name in videos:
        video = byname[name]
        instances, classes, scores, attrs = read_pseudo(pseudo_paths[name])
        shape = (int(video["length"]), int(video["height"]), int(video["width"]))
        if instances.shape[0] != shape[0]:
            raise ValueError(
                f"{pseudo_paths[name]}: pseudo-labels of shape {tuple(instances.shape)} (T, H, W) do not match "
                f"gt video {name!r} of shape {shape}"
            )
        cats = attrs.get("categories")
        if cats is not None and list(cats) != gt_names:
            raise ValueError(f"{pseudo_paths[name]}: categories {list(cats)} differ from the gt's {gt_names}")
        gt_union, gt_counts = _gt_frames(gt, video)
        gt_masks, _ = load_gt_masks(gt, name)
        j = []
        for t in range(shape[0]):
            label = np.asarray(instances[t])
            ids, masks, cls, sc = frame_instances(label, classes, scores)
            masks = resize_masks(masks, shape[1:])
            fg = masks.any(axis=0) if len(masks) else resize_masks(label > 0, shape[1:])
            detections += mask_detections(image_ids[(name, t)], masks, cls, sc)
            j.append(region_similarity(fg, gt_union[t]))
            box_ious += [box_iou(fg, m) for m in gt_masks[t] if m.any()]
            n_pred += len(ids)
        j_per_video.append(float(np.mean(j)))
        n_gt += int(gt_counts.sum())
        n_frames += shape[0]

    ap = coco_segm_eval(coco_gt, detections)
    return {
        "variant": variant,
        "AP": ap["AP"],
        "AP50": ap["AP50"],
        "J": float(np.mean(j_per_video)),
        "box_IoU": float(np.mean(box_ious)) if box_ious else math.nan,
        "instances_per_frame": n_pred / n_frames,
        "gt_instances_per_frame": n_gt / n_frames,
        "videos": len(videos),
        "frames": n_frames,
        "note": skip_note,
        "J_per_video": dict(zip(videos, j_per_video)),
    }


def write_pseudo_label_table(rows: list[dict], out_csv: str | os.PathLike) -> pd.DataFrame:
    """Write the pseudo-label quality table (one row per variant) to CSV atomically.

    Args:
        rows: dicts from :func:`pseudo_label_metrics`; missing columns are
            left empty, extra keys become extra columns after :data:`TABLE_COLUMNS`
            (``J_per_video``, a mapping, is left out: ``metrics/per_sequence.csv`` has it).
        out_csv: the CSV path.

    Returns:
        The written DataFrame (columns :data:`TABLE_COLUMNS` first).
    """
    df = pd.DataFrame([{k: v for k, v in row.items() if k != "J_per_video"} for row in rows])
    extra = [c for c in df.columns if c not in TABLE_COLUMNS]
    df = df.reindex(columns=TABLE_COLUMNS + extra)
    df["note"] = df["note"].fillna("")
    with atomic_file(out_csv) as tmp:
        df.to_csv(tmp, index=False)
    return df
