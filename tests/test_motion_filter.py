"""segment.predict.motion_filter: detections that do not move against the camera are dropped."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from wsvis.io.predictions import frame_predictions, read_predictions
from wsvis.io.store import ArtifactWriter
from wsvis.maskconsist.predict import moving_detections, write_video_predictions

H, W, T = 48, 64, 3


def square(y, x, side=10) -> np.ndarray:
    m = np.zeros((H, W), bool)
    m[y : y + side, x : x + side] = True
    return m


def test_moving_detections_by_hand():
    """Mean residuals 4, 0.5, 1.6 and 1.2 px; the most moving confident detection moves 4 px."""
    masks = np.stack([square(2, 2), square(2, 30), square(30, 2), square(30, 30)])
    residual = np.zeros((H, W))
    residual[masks[0]] = 4.0
    residual[masks[1]] = 0.5
    residual[masks[2]] = 1.6
    residual[masks[3]] = np.where(np.arange(100) % 2 == 0, 2.0, 0.4)  # mean 1.2
    scores = np.array([0.9, 0.8, 0.3, 0.7])
    # ratio 0.5: the reference is 4 px (detection 0), so 2 px or min_flow 1.5 px
    np.testing.assert_array_equal(moving_detections(masks, scores, residual, ratio=0.5, min_flow=1.5),
                                  [True, False, True, False])
    # ratio 0.25: 1 px suffices (detection 3 at 1.2 px kept)
    np.testing.assert_array_equal(moving_detections(masks, scores, residual, ratio=0.25, min_flow=1.5),
                                  [True, False, True, True])
    # a low-scoring fast detection is no reference: confident ones move at most 1.2 px (detection 3)
    low = np.array([0.2, 0.8, 0.3, 0.7])
    np.testing.assert_array_equal(moving_detections(masks, low, residual, ratio=0.5, min_flow=10.0),
                                  [True, False, True, True])
    # nothing confident: nothing to compare with, all kept
    assert moving_detections(masks, np.full(4, 0.1), residual, ratio=0.5, min_flow=1.5).all()
    with pytest.raises(ValueError, match="do not fit"):
        moving_detections(masks, scores, residual[:-1], ratio=0.5, min_flow=1.5)


def write_flow(path, forward: np.ndarray) -> str:
    """A gap-1 flow artifact; backward = -forward (a translation's inverse)."""
    with ArtifactWriter(path, stage="flow", frame_size=(H, W), attrs={"gaps": [1], "num_frames": T}) as wr:
        wr.write_array("gap_1/forward", forward.astype(np.float16))
        wr.write_array("gap_1/backward", (-forward).astype(np.float16))
    return str(path)


def test_write_video_predictions_drops_the_static_detection(tmp_path):
    """The camera pans 3 px right; one square moves with the scene (static), one moves 6 px down against it."""
    import cv2

    paths = []
    for t in range(T):
        paths.append(str(tmp_path / f"{t:05d}.png"))
        cv2.imwrite(paths[-1], np.full((H, W, 3), 128, np.uint8))
    moving, still = square(5, 5), square(30, 40)
    forward = np.zeros((T - 1, H, W, 2), np.float32)
    forward[..., 0] = 3.0
    forward[:, moving] = [3.0, 6.0]
    flow = write_flow(tmp_path / "flow.zarr", forward)

    def detect(t, image):
        return {"masks": torch.from_numpy(np.stack([still, moving])).float(), "scores": torch.tensor([0.95, 0.9]),
                "labels": torch.tensor([1, 1]), "boxes": torch.tensor([[40.0, 30.0, 50.0, 40.0], [5.0, 5.0, 15.0, 15.0]])}

    def run(name, **kw):
        out = write_video_predictions(paths, tmp_path / f"{name}.zarr", detect, method="m", categories=["a"],
                                      max_detections=2, progress=False, **kw)
        group, attrs = read_predictions(out)
        return [frame_predictions(group, t) for t in range(T)], attrs

    plain, attrs = run("plain")
    assert attrs["motion_filter"] is None
    assert all(len(f[1]) == 2 for f in plain)
    filtered, attrs = run("filtered", motion_filter=0.5, flow_path=flow)
    assert attrs["motion_filter"] == 0.5 and attrs["motion_filter_flow"] == 1.5
    for masks, scores, labels, boxes in filtered:  # the last frame reads the backward flow: same magnitude
        assert len(scores) == 1 and scores[0] == pytest.approx(0.9)
        np.testing.assert_array_equal(masks[0], moving)
        np.testing.assert_allclose(boxes[0], [5.0, 5.0, 15.0, 15.0])
    with pytest.raises(ValueError, match="motion_filter needs"):
        run("noflow", motion_filter=0.5)
