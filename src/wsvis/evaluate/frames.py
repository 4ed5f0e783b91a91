"""Frame-level metrics of a segmenter's predictions: AP/AP50/AP75, J and temporal consistency TC.

One row per method (``maskrcnn``, ``maskconsist``, ``stcseg``...), from the
``predictions/{method}/{video}.zarr`` artifacts:

* ``AP``, ``AP50``, ``AP75``: class-aware frame-level COCO mask AP
  (pycocotools, :mod:`wsvis.evaluate.coco`), every frame of an evaluated
  video one image, every stored prediction one detection with its score; the
  metric of Liu et al., CVPR 2021 (flowIRN + MaskConsist), Sec. 5.1, Tab. 1.
* ``J``: class-agnostic region similarity (DAVIS, Perazzi et al., CVPR 2016):
  per frame the IoU of the union of the predicted masks with score >=
  ``score_threshold`` (0.5 by default) and the union of the gt masks (1 when
  both are empty), mean over the frames of a video, then over videos (the
  convention of :mod:`wsvis.evaluate.pseudo`); ``J_per_video`` keeps each
  video's mean (the DAVIS toolkit's per-sequence results).
* ``TC``: temporal consistency, Liu et al., CVPR 2021, Sec. 5.3 / Tab. 6
  ("the AP50 between mask predictions and flow warped masks on consecutive
  frames", after Liu et al., ECCV 2020): for every frame pair (t, t+δ) the
  predictions of frame t with score >= ``score_threshold`` are warped to
  frame t+δ with :func:`wsvis.flow.ops.warp_mask` and the backward flow
  t+δ -> t, and become the "ground truth" of a pseudo-image t+δ (keeping
  their class); the predictions of frame t+δ (all of them, with their
  scores) are its detections; TC is the class-aware COCO AP50 pooled over
  all pairs of all videos with flow. The paper leaves the score threshold of
  the warped set unsaid (ours: the same 0.5 as J, so low-confidence noise
  does not become ground truth); "consecutive frames" means δ = 1 frame of
  our artifacts (YouTube-VIS frames are themselves every 5th video frame,
  hence the paper's "t and t + 5").
"""

from __future__ import annotations

import contextlib
import io
import math
import os
from typing import Any

import numpy as np
from pycocotools import mask as mask_util
from pycocotools.coco import COCO

from wsvis.evaluate.coco import annotated_videos, coco_segm_eval, frame_coco_gt, mask_detections
from wsvis.evaluate.pseudo import _gt_frames, region_similarity
from wsvis.flow.ops import warp_mask
from wsvis.flow.stage import read_flow
from wsvis.io.predictions import frame_predictions, read_predictions
from wsvis.io.rle import encode_mask
from wsvis.transforms import resize_masks

__all__ = ["FRAME_COLUMNS", "frame_metrics", "temporal_consistency"]

#: Keys of a frame-metrics row, in order.
FRAME_COLUMNS = ["method", "AP", "AP50", "AP75", "J", "TC", "videos", "frames", "note"]


def _index(dataset: dict) -> COCO:
    coco = COCO()
    coco.dataset = dataset
    with contextlib.redirect_stdout(io.StringIO()):
        coco.createIndex()
    return coco


def temporal_consistency(
    frames: list[tuple[np.ndarray, np.ndarray, np.ndarray]],
    backward_flows,
    *,
    gap: int = 1,
    score_threshold: float = 0.5,
    categories: list[dict] | None = None,
) -> dict[str, Any]:
    """TC of one or more videos (module docstring): AP50 of predictions at t+δ against warped predictions of t.

    Args:
        frames: per video, per frame ``(masks (N, H, W) bool, scores (N,),
            labels (N,) 1-based)``: a list of videos, each a list of frames.
        backward_flows: per video, an array-like ``(T - δ, H, W, 2)`` whose
            ``[t]`` is the flow t+δ -> t on frame t+δ's grid (the flow
            artifact's ``gap_<δ>/backward``), or None to skip that video.
        gap: δ, frames between the two frames of a pair.
        score_threshold: predictions of frame t below it are not warped.
        categories: COCO categories ``[{"id", "name"}]`` (default: the labels seen).

    Returns:
        ``{"TC", "pairs", "warped_instances"}``; TC is NaN when no warped
        instance exists (AP undefined).
    """
    images, anns, dets = [], [], []
    labels_seen: set[int] = set()
    for video, flow in zip(frames, backward_flows):
        if flow is None:
            continue
        for t in range(len(video) - gap):
            masks, scores, labels = video[t]
            nmasks, nscores, nlabels = video[t + gap]
            h, w = np.asarray(nmasks).shape[1:] if len(nmasks) else np.asarray(flow[t]).shape[:2]
            image_id = len(images) + 1
            images.append({"id": image_id, "width": int(w), "height": int(h)})
            keep = np.asarray(scores) >= score_threshold
            if keep.any():
                warped, _ = warp_mask(np.asarray(masks)[keep], np.asarray(flow[t], dtype=np.float32))
                for m, c in zip(warped, np.asarray(labels)[keep]):
                    if not m.any():
                        continue
                    rle = encode_mask(m)
                    labels_seen.add(int(c))
                    anns.append(
                        {
                            "id": len(anns) + 1,
                            "image_id": image_id,
                            "category_id": int(c),
                            "segmentation": rle,
                            "area": float(m.sum()),
                            "bbox": [float(x) for x in mask_util.toBbox({**rle, "counts": rle["counts"].encode()})],
                            "iscrowd": 0,
                        }
                    )
            labels_seen.update(int(c) for c in nlabels)
            dets += mask_detections(image_id, nmasks, nlabels, nscores)
    if categories is None:
        categories = [{"id": c, "name": str(c)} for c in sorted(labels_seen)]
    if not anns:
        return {"TC": math.nan, "pairs": len(images), "warped_instances": 0}
    coco = _index({"images": images, "annotations": anns, "categories": [dict(c) for c in categories]})
    res = coco_segm_eval(coco, dets)
    return {"TC": res["AP50"], "pairs": len(images), "warped_instances": len(anns)}


def frame_metrics(
    gt: dict,
    prediction_paths: dict[str, str | os.PathLike],
    method: str,
    flow_paths: dict[str, str | os.PathLike] | None = None,
    *,
    score_threshold: float = 0.5,
    gap: int = 1,
) -> dict[str, Any]:
    """Score one segmenter's predictions against ground truth (module docstring).

    Args:
        gt: a ``gt.json`` dict (YouTube-VIS).
        prediction_paths: video name -> ``predictions/{method}/{video}.zarr``.
            Videos without gt annotations are skipped (named in ``note``).
        method: the segmenter name, copied into the row.
        flow_paths: video name -> ``flow/{video}.zarr`` for TC (its
            ``gap_<gap>/backward`` array); None or missing videos: TC over
            the videos that have flow, NaN when none has.
        score_threshold: score at or above which a prediction counts for J
            and is warped for TC (0.5).
        gap: δ of TC's frame pairs.

    Returns:
        A row ``{"method", "AP", "AP50", "AP75", "J", "TC", "videos",
        "frames", "note", "J_per_video"}``: metrics floats in [0, 1] (NaN when
        undefined), ``videos``/``frames`` ints evaluated, ``note`` str,
        ``J_per_video`` {video name: its J} (``J`` is their mean).

    Raises:
        ArtifactError: a predictions or flow artifact is missing or incomplete.
        ValueError: an artifact's frame count differs from its gt video, or its
            category names differ from the gt's. Masks at another (H, W) (a
            processing size) are upsampled to the gt's before scoring
            (:func:`wsvis.transforms.resize_masks`); TC is computed at the masks' size.
    """
    annotated = set(annotated_videos(gt))
    videos = sorted(v for v in prediction_paths if v in annotated)
    skipped = sorted(v for v in prediction_paths if v not in annotated)
    notes = [f"no gt annotations for {skipped}"] if skipped else []
    row: dict[str, Any] = dict.fromkeys(FRAME_COLUMNS, math.nan)
    row.update({"method": method, "videos": 0, "frames": 0, "J_per_video": {}})
    if not videos:
        row["note"] = "; ".join(notes) or "no videos given"
        return row

    cats = sorted(gt.get("categories", []), key=lambda c: c["id"])
    gt_names = [c["name"] for c in cats]
    byname = {v["name"]: v for v in gt["videos"]}
    coco_gt, image_ids = frame_coco_gt(gt, videos)
    detections: list[dict] = []
    j_per_video, n_frames = [], 0
    tc_frames, tc_flows = [], []
    for name in videos:
        video = byname[name]
        group, attrs = read_predictions(prediction_paths[name])
        shape = (int(video["length"]), int(video["height"]), int(video["width"]))
        got = tuple(group["masks"].shape)
        if got[0] != shape[0]:
            raise ValueError(
                f"{prediction_paths[name]}: predictions of shape {got} (T, K, H, W) do not match "
                f"gt video {name!r} of shape {shape} (T, H, W)"
            )
        pcats = attrs.get("categories")
        if pcats is not None and list(pcats) != gt_names:
            raise ValueError(f"{prediction_paths[name]}: categories {list(pcats)} differ from the gt's {gt_names}")
        gt_union, _ = _gt_frames(gt, video)
        j, per_frame = [], []
        for t in range(shape[0]):
            masks, scores, labels, _ = frame_predictions(group, t)
            full = resize_masks(masks, shape[1:])  # scored at the gt's size (processing size: upsampled)
            detections += mask_detections(image_ids[(name, t)], full, labels, scores)
            fg = full[scores >= score_threshold].any(axis=0) if len(full) else np.zeros(shape[1:], bool)
            j.append(region_similarity(fg, gt_union[t]))
            per_frame.append((masks, scores, labels))
        j_per_video.append(float(np.mean(j)))
        n_frames += shape[0]
        flow = None
        if flow_paths and name in flow_paths:
            flow = read_flow(flow_paths[name], gap=gap, direction="backward")
            if tuple(flow.shape[1:3]) != got[2:]:
                raise ValueError(f"{flow_paths[name]}: flow frame size {tuple(flow.shape[1:3])} != {got[2:]}")
        tc_frames.append(per_frame)
        tc_flows.append(flow)

    ap = coco_segm_eval(coco_gt, detections)
    tc = temporal_consistency(tc_frames, tc_flows, gap=gap, score_threshold=score_threshold, categories=cats)
    no_flow = [v for v, f in zip(videos, tc_flows) if f is None]
    if no_flow:
        notes.append(f"no flow for {no_flow} (left out of TC)")
    if tc["warped_instances"] == 0:
        notes.append("TC undefined: no prediction to warp")
    row.update(
        {
            "AP": ap["AP"],
            "AP50": ap["AP50"],
            "AP75": ap["AP75"],
            "J": float(np.mean(j_per_video)),
            "TC": tc["TC"],
            "videos": len(videos),
            "frames": n_frames,
            "note": "; ".join(notes),
            "J_per_video": dict(zip(videos, j_per_video)),
        }
    )
    return row
