"""Frame-level COCO mask evaluation of video data, on pycocotools.

Every frame of a YouTube-VIS video becomes one COCO image, every non-empty
per-frame segmentation of a gt instance one COCO annotation; detections
(pseudo-labels now, model predictions later) are scored with pycocotools'
``COCOeval`` (iouType ``"segm"``): AP averaged over IoU 0.50:0.05:0.95, AP50
and AP75, 101-point interpolated precision, at most 100 detections per image
(Lin et al., "Microsoft COCO: Common Objects in Context", ECCV 2014; the
frame AP50 of Liu et al., CVPR 2021, Sec. 5). The metric itself is
pycocotools', not a re-implementation; ``tests/test_evaluate_pseudo.py``
checks it against the cocoapi reference numbers.
"""

from __future__ import annotations

import contextlib
import io
import math
from typing import Any

import numpy as np
from pycocotools import mask as mask_util
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from wsvis.io.rle import encode_mask

__all__ = ["frame_coco_gt", "coco_segm_eval", "mask_detections", "annotated_videos"]

#: Names of the 12 numbers of ``COCOeval.stats`` in order.
STAT_NAMES = ("AP", "AP50", "AP75", "APs", "APm", "APl", "AR1", "AR10", "AR100", "ARs", "ARm", "ARl")


def mask_detections(
    image_id: int, masks: np.ndarray, category_ids: np.ndarray, scores: np.ndarray
) -> list[dict]:
    """Detections of one image in COCO results form.

    Args:
        image_id: the image (frame) id in the COCO gt (see :func:`frame_coco_gt`).
        masks: (K, H, W) bool masks; empty masks are skipped.
        category_ids: (K,) category ids (1-based, as in ``gt.json``).
        scores: (K,) confidences.

    Returns:
        ``[{"image_id", "category_id", "segmentation" (RLE, str counts), "score"}]``.
    """
    out = []
    for mask, cls, score in zip(np.asarray(masks, dtype=bool), category_ids, scores):
        if mask.any():
            out.append(
                {
                    "image_id": int(image_id),
                    "category_id": int(cls),
                    "segmentation": encode_mask(mask),
                    "score": float(score),
                }
            )
    return out


def annotated_videos(gt: dict) -> list[str]:
    """Names of the videos of a YouTube-VIS gt that have at least one annotation, in gt order."""
    ids = {a["video_id"] for a in gt.get("annotations", [])}
    return [v["name"] for v in gt.get("videos", []) if v["id"] in ids]


def _coco_from_dataset(dataset: dict) -> COCO:
    coco = COCO()
    coco.dataset = dataset
    with contextlib.redirect_stdout(io.StringIO()):
        coco.createIndex()
    return coco


def frame_coco_gt(gt: dict, videos: list[str] | None = None) -> tuple[COCO, dict[tuple[str, int], int]]:
    """Turn YouTube-VIS ground truth into a per-frame COCO dataset.

    One COCO image per frame of each selected video (every frame counts,
    including frames where no object is visible, so a detection there is a
    false positive); one annotation per instance per frame whose
    segmentation is not None, with ``iscrowd`` 0 and ``area`` / ``bbox``
    (``[x, y, w, h]`` pixels) computed from the RLE.

    Args:
        gt: a ``gt.json`` dict (:func:`wsvis.io.manifest.merge_manifest`):
            ``videos`` {id, name, width, height, length, file_names},
            ``categories`` {id, name}, ``annotations`` {video_id, category_id,
            segmentations: [RLE or None per frame], ...}.
        videos: video names to include, in this order; None = every video
            with at least one annotation (a video without annotations cannot
            be told from an unannotated one, so it is left out by default;
            listed explicitly, its frames count as empty).

    Returns:
        ``(coco, image_ids)``: the indexed :class:`pycocotools.coco.COCO` and
        the map ``(video name, frame index) -> image id`` (ids 1, 2, ... in
        video then frame order). Images carry ``video`` and ``frame`` keys.

    Raises:
        KeyError: a name in ``videos`` is not in ``gt`` (names the available videos).
        ValueError: a segmentation's size differs from its video's frame size.
    """
    byname = {v["name"]: v for v in gt.get("videos", [])}
    if videos is None:
        videos = annotated_videos(gt)
    missing = [v for v in videos if v not in byname]
    if missing:
        raise KeyError(f"videos {missing} not in gt (videos: {sorted(byname)})")
    anns_by_video: dict[int, list[dict]] = {}
    for ann in gt.get("annotations", []):
        anns_by_video.setdefault(ann["video_id"], []).append(ann)

    images, annotations, image_ids = [], [], {}
    for name in videos:
        video = byname[name]
        h, w, length = int(video["height"]), int(video["width"]), int(video["length"])
        files = video.get("file_names") or [None] * length
        first = len(images) + 1
        for t in range(length):
            image_ids[(name, t)] = first + t
            images.append(
                {"id": first + t, "width": w, "height": h, "file_name": files[t], "video": name, "frame": t}
            )
        for ann in anns_by_video.get(video["id"], []):
            for t, seg in enumerate(ann["segmentations"][:length]):
                if not seg:
                    continue
                if [int(s) for s in seg["size"]] != [h, w]:
                    raise ValueError(
                        f"video {name!r} frame {t}: segmentation size {seg['size']} differs from frame size {[h, w]}"
                    )
                rle = dict(seg)
                if isinstance(rle["counts"], list):  # uncompressed RLE
                    rle = mask_util.frPyObjects(rle, h, w)
                    rle["counts"] = rle["counts"].decode("ascii")
                annotations.append(
                    {
                        "id": len(annotations) + 1,
                        "image_id": first + t,
                        "category_id": int(ann["category_id"]),
                        "segmentation": rle,
                        "area": float(mask_util.area(rle)),
                        "bbox": [float(x) for x in mask_util.toBbox(rle)],
                        "iscrowd": 0,
                    }
                )
    dataset = {
        "info": {"description": "per-frame COCO view of a YouTube-VIS gt"},
        "images": images,
        "categories": [dict(c) for c in gt.get("categories", [])],
        "annotations": annotations,
    }
    return _coco_from_dataset(dataset), image_ids


def coco_segm_eval(
    coco_gt: COCO, detections: list[dict], *, class_agnostic: bool = False, image_ids: list[int] | None = None
) -> dict[str, Any]:
    """Score mask detections with pycocotools' ``COCOeval`` (iouType ``"segm"``, default maxDets 1/10/100).

    Args:
        coco_gt: an indexed COCO gt (:func:`frame_coco_gt`, or ``COCO(json)``).
        detections: ``[{"image_id", "category_id", "segmentation" (compressed
            RLE, str or bytes counts), "score"}]``; not modified.
        class_agnostic: ignore categories (``COCOeval.params.useCats = 0``):
            every detection may match every gt mask of its image.
        image_ids: evaluate only these images (default: all of ``coco_gt``).

    Returns:
        ``{"AP", "AP50", "AP75"}`` floats in [0, 1] (AP over IoU 0.50:0.95),
        ``"stats"`` the 12 ``COCOeval.stats`` by name (:data:`STAT_NAMES`),
        ``"summary"`` COCOeval's printed table (text), ``"detections"`` and
        ``"gt_instances"`` counts. No detections gives zeros (COCOeval itself
        cannot load an empty result list); no gt annotation gives NaN (AP is
        undefined; COCOeval reports -1).

    Raises:
        ValueError: a detection names an image not in ``coco_gt``.
    """
    img_ids = sorted(coco_gt.getImgIds()) if image_ids is None else sorted(int(i) for i in image_ids)
    known = set(coco_gt.getImgIds())
    stray = sorted({d["image_id"] for d in detections} - known)
    if stray:
        raise ValueError(f"detections for image ids {stray[:10]} that are not in the gt ({len(known)} images)")
    wanted = set(img_ids)
    detections = [dict(d) for d in detections if d["image_id"] in wanted]  # loadRes adds keys
    n_gt = len(coco_gt.getAnnIds(imgIds=img_ids))
    result: dict[str, Any] = {"detections": len(detections), "gt_instances": n_gt}
    if n_gt == 0 or not detections:
        value = math.nan if n_gt == 0 else 0.0
        note = "no gt annotations" if n_gt == 0 else "no detections"
        result.update({"AP": value, "AP50": value, "AP75": value, "stats": dict.fromkeys(STAT_NAMES, value)})
        result["summary"] = note
        return result
    text = io.StringIO()
    with contextlib.redirect_stdout(text):
        coco_dt = coco_gt.loadRes(detections)
        ev = COCOeval(coco_gt, coco_dt, iouType="segm")
        ev.params.imgIds = img_ids
        if class_agnostic:
            ev.params.useCats = 0
        ev.evaluate()
        ev.accumulate()
        summary = io.StringIO()
        with contextlib.redirect_stdout(summary):
            ev.summarize()
    stats = {k: (math.nan if v < 0 else float(v)) for k, v in zip(STAT_NAMES, ev.stats)}
    result.update({"AP": stats["AP"], "AP50": stats["AP50"], "AP75": stats["AP75"], "stats": stats})
    result["summary"] = summary.getvalue()
    return result
