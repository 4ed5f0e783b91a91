"""All video-level metrics of one method x tracker: YouTube-VIS AP/AR, DAVIS J&F, MOTS and HOTA.

One entry point for the workflow's ``video_metrics`` rule, combining
:func:`wsvis.evaluate.video.video_ap` (Yang et al., ICCV 2019),
:func:`wsvis.evaluate.video.davis_j_and_f` (Perazzi et al., CVPR 2016; reported
for single-object videos, where it is meaningful) and
:func:`wsvis.evaluate.mots.mots_metrics` (sMOTSA/MOTSA/MOTSP, Voigtlaender et
al. CVPR 2019; HOTA, Luiten et al. IJCV 2021; both through TrackEval).
"""

from __future__ import annotations

import math
import os
import tempfile
from pathlib import Path
from typing import Any

from wsvis.evaluate.coco import annotated_videos
from wsvis.evaluate.mots import gt_to_mots_txt, mots_metrics
from wsvis.evaluate.video import davis_j_and_f, video_ap

__all__ = ["track_metrics", "TRACK_METRICS"]

#: Keys of the row :func:`track_metrics` returns, besides ``method`` and ``tracker``.
TRACK_METRICS = ("mAP", "AP50", "AP75", "AR1", "AR10", "J", "F", "J&F", "HOTA", "DetA", "AssA", "sMOTSA", "MOTSA",
                 "MOTSP", "IDF1", "IDSW")


def track_metrics(gt: dict, results: list[dict], mots_dir: str | os.PathLike, *, method: str, tracker: str) -> dict[str, Any]:
    """Video metrics of one tracker's results on the annotated videos of ``gt``.

    Args:
        gt: YouTube-VIS ground truth (``gt.json``).
        results: the tracker's YouTube-VIS results (``tracks/{method}/{tracker}.json``).
        mots_dir: folder of the tracker's per-video KITTI-MOTS txt files (``{video}.txt``).
        method, tracker: names for the row.

    Returns:
        ``{"method", "tracker", "videos", "note", **{k: float for k in TRACK_METRICS}}``;
        J/F/J&F are NaN unless every annotated video has a single ground-truth
        object (DAVIS-style data), and everything is NaN without annotated videos.

    Raises:
        FileNotFoundError: a video's MOTS txt is missing from ``mots_dir``.
    """
    videos = annotated_videos(gt)
    row: dict[str, Any] = {"method": method, "tracker": tracker, "videos": len(videos), "note": ""}
    row.update({k: math.nan for k in TRACK_METRICS})
    if not videos:
        row["note"] = "no annotated video in gt.json"
        return row
    ap = video_ap(gt, results)
    row.update({k: ap[k] for k in ("mAP", "AP50", "AP75", "AR1", "AR10")})
    ids = {v["id"]: v["name"] for v in gt["videos"]}
    objects = {name: 0 for name in videos}
    for ann in gt["annotations"]:
        if ids[ann["video_id"]] in objects:
            objects[ids[ann["video_id"]]] += 1
    if all(n == 1 for n in objects.values()):
        jf = davis_j_and_f(gt, results)
        row.update({"J": jf["J"], "F": jf["F"], "J&F": jf["J&F"]})
    else:
        row["note"] = "J&F reported for single-object videos only"
    lengths = {v["name"]: v["length"] for v in gt["videos"] if v["name"] in objects}
    with tempfile.TemporaryDirectory() as gt_dir:
        for name in videos:
            gt_to_mots_txt(gt, name, Path(gt_dir) / f"{name}.txt")
        mots = mots_metrics(gt_dir, mots_dir, list(videos), lengths)["all"]
    row.update({k: mots[k] for k in ("HOTA", "DetA", "AssA", "sMOTSA", "MOTSA", "MOTSP", "IDF1", "IDSW")})
    return row
