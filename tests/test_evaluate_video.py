"""YouTube-VIS video AP/AR (spatio-temporal IoU on COCOeval) and DAVIS J&F."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from conftest import build_composite_gt, shared
from wsvis.evaluate.video import boundary_f, davis_j_and_f, spatio_temporal_iou, video_ap
from wsvis.evaluate.video import _to_rle
from wsvis.io.rle import encode_mask

H, W = 8, 8


def box(y0, y1, x0, x1) -> np.ndarray:
    m = np.zeros((H, W), bool)
    m[y0:y1, x0:x1] = True
    return m


def rles(masks) -> list:
    return [None if m is None else _to_rle(encode_mask(m), H, W) for m in masks]


def test_spatio_temporal_iou_hand_computed():
    # gt: 4 px on frames 0 and 1, absent on frame 2
    gt = [box(0, 2, 0, 2), box(0, 2, 0, 2), None]
    # dt: exact on frame 0 (I 4, U 4), absent on frame 1 (U 4), 2 px on frame 2 where gt is absent (U 2)
    dt_a = [box(0, 2, 0, 2), None, box(5, 6, 5, 7)]
    # dt: half overlap on frame 0 (I 2, U 6), exact on frame 1 (I 4, U 4), absent on frame 2
    dt_b = [box(0, 2, 1, 3), box(0, 2, 0, 2), None]
    iou = spatio_temporal_iou([rles(dt_a), rles(dt_b)], [rles(gt)])
    assert iou.shape == (2, 1)
    assert iou[0, 0] == pytest.approx(4 / 10)
    assert iou[1, 0] == pytest.approx(6 / 10)
    # all-None on both sides: union 0 -> 0
    assert spatio_temporal_iou([[None, None]], [[None, None]])[0, 0] == 0.0


def ytvis_gt(tracks: dict[int, list], cats=("a", "b")) -> dict:
    """A one-video YouTube-VIS gt from {category id: [mask or None per frame]} (one track per entry)."""
    t = len(next(iter(tracks.values())))
    anns = [
        {
            "id": i,
            "video_id": 1,
            "category_id": c,
            "iscrowd": 0,
            "segmentations": [None if m is None else encode_mask(m) for m in seq],
        }
        for i, (c, seq) in enumerate(tracks.items(), 1)
    ]
    return {
        "videos": [{"id": 1, "name": "v", "width": W, "height": H, "length": t}],
        "categories": [{"id": i + 1, "name": n} for i, n in enumerate(cats)],
        "annotations": anns,
    }


def test_multi_frame_prediction_empty_on_some_frames():
    sq = box(0, 2, 0, 2)
    gt = ytvis_gt({1: [sq, sq, sq, sq]})  # 16 px over 4 frames
    # exact on frames 0 and 1, half on frame 2, empty on frame 3: I = 4 + 4 + 2 = 10, U = 4 + 4 + 4 + 4 = 16
    pred = [sq, sq, box(0, 1, 0, 2), None]
    res = [
        {
            "video": "v",
            "category_id": 1,
            "score": 0.9,
            "segmentations": [None if m is None else encode_mask(m) for m in pred],
        }
    ]
    out = video_ap(gt, res)
    # IoU 0.625 passes thresholds 0.50, 0.55, 0.60 of ten
    assert out["AP50"] == pytest.approx(1.0) and out["AP75"] == pytest.approx(0.0)
    assert out["mAP"] == pytest.approx(0.3)
    assert out["AR1"] == pytest.approx(0.3) and out["AR10"] == pytest.approx(0.3)
    # the same track under the wrong class matches nothing, unless class-agnostic
    wrong = [dict(res[0], category_id=2)]
    assert video_ap(gt, wrong)["mAP"] == pytest.approx(0.0)
    assert video_ap(gt, wrong, class_agnostic=True)["mAP"] == pytest.approx(0.3)
    # a second, higher-scored false track halves precision at recall 1 for AP50 (101-point interpolation)
    false = {
        "video": "v",
        "category_id": 1,
        "score": 0.95,
        "segmentations": [encode_mask(box(6, 8, 6, 8))] + [None] * 3,
    }
    assert video_ap(gt, res + [false])["AP50"] == pytest.approx(0.5)
    assert math.isnan(video_ap({**gt, "annotations": []}, res)["mAP"])
    with pytest.raises(ValueError, match="not in the gt"):
        video_ap(gt, [dict(res[0], video="nope")])


VIDEOS = {"blackswan_dog_horse": 3, "two_cars": 2}


@pytest.fixture(scope="module")
def composite_gt(tmp_path_factory) -> dict:
    """gt.json of the first frames of two real composite videos, through make_reader / ingest / merge."""
    return build_composite_gt(tmp_path_factory.mktemp("composites"), VIDEOS)


def test_perfect_tracks_on_real_composites(composite_gt):
    names = {v["id"]: v["name"] for v in composite_gt["videos"]}
    results = [
        {
            "video": names[a["video_id"]],
            "category_id": a["category_id"],
            "score": 1.0,
            "segmentations": a["segmentations"],
        }
        for a in composite_gt["annotations"]
    ]
    assert len(results) >= 4
    out = video_ap(composite_gt, results)
    for k in ("mAP", "AP50", "AP75"):
        assert out[k] == pytest.approx(1.0), k
    assert out["AR10"] == pytest.approx(1.0)
    jf = davis_j_and_f(composite_gt, results)
    assert jf["J"] == pytest.approx(1.0) and jf["F"] == pytest.approx(1.0) and jf["videos"] == 2
    # dropping the second half of every track lowers mAP; shuffled scores do not matter when all match
    half = [dict(r, segmentations=[s if t == 0 else None for t, s in enumerate(r["segmentations"])]) for r in results]
    assert video_ap(composite_gt, half)["mAP"] < 1.0


def mmtrack_to_ytvis(ann: dict, results: dict) -> tuple[dict, list[dict]]:
    """Convert mmtracking's per-image VIS layout (gt images + instance_id; results per image per class) to ours."""
    videos = [{**v, "length": 0} for v in ann["videos"]]
    by_id = {v["id"]: v for v in videos}
    frame_of = {}
    for im in ann["images"]:
        by_id[im["video_id"]]["length"] = max(by_id[im["video_id"]]["length"], im["frame_id"] + 1)
        frame_of[im["id"]] = (im["video_id"], im["frame_id"])
    tracks: dict[tuple, dict] = {}
    for a in ann["annotations"]:
        vid, t = frame_of[a["image_id"]]
        key = (vid, a["instance_id"])
        tr = tracks.setdefault(
            key,
            {
                "video_id": vid,
                "category_id": a["category_id"],
                "iscrowd": 0,
                "segmentations": [None] * by_id[vid]["length"],
            },
        )
        seg = a["segmentation"]
        tr["segmentations"][t] = (
            {"size": [by_id[vid]["height"], by_id[vid]["width"]], **seg} if "size" not in seg else seg
        )
    gt = {
        "videos": videos,
        "categories": ann["categories"],
        "annotations": [{"id": i, **tr} for i, tr in enumerate(tracks.values(), 1)],
    }
    images = sorted(ann["images"], key=lambda im: im["id"])
    preds: dict[tuple, dict] = {}
    for im, per_cls_boxes, per_cls_masks in zip(images, results["track_bboxes"], results["track_masks"]):
        vid, t = frame_of[im["id"]]
        for c, (bxs, msks) in enumerate(zip(per_cls_boxes, per_cls_masks)):
            for b, m in zip(bxs, msks):
                key = (vid, int(b[0]))
                p = preds.setdefault(
                    key,
                    {
                        "video": by_id[vid]["name"],
                        "category_id": ann["categories"][c]["id"],
                        "scores": [],
                        "segmentations": [None] * by_id[vid]["length"],
                    },
                )
                p["segmentations"][t] = m
                p["scores"].append(float(b[5]))
    res = [
        {k: v for k, v in p.items() if k != "scores"} | {"score": float(np.mean(p["scores"]))} for p in preds.values()
    ]
    return gt, res


def test_mmtracking_one_frame_fixture_gives_one():
    root = shared("fixtures", "mot15_and_ytvis", "demo_vis_data")
    ann = json.loads((root / "ann.json").read_text())
    results = json.loads((root / "results.json").read_text())
    gt, res = mmtrack_to_ytvis(ann, results)
    assert len(gt["annotations"]) == 1 and len(res) == 1
    out = video_ap(gt, res)
    assert out["mAP"] == pytest.approx(1.0) and out["AP50"] == pytest.approx(1.0)


def test_boundary_f_equals_scipy_reference_at_davis_size():
    from scipy import ndimage

    from wsvis.evaluate.video import _disk, _seg2bmap

    disk = _disk(8)  # ceil(0.008 * 979.2) = 8 px at 854x480

    def reference_f(pred, gt):  # DAVIS f_measure with SciPy's binary dilation (zero border)
        bp, bg = _seg2bmap(pred), _seg2bmap(gt)
        precision = (bp & ndimage.binary_dilation(bg, structure=disk)).sum() / bp.sum()
        recall = (bg & ndimage.binary_dilation(bp, structure=disk)).sum() / bg.sum()
        return 2 * precision * recall / (precision + recall)

    rng = np.random.default_rng(0)
    noise = [ndimage.gaussian_filter(rng.random((480, 854)), 6) for _ in range(2)]
    blobs = [n > np.quantile(n, q) for n, q in zip(noise, (0.5, 0.8))]
    corner = np.zeros((480, 854), bool)
    corner[0:40, 0:30] = True  # touches the frame's corner
    square = np.zeros((480, 854), bool)
    square[100:300, 200:500] = True
    moved = np.roll(square, 9, axis=1)  # vertical edges 9 px apart: beyond the 8 px tolerance
    for pred, gt in [(blobs[0], blobs[1]), (blobs[1] | corner, blobs[0]), (corner, np.roll(corner, 3, axis=0)),
                     (moved, square)]:
        want = reference_f(pred, gt)
        assert 0 < want < 1
        assert boundary_f(pred, gt) == pytest.approx(want, abs=1e-12)


def test_boundary_f_and_j():
    h, w = 40, 40  # diagonal 56.6 px -> tolerance ceil(0.008 * 56.6) = 1 px
    a = np.zeros((h, w), bool)
    a[10:30, 10:30] = True
    shift1 = np.roll(a, 1, axis=1)
    shift5 = np.roll(a, 5, axis=1)
    assert boundary_f(a, a) == 1.0
    assert boundary_f(a, shift1) == 1.0  # within the 1 px tolerance
    assert boundary_f(a, shift5) < 0.5
    assert boundary_f(np.zeros_like(a), np.zeros_like(a)) == 1.0 and boundary_f(a, np.zeros_like(a)) == 0.0
    gt = {
        "videos": [{"id": 1, "name": "v", "width": w, "height": h, "length": 2}],
        "categories": [{"id": 1, "name": "x"}],
        "annotations": [{"id": 1, "video_id": 1, "category_id": 1, "segmentations": [encode_mask(a), encode_mask(a)]}],
    }
    res = [{"video": "v", "category_id": 1, "score": 0.9, "segmentations": [encode_mask(a), encode_mask(shift5)]}]
    out = davis_j_and_f(gt, res)
    assert out["J"] == pytest.approx((1 + 300 / 500) / 2)  # shifted by 5 of 20 columns: I 300, U 500
    assert out["F"] == pytest.approx((1 + boundary_f(shift5, a)) / 2)
    assert out["per_video"]["v"]["J"] == pytest.approx(out["J"])
