"""Frame-level COCO evaluation (pycocotools reference numbers) and pseudo-label quality metrics."""

from __future__ import annotations

import contextlib
import io
import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from pycocotools.coco import COCO

from conftest import build_composite_gt, shared
from wsvis.evaluate import (
    TABLE_COLUMNS,
    coco_segm_eval,
    frame_coco_gt,
    mask_detections,
    pseudo_label_metrics,
    region_similarity,
    write_pseudo_label_table,
)
from wsvis.io.datasets import VideoRecord
from wsvis.io.manifest import load_gt_masks, video_gt
from wsvis.io.pseudo import PseudoLabelWriter

VIDEOS = {"blackswan_dog_horse": 4, "two_cars": 3}  # composite video -> frames used


@pytest.fixture(scope="module")
def composite_gt(tmp_path_factory) -> dict:
    """gt.json of the first frames of two real composite videos (3 classes in one, 2 cars in the other)."""
    return build_composite_gt(tmp_path_factory.mktemp("composites"), VIDEOS)


def ytvis(fragments: list[dict], categories: list[str]) -> dict:
    """A merged YouTube-VIS gt dict from :func:`video_gt` fragments (as merge_manifest builds it)."""
    videos, anns = [], []
    for vid, frag in enumerate(fragments, 1):
        videos.append({k: frag[k] for k in ("name", "width", "height", "length", "file_names")} | {"id": vid})
        for a in frag["annotations"]:
            anns.append({**a, "id": len(anns) + 1, "video_id": vid, "iscrowd": 0})
    cats = [{"id": i + 1, "name": c} for i, c in enumerate(categories)]
    return {"videos": videos, "categories": cats, "annotations": anns}


def write_pseudo(path: Path, masks: np.ndarray, classes: np.ndarray, categories: list[str], scores=None) -> Path:
    """Pseudo-label artifact from (T, K, H, W) masks with (K,) classes; empty masks are dropped by the writer."""
    t, k, h, w = masks.shape
    scores = np.ones(k, np.float32) if scores is None else np.asarray(scores, np.float32)
    with PseudoLabelWriter(path, num_frames=t, frame_size=(h, w), variant="test", categories=categories) as wr:
        for f in range(t):
            wr.add_frame(f, masks[f], classes, scores)
    return path


def categories(gt: dict) -> list[str]:
    return [c["name"] for c in sorted(gt["categories"], key=lambda c: c["id"])]


# --------------------------------------------------------------------------- coco.py


def test_coco_fixture_reproduces_reference_segm_numbers():
    root = shared("fixtures", "coco_val2014_100")
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO(str(root / "instances_val2014_100.json"))
    dets = json.loads((root / "instances_val2014_fakesegm100_results.json").read_text())
    before = json.dumps(dets[:3])
    res = coco_segm_eval(gt, dets)
    # SOURCE.md, segm: 0.3195 0.5623 0.2989 ... (pycocotools 2.0.11)
    reference = [0.3195, 0.5623, 0.2989, 0.3874, 0.3102, 0.3269, 0.2682, 0.4154, 0.4168, 0.4694, 0.3768, 0.3815]
    assert (res["AP"], res["AP50"], res["AP75"]) == pytest.approx(reference[:3], abs=5e-4)
    assert list(res["stats"].values()) == pytest.approx(reference, abs=5e-4)
    assert "Average Precision" in res["summary"]
    assert json.dumps(dets[:3]) == before  # detections not modified by loadRes

    zero = coco_segm_eval(gt, [])
    assert (zero["AP"], zero["AP50"], zero["AP75"]) == (0.0, 0.0, 0.0)
    with pytest.raises(ValueError, match="not in the gt"):
        coco_segm_eval(gt, [{**dets[0], "image_id": -5}])


def test_frame_coco_gt_counts_every_frame(composite_gt):
    coco, ids = frame_coco_gt(composite_gt)
    assert len(coco.getImgIds()) == sum(VIDEOS.values()) == len(ids)
    assert sorted(ids.values()) == list(range(1, 8))
    assert ids[("blackswan_dog_horse", 0)] == 1 and ids[("two_cars", 2)] == 7
    gt_segs = [(a, t) for a in composite_gt["annotations"] for t, s in enumerate(a["segmentations"]) if s]
    assert len(coco.getAnnIds()) == len(gt_segs)
    for ann, (src, t) in zip(coco.loadAnns(coco.getAnnIds()), gt_segs):
        assert ann["area"] == src["areas"][t] and ann["bbox"] == pytest.approx(src["bboxes"][t])
        assert ann["iscrowd"] == 0 and ann["category_id"] == src["category_id"]
    coco1, ids1 = frame_coco_gt(composite_gt, ["two_cars"])
    assert list(ids1) == [("two_cars", t) for t in range(3)] and len(coco1.getImgIds()) == 3
    with pytest.raises(KeyError, match="nope"):
        frame_coco_gt(composite_gt, ["nope"])


def test_perfect_detections_give_ap_one(composite_gt):
    coco, ids = frame_coco_gt(composite_gt, ["blackswan_dog_horse"])
    masks, cats = load_gt_masks(composite_gt, "blackswan_dog_horse")
    dets = []
    for t in range(masks.shape[0]):
        dets += mask_detections(ids[("blackswan_dog_horse", t)], masks[t], cats, np.ones(len(cats)))
    res = coco_segm_eval(coco, dets)
    assert res["AP"] == pytest.approx(1.0) and res["AP50"] == pytest.approx(1.0) and res["AP75"] == pytest.approx(1.0)
    # right masks, wrong classes: zero when class-aware, perfect when class-agnostic
    wrong = [{**d, "category_id": d["category_id"] % 3 + 1} for d in dets]
    assert coco_segm_eval(coco, wrong)["AP50"] == pytest.approx(0.0)
    assert coco_segm_eval(coco, wrong, class_agnostic=True)["AP50"] == pytest.approx(1.0)


# --------------------------------------------------------------------------- pseudo.py


def test_perfect_pseudo_labels(composite_gt, tmp_path):
    paths = {}
    for v in VIDEOS:
        masks, cats = load_gt_masks(composite_gt, v)
        paths[v] = write_pseudo(tmp_path / f"{v}.zarr", masks, cats, categories(composite_gt))
    row = pseudo_label_metrics(composite_gt, paths, "perfect")
    assert row["variant"] == "perfect" and row["note"] == ""
    assert row["AP50"] == pytest.approx(1.0) and row["AP"] == pytest.approx(1.0) and row["J"] == pytest.approx(1.0)
    assert row["instances_per_frame"] == row["gt_instances_per_frame"] > 1
    assert row["videos"] == 2 and row["frames"] == 7


def test_empty_pseudo_labels(composite_gt, tmp_path):
    video = "blackswan_dog_horse"
    gt = json.loads(json.dumps(composite_gt))
    for a in gt["annotations"]:  # frame 0 of the video: no object in gt either
        if a["video_id"] == 1:
            a["segmentations"][0] = a["areas"][0] = a["bboxes"][0] = None
    masks, cats = load_gt_masks(gt, video)
    assert not masks[0].any() and masks[1:].any(axis=(1, 2, 3)).all()
    path = write_pseudo(tmp_path / "empty.zarr", np.zeros_like(masks), cats, categories(gt))
    row = pseudo_label_metrics(gt, {video: path}, "empty")
    # J per frame: 1 (both empty), then 0, 0, 0 (nothing predicted, gt present) -> 1/4
    assert row["J"] == pytest.approx(0.25)
    assert row["AP"] == 0.0 and row["AP50"] == 0.0
    assert row["instances_per_frame"] == 0.0 and row["gt_instances_per_frame"] == pytest.approx(9 / 4)
    assert row["frames"] == 4 and row["videos"] == 1


def test_shifted_mask_j_is_hand_computed_iou(tmp_path):
    h, w = 20, 30
    square = np.zeros((h, w), np.uint8)
    square[5:15, 5:15] = 1  # 100 px
    rec = VideoRecord("sq", ["sq/0.jpg", "sq/1.jpg"], h, w, [square, square], {1: "cat"}, [True, True])
    gt = ytvis([video_gt(rec, ["cat"])], ["cat"])
    shifted = np.zeros((h, w), bool)
    shifted[5:15, 10:20] = True  # 5 px to the right: overlap 50, union 150
    pred = np.stack([shifted, square.astype(bool)])[:, None]
    path = write_pseudo(tmp_path / "sq.zarr", pred, np.array([1]), ["cat"])
    row = pseudo_label_metrics(gt, {"sq": path}, "shifted")
    assert region_similarity(shifted, square) == pytest.approx(50 / 150)
    assert row["J"] == pytest.approx((50 / 150 + 1.0) / 2)
    assert row["J_per_video"] == {"sq": pytest.approx((50 / 150 + 1.0) / 2)}
    # frame 0's detection (IoU 1/3) is a false positive and its gt a miss: recall 1/2 at precision 1/2 or 1
    assert 0.0 < row["AP50"] < 1.0
    assert row["instances_per_frame"] == row["gt_instances_per_frame"] == 1.0


def test_no_gt_annotations_gives_nan_row_and_table(composite_gt, tmp_path):
    rec = VideoRecord("blank", ["blank/0.jpg"], 4, 5, None, {}, [])
    gt = ytvis([video_gt(rec, ["cat"])], ["cat"])
    path = write_pseudo(tmp_path / "blank.zarr", np.zeros((1, 0, 4, 5), bool), np.zeros(0, int), ["cat"])
    row = pseudo_label_metrics(gt, {"blank": path}, "irn")
    assert all(math.isnan(row[k]) for k in ("AP", "AP50", "J", "instances_per_frame", "gt_instances_per_frame"))
    assert "no gt annotations" in row["note"] and "blank" in row["note"] and row["videos"] == 0
    assert row["J_per_video"] == {}

    masks, cats = load_gt_masks(composite_gt, "two_cars")
    good = pseudo_label_metrics(
        composite_gt, {"two_cars": write_pseudo(tmp_path / "tc.zarr", masks, cats, categories(composite_gt))}, "gt"
    )
    out = tmp_path / "metrics" / "pseudo_labels.csv"
    df = write_pseudo_label_table([good, row], out)
    assert list(df.columns) == TABLE_COLUMNS
    back = pd.read_csv(out, keep_default_na=False, na_values=[""])
    assert list(back.columns) == TABLE_COLUMNS and back["variant"].tolist() == ["gt", "irn"]
    assert back.loc[0, "AP50"] == pytest.approx(1.0) and math.isnan(back.loc[1, "J"])
    assert back.loc[1, "frames"] == 0 and not [p for p in out.parent.iterdir() if ".tmp-" in p.name]


def test_pseudo_shape_mismatch_is_an_error(composite_gt, tmp_path):
    masks, cats = load_gt_masks(composite_gt, "two_cars")
    path = write_pseudo(tmp_path / "short.zarr", masks[:2], cats, categories(composite_gt))
    with pytest.raises(ValueError, match="do not match"):
        pseudo_label_metrics(composite_gt, {"two_cars": path}, "short")


def test_box_iou_counts_only_inside_the_gt_box():
    from wsvis.evaluate.pseudo import box_iou

    gt = np.zeros((6, 6), bool)
    gt[1:4, 1:3] = True  # box rows 1-3, cols 1-2
    fg = np.ones((6, 6), bool)  # everything foreground: inside the box it is the box (6 px), gt has 6 px
    assert box_iou(fg, gt) == 1.0
    fg[1, 1] = False
    assert box_iou(fg, gt) == 5 / 6
