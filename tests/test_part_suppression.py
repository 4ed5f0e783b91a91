"""segment.predict.iom_nms: part detections inside a larger one of their class are dropped."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from wsvis.io.predictions import frame_predictions, read_predictions
from wsvis.maskconsist.predict import suppress_contained, write_video_predictions

H, W = 40, 60


def rect(y1, x1, y2, x2) -> np.ndarray:
    m = np.zeros((H, W), bool)
    m[y1:y2, x1:x2] = True
    return m


def test_suppress_contained_by_hand():
    """Object 20x20 (400 px); part 10x10 inside it (IoM 1); half-in part 10x10 with 50 px inside (IoM 0.5);
    a part of another class inside (kept); a low-scoring 40x60 blob over all (dropped: it holds the kept object)."""
    obj, part, half, other, blob = rect(10, 10, 30, 30), rect(12, 12, 22, 22), rect(25, 15, 35, 25), \
        rect(12, 20, 18, 28), rect(0, 0, 40, 60)
    masks = np.stack([part, obj, half, other, blob])
    labels = np.array([1, 1, 1, 2, 1])
    scores = np.array([0.9, 0.8, 0.7, 0.6, 0.2])
    # IoM(half, obj) = 50 / 100 = 0.5: not above 0.5, kept; above 0.4, dropped
    np.testing.assert_array_equal(suppress_contained(masks, labels, scores, threshold=0.5)[0],
                                  [False, True, True, True, False])
    np.testing.assert_array_equal(suppress_contained(masks, labels, scores, threshold=0.4)[0],
                                  [False, True, False, True, False])
    # the paper's order alone (larger first, scores aside) would let the blob remove every class-1 mask
    assert suppress_contained(masks, labels, np.full(5, 0.9), threshold=0.5)[0].tolist() == [False] * 3 + [True] * 2
    # a low-scoring part inside a kept confident mask goes; a low-scoring mask outside stays
    low = np.stack([obj, part, rect(0, 40, 10, 50)])
    np.testing.assert_array_equal(suppress_contained(low, np.ones(3), np.array([0.9, 0.3, 0.3]), threshold=0.5)[0],
                                  [True, False, True])
    assert suppress_contained(np.zeros((0, H, W), bool), np.zeros(0), np.zeros(0), threshold=0.5)[0].shape == (0,)
    with pytest.raises(ValueError, match="do not fit"):
        suppress_contained(masks, labels[:-1], scores, threshold=0.5)
    # merge: the dropped confident part (half, at 0.4) joins the object; the low-scoring blob is not merged
    keep, merged = suppress_contained(masks, labels, scores, threshold=0.4, merge=True)
    np.testing.assert_array_equal(keep, [False, True, False, True, False])
    np.testing.assert_array_equal(merged[1], obj | half)
    assert merged[1].sum() == 400 + 50
    np.testing.assert_array_equal(merged[3], other)
    np.testing.assert_array_equal(masks[1], obj)  # the input is left as it was


def test_merge_joins_the_part_to_the_whole_it_overlaps_most():
    """Two kept 400 px objects of one class; a confident 120 px part with 50 px in A (IoM 0.42) and 60 in B (0.5)."""
    a, b = rect(0, 0, 20, 20), rect(0, 30, 20, 50)
    part = rect(0, 14, 10, 19) | rect(10, 30, 20, 35) | rect(20, 30, 22, 35) | rect(18, 35, 20, 40)
    assert part.sum() == 120 and (part & a).sum() == 50 and (part & b).sum() == 60
    keep, merged = suppress_contained(np.stack([a, b, part]), np.ones(3), np.array([0.9, 0.8, 0.7]), threshold=0.45,
                                      merge=True)
    np.testing.assert_array_equal(keep, [True, True, False])
    np.testing.assert_array_equal(merged[0], a)
    np.testing.assert_array_equal(merged[1], b | part)


def test_merge_with_every_confident_mask_empty():
    """A frame whose confident masks are all empty (davis_composites breakdance_bmx crashed on one: there is no kept
    mask to merge into): nothing is kept and the masks come back as they were."""
    masks = np.zeros((2, H, W), bool)
    keep, merged = suppress_contained(masks, np.array([1, 2]), np.array([0.9, 0.8]), threshold=0.5, merge=True)
    assert keep.tolist() == [False, False]
    assert merged.shape == (2, H, W) and not merged.any()


def test_write_video_predictions_drops_the_part(tmp_path):
    """A detector that fires on an object and on a part of it: with iom_nms the part is not written."""
    paths = []
    for t in range(2):
        paths.append(str(tmp_path / f"{t:05d}.png"))
        cv2.imwrite(paths[-1], np.full((H, W, 3), 128, np.uint8))
    obj, part = rect(10, 10, 30, 30), rect(12, 12, 22, 22)

    def detect(t, image):
        return {"masks": torch.from_numpy(np.stack([part, obj])).float(), "scores": torch.tensor([0.9, 0.8]),
                "labels": torch.tensor([1, 1]),
                "boxes": torch.tensor([[12.0, 12.0, 22.0, 22.0], [10.0, 10.0, 30.0, 30.0]])}

    def run(name, **kw):
        out = write_video_predictions(paths, tmp_path / f"{name}.zarr", detect, method="m", categories=["a"],
                                      max_detections=2, progress=False, **kw)
        group, attrs = read_predictions(out)
        return [frame_predictions(group, t) for t in range(2)], attrs

    plain, attrs = run("plain")
    assert attrs["iom_nms"] is None and all(len(f[1]) == 2 for f in plain)
    kept, attrs = run("iom", iom_nms=0.5)
    assert attrs["iom_nms"] == 0.5 and attrs["iom_nms_merge"] is False
    for masks, scores, labels, boxes in kept:
        assert scores.tolist() == pytest.approx([0.8])
        np.testing.assert_array_equal(masks[0], obj)
        np.testing.assert_allclose(boxes[0], [10, 10, 30, 30])
    # merge: a part reaching 2 px below the object grows its mask and its box
    part = rect(25, 12, 32, 20)  # 56 px, 40 inside the object: IoM 0.71
    obj_part = obj | part

    def detect(t, image):  # noqa: F811 - now the part sticks out of the object
        return {"masks": torch.from_numpy(np.stack([part, obj])).float(), "scores": torch.tensor([0.9, 0.8]),
                "labels": torch.tensor([1, 1]),
                "boxes": torch.tensor([[12.0, 25.0, 20.0, 32.0], [10.0, 10.0, 30.0, 30.0]])}

    merged, attrs = run("merge", iom_nms=0.5, iom_nms_merge=True)
    assert attrs["iom_nms_merge"] is True
    for masks, scores, labels, boxes in merged:
        assert scores.tolist() == pytest.approx([0.8])
        np.testing.assert_array_equal(masks[0], obj_part)
        np.testing.assert_allclose(boxes[0], [10, 10, 30, 32])


def test_joining_after_the_cuts_keeps_the_union(tmp_path):
    """With GrabCut refine on, part suppression with merging changes the instances, not the pixels predicted."""
    rng = np.random.default_rng(0)
    obj, part = rect(10, 10, 30, 30), rect(22, 14, 33, 24)  # the part reaches 3 px below the object
    paths = []
    for t in range(2):
        img = rng.integers(0, 60, (H, W, 3), dtype=np.uint8)
        img[obj | part] += 150  # a bright object on a dark, noisy background
        paths.append(str(tmp_path / f"{t:05d}.png"))
        cv2.imwrite(paths[-1], img)

    def detect(t, image):
        return {"masks": torch.from_numpy(np.stack([part, obj])).float(), "scores": torch.tensor([0.9, 0.8]),
                "labels": torch.tensor([1, 1]),
                "boxes": torch.tensor([[14.0, 22.0, 24.0, 33.0], [10.0, 10.0, 30.0, 30.0]])}

    unions = {}
    for name, kw in (("plain", {}), ("joined", {"iom_nms": 0.5, "iom_nms_merge": True})):
        out = write_video_predictions(paths, tmp_path / f"{name}.zarr", detect, method="m", categories=["a"],
                                      max_detections=2, progress=False, refine="grabcut", **kw)
        group, _ = read_predictions(out)
        frames = [frame_predictions(group, t) for t in range(2)]
        assert [len(f[1]) for f in frames] == ([2, 2] if name == "plain" else [1, 1])
        unions[name] = [f[0].any(axis=0) for f in frames]
    for plain, joined in zip(unions["plain"], unions["joined"]):
        assert plain.sum() > 0
        np.testing.assert_array_equal(joined, plain)
