"""Flow operations: backward warp, MaskConsist mask warping, forward-backward check, colour wheel, EPE."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from wsvis.flow.ops import (
    backward_warp,
    end_point_error,
    fb_consistency,
    flow_to_color,
    make_color_wheel,
    masks_to_boxes,
    warp_mask,
)


def _const_flow(h, w, dx, dy) -> np.ndarray:
    flow = np.zeros((h, w, 2), np.float32)
    flow[..., 0], flow[..., 1] = dx, dy
    return flow


def test_zero_flow_backward_warp_is_identity():
    x = torch.rand(2, 3, 13, 17)
    out = backward_warp(x, torch.zeros(2, 2, 13, 17))
    assert out.shape == x.shape and out.dtype == x.dtype
    assert (out - x).abs().max() < 1e-6


def test_integer_constant_flow_is_a_shift_in_the_interior():
    h, w, dx, dy = 20, 30, 3, -2
    x = torch.rand(1, 2, h, w)
    flow = torch.from_numpy(_const_flow(h, w, dx, dy)).permute(2, 0, 1)[None]
    out = backward_warp(x, flow)
    # out(y, x) = in(y + dy, x + dx) == np.roll by (-dy, -dx)
    expected = np.roll(x.numpy(), shift=(-dy, -dx), axis=(2, 3))
    interior = (slice(None), slice(None), slice(2, h - 2), slice(0, w - 3))
    np.testing.assert_allclose(out.numpy()[interior], expected[interior], atol=1e-5)
    # samples from outside the frame are zero (padding_mode="zeros"; float rounding aside)
    assert out[..., :, w - 3 :].abs().max() < 1e-5


def test_backward_warp_rejects_bad_shapes():
    with pytest.raises(ValueError):
        backward_warp(torch.zeros(1, 3, 4, 4), torch.zeros(1, 2, 4, 5))


def test_warp_mask_constant_integer_flow_shifts_mask_and_box():
    h, w = 24, 32
    masks = np.zeros((2, h, w), bool)
    masks[0, 5:10, 8:15] = True  # box x 8..14, y 5..9
    masks[1, 0:3, 0:3] = True  # leaves the frame
    # objects move by (+4, +3) from t to t+δ, so the flow t+δ -> t is (-4, -3)
    back = _const_flow(h, w, -4, -3)
    warped, boxes = warp_mask(masks, back)
    assert isinstance(warped, np.ndarray) and warped.dtype == bool and warped.shape == (2, h, w)
    assert boxes.dtype == np.float32 and boxes.shape == (2, 4)
    expected = np.zeros((h, w), bool)
    expected[8:13, 12:19] = True
    np.testing.assert_array_equal(warped[0], expected)
    np.testing.assert_array_equal(boxes[0], [12, 8, 18, 12])
    expected1 = np.zeros((h, w), bool)
    expected1[3:6, 4:7] = True
    np.testing.assert_array_equal(warped[1], expected1)


def test_warp_mask_torch_in_torch_out_and_empty_box():
    masks = torch.zeros(1, 8, 8, dtype=torch.bool)
    masks[0, 0:2, 0:2] = True
    flow = torch.full((8, 8, 2), -20.0)  # everything samples outside frame t
    warped, boxes = warp_mask(masks, flow)
    assert torch.is_tensor(warped) and torch.is_tensor(boxes)
    assert not warped.any()
    assert torch.equal(boxes, torch.zeros(1, 4))


def test_masks_to_boxes_matches_torchvision_convention():
    from torchvision.ops import masks_to_boxes as tv_masks_to_boxes

    masks = torch.zeros(2, 10, 12, dtype=torch.bool)
    masks[0, 2:5, 3:9] = True
    masks[1, 7, 11] = True
    assert torch.equal(masks_to_boxes(masks), tv_masks_to_boxes(masks).float())


def test_fb_consistency_exact_inverse_is_consistent_except_out_of_view_border():
    h, w, dx, dy = 16, 20, 3, -2
    fwd, bwd = _const_flow(h, w, dx, dy), _const_flow(h, w, -dx, -dy)
    occ = fb_consistency(fwd, bwd)
    assert occ.shape == (h, w) and occ.dtype == bool
    # border rule: pixels whose target leaves frame t+δ are inconsistent
    expected = np.zeros((h, w), bool)
    expected[:, w - dx :] = True
    expected[: -dy, :] = True
    np.testing.assert_array_equal(occ, expected)


def test_fb_consistency_flags_inconsistent_motion():
    h, w = 16, 20
    fwd, bwd = _const_flow(h, w, 1, 0), _const_flow(h, w, 1, 0)  # not inverse: |F+B|^2 = 4 > 0.5 + 0.02
    occ = fb_consistency(fwd, bwd)
    assert occ[:, : w - 1].all()


def test_color_wheel_has_55_colours():
    wheel = make_color_wheel()
    assert wheel.shape == (55, 3)
    np.testing.assert_array_equal(wheel[0], [255, 0, 0])  # RY start: red
    np.testing.assert_array_equal(wheel[15], [255, 255, 0])  # YG start: yellow
    np.testing.assert_array_equal(wheel[21], [0, 255, 0])  # GC start: green
    np.testing.assert_array_equal(wheel[25], [0, 255, 255])  # CB start: cyan
    np.testing.assert_array_equal(wheel[36], [0, 0, 255])  # BM start: blue
    np.testing.assert_array_equal(wheel[49], [255, 0, 255])  # MR start: magenta


def test_flow_to_color_zero_is_white_and_plus_x_is_red():
    flow = np.zeros((4, 5, 2), np.float32)
    img = flow_to_color(flow)
    assert img.shape == (4, 5, 3) and img.dtype == np.uint8
    assert (img == 255).all()
    flow[0, 0] = (2.0, 0.0)  # the largest vector, angle 0: wheel colour 0, fully saturated
    img = flow_to_color(flow)
    np.testing.assert_array_equal(img[0, 0], [255, 0, 0])
    assert (img[1:] == 255).all()
    # half the max magnitude: halfway to white -> (255, floor(255 * 0.5), 127)
    np.testing.assert_array_equal(flow_to_color(flow, max_flow=4.0)[0, 0], [255, 127, 127])
    # beyond max_flow: the wheel colour at 75 %
    np.testing.assert_array_equal(flow_to_color(flow, max_flow=1.0)[0, 0], [191, 0, 0])


def test_flow_to_color_accepts_torch():
    img = flow_to_color(torch.zeros(3, 3, 2))
    assert img.shape == (3, 3, 3) and img.dtype == np.uint8


def test_end_point_error():
    gt = np.zeros((4, 4, 2), np.float32)
    flow = gt.copy()
    flow[..., 0] = 3.0
    flow[..., 1] = 4.0
    assert end_point_error(flow, gt) == pytest.approx(5.0)
    valid = np.zeros((4, 4), bool)
    valid[0, 0] = True
    flow[1:, :] = 0
    assert end_point_error(flow, gt, valid) == pytest.approx(5.0)
    assert end_point_error(torch.from_numpy(flow), torch.from_numpy(gt)) == pytest.approx(5.0 / 4)
    with pytest.raises(ValueError):
        end_point_error(flow, gt[:2])
