"""MOTS / HOTA on TrackEval: gt to KITTI MOTS txt, ID swaps, ignore regions, MOT15 reference numbers."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import shared
from wsvis.evaluate.mots import gt_to_mots_txt, mot_box_metrics, mots_metrics, write_mots_txt
from wsvis.io.rle import encode_mask

T, H, W = 6, 12, 24


def obj_masks() -> dict[int, list[np.ndarray]]:
    """Two objects walking right, 2 px per frame, never overlapping: id 1 on top, id 2 below."""
    out = {1: [], 2: []}
    for t in range(T):
        a = np.zeros((H, W), bool)
        a[1:5, 2 + 2 * t : 6 + 2 * t] = True
        b = np.zeros((H, W), bool)
        b[7:11, 2 + 2 * t : 6 + 2 * t] = True
        out[1].append(a)
        out[2].append(b)
    return out


def make_gt() -> dict:
    masks = obj_masks()
    return {
        "videos": [{"id": 1, "name": "seq", "width": W, "height": H, "length": T}],
        "categories": [{"id": 1, "name": "person"}, {"id": 2, "name": "car"}],
        "annotations": [
            {
                "id": k,
                "video_id": 1,
                "category_id": 1,
                "iscrowd": 0,
                "segmentations": [encode_mask(m) for m in masks[k]],
            }
            for k in (1, 2)
        ],
    }


def test_gt_to_mots_txt_format(tmp_path):
    n = gt_to_mots_txt(make_gt(), "seq", tmp_path / "seq.txt")
    lines = (tmp_path / "seq.txt").read_text().splitlines()
    assert n == len(lines) == 2 * T
    t, obj, cls, h, w, rle = lines[0].split(" ")
    assert (t, obj, cls, h, w) == ("0", "1001", "1", str(H), str(W)) and rle
    with pytest.raises(KeyError, match="seq"):
        gt_to_mots_txt(make_gt(), "other", tmp_path / "x.txt")


def write_tracks(path, swap_at: int | None):
    masks = obj_masks()
    rows = []
    for t in range(T):
        ids = (7, 8) if swap_at is None or t < swap_at else (8, 7)
        rows += [(t, ids[0], 1, masks[1][t]), (t, ids[1], 1, masks[2][t])]
    write_mots_txt(rows, path)


def test_id_swap_lowers_hota_and_smotsa(tmp_path):
    gt_dir, good, swapped = tmp_path / "gt", tmp_path / "good", tmp_path / "swapped"
    gt_to_mots_txt(make_gt(), "seq", gt_dir / "seq.txt")
    write_tracks(good / "seq.txt", None)
    write_tracks(swapped / "seq.txt", swap_at=3)
    ok = mots_metrics(gt_dir, good, ["seq"], [T])
    bad = mots_metrics(gt_dir, swapped, ["seq"], {"seq": T})
    assert set(ok["per_class"]) == {"1"}
    r_ok, r_bad = ok["all"], bad["all"]
    for key in ("HOTA", "sMOTSA", "MOTSA", "MOTSP", "IDF1"):
        assert r_ok[key] == pytest.approx(1.0), key
    assert r_ok["IDSW"] == 0 and r_bad["IDSW"] == 2
    # perfect masks: sMOTSA = (TP~ - FP - IDSW) / |GT| = (12 - 0 - 2) / 12
    assert r_bad["sMOTSA"] == pytest.approx(10 / 12) and r_bad["MOTSA"] == pytest.approx(10 / 12)
    assert r_bad["MOTSP"] == pytest.approx(1.0)
    assert r_bad["HOTA"] < r_ok["HOTA"] and r_bad["AssA"] < 1.0 and r_bad["DetA"] == pytest.approx(1.0)
    assert ok["per_seq"]["seq"]["1"]["HOTA"] == pytest.approx(1.0)


def test_ignore_region_drops_unmatched_prediction(tmp_path):
    masks = obj_masks()
    ignore = np.zeros((H, W), bool)
    ignore[:, 20:] = True  # right strip, away from both objects in frame 0
    gt_rows = [(0, 1001, 1, masks[1][0]), (0, 10000, 10, ignore)]
    write_mots_txt(gt_rows, tmp_path / "gt" / "s.txt")
    junk = np.zeros((H, W), bool)
    junk[2:6, 21:24] = True  # a false positive inside the ignore region
    write_mots_txt([(0, 5, 1, masks[1][0]), (0, 6, 1, junk)], tmp_path / "res" / "s.txt")
    counted = mots_metrics(tmp_path / "gt", tmp_path / "res", ["s"], [1], classes={"person": 1})
    assert counted["all"]["CLR_FP"] == 1
    kitti = mots_metrics(tmp_path / "gt", tmp_path / "res", ["s"], [1], ignore_class_id=10)
    assert set(kitti["per_class"]) == {"1"}
    assert kitti["all"]["CLR_FP"] == 0 and kitti["all"]["sMOTSA"] == pytest.approx(1.0)


def test_mot15_reference_numbers():
    """TrackEval on MOT15 TUD-Campus + TUD-Stadtmitte reproduces mmtracking's / py-motmetrics' pooled figures.

    SOURCE.md: IDF1 0.624, IDP 0.799, MOTA 0.555, IDs 14, HOTA 0.400, FP 58, FN 602
    (TrackEval 1.3 measured here: IDF1 0.62430, MOTA 0.55512, HOTA 0.39996, MOTP 0.66982 = 1 - 0.330).
    """
    root = shared("fixtures", "mot15_and_ytvis", "demo_MOT15_data", "train")
    out = mot_box_metrics(root, root / "results", {"TUD-Campus": 71, "TUD-Stadtmitte": 179})
    c = out["combined"]
    assert c["IDF1"] == pytest.approx(0.624, abs=5e-4)
    assert c["IDP"] == pytest.approx(0.799, abs=5e-4)
    assert c["IDR"] == pytest.approx(0.512, abs=5e-4)
    assert c["MOTA"] == pytest.approx(0.555, abs=5e-4)
    assert c["HOTA"] == pytest.approx(0.400, abs=5e-4)
    assert 1 - c["MOTP"] == pytest.approx(0.330, abs=5e-4)
    assert (c["IDSW"], c["CLR_FP"], c["CLR_FN"], c["gt_dets"]) == (14, 58, 602, 1515)
    campus, stadt = out["per_seq"]["TUD-Campus"], out["per_seq"]["TUD-Stadtmitte"]
    assert campus["IDF1"] == pytest.approx(0.558, abs=5e-4) and campus["MOTA"] == pytest.approx(0.526, abs=5e-4)
    assert stadt["IDF1"] == pytest.approx(0.645, abs=5e-4) and stadt["MOTA"] == pytest.approx(0.564, abs=5e-4)
    assert campus["IDSW"] == stadt["IDSW"] == 7
