"""Processing size (dataset.process_size): frames and boxes resized at ingest, scoring at the gt's size."""

from __future__ import annotations

import json

import cv2
import numpy as np

from wsvis.evaluate.pseudo import pseudo_label_metrics, region_similarity
from wsvis.io.datasets import DavisReader
from wsvis.io.images import image_size
from wsvis.io.manifest import ingest_video, load_gt_masks, merge_manifest, read_video_table
from wsvis.io.pseudo import PseudoLabelWriter
from wsvis.track.common import Track
from wsvis.track.stage import tracks_to_size
from wsvis.transforms import processing_size, resize_masks

DEMO = "resources/demo"


def _ingest(tmp_path, process_size):
    reader = DavisReader(root=DEMO, classes_csv=f"{DEMO}/labels.csv", videos=["dog"])
    table, gt = tmp_path / f"dog{process_size}.parquet", tmp_path / f"dog{process_size}.gt.json"
    ingest_video(reader, "dog", table, gt, frames_dir=tmp_path / "frames", process_size=process_size)
    return read_video_table(table), json.loads(gt.read_text())


def test_processing_size_keeps_aspect_and_small_frames():
    assert processing_size(480, 854, 427) == (240, 427)
    assert processing_size(480, 854, None) == (480, 854)
    assert processing_size(200, 300, 427) == (200, 300)


def test_ingest_resizes_frames_and_boxes_but_not_the_gt(tmp_path):
    full, gt_full = _ingest(tmp_path, None)
    half, gt_half = _ingest(tmp_path, 214)
    H, W = int(full["height"][0]), int(full["width"][0])
    h, w = processing_size(H, W, 214)
    assert (int(half["height"][0]), int(half["width"][0])) == (h, w) == (120, 214)
    assert (int(half["source_height"][0]), int(half["source_width"][0])) == (H, W)
    assert image_size(half["image"][0]) == (h, w)
    assert half["source_image"].tolist() == full["image"].tolist() == full["source_image"].tolist()
    assert gt_half == gt_full  # ground truth stays at the source size
    for b_full, b_half in zip(full["boxes"], half["boxes"]):
        np.testing.assert_allclose(np.asarray(b_half), np.asarray(b_full) * [w / W, h / H, w / W, h / H])
    # the resized frame is the source frame resized with INTER_AREA
    src = cv2.imread(full["image"][3])
    np.testing.assert_array_equal(cv2.imread(half["image"][3]), cv2.resize(src, (w, h), interpolation=cv2.INTER_AREA))


def test_half_size_pseudo_labels_score_as_the_upsampled_mask(tmp_path):
    """J of a mask processed at half size, scored at full size = J of the full-size gt mask
    downsampled and upsampled (so the processing size costs only what resampling loses)."""
    full, _ = _ingest(tmp_path, None)
    half, _ = _ingest(tmp_path, 214)
    merge_manifest([tmp_path / "dogNone.parquet"], [tmp_path / "dogNone.gt.json"], ["bird", "car", "cow", "dog", "horse",
                   "person"], tmp_path / "manifest.parquet", tmp_path / "gt.json")
    gt = json.loads((tmp_path / "gt.json").read_text())
    gt_masks, cats = load_gt_masks(gt, "dog")  # (T, K, H, W)
    T, _, H, W = gt_masks.shape
    h, w = int(half["height"][0]), int(half["width"][0])
    small = np.stack([cv2.resize(m.astype(np.float32), (w, h), interpolation=cv2.INTER_AREA) >= 0.5
                      for m in gt_masks[:, 0]])
    out = tmp_path / "pseudo.zarr"
    with PseudoLabelWriter(out, num_frames=T, frame_size=(h, w), variant="box",
                           categories=["bird", "car", "cow", "dog", "horse", "person"]) as writer:
        for t in range(T):
            writer.add_frame(t, small[t][None], cats[:1], np.ones(1, np.float32))
    row = pseudo_label_metrics(gt, {"dog": out}, "box")
    by_hand = np.mean([region_similarity(resize_masks(small[t], (H, W)), gt_masks[t, 0]) for t in range(T)])
    assert row["J"] == by_hand
    assert 0.9 < row["J"] < 1.0 and row["AP50"] == 1.0


def test_tracks_are_brought_to_the_source_size():
    m = np.zeros((4, 6), bool)
    m[1:3, 2:4] = True
    tr = Track(1)
    tr.add(0, m, 0.9, 2)
    big = tracks_to_size([tr], (8, 12))[0]
    mask, score = big.frames[0]
    assert mask.shape == (8, 12) and score == 0.9 and big.category_id == 2
    assert mask.sum() == 16 and mask[2:6, 4:8].all()
    assert tracks_to_size([tr], (4, 6))[0].frames[0][0] is m
