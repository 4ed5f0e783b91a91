"""Flip test-time augmentation (wsvis.models.tta): mirroring round trips and the merge on hand-built detections."""

import numpy as np
import pytest
import torch

from wsvis.models.tta import detect_hflip, hflip_boxes, hflip_detections, merge_hflip
from wsvis.transforms import hflip_flow


def _det(boxes, labels, scores, masks):
    return {"boxes": torch.tensor(boxes, dtype=torch.float32), "labels": torch.tensor(labels),
            "scores": torch.tensor(scores), "masks": torch.stack(masks) if masks else torch.zeros((0, 4, 10))}


def _mask(x0, x1, value=1.0, size=(4, 10)):
    m = torch.zeros(size)
    m[:, x0:x1] = value
    return m


def test_hflip_boxes_and_flow_by_hand():
    # A box over columns 1-3 of a 10-pixel-wide frame lies over columns 6-8 of its mirror.
    assert hflip_boxes(torch.tensor([[1.0, 2.0, 4.0, 3.0]]), 10).tolist() == [[6.0, 2.0, 9.0, 3.0]]
    f = np.zeros((2, 3, 2), np.float32)
    f[0, 0] = (2.0, 1.0)
    g = hflip_flow(f)
    assert g[0, 2].tolist() == [-2.0, 1.0] and np.count_nonzero(g) == 2
    np.testing.assert_array_equal(hflip_flow(g), f)


def test_hflip_detections_round_trip():
    det = _det([[1, 0, 4, 4]], [1], [0.9], [_mask(1, 4)])
    back = hflip_detections(hflip_detections(det))
    for k in det:
        assert torch.equal(back[k], det[k])
    assert hflip_detections(det)["masks"][0, 0].nonzero().flatten().tolist() == [6, 7, 8]


def test_merge_averages_counterparts_and_keeps_the_rest():
    # Frame: a class-1 object at columns 1-4 (score 0.9, mask 1-4) and a class-2 one at columns 6-9.
    # Mirror (mapped back): the class-1 object again (score 0.95, mask over 1-5: one column wider), and a
    # class-2 box over the class-1 object (other class: not a counterpart, kept by class-wise NMS).
    det = _det([[1, 0, 5, 4], [6, 0, 10, 4]], [1, 2], [0.9, 0.8], [_mask(1, 5), _mask(6, 10)])
    mirror = _det([[1, 0, 6, 4], [1, 0, 5, 4]], [1, 2], [0.95, 0.3], [_mask(1, 6), _mask(1, 5, 0.6)])
    out = merge_hflip(det, mirror, nms_thresh=0.5, detections_per_img=10)
    # NMS keeps the mirror's class-1 detection (IoU 16/20 = 0.8 with the frame's, higher score), the frame's
    # class-2 one and the mirror's class-2 one (IoU 0 with the other class-2 box).
    assert out["scores"].tolist() == pytest.approx([0.95, 0.8, 0.3])
    assert out["boxes"][0].tolist() == [1, 0, 6, 4] and out["labels"].tolist() == [1, 2, 2]
    # The class-1 mask is the mean of the two views: 1 over columns 1-4, 0.5 at column 5.
    assert out["masks"][0, 0].tolist() == [0, 1, 1, 1, 1, 0.5, 0, 0, 0, 0]
    # No counterpart: masks unchanged.
    assert torch.equal(out["masks"][1], _mask(6, 10)) and torch.equal(out["masks"][2], _mask(1, 5, 0.6))
    assert len(merge_hflip(det, mirror, nms_thresh=0.5, detections_per_img=2)["scores"]) == 2
    empty = merge_hflip(_det([], [], [], []), _det([], [], [], []), nms_thresh=0.5, detections_per_img=5)
    assert empty["masks"].shape == (0, 4, 10)
    with pytest.raises(ValueError, match="masks"):
        merge_hflip(det, {**mirror, "masks": torch.zeros((2, 4, 9))}, nms_thresh=0.5, detections_per_img=5)


def test_detect_hflip_of_an_equivariant_detector_is_its_detection():
    """A detector that segments the bright pixels commutes with the mirror: TTA returns its own result,
    and the mirror view is flagged so a two-stream model can mirror its flow."""
    img = torch.zeros(3, 6, 12)
    img[:, 1:5, 2:7] = 1.0
    calls = []

    def detect(x, mirrored):
        calls.append(mirrored)
        m = x[0] > 0.5
        ys, xs = m.nonzero(as_tuple=True)
        box = [[xs.min().item(), ys.min().item(), xs.max().item() + 1, ys.max().item() + 1]]
        return _det(box, [1], [0.9], [m.float()])

    out = detect_hflip(detect, img, nms_thresh=0.5, detections_per_img=5)
    assert calls == [False, True]
    plain = detect(img, False)
    assert len(out["scores"]) == 1
    for k in plain:
        assert torch.equal(out[k], plain[k])
