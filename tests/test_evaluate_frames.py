"""Frame metrics of predictions (AP, J, TC) and the metrics summary table."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from wsvis.evaluate.frames import FRAME_COLUMNS, frame_metrics, temporal_consistency
from wsvis.evaluate.summary import PER_SEQUENCE_COLUMNS, SUMMARY_COLUMNS, per_sequence_table, write_summary
from wsvis.io.datasets import VideoRecord
from wsvis.io.manifest import mask_boxes, video_gt
from wsvis.io.predictions import PredictionWriter
from wsvis.io.store import ArtifactWriter

CATS = ["cat", "dog"]
T, H, W = 4, 16, 20


def label_maps(dx: int = 0) -> np.ndarray:
    """(T, H, W) instance-id maps: id 1 a static square, id 2 a rectangle moving ``dx`` px right per frame."""
    maps = np.zeros((T, H, W), np.int64)
    for t in range(T):
        maps[t, 2:7, 2:7] = 1
        maps[t, 9:14, 5 + dx * t : 11 + dx * t] = 2
    return maps


def make_gt(maps: np.ndarray) -> dict:
    rec = VideoRecord(
        name="vid",
        images=[f"vid/{t:05d}.jpg" for t in range(T)],
        width=W,
        height=H,
        masks=list(maps),
        annotated=[True] * T,
        instance_classes={1: "cat", 2: "dog"},
    )
    frag = video_gt(rec, CATS)
    video = {k: frag[k] for k in ("name", "width", "height", "length", "file_names")} | {"id": 1}
    anns = [{**a, "id": i, "video_id": 1, "iscrowd": 0} for i, a in enumerate(frag["annotations"], 1)]
    return {
        "videos": [video],
        "categories": [{"id": i + 1, "name": c} for i, c in enumerate(CATS)],
        "annotations": anns,
    }


def write_predictions(path: Path, maps: np.ndarray, scores=(0.9, 0.8)) -> Path:
    with PredictionWriter(path, num_frames=T, frame_size=(H, W), max_detections=3, method="test", categories=CATS) as w:
        for t in range(T):
            masks = np.stack([maps[t] == 1, maps[t] == 2])
            boxes = np.array(mask_boxes(maps[t], [1, 2]), np.float32)
            w.add_frame(t, masks, np.array(scores, np.float32), np.array([1, 2]), boxes)
    return path


def write_flow(path: Path, backward: np.ndarray) -> Path:
    """A flow artifact holding only ``gap_1/backward`` (T-1, H, W, 2)."""
    with ArtifactWriter(path, stage="flow", frame_size=(H, W), attrs={"gaps": [1], "num_frames": T}) as wr:
        wr.write_array("gap_1/backward", backward.astype(np.float16))
    return path


def test_perfect_static_predictions(tmp_path):
    maps = label_maps(dx=0)
    gt = make_gt(maps)
    pred = write_predictions(tmp_path / "vid.zarr", maps)
    flow = write_flow(tmp_path / "flow.zarr", np.zeros((T - 1, H, W, 2)))
    row = frame_metrics(gt, {"vid": pred}, "perfect", {"vid": flow})
    assert list(row) == [*FRAME_COLUMNS, "J_per_video"] and row["J_per_video"] == {"vid": pytest.approx(1.0)}
    assert row["AP50"] == pytest.approx(1.0) and row["AP"] == pytest.approx(1.0) and row["AP75"] == pytest.approx(1.0)
    assert row["J"] == pytest.approx(1.0)
    assert row["TC"] == pytest.approx(1.0)  # static prediction, zero flow
    assert (row["videos"], row["frames"], row["note"]) == (1, T, "")


def test_j_uses_score_threshold_and_tc_needs_flow(tmp_path):
    maps = label_maps(dx=0)
    gt = make_gt(maps)
    pred = write_predictions(tmp_path / "vid.zarr", maps, scores=(0.9, 0.3))  # dog below 0.5
    row = frame_metrics(gt, {"vid": pred, "other": pred}, "m", None)
    # J: only the cat (25 px) of the 55 gt foreground pixels
    assert row["J"] == pytest.approx(25 / 55)
    assert row["J_per_video"] == {"vid": pytest.approx(25 / 55)}  # "other" has no gt: left out
    assert row["AP50"] == pytest.approx(1.0)  # AP uses every prediction whatever its score
    assert math.isnan(row["TC"]) and "no flow" in row["note"] and "other" in row["note"]


def test_tc_moving_object_with_true_and_wrong_flow():
    maps = label_maps(dx=2)
    frames = [(np.stack([maps[t] == 1, maps[t] == 2]), np.array([0.9, 0.8]), np.array([1, 2])) for t in range(T)]
    true_bwd = np.zeros((T - 1, H, W, 2), np.float32)
    true_bwd[..., 0] = np.where(maps[1:] == 2, -2.0, 0.0)  # frame t+1 pixel of the dog came from 2 px left
    assert temporal_consistency([frames], [true_bwd])["TC"] == pytest.approx(1.0)
    # zero flow on a dog moving 4 px per frame: its 6 px wide warped mask overlaps the moved one by 2 of 10 columns
    maps3 = label_maps(dx=4)
    frames3 = [(np.stack([maps3[t] == 1, maps3[t] == 2]), np.array([0.9, 0.8]), np.array([1, 2])) for t in range(T)]
    res = temporal_consistency([frames3], [np.zeros((T - 1, H, W, 2))])
    # the cat is consistent, the dog (IoU 2/10 with its warped self) is a miss and a false positive in every pair
    assert res["pairs"] == T - 1 and res["warped_instances"] == 2 * (T - 1)
    assert 0.0 < res["TC"] < 1.0


def test_no_annotated_video(tmp_path):
    gt = make_gt(label_maps())
    row = frame_metrics(gt, {"missing": tmp_path / "x.zarr"}, "m")
    assert math.isnan(row["AP"]) and row["videos"] == 0 and "missing" in row["note"]


def test_write_summary_long_format(tmp_path):
    frame = {"method": "maskconsist", "AP": 0.3, "AP50": 0.5, "J": 0.6, "TC": math.nan, "videos": 2, "note": "x"}
    pseudo = {"variant": "flowirn", "AP": 0.2, "J": 0.5, "note": ""}
    video = {"method": "maskconsist", "tracker": "unovost", "mAP": 0.1, "AR10": 0.4, "summary": "text"}
    out = tmp_path / "metrics" / "summary.csv"
    df = write_summary([frame], [pseudo], [video], out, mots_rows=[{"method": "stc", "tracker": "bg", "sMOTSA": 0.7}])
    back = pd.read_csv(out, keep_default_na=False, na_values=[""])
    assert list(back.columns) == SUMMARY_COLUMNS and len(back) == len(df) == 5 + 2 + 2 + 1
    assert set(back["kind"]) == {"frame", "pseudo", "video", "mots"}
    pseudo_rows = back[back.kind == "pseudo"]
    assert set(pseudo_rows.method) == {"flowirn"} and set(pseudo_rows.metric) == {"AP", "J"}
    v = back[(back.kind == "video") & (back.metric == "mAP")].iloc[0]
    assert v.tracker == "unovost" and v.value == pytest.approx(0.1)
    assert math.isnan(back[(back.kind == "frame") & (back.metric == "TC")].value.iloc[0])
    assert per_sequence_table([frame], [pseudo]).empty  # rows without J_per_video add nothing


def test_per_sequence_table_round_trip(tmp_path):
    frame = {"method": "stcseg", "J": 0.5, "J_per_video": {"cows": 0.75, "kite-surf": 0.25}}
    pseudo = {"variant": "stc", "J": 0.6, "J_per_video": {"cows": 0.6}}
    out, per_seq = tmp_path / "summary.csv", tmp_path / "per_sequence.csv"
    write_summary([frame], [pseudo], [], out, per_sequence_csv=per_seq)
    back = pd.read_csv(per_seq)
    assert list(back.columns) == PER_SEQUENCE_COLUMNS
    assert back.values.tolist() == [["pseudo", "stc", "cows", "J", 0.6], ["frame", "stcseg", "cows", "J", 0.75],
                                    ["frame", "stcseg", "kite-surf", "J", 0.25]]
    # the summary's J of a method is the mean of its videos' J
    summary = pd.read_csv(out)
    j = summary[(summary.kind == "frame") & (summary.metric == "J")].value.iloc[0]
    assert back[back.method == "stcseg"].value.mean() == pytest.approx(j)
    assert "J_per_video" not in set(summary.metric)
