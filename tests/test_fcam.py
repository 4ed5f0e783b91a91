"""flowIRN Eq. 2 (flow-amplified CAMs) and the CAM floor pseudo-labeler."""

from __future__ import annotations

import numpy as np
import pytest

from wsvis.cam import FCAM_PRESETS, cam_floor_instances, flow_amplified_cam, flow_magnitude


def _random(seed=0, C=3, h=20, w=30, scale=4):
    rng = np.random.default_rng(seed)
    cam = rng.random((C, h, w), dtype=np.float32)
    flow = rng.normal(size=(h * scale, w * scale, 2)).astype(np.float32) * 3
    return cam, flow


def test_fcam_amplifies_exactly_the_cells_above_threshold():
    cam, flow = _random()
    fcam, moving = flow_amplified_cam(cam, flow, amplification=2.0, percentile=80.0)
    mag = flow_magnitude(flow, cam.shape[1:])
    assert mag.shape == cam.shape[1:]
    np.testing.assert_array_equal(moving, mag > np.percentile(mag, 80.0))
    np.testing.assert_array_equal(fcam[:, moving], cam[:, moving] * 2.0)
    np.testing.assert_array_equal(fcam[:, ~moving], cam[:, ~moving])
    assert fcam.dtype == np.float32 and moving.dtype == bool


def test_fcam_keeps_argmax_class():
    cam, flow = _random(1)
    fcam, moving = flow_amplified_cam(cam, flow, amplification=5.0, percentile=50.0)
    assert moving.any() and (~moving).any()
    np.testing.assert_array_equal(fcam.argmax(0), cam.argmax(0))


@pytest.mark.parametrize("p", [50.0, 80.0, 95.0])
def test_fcam_percentile_semantics(p):
    cam, flow = _random(2, h=40, w=50)
    _, moving = flow_amplified_cam(cam, flow, percentile=p)
    assert abs(moving.mean() - (100 - p) / 100) < 0.01


def test_fcam_magnitude_is_block_mean_at_stride_4():
    _, flow = _random(3, h=5, w=6)
    full = np.sqrt((flow ** 2).sum(-1))
    block = full.reshape(5, 4, 6, 4).mean(axis=(1, 3))
    np.testing.assert_allclose(flow_magnitude(flow, (5, 6)), block, rtol=1e-5)


def test_fcam_camera_compensation_pure_pan_amplifies_nothing():
    cam, _ = _random(4)
    pan = np.zeros((80, 120, 2), np.float16)
    pan[..., 0], pan[..., 1] = 7.5, -2.0
    _, moving = flow_amplified_cam(cam, pan, compensation="median")
    assert not moving.any()
    # Ties at T are not amplified (strict >): a constant magnitude at CAM resolution amplifies nothing either.
    _, moving = flow_amplified_cam(cam, pan[:20, :30], compensation="none")
    assert not moving.any()


def test_fcam_camera_compensation_removes_a_pan():
    cam, flow = _random(5)
    flow[30:50, 40:80] += 10.0  # a moving object
    _, still = flow_amplified_cam(cam, flow, compensation="median")
    _, panned = flow_amplified_cam(cam, flow + np.float32([4.0, -3.0]), compensation="median")
    np.testing.assert_array_equal(still, panned)
    assert panned[8:12, 10:20].all()


def test_fcam_homography_compensation_finds_the_object_in_a_zoom():
    # A zoom about the frame centre (flow grows with the distance to it) plus a 20x40 object moving
    # 6 px right: only the homography removes the zoom, so only it amplifies the object alone.
    cam = np.ones((1, 20, 30), np.float32)
    ys, xs = np.mgrid[0:80, 0:120].astype(np.float32)
    flow = np.stack([(xs - 60) * 0.08, (ys - 40) * 0.08], axis=-1)
    flow[28:48, 40:80, 0] += 6.0
    obj = np.zeros((20, 30), bool)
    obj[7:12, 10:20] = True
    _, moving = flow_amplified_cam(cam, flow, percentile=92.0, compensation="homography")
    assert moving[~obj].sum() == 0 and moving[obj].mean() >= 0.9  # 45 cells above T, all on the object
    for weaker in ("none", "median"):  # the zoom's borders take 30-45 % of the amplified cells
        _, moving = flow_amplified_cam(cam, flow, percentile=92.0, compensation=weaker)
        assert moving[obj].mean() <= 0.7


def test_fcam_normalize_gives_maximum_one_per_tagged_class():
    cam, flow = _random(6)
    cam[1] = 0.0  # an untagged class stays zero
    fcam, moving = flow_amplified_cam(cam, flow, amplification=5.0, normalize=True)
    raw, same = flow_amplified_cam(cam, flow, amplification=5.0)
    np.testing.assert_array_equal(moving, same)
    np.testing.assert_allclose(fcam.reshape(3, -1).max(1), [1.0, 0.0, 1.0], atol=1e-5)
    np.testing.assert_allclose(fcam[0], raw[0] / (raw[0].max() + 1e-5), rtol=1e-6)


def test_fcam_presets_and_errors():
    assert FCAM_PRESETS["ytvis"] == {"amplification": 2.0, "percentile": 80.0}
    assert FCAM_PRESETS["cityscapes"] == {"amplification": 5.0, "percentile": 50.0}
    cam, flow = _random()
    with pytest.raises(ValueError, match="percentile"):
        flow_amplified_cam(cam, flow, percentile=120)
    with pytest.raises(ValueError, match="flow"):
        flow_amplified_cam(cam, flow[..., 0])
    with pytest.raises(ValueError, match="cam"):
        flow_amplified_cam(cam[0], flow)
    with pytest.raises(ValueError, match="compensation"):
        flow_amplified_cam(cam, flow, compensation="rotation")


def test_cam_floor_instances_blobs():
    cam = np.zeros((3, 10, 10), np.float32)
    cam[0, 1:3, 1:3] = 0.9
    cam[0, 6:8, 6:9] = 0.5
    cam[1, 1:3, 6:9] = 0.7
    masks, classes, scores = cam_floor_instances(cam, (40, 38), threshold=0.15)
    assert masks.shape == (3, 40, 38) and masks.dtype == bool
    assert classes.tolist() == [1, 1, 2]
    np.testing.assert_allclose(scores, [0.9, 0.5, 0.7], atol=1e-5)
    assert 3 not in classes  # class with an all-zero CAM gives nothing
    # the regions lie where the blobs are (stride 4) and do not overlap
    assert masks[0][4:12, 4:12].all() and masks[1][24:32, 24:36].all() and masks[2][4:12, 24:36].all()
    assert masks.sum(0).max() == 1
    assert not masks[:, 20, :].any()


def test_cam_floor_touching_regions_merge_and_threshold():
    cam = np.zeros((1, 12, 12), np.float32)
    cam[0, 2:5, 2:5] = 1.0
    cam[0, 5:8, 5:8] = 1.0  # touches the first blob only at a corner
    masks, classes, _ = cam_floor_instances(cam, (48, 48), threshold=0.15)
    assert len(masks) == 1 and classes.tolist() == [1]
    masks, _, _ = cam_floor_instances(cam * 0.1, (48, 48), threshold=0.15)
    assert masks.shape == (0, 48, 48)
