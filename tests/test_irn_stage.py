"""The IRN stage's motion filter and motion instances on hand-built frames (wsvis.irn.stage)."""

import numpy as np
import pytest

from wsvis.baselines.motion import residual_flow_magnitude
from wsvis.irn.stage import add_motion_instances, moving_regions


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


def _square(y, x, side=12, h=48, w=64):
    m = np.zeros((h, w), bool)
    m[y : y + side, x : x + side] = True
    return m


def test_add_motion_instances_by_hand():
    """The camera pans 2 px right. The walk found square A (moves 6 px against the scene); B (8 px,
    the second tag's CAM 0.6) was missed; C moves 4 px, less than A; D moves 10 px with no CAM."""
    h, w = 48, 64
    a, b, c, d = _square(4, 4), _square(4, 40), _square(32, 4), _square(32, 40)
    flow = np.zeros((h, w, 2), np.float32)
    flow[..., 0] = 2.0
    for m, dy in ((a, 6.0), (b, 8.0), (c, 4.0), (d, 10.0)):
        flow[m, 1] = dy
    cam = np.zeros((3, 12, 16), np.float32)  # stride-4 grid; class 3 is not a tag (all zero)
    cam[0, 1:4, 1:4] = 1.0  # tag 1 on A
    cam[0, 8:11, 1:4] = 0.5  # ... and on C
    cam[1, 1:4, 10:13] = 0.6  # tag 2 on B
    masks, classes, scores = a[None], np.array([1]), np.array([0.9], np.float32)
    residual = residual_flow_magnitude(flow)  # 6, 8, 4 and 10 px on A, B, C, D; 0 elsewhere

    out_m, out_c, out_s = add_motion_instances(masks, classes, scores, cam, residual, min_cam=0.2)
    # B joins with tag 2 and its mean CAM (0.6 inside, blurred at the edge by the bilinear upsampling)
    assert out_m.shape == (2, h, w) and sorted(out_c.tolist()) == [1, 2]
    added = int(np.flatnonzero(out_c == 2)[0])
    assert np.array_equal(out_m[added], b)
    assert 0.3 < out_s[added] <= 0.6
    assert np.array_equal(out_m[out_c == 1][0], a)
    # C moves 4 px: kept once the floor is half of A's 6 px; D never (no CAM on it)
    out_m, out_c, _ = add_motion_instances(masks, classes, scores, cam, residual, min_cam=0.2, ratio=0.5)
    assert len(out_m) == 3 and sorted(out_c.tolist()) == [1, 1, 2]
    assert any(np.array_equal(m, c) for m in out_m) and not any((m & d).any() for m in out_m)
    # a CAM floor over B's support keeps only the walk's instance
    out_m, _, _ = add_motion_instances(masks, classes, scores, cam, residual, min_cam=0.7)
    assert len(out_m) == 1
    # a walk instance over most of B: B is not added again
    over = np.stack([a, b & (np.arange(w) < 48)[None]])  # 8 of B's 12 columns
    out_m, _, _ = add_motion_instances(over, np.array([1, 2]), np.array([0.9, 0.8]), cam, residual, min_cam=0.2)
    assert len(out_m) == 2
    # no walk instance: every supported moving region is added, with no motion floor
    out_m, out_c, _ = add_motion_instances(np.zeros((0, h, w), bool), np.zeros(0), np.zeros(0), cam, residual,
                                           min_cam=0.2)
    assert sorted(out_c.tolist()) == [1, 1, 2]
    with pytest.raises(ValueError, match="do not fit"):
        add_motion_instances(masks, classes, scores, cam[:, :-1], residual, min_cam=0.2)
