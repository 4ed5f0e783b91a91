"""Predictions artifact: sorting, truncation to K, padding, round trip."""

from __future__ import annotations

import numpy as np
import pytest

from wsvis.io.predictions import PredictionWriter, frame_predictions, read_predictions


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
