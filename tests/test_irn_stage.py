"""The IRN stage's motion filter on hand-built instances (wsvis.irn.stage.moving_regions)."""

import numpy as np
import pytest

from wsvis.irn.stage import moving_regions


def test_moving_regions_drops_still_regions_and_empty_instances():
    h, w = 20, 30
    residual = np.zeros((h, w))
    residual[2:8, 2:8] = 4.0  # the moving object: 4 px of camera-compensated flow
    residual[12:18, 2:8] = 0.2  # a still person the walk joined to it
    masks = np.zeros((3, h, w), bool)
    masks[0, 2:8, 2:8] = True
    masks[0, 12:18, 2:8] = True  # instance 0: two regions, one moving, one still
    masks[1, 12:18, 20:26] = True  # instance 1: still only (residual 0)
    masks[2, 2:8, 20:26] = True  # instance 2: moving at 2.5 px, over 0.5 x 4 and the 1.5 px floor
    residual[2:8, 20:26] = 2.5
    classes, scores = np.array([1, 1, 2]), np.array([1.0, 0.9, 0.8], np.float32)

    kept, kept_classes, kept_scores = moving_regions(masks, classes, scores, residual, ratio=0.5, min_flow=1.5)

    assert kept.shape == (2, h, w)
    assert kept_classes.tolist() == [1, 2] and kept_scores.tolist() == pytest.approx([1.0, 0.8])
    expected = np.zeros((h, w), bool)
    expected[2:8, 2:8] = True
    assert np.array_equal(kept[0], expected)  # the still region of instance 0 is gone
    assert np.array_equal(kept[1], masks[2])


def test_moving_regions_keeps_a_lone_slow_object_and_checks_sizes():
    masks = np.zeros((1, 10, 10), bool)
    masks[0, 3:6, 3:6] = True
    residual = np.full((10, 10), 0.3)  # slow, but the frame's most moving region
    kept, _, _ = moving_regions(masks, np.array([1]), np.array([1.0]), residual, ratio=0.5, min_flow=1.5)
    assert np.array_equal(kept, masks)
    empty, classes, _ = moving_regions(np.zeros((0, 10, 10), bool), np.zeros(0, int), np.zeros(0), residual,
                                       ratio=0.5, min_flow=1.5)
    assert empty.shape == (0, 10, 10) and classes.shape == (0,)
    with pytest.raises(ValueError, match="differ in frame size"):
        moving_regions(masks, np.array([1]), np.array([1.0]), np.zeros((5, 5)), ratio=0.5, min_flow=1.5)
