"""Predictions artifact: sorting, truncation to K, padding, round trip."""

from __future__ import annotations

import numpy as np
import pytest

from wsvis.io.predictions import PredictionWriter, frame_predictions, fuse_instances, read_predictions


def test_round_trip_sort_truncate_pad(tmp_path):
    h, w = 6, 8
    masks = np.zeros((3, h, w), bool)
    masks[0, :2] = masks[1, 2:4] = masks[2, 4:] = True
    path = tmp_path / "v.zarr"
    with PredictionWriter(path, num_frames=2, frame_size=(h, w), max_detections=2, method="m",
                          categories=["a", "b"]) as writer:
        writer.add_frame(0, masks, [0.2, 0.9, 0.5], [1, 2, 1], [[0, 0, 8, 2], [0, 2, 8, 4], [0, 4, 8, 6]])
        writer.add_frame(1, np.zeros((0, h, w), bool), [], [], np.zeros((0, 4)))
    group, attrs = read_predictions(path)
    assert group["masks"].shape == (2, 2, h, w) and group["masks"].dtype == bool
    assert group["labels"].dtype == np.int32 and group["boxes"].shape == (2, 2, 4)
    assert attrs["method"] == "m" and attrs["max_detections"] == 2
    m, s, l, b = frame_predictions(group, 0)
    np.testing.assert_allclose(s, [0.9, 0.5])  # the lowest score was dropped
    assert l.tolist() == [2, 1] and np.array_equal(m, masks[[1, 2]]) and b[0].tolist() == [0, 2, 8, 4]
    m, s, l, b = frame_predictions(group, 1)
    assert m.shape == (0, h, w) and len(s) == len(l) == len(b) == 0
    assert not group["masks"][1].any() and group["labels"][1].tolist() == [0, 0]


def test_bad_label_rejected(tmp_path):
    with pytest.raises(ValueError, match="outside 1..1"):
        with PredictionWriter(tmp_path / "v.zarr", num_frames=1, frame_size=(2, 2), max_detections=1,
                              method="m", categories=["a"]) as writer:
            writer.add_frame(0, np.ones((1, 2, 2), bool), [1.0], [2], [[0, 0, 2, 2]])
    assert not (tmp_path / "v.zarr").exists()


def test_selftrain_labels_fuse_duplicates(tmp_path):
    """Self-training labels (``predictions_to_pseudo``): a lower-scoring duplicate over most of an
    object is dropped at overlap 0.5 (Panoptic FPN's fusion) instead of leaving its fringe as an
    instance; at 0 the fringe stays; a detection below the score threshold never enters; the KITTI-MOTS
    export fuses tracks the same way at 0 (``tests/test_track.py``)."""
    from wsvis.io.pseudo import read_pseudo
    from wsvis.maskconsist.predict import predictions_to_pseudo

    h, w = 10, 10
    masks = np.zeros((4, h, w), bool)
    masks[0, 2:8, 2:8] = True  # the object, score 0.9: 36 px
    masks[1, 2:8, 2:9] = True  # its duplicate, score 0.6: 42 px, column 8 (6 px) outside the object
    masks[2, 0:2, 0:10] = True  # score 0.7: rows 0-1, 20 px
    masks[3, 1:3, 0:10] = True  # score 0.8: rows 1-2, 20 px, so row 1 is not the 0.7 one's
    scores = np.array([0.9, 0.6, 0.7, 0.8])
    keep, visible = fuse_instances(masks, scores, 0.5)
    # 0.9: all 36 px; 0.8: rows 1-2 minus the object's row 2 cols 2-7 -> 20 - 6 = 14 of 20 px (>= 0.5);
    # 0.7: row 0 only, 10 of 20 px (= 0.5, kept); 0.6: rows 3-7 of column 8, 5 of 42 px (dropped)
    assert keep.tolist() == [0, 3, 2]
    assert [int(v.sum()) for v in visible] == [36, 14, 10]
    assert not (visible.sum(0) > 1).any()
    keep0, visible0 = fuse_instances(masks, scores, 0.0)
    assert keep0.tolist() == [0, 3, 2, 1] and int(visible0[3].sum()) == 5
    keep_strict, _ = fuse_instances(masks, scores, 0.6)
    assert keep_strict.tolist() == [0, 3]  # 10 of 20 px < 0.6

    path = tmp_path / "pred.zarr"
    with PredictionWriter(path, num_frames=1, frame_size=(h, w), max_detections=4, method="maskconsist",
                          categories=["a", "b"]) as writer:
        writer.add_frame(0, masks, scores, [1, 1, 2, 2], [[0, 0, 1, 1]] * 4)
    for score_threshold, want in ((0.0, {36: 1, 14: 2, 10: 2}), (0.75, {36: 1, 14: 2})):
        out = predictions_to_pseudo(path, tmp_path / f"st{score_threshold}.zarr", score_threshold=score_threshold)
        inst, classes, _, attrs = read_pseudo(out)
        assert attrs["params"]["overlap_threshold"] == 0.5
        label, classes = inst[0], np.asarray(classes[:])
        got = {int((label == i).sum()): int(classes[i]) for i in np.unique(label) if i}
        assert got == want  # pixels of each instance -> its class; the 0.7 detection only above 0.75's cut
    with pytest.raises(ValueError, match="overlap_threshold"):
        predictions_to_pseudo(path, tmp_path / "bad.zarr", overlap_threshold=1.5)
